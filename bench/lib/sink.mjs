// Parent side of the sink child: start it, follow arrivals, check the clocks agree, stop it.
import { fork } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { cpuMs } from './proc.mjs';
import { sleep, withTimeout, waitUntil } from './util.mjs';

export async function startSink(port) {
  const child = fork(new URL('./sink-child.mjs', import.meta.url), [String(port)], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const events = new EventEmitter();
  const sink = {
    pid: child.pid,
    port,
    /** Every arrival since the last reset: { n, t (ms, monotonic), size, sha, bodySha, benchId }. */
    arrivals: [],
    events,
    reset() { this.arrivals = []; },
    waitCount(n, ms, what = `${n} messages at the sink`) {
      return waitUntil(() => this.arrivals.length >= n, ms, `${what} (have ${this.arrivals.length})`, 20);
    },
    /** Resolves with the next arrival that satisfies `pred` (call it before sending). */
    waitFor(pred, ms, what = 'a message at the sink') {
      let listener;
      const found = new Promise((resolve) => {
        listener = (a) => { if (pred(a)) resolve(a); };
        events.on('msg', listener);
      });
      return withTimeout(found, ms, what).finally(() => events.off('msg', listener));
    },
    cpuMs: () => cpuMs(child.pid),
    async stop() {
      if (child.exitCode !== null) return;
      child.send({ type: 'stop' });
      const exited = new Promise((r) => child.once('exit', r));
      await Promise.race([exited, sleep(3000)]);
      if (child.exitCode === null) child.kill('SIGKILL');
    },
    /** Asks the child for its clock `rounds` times; returns the worst bound on the offset (ms). */
    async clockCheck(rounds = 20) {
      let worst = 0;
      let inside = 0;
      for (let id = 0; id < rounds; id++) {
        const t0 = process.hrtime.bigint();
        const reply = withTimeout(new Promise((r) => events.once(`clock${id}`, r)), 2000, 'clock reply');
        child.send({ type: 'clock', id });
        const tc = BigInt(await reply);
        const t1 = process.hrtime.bigint();
        if (tc >= t0 && tc <= t1) inside++;
        const off = tc < t0 ? t0 - tc : tc > t1 ? tc - t1 : 0n;
        worst = Math.max(worst, Number(off) / 1e6);
      }
      return { rounds, inside, worstOutsideMs: worst };
    },
  };
  child.on('message', (m) => {
    if (m.type === 'msg') {
      const a = { ...m, t: Number(BigInt(m.t)) / 1e6 };
      sink.arrivals.push(a);
      events.emit('msg', a);
    } else if (m.type === 'clock') events.emit(`clock${m.id}`, m.t);
    else if (m.type === 'ready') events.emit('ready');
    else if (m.type === 'error' && events.listenerCount('error') > 0) events.emit('error', new Error(m.message));
  });
  const ready = new Promise((resolve, reject) => {
    events.once('ready', resolve);
    events.once('error', reject);
    child.once('exit', (code) => reject(new Error(`sink exited with ${code} before it was ready (port ${port} taken?)`)));
  });
  await withTimeout(ready, 10_000, 'sink ready');
  return sink;
}
