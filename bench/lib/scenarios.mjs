// The measurements, each against a "target" (relaybox or Postfix) that exposes:
//   { name, port, memory(), cpuMs(), io() (per-process /proc io or null), pids() }
import { cpuMs, diskDelta, diskstats, machineCpu, sampler } from './proc.mjs';
import { SmtpConn, smallMessage } from './smtp-client.mjs';
import { FROM, TO } from './load.mjs';
import { straceAttach } from './strace.mjs';
import { log, median, nowMs, quantile, sleep } from './util.mjs';

/** Sits idle for `ms`: memory at the end, and the disk's background write rate (other tenants). */
export async function idle(target, { ms = 5000, afterMs = 0, disk }) {
  await sleep(afterMs);
  const d0 = diskstats(disk);
  await sleep(ms);
  const noise = diskDelta(d0, diskstats(disk));
  return { memory: target.memory(), detail: target.memoryDetail?.(), noiseBytesPerS: noise ? (noise.writeBytes * 1000) / ms : NaN, noiseFlushesPerS: noise ? (noise.flushes * 1000) / ms : NaN };
}

/**
 * The same load, not measured: a service runs for months, so the figures are for a warm one (V8's
 * JIT has compiled the hot paths; Postfix has its smtpd and smtp processes running). Returns the
 * rates of this first, cold load for the notes.
 */
export async function warmUp(target, { sink, load, sessions, warmup }) {
  if (!warmup) return null;
  sink.reset();
  const t0 = nowMs();
  const res = await load.run({ port: target.port, sessions, messages: warmup, payload: 1024 });
  const tAccepted = nowMs();
  await sink.waitCount(res.ok, 60_000 + warmup * 50);
  const last = sink.arrivals[sink.arrivals.length - 1].t;
  sink.reset();
  await sleep(500);
  return { messages: res.ok, acceptRate: (res.ok * 1000) / (tAccepted - t0), relayRate: (res.ok * 1000) / (last - t0) };
}

/** N small messages from the load generator; accept rate, relay rate, CPU, writes per message. */
export async function throughput(target, { sink, load, messages, sessions, disk, settleMs = 5500 }) {
  sink.reset();
  // The bench process's own CPU plus its reaped children's: the load generator (smtp-source or in-process).
  const loadCpu = () => cpuMs(process.pid, { children: true });
  const before = {
    t: nowMs(), cpu: target.cpuMs(), main: target.mainThreadCpuMs?.(), machine: machineCpu(), load: loadCpu(),
    io: target.io(), disk: diskstats(disk), sinkCpu: sink.cpuMs(),
  };
  log(`${target.name}: ${load.name} -s ${sessions} -m ${messages} -l 1024`);
  const res = await load.run({ port: target.port, sessions, messages, payload: 1024 });
  const tAccepted = nowMs();
  const machine = machineCpu();
  const n = res.ok;
  let complete = true;
  await sink.waitCount(n, 60_000 + messages * 50).catch((err) => { complete = false; log(`${target.name}: ${err.message}`); });
  const arrived = sink.arrivals.length;
  const last = sink.arrivals[arrived - 1]?.t ?? NaN;
  const relayed = { t: nowMs(), cpu: target.cpuMs(), main: target.mainThreadCpuMs?.(), sinkCpu: sink.cpuMs(), machine: machineCpu(), load: loadCpu() };
  await sleep(settleMs); // the relay's own clean-up after delivery, and the file system's journal commit
  const io1 = target.io();
  const disk1 = diskDelta(before.disk, diskstats(disk));
  const ioDelta = before.io && io1 ? { writeBytes: io1.write_bytes - before.io.write_bytes, wchar: io1.wchar - before.io.wchar, syscw: io1.syscw - before.io.syscw } : null;
  return {
    messages, accepted: n, failed: res.failed, errors: res.errors, arrived, complete,
    duplicates: Math.max(0, sink.arrivals.length - n),
    acceptSeconds: (tAccepted - before.t) / 1000,
    acceptRate: (n * 1000) / (tAccepted - before.t),
    relaySeconds: (last - before.t) / 1000,
    relayRate: (arrived * 1000) / (last - before.t),
    cpuMsPerMsg: (relayed.cpu - before.cpu) / n,
    sinkCpuShare: (relayed.sinkCpu - before.sinkCpu) / (relayed.t - before.t),
    mainThreadShare: (relayed.main - before.main) / (relayed.t - before.t),
    machineBusyShare: (machine.busy - before.machine.busy) / (machine.total - before.machine.total),
    machineCpuMsPerMsg: ((relayed.machine.busy - before.machine.busy) * 10) / n,
    loadCpuMsPerMsg: (relayed.load - before.load) / n,
    sinkCpuMsPerMsg: (relayed.sinkCpu - before.sinkCpu) / n,
    io: ioDelta && { writeBytesPerMsg: ioDelta.writeBytes / n, wcharPerMsg: ioDelta.wchar / n, writeCallsPerMsg: ioDelta.syscw / n },
    disk: disk1 && { bytesPerMsg: disk1.writeBytes / n, flushesPerMsg: disk1.flushes / n, windowS: (nowMs() - before.t) / 1000 },
  };
}

