#!/usr/bin/env node
// Issue 12, item 1: a full disk. data_dir on a small tmpfs (20 MB), the upstream away, a device
// that keeps sending 1 MiB scans. What did relaybox answer, did it stay up, did it start again on
// the full disk, and once the upstream is back (and, for the new code, a filler file comes and
// goes): was every message answered 250 delivered, and was mail taken again without a restart?
//
//   sudo node bench/faults/disk-full.mjs                                  # this checkout's dist/
//   sudo node bench/faults/disk-full.mjs --cli /tmp/rb-before/dist/cli.js # another build
//   options: --fs-mb 20 --message-kb 1024 --max 60 --json --keep-log FILE (relaybox's log)
//
// Needs root (mount -t tmpfs). Loopback only. Prints a small table (and JSON with --json).
import { spawn, execFileSync } from 'node:child_process';
import { createWriteStream, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statfsSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { startSink } from '../lib/sink.mjs';
import { SmtpConn, smallMessage } from '../lib/smtp-client.mjs';
import { canConnect, freePort, log, sleep, waitUntil } from '../lib/util.mjs';

const REPO = new URL('../..', import.meta.url).pathname.replace(/\/$/, '');
const { values: opts } = parseArgs({
  options: {
    cli: { type: 'string', default: process.env.RELAYBOX_CLI ?? join(REPO, 'dist/cli.js') },
    'fs-mb': { type: 'string', default: '20' },
    'message-kb': { type: 'string', default: '1024' },
    max: { type: 'string', default: '60' },
    json: { type: 'boolean', default: false },
    'keep-log': { type: 'string' },
  },
});
if (process.getuid?.() !== 0) {
  console.error('disk-full.mjs mounts a tmpfs: run it as root');
  process.exit(2);
}

const root = mkdtempSync(join(tmpdir(), 'relaybox-diskfull-'));
const mnt = join(root, 'fs');
mkdirSync(mnt);
execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${opts['fs-mb']}m`, 'tmpfs', mnt]);
const dataDir = join(mnt, 'data');
const filler = join(mnt, 'filler');
const [port, sinkPort, httpPort] = [await freePort(), await freePort(), await freePort()];
const configPath = join(root, 'relaybox.yaml');
writeFileSync(
  configPath,
  [
    'hostname: bench.example.com',
    `data_dir: ${dataDir}`,
    `smtp: { listen: ["127.0.0.1:${port}"], tls: { mode: none } }`,
    `upstreams: [{ name: away, type: smtp, host: 127.0.0.1, port: ${sinkPort}, security: none }]`,
    "delivery: { retry: { first: 1s, max: 2s } }",
    `http: { listen: "127.0.0.1:${httpPort}" }`,
    'log: { level: info }',
    '',
  ].join('\n'),
);
const logPath = join(root, 'relaybox.log'); // outside the small filesystem, as journald would be
const logFile = createWriteStream(logPath);
const freeBytes = () => { const s = statfsSync(mnt); return s.bavail * s.bsize; };

/** Every relaybox this script started and that still runs: killed in `finally`, whatever failed. */
const running = new Set();

/** Starts relaybox; resolves with { child, exit } once it listens, or with its exit code. */
async function start() {
  const child = spawn(process.execPath, [opts.cli, 'serve', '--config', configPath], { stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout.pipe(logFile, { end: false });
  child.stderr.pipe(logFile, { end: false });
  const rb = { child, exit: null };
  running.add(child);
  child.once('exit', (code, signal) => {
    rb.exit = code ?? signal;
    running.delete(child);
  });
  await waitUntil(async () => rb.exit !== null || (await canConnect(port)), 20_000, 'relaybox to listen or exit');
  await sleep(300); // a crash right after binding shows here
  return rb;
}
async function stop(rb) {
  if (rb.exit !== null) return;
  rb.child.kill('SIGTERM');
  await waitUntil(() => rb.exit !== null, 20_000, 'relaybox to stop').catch(() => rb.child.kill('SIGKILL'));
}

/** One transaction on a new connection; every reply kept, nothing thrown. */
async function send(id, { size } = {}) {
  const body = smallMessage({ from: 'scanner@example.com', to: 'ops@example.com', payload: Number(opts['message-kb']) * 1024, id: String(id) });
  let conn;
  try {
    conn = await SmtpConn.open(port);
  } catch (err) {
    return { id, stage: 'connect', code: null, text: String(err.message ?? err) };
  }
  try {
    const mail = await conn.command(`MAIL FROM:<scanner@example.com>${size ? ` SIZE=${size}` : ''}`);
    if (mail.code !== 250) return { id, stage: 'MAIL', code: mail.code, text: mail.text };
    const rcpt = await conn.command('RCPT TO:<ops@example.com>');
    if (rcpt.code !== 250) return { id, stage: 'RCPT', code: rcpt.code, text: rcpt.text };
    const data = await conn.command('DATA');
    if (data.code !== 354) return { id, stage: 'DATA', code: data.code, text: data.text };
    const final = conn.reply(60_000);
    conn.socket.write(body);
    conn.socket.write('.\r\n');
    const r = await final;
    return { id, stage: 'end of DATA', code: r.code, text: r.text };
  } catch (err) {
    return { id, stage: 'error', code: null, text: String(err.message ?? err) };
  } finally {
    await conn.quit();
  }
}
async function health() {
  try {
    const res = await fetch(`http://127.0.0.1:${httpPort}/healthz`);
    return { code: res.status, body: await res.json() };
  } catch (err) {
    return { code: null, body: String(err.message ?? err) };
  }
}
const brief = (r) => (r.code === null ? `${r.stage}: ${r.text}` : `${r.stage}: ${r.text.split('\n').pop()}`);

