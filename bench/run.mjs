#!/usr/bin/env node
// relaybox vs Postfix on the same machine, same load, same sink. `npm run bench` (or
// `node bench/run.mjs --help`). Writes the table to bench/results.md and prints it.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { buildBigMessage } from './lib/bigmsg.mjs';
import { FROM, TO, loadGenerator } from './lib/load.mjs';
import { POSTFIX_PORT, SINK_PORT, postfixMissing, startPostfix } from './lib/postfix.mjs';
import { cpuMs, diskFor, dirSize, io, rss, rssDetail, threadCpuMs } from './lib/proc.mjs';
import { CLI, REPO, relayboxBuilt, startRelaybox } from './lib/relaybox.mjs';
import { renderReport } from './lib/report.mjs';
import { bigMessage, idle, latency, quietLatency, syncCalls, throughput, warmUp } from './lib/scenarios.mjs';
import { startSink } from './lib/sink.mjs';
import { straceAvailable } from './lib/strace.mjs';
import { canConnect, freePort, log } from './lib/util.mjs';

const HELP = `usage: node bench/run.mjs [options]
  --quick              1000 messages, 50 latency samples, no strace pass, no quiet-spell samples, short settle
  --messages N         messages in the throughput run (default 5000)
  --warmup N           messages sent before each throughput run and not counted (default 2000, --quick 500)
  --runs N             throughput runs, Postfix and relaybox taking turns; the median is reported (default 3, --quick 1)
  --sessions N         parallel client sessions (default 10, like smtp-source -s 10)
  --latency N          messages in the latency run (default 200)
  --big-mib N          size of the big message in MiB (default 30)
  --only LIST          some of: throughput,sync,latency,quiet,big (comma-separated)
  --quiet-samples N    messages after a 40 s quiet spell, each sent at once and like a scanner (default 2)
  --no-postfix         relaybox only          --no-relaybox   Postfix only
  --no-strace          skip the sync-call counting pass
  --loadgen node|smtp-source   force the load generator (default: smtp-source if installed)
  --concurrency N      relaybox delivery.concurrency (default 4)
  --node-args="..."    extra node flags for relaybox, e.g. --node-args="--cpu-prof --cpu-prof-dir=/tmp/prof"
  --out FILE           Markdown output (default bench/results.md); --json FILE for raw numbers
  --keep               keep the temp dirs (spool, config, relaybox log)
environment: RELAYBOX_CLI=/path/to/dist/cli.js benchmarks another relaybox build (A/B runs);
  RELAYBOX_LABEL names it in the report`;

const { values: opt } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false }, messages: { type: 'string' }, warmup: { type: 'string' }, runs: { type: 'string' }, sessions: { type: 'string', default: '10' },
    latency: { type: 'string' }, 'quiet-samples': { type: 'string', default: '2' }, 'big-mib': { type: 'string', default: '30' }, only: { type: 'string' },
    'no-postfix': { type: 'boolean', default: false }, 'no-relaybox': { type: 'boolean', default: false },
    'no-strace': { type: 'boolean', default: false }, loadgen: { type: 'string' }, concurrency: { type: 'string', default: '4' },
    'node-args': { type: 'string', default: '' }, out: { type: 'string', default: join(REPO, 'bench/results.md') },
    json: { type: 'string' }, keep: { type: 'boolean', default: false }, help: { type: 'boolean', default: false },
  },
});
if (opt.help) { console.log(HELP); process.exit(0); }

const messages = Number(opt.messages ?? (opt.quick ? 1000 : 5000));
const sessions = Number(opt.sessions);
const warmup = Number(opt.warmup ?? (opt.quick ? 500 : 2000));
const runs = Math.max(1, Number(opt.runs ?? (opt.quick ? 1 : 3)));
const latencyCount = Number(opt.latency ?? (opt.quick ? 50 : 200));
const settleMs = opt.quick ? 2000 : 5500;
const only = new Set((opt.only ?? 'throughput,sync,latency,quiet,big').split(','));
if (opt.quick || opt['no-strace']) only.delete('sync');
if (opt.quick || Number(opt['quiet-samples']) === 0) only.delete('quiet');
const quietSamples = Number(opt['quiet-samples']);
const tmp = mkdtempSync(join(os.tmpdir(), 'relaybox-bench-run-'));
const disk = diskFor(tmp);
const cleanups = [];
const notes = [];

