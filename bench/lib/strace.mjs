// Counts sync calls (fsync, fdatasync, ...) of running processes with `strace -f -c -p ...`.
// Attaching slows the traced processes down a lot, so it runs in a separate, counting-only pass.
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { sleep, waitUntil, which } from './util.mjs';

const SYNC_CALLS = ['fsync', 'fdatasync', 'sync_file_range', 'msync', 'sync', 'syncfs'];

export const straceAvailable = () => which('strace') !== null;

export async function straceAttach(pids, dir) {
  const out = join(dir, `strace-${Date.now()}.txt`);
  const args = ['-f', '-c', '-w', '-o', out, '-e', `trace=${SYNC_CALLS.join(',')}`, ...pids.flatMap((p) => ['-p', String(p)])];
  const child = spawn(which('strace'), args, { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  let attached = 0;
  child.stderr.on('data', (d) => {
    stderr += d;
    attached = (stderr.match(/attached/g) ?? []).length;
  });
  let exited = false;
  child.once('exit', () => (exited = true));
  // strace announces each attached thread; wait for the first one, then a moment for the rest.
  await waitUntil(() => attached > 0 || exited, 5000, 'strace to attach').catch(() => {});
  await sleep(300);
  if (exited) throw new Error(`strace could not attach: ${stderr.trim().split('\n').slice(-2).join(' | ')}`);
  return {
    async stop() {
      child.kill('SIGINT');
      await waitUntil(() => exited, 10_000, 'strace to detach').catch(() => child.kill('SIGKILL'));
      return parseSummary(readFileSync(out, 'utf8'));
    },
  };
}

/** `strace -c -w` table → { calls: { fsync: 1234, ... }, seconds: { fsync: 1.2, ... } } (seconds: wall time inside the call). */
function parseSummary(text) {
  const calls = Object.fromEntries(SYNC_CALLS.map((c) => [c, 0]));
  const seconds = Object.fromEntries(SYNC_CALLS.map((c) => [c, 0]));
  for (const line of text.split('\n')) {
    const f = line.trim().split(/\s+/);
    const name = f[f.length - 1];
    if (name in calls && /^\d+$/.test(f[3] ?? '')) {
      calls[name] = Number(f[3]);
      seconds[name] = Number(f[1]);
    }
  }
  return { calls, seconds };
}
