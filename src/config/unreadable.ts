import { userInfo } from 'node:os';

/**
 * Why a file could not be read, after its errno code (`EACCES`, `ENOENT`), in words a person can act
 * on. `EACCES` as the relaybox user usually means a file that root can read and the service cannot:
 * /usr/bin/relaybox run by root switches to that user (RELAYBOX_FROM_ROOT), as the service runs.
 */
export function readFailure(err: unknown, path: string): string {
  const code = (err as NodeJS.ErrnoException).code ?? String(err);
  if (code !== 'EACCES') return code;
  const user = safeUserName();
  if (process.env.RELAYBOX_FROM_ROOT === '1') {
    return `${code} — the ${user} user cannot read it: /usr/bin/relaybox, run by root, runs as ${user} as the service does; ` +
      `let that user read it and enter the directories above it (chgrp ${user} ${path}; chmod g+r ${path}) or set RELAYBOX_AS_ROOT=1`;
  }
  return `${code} — the ${user} user cannot read it (permission denied)`;
}

function safeUserName(): string {
  try {
    return userInfo().username;
  } catch {
    return `uid ${process.getuid?.() ?? '?'}`;
  }
}
