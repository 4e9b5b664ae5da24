// Readers for /proc: memory, I/O and CPU of a process (or a process tree), and the block device's counters.
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';

const TICK_MS = 10; // USER_HZ is 100 on every Linux we target

function read(path) {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return null;
  }
}

/** VmRSS in bytes, or NaN if the process is gone. */
export function rss(pid) {
  const m = /VmRSS:\s+(\d+) kB/.exec(read(`/proc/${pid}/status`) ?? '');
  return m ? Number(m[1]) * 1024 : NaN;
}

/** VmRSS split: RssAnon (heap, stacks: the process's own) and RssFile (mapped binaries: node's text, shared). */
export function rssDetail(pid) {
  const st = read(`/proc/${pid}/status`) ?? '';
  const kb = (k) => Number(new RegExp(`${k}:\\s+(\\d+) kB`).exec(st)?.[1] ?? NaN) * 1024;
  return { anon: kb('RssAnon'), file: kb('RssFile'), shmem: kb('RssShmem'), threads: Number(/^Threads:\s+(\d+)/m.exec(st)?.[1] ?? NaN) };
}

/** Proportional set size in bytes (shared pages split between sharers), or 0. */
export function pss(pid) {
  const m = /^Pss:\s+(\d+) kB/m.exec(read(`/proc/${pid}/smaps_rollup`) ?? '');
  return m ? Number(m[1]) * 1024 : 0;
}

/** /proc/<pid>/io as numbers: rchar, wchar, syscr, syscw, read_bytes, write_bytes, cancelled_write_bytes. */
export function io(pid) {
  const out = {};
  for (const line of (read(`/proc/${pid}/io`) ?? '').split('\n')) {
    const [k, v] = line.split(':');
    if (v !== undefined) out[k.trim()] = Number(v);
  }
  return out;
}

function statFields(pid) {
  const text = read(`/proc/${pid}/stat`);
  if (!text) return null;
  // comm may hold spaces and parentheses: split after the last ')'.
  const close = text.lastIndexOf(')');
  return { comm: text.slice(text.indexOf('(') + 1, close), f: text.slice(close + 2).split(' ') };
}

/** CPU time (user+system) in ms; with `children`, also that of waited-for children that exited. */
export function cpuMs(pid, { children = false } = {}) {
  const s = statFields(pid);
  if (!s) return NaN;
  // After "pid (comm) ": state=0 ppid=1 ... utime=11 stime=12 cutime=13 cstime=14
  let ticks = Number(s.f[11]) + Number(s.f[12]);
  if (children) ticks += Number(s.f[13]) + Number(s.f[14]);
  return ticks * TICK_MS;
}

/** CPU ms of one thread (the main thread of a Node process has tid == pid). */
export function threadCpuMs(pid, tid = pid) {
  const text = read(`/proc/${pid}/task/${tid}/stat`);
  if (!text) return NaN;
  const f = text.slice(text.lastIndexOf(')') + 2).split(' ');
  return (Number(f[11]) + Number(f[12])) * TICK_MS;
}

/** Whole-machine CPU: busy and total jiffies from /proc/stat (all cores). */
export function machineCpu() {
  const f = (read('/proc/stat') ?? '').split('\n')[0].trim().split(/\s+/).slice(1, 9).map(Number);
  const idleAll = f[3] + f[4];
  const total = f.reduce((a, b) => a + b, 0);
  return { busy: total - idleAll, total };
}

/** `pid` and all its descendants alive now. */
export function processTree(pid) {
  const parent = new Map();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const s = statFields(name);
    if (s) parent.set(Number(name), Number(s.f[1]));
  }
  const tree = new Set([pid]);
  for (let changed = true, rounds = 0; changed && rounds < 64; rounds++) {
    changed = false;
    for (const [p, pp] of parent) if (!tree.has(p) && tree.has(pp)) { tree.add(p); changed = true; }
  }
  return [...tree];
}

/** CPU ms of a tree: live members plus what its root reaped from exited children. */
export function treeCpuMs(root) {
  let total = cpuMs(root, { children: true });
  for (const p of processTree(root)) if (p !== root) total += cpuMs(p) || 0;
  return total;
}

export const treePss = (root) => processTree(root).reduce((sum, p) => sum + pss(p), 0);

/** The /proc/diskstats line of the whole disk holding `path` (partitions map to their disk). */
export function diskFor(path) {
  const dev = statSync(path).dev;
  const major = Math.floor(dev / 256) & 0xfff;
  const minor = (dev & 0xff) | ((dev >> 12) & 0xfff00);
  const sys = read(`/sys/dev/block/${major}:${minor}/uevent`) ?? '';
  const name = /DEVNAME=(\S+)/.exec(sys)?.[1];
  const isPart = read(`/sys/dev/block/${major}:${minor}/partition`) !== null;
  if (!name) return null;
  if (!isPart) return name;
  // sda1 -> sda, nvme0n1p1 -> nvme0n1, mmcblk0p2 -> mmcblk0 (the SD card of a Raspberry Pi)
  for (const d of readdirSync('/sys/block')) if (read(`/sys/block/${d}/${name}/partition`) !== null) return d;
  return name;
}

/** Write-side counters of one disk: requests, bytes written, cache flushes (≈ fsyncs reaching the device). */
export function diskstats(name) {
  for (const line of (read('/proc/diskstats') ?? '').split('\n')) {
    const f = line.trim().split(/\s+/);
    if (f[2] !== name) continue;
    return { writes: Number(f[7]), writeBytes: Number(f[9]) * 512, flushes: f.length > 18 ? Number(f[18]) : NaN };
  }
  return null;
}

export function diskDelta(before, after) {
  if (!before || !after) return null;
  return { writes: after.writes - before.writes, writeBytes: after.writeBytes - before.writeBytes, flushes: after.flushes - before.flushes };
}

/** Apparent and allocated size of the files directly in `dir` (the spool is flat: spool.db, -wal, -shm). */
export function dirSize(dir) {
  let apparent = 0;
  let allocated = 0;
  const walk = (d, depth) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory() && depth < 4) walk(p, depth + 1);
      else if (e.isFile()) {
        const st = statSync(p);
        apparent += st.size;
        allocated += st.blocks * 512;
      }
    }
  };
  walk(dir, 0);
  return { apparent, allocated };
}

/** Samples `measure()` every `everyMs` until stopped; keeps peak and count. Bounded by `maxMs`. */
export function sampler(measure, everyMs = 50, maxMs = 600_000) {
  const started = Date.now();
  let peak = -Infinity;
  let samples = 0;
  const tick = () => {
    const v = measure();
    if (Number.isFinite(v)) { peak = Math.max(peak, v); samples++; }
    if (Date.now() - started > maxMs) clearInterval(timer);
  };
  const timer = setInterval(tick, everyMs);
  tick();
  return {
    /** Peak so far, without stopping. */
    peak: () => peak,
    stop() { clearInterval(timer); tick(); return { peak, samples }; },
  };
}