/** Sync calls per message under strace (a separate pass: tracing slows everything down). */
export async function syncCalls(target, { sink, load, messages, sessions, dir }) {
  const tracer = await straceAttach(target.pids(), dir);
  sink.reset();
  let res;
  let summary;
  try {
    res = await load.run({ port: target.port, sessions, messages, payload: 1024 });
    await sink.waitCount(res.ok, 60_000 + messages * 100).catch((err) => log(`${target.name}: ${err.message}`));
    await sleep(1000);
  } finally {
    summary = await tracer.stop();
  }
  const { calls, seconds } = summary;
  const total = Object.values(calls).reduce((a, b) => a + b, 0);
  const wall = Object.values(seconds).reduce((a, b) => a + b, 0);
  return { messages: res.ok, calls, perMsg: total / res.ok, avgMs: total ? (wall * 1000) / total : NaN };
}

/** One message at a time to an idle sink: client's 250 → sink's end-of-DATA, same monotonic clock. */
export async function latency(target, { sink, count = 200, warmup = 3, gapMs = 20 }) {
  // A device opens a connection per message: how long until the relay's 220 greeting?
  const greet = [];
  for (let i = 0; i < 20; i++) {
    const t0 = nowMs();
    const c = await SmtpConn.open(target.port, '127.0.0.1', null);
    greet.push(c.greetedAt - t0);
    await c.quit();
    await sleep(gapMs);
  }
  const conn = await SmtpConn.open(target.port);
  const after250 = [];
  const commit = [];
  let lost = 0;
  try {
    for (let i = 0; i < count + warmup && lost < 3; i++) {
      const id = `lat-${i}-${Date.now()}`;
      const arrival = sink.waitFor((a) => a.benchId === id, 10_000, `message ${id} at the sink`);
      arrival.catch(() => {});
      const r = await conn.send({ from: FROM, to: TO, body: smallMessage({ from: FROM, to: TO, payload: 1024, id }) });
      const a = await arrival.catch(() => null);
      if (!a) { lost++; continue; }
      if (i >= warmup) { after250.push(a.t - r.t); commit.push(r.t - r.dataSent); }
      await sleep(gapMs);
    }
  } finally {
    await conn.quit();
  }
  return {
    count: after250.length, lost,
    p50: median(after250), p95: quantile(after250, 0.95), min: Math.min(...after250), max: Math.max(...after250),
    commitP50: median(commit), commitP95: quantile(commit, 0.95),
    greetP50: median(greet), greetMax: Math.max(...greet),
  };
}

/**
 * The usual life of a relay: one message now and then. Each sample waits `quietMs` first (longer
 * than relaybox's 30 s before its delivery thread stops), then sends one message on a new
 * connection, alternately at once and like a scanner whose upload takes `uploadMs`.
 */
export async function quietLatency(target, { sink, samples = 2, quietMs = 40_000, uploadMs = 150 }) {
  const quick = [];
  const scanner = [];
  for (let i = 0; i < samples * 2; i++) {
    await sleep(quietMs);
    const id = `quiet-${i}-${Date.now()}`;
    const arrival = sink.waitFor((a) => a.benchId === id, 10_000, `message ${id} at the sink`);
    arrival.catch(() => {});
    const conn = await SmtpConn.open(target.port);
    try {
      const upload = i % 2 === 0 ? 0 : uploadMs;
      const r = await conn.send({ from: FROM, to: TO, body: smallMessage({ from: FROM, to: TO, payload: 1024, id }), uploadMs: upload });
      const a = await arrival;
      (upload ? scanner : quick).push(a.t - r.t);
      log(`${target.name}: after ${quietMs / 1000} s quiet${upload ? `, a ${upload} ms upload` : ''}: 250 → sink ${(a.t - r.t).toFixed(1)} ms`);
    } finally {
      await conn.quit();
    }
  }
  return { samples, quietMs, uploadMs, quick, scanner };
}

/** A big message streamed from a file; memory sampled every 50 ms through acceptance and delivery. */
export async function bigMessage(target, { sink, msg, idleMemory }) {
  sink.reset();
  const s = sampler(() => target.memory(), 50);
  const arrival = sink.waitFor((a) => a.benchId === 'big', 600_000, 'the big message at the sink');
  arrival.catch(() => {});
  let r;
  let conn;
  try {
    conn = await SmtpConn.open(target.port);
    r = await conn.send({ from: FROM, to: TO, body: { file: msg.file }, ms: 300_000 });
  } catch (err) {
    s.stop();
    await conn?.quit();
    return { error: String(err.message ?? err) };
  }
  await conn.quit();
  const acceptPeak = s.peak(); // up to the 250: receiving and committing
  const a = await arrival.catch(() => null);
  await sleep(1000); // clean-up after delivery (deleting the body) is part of the job
  const { peak, samples } = s.stop();
  return {
    size: msg.size, samples,
    idle: idleMemory, peak, delta: peak - idleMemory, acceptDelta: acceptPeak - idleMemory, after: target.memory(),
    sendMs: r.t - r.dataStart,
    commitMs: r.t - r.dataSent,
    relayMs: a ? a.t - r.t : NaN,
    arrived: Boolean(a),
    bodyIntact: a ? a.bodySha === msg.bodySha : false,
    wholeIdentical: a ? a.sha === msg.sha : false,
    receivedSize: a?.size ?? 0,
  };
}
