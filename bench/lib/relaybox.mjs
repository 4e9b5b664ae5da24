// relaybox as a child process: a config in a fresh temp dir, `node dist/cli.js serve`, ready when
// its SMTP port accepts a connection, stopped with SIGTERM.
import { spawn } from 'node:child_process';
import { createWriteStream, existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { canConnect, freePort, log, sleep, waitUntil } from './util.mjs';

export const REPO = new URL('../..', import.meta.url).pathname.replace(/\/$/, '');

/** dist/cli.js of this checkout, or another build to compare against (RELAYBOX_CLI=/path/to/dist/cli.js). */
export const CLI = process.env.RELAYBOX_CLI ?? join(REPO, 'dist/cli.js');

export function relayboxBuilt() {
  return existsSync(CLI);
}

function configYaml({ port, sinkPort, dataDir, concurrency }) {
  return [
    'hostname: bench.example.com',
    `data_dir: ${dataDir}`,
    `smtp: { listen: ["127.0.0.1:${port}"], tls: { mode: none } }`,
    `upstreams: [{ name: sink, type: smtp, host: 127.0.0.1, port: ${sinkPort}, security: none }]`,
    `delivery: { concurrency: ${concurrency} }`,
    // The console stays on, as on a real box, but on a free port.
    'http: { listen: "127.0.0.1:0" }',
    'log: { level: warn }',
    '',
  ].join('\n');
}

/**
 * Starts relaybox. `wrap` (e.g. ['strace', ...]) prefixes the command; then `pid` is found as
 * the node process under the wrapper. `nodeArgs` go to node itself (e.g. --cpu-prof).
 */
export async function startRelaybox({ sinkPort, concurrency = 4, tmpRoot = tmpdir(), nodeArgs = [], wrap = [] }) {
  const dir = mkdtempSync(join(tmpRoot, 'relaybox-bench-'));
  const port = await freePort();
  const dataDir = join(dir, 'spool');
  const configPath = join(dir, 'relaybox.yaml');
  writeFileSync(configPath, configYaml({ port, sinkPort, dataDir, concurrency }));
  // As the packaged service runs it (deploy/relaybox.sh): a small young generation, and glibc
  // giving blocks of 32 KiB and more back to the system when they are freed.
  const argv = [...wrap, process.execPath, '--max-semi-space-size=1', ...nodeArgs, CLI, 'serve', '--config', configPath];
  // MALLOC_MMAP_THRESHOLD_=default measures glibc's own behaviour instead.
  const env = { ...process.env, MALLOC_MMAP_THRESHOLD_: process.env.MALLOC_MMAP_THRESHOLD_ ?? '32768' };
  if (env.MALLOC_MMAP_THRESHOLD_ === 'default') delete env.MALLOC_MMAP_THRESHOLD_;
  const child = spawn(argv[0], argv.slice(1), { cwd: dir, env, stdio: ['ignore', 'pipe', 'pipe'] });
  const logPath = join(dir, 'relaybox.log');
  const out = createWriteStream(logPath);
  child.stdout.pipe(out);
  child.stderr.pipe(out);
  let exited = null;
  child.once('exit', (code, signal) => (exited = { code, signal }));
  const rb = {
    dir, dataDir, port, logPath, child,
    pid: child.pid,
    get exited() { return exited; },
    logTail(lines = 15) {
      try { return readFileSync(logPath, 'utf8').trim().split('\n').slice(-lines).join('\n'); } catch { return ''; }
    },
    async stop() {
      if (exited) return exited;
      child.kill('SIGTERM');
      await waitUntil(() => exited, 15_000, 'relaybox to exit after SIGTERM').catch(() => child.kill('SIGKILL'));
      await sleep(50);
      out.end();
      return exited;
    },
  };
  try {
    await waitUntil(async () => {
      if (exited) throw new Error(`relaybox exited (${JSON.stringify(exited)}) before it was ready:\n${rb.logTail()}`);
      return canConnect(port);
    }, 20_000, `relaybox on 127.0.0.1:${port}`);
    if (wrap.length > 0) rb.pid = await waitUntil(() => nodeUnder(child.pid), 5000, 'node under the wrapper');
  } catch (err) {
    await rb.stop();
    throw err;
  }
  log(`relaybox pid ${rb.pid} on 127.0.0.1:${port}, data_dir ${dataDir}`);
  return rb;
}

/** The first node process below `pid` (strace forks it). */
function nodeUnder(pid) {
  const kids = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean);
  for (const k of kids) {
    if (readFileSync(`/proc/${k}/comm`, 'utf8').trim().startsWith('node')) return Number(k);
    const deeper = nodeUnder(Number(k));
    if (deeper) return deeper;
  }
  return null;
}
