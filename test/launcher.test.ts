import { spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { tempDir } from './helpers/tmp.js';

const REPO = join(import.meta.dirname, '..');
const LAUNCHER = join(REPO, 'deploy/relaybox.sh');
const has = (cmd: string) => spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;
const SWITCHES = process.getuid?.() === 0 && spawnSync('getent', ['passwd', 'relaybox']).status === 0 && has('setpriv');
const NOTE = 'relaybox: running as the relaybox user, as the service does; files it reads must be readable by that user (RELAYBOX_AS_ROOT=1 stays root)\n';

/** /usr/bin/relaybox as root runs it, on this checkout's dist/ (readable by everyone). */
function asRoot(args: string[], env: Record<string, string> = {}) {
  const inherited: Record<string, string | undefined> = { ...process.env };
  delete inherited.RELAYBOX_AS_ROOT;
  delete inherited.RELAYBOX_FROM_ROOT;
  return spawnSync(LAUNCHER, args, { env: { ...inherited, RELAYBOX_HOME: REPO, ...env }, encoding: 'utf8', timeout: 60_000 });
}

/** A config file any user can read, naming a token only root can read. */
function openConfig(extra: Record<string, unknown> = {}): string {
  const dir = tempDir();
  chmodSync(dir, 0o755);
  const file = join(dir, 'relaybox.yaml');
  writeFileSync(file, stringify({ hostname: 'relay.example.com', data_dir: join(dir, 'data'), upstreams: [{ name: 'out', type: 'file', dir: join(dir, 'out') }], ...extra }), { mode: 0o644 });
  return file;
}

const title = 'the root → relaybox switch of /usr/bin/relaybox';
describe.skipIf(!SWITCHES)(SWITCHES ? title : `${title}: SKIPPED, needs root, setpriv and a relaybox user (useradd --system relaybox)`, () => {
  it('says so once on stderr, and works on files the relaybox user can read', () => {
    const run = asRoot(['check-config', '--config', openConfig()]);
    expect(run.stderr).toBe(NOTE);
    expect(run.status).toBe(0);
  });

  it('names a config file the relaybox user cannot read, and why', () => {
    const hidden = join(tempDir(), 'relaybox.yaml'); // in a 0700 directory of root's
    writeFileSync(hidden, readableConfigText());
    const run = asRoot(['check-config', '--config', hidden]);
    expect(run.status).toBe(2);
    expect(run.stderr.split(NOTE)).toHaveLength(2); // the note, once
    expect(run.stderr).toContain(`relaybox: bad configuration in ${hidden}:\n  cannot read the file: EACCES — the relaybox user cannot read it:`);
    expect(run.stderr).toContain(`chmod g+r ${hidden}`);
    expect(run.stderr).toContain('RELAYBOX_AS_ROOT=1');
  });

  it('names a secret file the config points at that the relaybox user cannot read', () => {
    const token = join(tempDir(), 'token');
    writeFileSync(token, 'a-long-admin-token\n', { mode: 0o600 });
    const run = asRoot(['check-config', '--config', openConfig({ http: { listen: '127.0.0.1:8025', admin_token: { file: token } } })]);
    expect(run.status).toBe(2);
    expect(run.stderr).toContain(`  http.admin_token: cannot read ${token}: EACCES — the relaybox user cannot read it:`);
  });

  it('names its own program when the relaybox user cannot read it', () => {
    const home = join(tempDir(), 'usr/lib/relaybox');
    mkdirSync(join(home, 'dist'), { recursive: true });
    writeFileSync(join(home, 'dist/cli.js'), '');
    const run = asRoot(['--version'], { RELAYBOX_HOME: home });
    expect(run.status).toBe(1);
    expect(run.stderr).toBe(`${NOTE}relaybox: cannot read ${home}/dist/cli.js: missing, or the relaybox user may not read it or a directory above it\n`);
  });

  it('stays root, silently, with RELAYBOX_AS_ROOT=1', () => {
    const hidden = join(tempDir(), 'relaybox.yaml');
    writeFileSync(hidden, readableConfigText());
    const run = asRoot(['check-config', '--config', hidden], { RELAYBOX_AS_ROOT: '1' });
    expect(run.stderr).toBe('');
    expect(run.status).toBe(0);
  });
});

function readableConfigText(): string {
  return stringify({ hostname: 'relay.example.com', data_dir: '/var/lib/relaybox', upstreams: [{ name: 'out', type: 'file', dir: '/var/lib/relaybox/outbox' }] });
}