function environment() {
  const missing = postfixMissing();
  if (missing && !opt['no-postfix']) {
    const hint = 'Postfix side skipped: install it with `DEBIAN_FRONTEND=noninteractive apt-get install -y postfix swaks` (smtp-source and smtp-sink come with postfix).';
    log(`missing: ${missing.join(', ')}. ${hint}`);
    notes.push(hint);
  }
  if (!straceAvailable() && only.has('sync')) { notes.push('strace not installed (`apt-get install -y strace`): no sync-call counts.'); only.delete('sync'); }
  const loadgen = loadGenerator(opt.loadgen);
  if (process.env.RELAYBOX_CLI) notes.push(`relaybox build under test: ${CLI} (RELAYBOX_CLI).`);
  if (loadgen.name === 'node') notes.push('Load generator: the Node stand-in for smtp-source (one message per connection, same shape).');
  let relayboxCommit = null;
  if (process.env.RELAYBOX_LABEL || process.env.RELAYBOX_CLI) relayboxCommit = process.env.RELAYBOX_LABEL ?? CLI;
  else try { relayboxCommit = execFileSync('git', ['-C', REPO, 'describe', '--always', '--dirty'], { encoding: 'utf8' }).trim(); } catch {}
  return {
    date: new Date().toISOString().slice(0, 16).replace('T', ' ') + ' UTC', cpus: os.cpus().length, cpuModel: os.cpus()[0]?.model?.trim(),
    memBytes: os.totalmem(), kernel: os.release(), node: process.version, disk, relayboxCommit, sessions, loadgen: loadgen.name,
    usePostfix: !missing && !opt['no-postfix'] && process.getuid?.() === 0, loadgenImpl: loadgen, latencyGapMs: 20,
    argv: process.argv.slice(2).join(' '), notes, warmup, bigMiB: Number(opt['big-mib']),
  };
}

/**
 * Idle memory is measured twice: 5 s after the start, and this long after the first measured load,
 * when relaybox's delivery thread has stopped (30 s idle) and whatever the load left behind stays.
 */
const AFTER_LOAD_QUIET_MS = 40_000;

/** Runs one measurement; a failure is recorded and the rest goes on. */
async function step(section, name, fn) {
  if (!only.has(name) && !['idle'].includes(name)) return;
  try {
    section[name] = await fn();
  } catch (err) {
    log(`${name} failed: ${err.stack ?? err}`);
    (section.errors ??= []).push(`${name}: ${String(err.message ?? err).split('\n')[0]}`);
  }
}

/** A fresh relaybox (fresh data_dir) for one measurement. */
async function withRelaybox(ctx, out, fn) {
  const rb = await startRelaybox({ sinkPort: ctx.sink.port, concurrency: Number(opt.concurrency), tmpRoot: tmp, nodeArgs: opt['node-args'].split(' ').filter(Boolean) });
  const stop = () => rb.stop();
  cleanups.push(stop);
  const target = {
    name: 'relaybox', port: rb.port, pid: rb.pid, pids: () => [rb.pid],
    memory: () => rss(rb.pid), memoryDetail: () => rssDetail(rb.pid), cpuMs: () => cpuMs(rb.pid), mainThreadCpuMs: () => threadCpuMs(rb.pid), io: () => io(rb.pid),
  };
  try {
    return await fn(target, rb);
  } finally {
    const exit = await rb.stop();
    cleanups.splice(cleanups.indexOf(stop), 1);
    if (exit && exit.code !== 0) (out.errors ??= []).push(`relaybox exited ${JSON.stringify(exit)}: ${rb.logTail(3)}`);
    if (rb.logTail(1)) log(`relaybox log (${rb.logPath}):\n${rb.logTail(10)}`);
    if (!opt.keep) rmSync(rb.dir, { recursive: true, force: true });
  }
}

/** Throughput `runs` times, Postfix and relaybox taking turns, so drift on a shared host hits both. */
async function throughputRuns(ctx, pf, rbOut, pfOut) {
  const rbRuns = [];
  const pfRuns = [];
  for (let run = 0; run < runs; run++) {
    if (pf) {
      if (run === 0) await step(pfOut, 'idle', () => idle(pf, { disk }));
      pf.clearQueue();
      await step(pfOut, 'throughput', async () => {
        const cold = await warmUp(pf, { ...ctx, warmup });
        pf.clearQueue();
        const r = { ...(await throughput(pf, { ...ctx, settleMs })), cold };
        if (run === 0 && !opt.quick) pfOut.idleAfterLoad = await idle(pf, { disk, afterMs: AFTER_LOAD_QUIET_MS });
        return pfRuns[pfRuns.push(r) - 1];
      });
    }
    if (rbOut) {
      await step(rbOut, 'throughput', () => withRelaybox(ctx, rbOut, async (t, rb) => {
        const idleNow = await idle(t, { disk });
        rbOut.idle ??= idleNow;
        const cold = await warmUp(t, { ...ctx, warmup });
        const r = { ...(await throughput(t, { ...ctx, settleMs })), cold };
        if (run === 0 && !opt.quick) rbOut.idleAfterLoad = await idle(t, { disk, afterMs: AFTER_LOAD_QUIET_MS });
        rbOut.spool ??= { ...dirSize(rb.dataDir), files: execFileSync('ls', ['-s', '-h', rb.dataDir], { encoding: 'utf8' }).trim().split('\n').slice(1).join(', ') };
        rbRuns.push(r);
        return r;
      }));
    }
  }
  // The run with the median relay rate stands for all; the others are listed in the notes.
  const pick = (list, out) => {
    if (list.length === 0) return;
    const sorted = [...list].sort((a, b) => a.relayRate - b.relayRate);
    out.throughput = sorted[Math.floor((sorted.length - 1) / 2)];
    out.throughputRuns = list.map((r) => ({ acceptRate: r.acceptRate, relayRate: r.relayRate, cold: r.cold }));
  };
  pick(pfRuns, pfOut);
  if (rbOut) pick(rbRuns, rbOut);
}

