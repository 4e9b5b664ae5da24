// Small helpers shared by the bench modules: timing, statistics, ports, commands.
import { execFileSync } from 'node:child_process';
import net from 'node:net';

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Monotonic clock in ms (CLOCK_MONOTONIC: comparable between processes on Linux). */
export const nowMs = () => Number(process.hrtime.bigint()) / 1e6;

export function quantile(values, q) {
  if (values.length === 0) return NaN;
  const s = [...values].sort((a, b) => a - b);
  const pos = (s.length - 1) * q;
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  return s[lo] + (s[hi] - s[lo]) * (pos - lo);
}
export const median = (v) => quantile(v, 0.5);

/** Rejects after `ms` unless `promise` settles first. Every wait in the bench is bounded. */
export function withTimeout(promise, ms, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** Polls until `check()` is truthy, at most `ms`; returns the value or throws. */
export async function waitUntil(check, ms, what, every = 50) {
  const deadline = Date.now() + ms;
  for (let i = 0; Date.now() < deadline && i < 1e6; i++) {
    const v = await check();
    if (v) return v;
    await sleep(every);
  }
  throw new Error(`timed out after ${ms} ms: ${what}`);
}

export function canConnect(port, host = '127.0.0.1') {
  return new Promise((resolve) => {
    const s = net.connect({ port, host });
    s.setTimeout(1000);
    s.once('connect', () => { s.destroy(); resolve(true); });
    s.once('error', () => resolve(false));
    s.once('timeout', () => { s.destroy(); resolve(false); });
  });
}

/** A port that was free a moment ago on 127.0.0.1. */
export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

/** Path of a program on PATH (or in /usr/sbin, where Debian puts Postfix's tools), else null. */
export function which(cmd) {
  for (const dir of [...(process.env.PATH ?? '').split(':'), '/usr/sbin', '/sbin']) {
    if (!dir) continue;
    try {
      execFileSync('test', ['-x', `${dir}/${cmd}`]);
      return `${dir}/${cmd}`;
    } catch {}
  }
  return null;
}

export const fmt = (n, digits = 0) => (Number.isFinite(n) ? n.toFixed(digits) : 'n/a');
export const kib = (bytes, digits = 1) => fmt(bytes / 1024, digits);
export const mib = (bytes, digits = 1) => fmt(bytes / 1048576, digits);

export function log(...args) {
  process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${args.join(' ')}\n`);
}
