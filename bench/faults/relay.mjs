// relaybox as a child process for the fault scripts: a config of our own (AUTH users, admin token,
// extra smtp keys), `node --max-semi-space-size=1 dist/cli.js serve` with MALLOC_MMAP_THRESHOLD_
// as the packaged service runs it (deploy/relaybox.sh). RELAYBOX_CLI=/path/to/dist/cli.js measures
// another build (the "before"); BENCH_PLAIN_MALLOC=1 leaves glibc's defaults (as the service was before).
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { canConnect, freePort, waitUntil } from '../lib/util.mjs';

export const REPO = new URL('../..', import.meta.url).pathname.replace(/\/$/, '');
export const CLI = process.env.RELAYBOX_CLI ?? join(REPO, 'dist/cli.js');

/** `smtpExtra`: YAML lines added under `smtp:` (two-space indented). */
export async function startRelay({ smtpExtra = [], adminToken = '', env = {} } = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'relaybox-fault-'));
  const [port, httpPort] = [await freePort(), await freePort()];
  const yaml = [
    'hostname: bench.example.com',
    `data_dir: ${join(dir, 'spool')}`,
    'smtp:',
    `  listen: ["127.0.0.1:${port}"]`,
    '  tls: { mode: none }',
    ...smtpExtra.map((line) => `  ${line}`),
    `upstreams: [{ name: outbox, type: file, dir: ${join(dir, 'outbox')} }]`,
    `http: { listen: "127.0.0.1:${httpPort}"${adminToken ? `, admin_token: "${adminToken}"` : ''} }`,
    'log: { level: error }',
    '',
  ].join('\n');
  const config = join(dir, 'relaybox.yaml');
  writeFileSync(config, yaml);
  const child = spawn(process.execPath, ['--max-semi-space-size=1', CLI, 'serve', '--config', config], {
    cwd: dir,
    stdio: ['ignore', 'ignore', 'pipe'],
    env: { ...mallocEnv(), ...process.env, ...env },
  });
  let stderr = '';
  child.stderr.on('data', (d) => (stderr += d));
  let exited = null;
  child.once('exit', (code) => (exited = code));
  await waitUntil(async () => {
    if (exited !== null) throw new Error(`relaybox exited ${exited}: ${stderr}`);
    return canConnect(port);
  }, 20_000, 'relaybox to listen');
  return {
    port,
    httpPort,
    pid: child.pid,
    dir,
    async stop() {
      if (exited !== null) return;
      child.kill('SIGTERM');
      await waitUntil(() => exited !== null, 15_000, 'relaybox to stop').catch(() => child.kill('SIGKILL'));
    },
  };
}

/** What deploy/relaybox.sh sets, unless BENCH_PLAIN_MALLOC=1. */
export function mallocEnv() {
  return process.env.BENCH_PLAIN_MALLOC === '1' ? {} : { MALLOC_MMAP_THRESHOLD_: '32768' };
}

/** VmRSS of a process in MB. */
export function rssMb(pid) {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : NaN;
}

/** VmRSS split, in MB: anonymous (heap, malloc), file-backed (node's code), shared memory (SQLite's WAL index). */
export function rssParts(pid) {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const mb = (key) => (Number(new RegExp(`${key}:\\s+(\\d+) kB`).exec(status)?.[1]) / 1024).toFixed(0);
  return `anon ${mb('RssAnon')}, file ${mb('RssFile')}, shmem ${mb('RssShmem')} MB`;
}

/** A password hash as `relaybox hash-password` makes it, from the build under test. */
export async function hashPassword(password) {
  const { hashPassword: hash } = await import(join(CLI, '..', 'ingress/passwords.js'));
  return hash(password);
}
