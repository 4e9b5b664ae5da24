// The load: smtp-source when Postfix's tools are installed, else the Node stand-in.
import { spawn } from 'node:child_process';
import { nodeLoad } from './smtp-client.mjs';
import { nowMs, which, withTimeout } from './util.mjs';

export const FROM = 'a@example.com';
export const TO = 'b@example.org';

export function loadGenerator(prefer) {
  const smtpSource = which('smtp-source');
  if (prefer === 'node' || !smtpSource) return { name: 'node', run: (o) => nodeLoad({ ...o, from: FROM, to: TO }) };
  return { name: 'smtp-source', run: (o) => runSmtpSource(smtpSource, o) };
}

/** `smtp-source -s S -m M -l L` against 127.0.0.1:port, timed from spawn to exit. */
async function runSmtpSource(bin, { port, sessions = 10, messages = 1000, payload = 1024, ms = 600_000 }) {
  const args = ['-s', String(sessions), '-m', String(messages), '-l', String(payload), '-f', FROM, '-t', TO, `127.0.0.1:${port}`];
  const t0 = nowMs();
  const child = spawn(bin, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d) => (stderr += d));
  const code = await withTimeout(new Promise((r) => child.once('exit', r)), ms, 'smtp-source').catch((err) => {
    child.kill('SIGKILL');
    throw err;
  });
  const durationMs = nowMs() - t0;
  if (code !== 0) return { ok: 0, failed: messages, errors: [stderr.trim().split('\n').slice(-3).join(' | ')], durationMs };
  return { ok: messages, failed: 0, errors: [], durationMs };
}