async function postfixRest(ctx, pf, out) {
  await step(out, 'sync', () => { pf.clearQueue(); return syncCalls(pf, { ...ctx, messages: Math.min(messages, 2000), dir: tmp }); });
  await step(out, 'latency', () => latency(pf, { sink: ctx.sink, count: latencyCount, gapMs: ctx.env.latencyGapMs }));
  await step(out, 'quiet', () => quietLatency(pf, { sink: ctx.sink, samples: quietSamples }));
  await step(out, 'big', () => bigMessage(pf, { sink: ctx.sink, msg: ctx.msg, idleMemory: pf.memory() }));
}

async function relayboxRest(ctx, out) {
  if (!out.idle) await step(out, 'idle', () => withRelaybox(ctx, out, (t) => idle(t, { disk })));
  await step(out, 'sync', () => withRelaybox(ctx, out, (t) => syncCalls(t, { ...ctx, messages: Math.min(messages, 2000), dir: tmp })));
  await step(out, 'latency', () => withRelaybox(ctx, out, (t) => latency(t, { sink: ctx.sink, count: latencyCount, gapMs: ctx.env.latencyGapMs })));
  await step(out, 'quiet', () => withRelaybox(ctx, out, (t) => quietLatency(t, { sink: ctx.sink, samples: quietSamples })));
  await step(out, 'big', () => withRelaybox(ctx, out, async (t) => {
    const before = await idle(t, { disk });
    return bigMessage(t, { sink: ctx.sink, msg: ctx.msg, idleMemory: before.memory });
  }));
}

async function main() {
  const env = environment();
  const results = { env };
  const sinkPort = env.usePostfix ? SINK_PORT : await freePort();
  const sink = await startSink(sinkPort);
  cleanups.push(() => sink.stop());
  const ctx = { env, sink, load: env.loadgenImpl, messages, sessions, disk };
  delete env.loadgenImpl;
  results.postfix = env.usePostfix ? {} : { skipped: opt['no-postfix'] ? '--no-postfix' : 'Postfix not installed, or not running as root' };
  if (opt['no-relaybox']) results.relaybox = { skipped: '--no-relaybox' };
  else if (!relayboxBuilt()) results.relaybox = { skipped: `${CLI} is missing: run \`npm run build\` first` };
  else results.relaybox = {};
  const rbOut = results.relaybox.skipped ? null : results.relaybox;
  try {
    results.clock = await sink.clockCheck();
    if (only.has('big')) {
      log(`building a ${opt['big-mib']} MiB message`);
      ctx.msg = await buildBigMessage(tmp, { bytes: Number(opt['big-mib']) * 1048576, from: FROM, to: TO });
    }
    if (only.has('throughput')) {
      const sinkTarget = { name: 'sink alone', port: sink.port, memory: () => NaN, cpuMs: () => sink.cpuMs(), io: () => null };
      results.sinkAlone = await throughput(sinkTarget, { ...ctx, settleMs: 0 });
    }
    let pf = null;
    if (env.usePostfix) {
      if (await canConnect(POSTFIX_PORT)) log(`note: something already listens on ${POSTFIX_PORT}; the setup script restarts Postfix`);
      pf = startPostfix();
      env.postfixVersion = pf.version;
      pf.cleanup = () => pf.stop();
      cleanups.push(pf.cleanup);
    }
    if (only.has('throughput')) await throughputRuns(ctx, pf, rbOut, results.postfix);
    if (pf) {
      await postfixRest(ctx, pf, results.postfix);
      pf.stop();
      cleanups.splice(cleanups.indexOf(pf.cleanup), 1);
    }
    if (rbOut) await relayboxRest(ctx, rbOut);
  } catch (err) {
    // Whatever was measured before the failure is still worth a report.
    log(err.stack ?? String(err));
    env.notes.push(`The run stopped early: ${String(err.message ?? err).split('\n')[0]}`);
    process.exitCode = 1;
  } finally {
    await cleanup();
  }
  const md = renderReport(results);
  writeFileSync(opt.out, md);
  if (opt.json) writeFileSync(opt.json, JSON.stringify(results, null, 2));
  console.log(md);
  log(`written to ${opt.out}`);
}

async function cleanup() {
  for (const fn of cleanups.splice(0).reverse()) {
    try { await fn(); } catch (err) { log(`cleanup: ${err.message}`); }
  }
  if (!opt.keep) rmSync(tmp, { recursive: true, force: true });
  else log(`kept ${tmp}`);
}

for (const sig of ['SIGINT', 'SIGTERM']) {
  process.once(sig, () => { log(`${sig}: cleaning up`); cleanup().finally(() => process.exit(130)); });
}

main().catch(async (err) => {
  log(err.stack ?? String(err));
  await cleanup();
  process.exit(1);
});