const result = { cli: opts.cli, fs_mb: Number(opts['fs-mb']), message_kb: Number(opts['message-kb']) };
const accepted = new Set();
let sink;
try {
  // 1. The upstream is away; the device keeps sending until five refusals in a row, or relaybox is gone.
  let rb = await start();
  const replies = [];
  let refusedInARow = 0;
  for (let id = 1; id <= Number(opts.max) && refusedInARow < 5; id++) {
    const r = await send(id);
    replies.push(r);
    if (r.code === 250) {
      accepted.add(String(id));
      refusedInARow = 0;
    } else refusedInARow++;
    if (rb.exit !== null) break;
  }
  await sleep(2000); // a delivery thread dying on the full disk takes a retry round
  result.accepted = accepted.size;
  result.refusals = [...new Set(replies.filter((r) => r.code !== 250).map(brief))];
  result.free_after_fill = freeBytes();
  result.alive_after_fill = rb.exit === null;
  result.exit_code = rb.exit;
  result.healthz_full = await health();
  result.size_too_big = rb.exit === null ? brief(await send('size', { size: 8 * 1024 * 1024 })) : 'n/a (not running)';

  // 2. A restart on the full disk (as systemd would), three times.
  await stop(rb);
  result.restarts = [];
  for (let i = 0; i < 3; i++) {
    rb = await start();
    result.restarts.push(rb.exit === null ? 'started' : `exit ${rb.exit}`);
    if (rb.exit === null) break;
  }
  if (rb.exit === null) result.mail_from_after_restart = brief(await send('after-restart'));
  else {
    // The old code needs a person: give the filesystem more room, then start it.
    execFileSync('mount', ['-o', `remount,size=${Number(opts['fs-mb']) * 2}m`, mnt]);
    result.person_grew_fs = true;
    rb = await start();
    result.start_after_person = rb.exit === null ? 'started' : `exit ${rb.exit}`;
  }

  // 3. The upstream comes back: every message answered 250 must arrive.
  sink = await startSink(sinkPort);
  const t0 = Date.now();
  await waitUntil(() => [...accepted].every((id) => sink.arrivals.some((a) => a.benchId === id)), 120_000, 'every accepted message at the upstream').catch(() => {});
  const arrived = new Map();
  for (const a of sink.arrivals) arrived.set(a.benchId, (arrived.get(a.benchId) ?? 0) + 1);
  result.delivered_of_accepted = `${[...accepted].filter((id) => arrived.has(id)).length}/${accepted.size}`;
  result.duplicates = [...arrived.values()].filter((n) => n > 1).length;
  result.delivery_s = (Date.now() - t0) / 1000;
  await sleep(1500);
  result.free_after_delivery = freeBytes();
  result.mail_after_delivery = rb.exit === null ? brief(await send('after-delivery')) : 'n/a (not running)';

  // 4. Something else fills the disk while relaybox runs; then that file is deleted. On a fresh
  // data_dir: the old one's spool file keeps the pages its delivered bodies freed, and rightly
  // takes mail into them whatever else fills the filesystem.
  if (rb.exit === null && !result.person_grew_fs) {
    await stop(rb);
    rmSync(dataDir, { recursive: true, force: true });
    rb = await start();
    result.fresh_spool_first_mail = brief(await send('fresh'));
    try {
      execFileSync('fallocate', ['-l', String(Math.max(4096, freeBytes())), filler]);
    } catch {
      writeFileSync(filler, ''); // nothing left to take
    }
    await sleep(1500); // past the free-space cache
    result.filled_by_other = brief(await send('filled'));
    result.healthz_filled = await health();
    result.alive_filled = rb.exit === null;
    await stop(rb);
    rb = await start();
    result.restart_filled = rb.exit === null ? 'started' : `exit ${rb.exit}`;
    if (rb.exit === null) {
      result.mail_on_full_start = brief(await send('full-start'));
      rmSync(filler);
      const t1 = Date.now();
      const r = await waitUntil(async () => { const x = await send('after-filler'); return x.code === 250 && x; }, 30_000, 'mail taken again').catch(() => null);
      result.mail_after_filler = r ? `${brief(r)} (${((Date.now() - t1) / 1000).toFixed(1)} s, no restart)` : 'refused for 30 s';
      result.healthz_after = await health();
    }
  }
  await stop(rb);
  result.final_exit = rb.exit;
  const lines = readFileSync(logPath, 'utf8').split('\n');
  result.log_lines = lines.filter(Boolean).length;
  // Lines about the disk (not every line naming the data_dir path): a state logs two, a crash many.
  const about = (l) => {
    try {
      const j = JSON.parse(l);
      return `${j.msg} ${j.err?.message ?? ''} ${j.err?.code ?? ''}`;
    } catch {
      return l;
    }
  };
  result.log_disk_lines = lines.filter((l) => l && /disk|space|SQLITE_FULL/i.test(about(l))).length;
} finally {
  for (const child of running) child.kill('SIGKILL');
  await sink?.stop();
  await sleep(200);
  try { execFileSync('umount', [mnt]); } catch (err) { log(`umount: ${err.message}`); }
  if (opts['keep-log']) writeFileSync(opts['keep-log'], readFileSync(logPath));
  if (!existsSync(join(mnt, 'data'))) rmSync(root, { recursive: true, force: true });
}

if (opts.json) console.log(JSON.stringify(result, null, 2));
const rows = Object.entries(result).map(([k, v]) => `| ${k} | ${typeof v === 'object' ? JSON.stringify(v) : v} |`);
console.log(['| measure | value |', '|---|---|', ...rows].join('\n'));
