// Connections that stall halfway through DATA, as issue 12 found them: each opens a session, sends
// half of a 250 KB message and then nothing. Peak RSS while they hang, whether a second client is
// still served, RSS 5 s and 60 s after they all closed.
//   node bench/faults/stalled-uploads.mjs [--connections 2000] [--sources 1] [--raise]
// --sources N spreads the connections over N source addresses 127.1.x.y (per-IP limits);
// --raise sets smtp.max_connections / max_connections_per_ip above --connections, to show the
// body memory budget alone. RELAYBOX_CLI=<other>/dist/cli.js measures another build (the before).
import { parseArgs } from 'node:util';
import { mallocEnv, rssMb, rssParts, startRelay } from './relay.mjs';
import { Talk } from './smtp.mjs';
import { sleep } from '../lib/util.mjs';

const { values } = parseArgs({
  options: { connections: { type: 'string', default: '2000' }, sources: { type: 'string', default: '1' }, raise: { type: 'boolean', default: false } },
});
const CONNECTIONS = Number(values.connections);
const SOURCES = Number(values.sources);
const MESSAGE_BYTES = 250 * 1024;
const line = `${'x'.repeat(76)}\r\n`;
const body = Buffer.from(`Subject: stalled\r\n\r\n${line.repeat(Math.ceil(MESSAGE_BYTES / line.length))}`);
const half = body.subarray(0, body.length >> 1);

const relay = await startRelay({
  smtpExtra: values.raise ? [`max_connections: ${CONNECTIONS + 100}`, `max_connections_per_ip: ${CONNECTIONS + 100}`] : [],
});
const source = (i) => {
  const k = i % SOURCES;
  return SOURCES === 1 ? '127.0.0.3' : `127.1.${Math.floor(k / 250)}.${(k % 250) + 1}`;
};

let peak = 0;
const sampler = setInterval(() => (peak = Math.max(peak, rssMb(relay.pid))), 100);
const outcomes = new Map();
const tally = (key) => outcomes.set(key, (outcomes.get(key) ?? 0) + 1);

/** A session that reaches DATA and sends half the message; the talk stays open. */
async function stall(i) {
  const { talk, greeting } = await Talk.open(relay.port, source(i));
  if (!greeting.startsWith('220')) {
    tally(`refused at connect: ${greeting.slice(0, 9)}`);
    talk.close();
    return null;
  }
  for (const cmd of ['EHLO stall', 'MAIL FROM:<a@office.test>', 'RCPT TO:<b@example.com>', 'DATA']) {
    const reply = await talk.cmd(cmd);
    if (!/^(250|354)/.test(reply)) {
      tally(`refused at ${cmd.split(/[ :]/)[0]}: ${reply.slice(0, 9)}`);
      talk.close();
      return null;
    }
  }
  talk.socket.write(half);
  tally('stalled in DATA');
  return talk;
}

/** A whole message from 127.0.0.1 while the others hang: the reply and how long it took. */
async function secondClient() {
  const started = Date.now();
  const { talk, greeting } = await Talk.open(relay.port, '127.0.0.1');
  if (!greeting.startsWith('220')) return `${greeting.slice(0, 9)} at connect`;
  for (const cmd of ['EHLO second', 'MAIL FROM:<a@office.test>', 'RCPT TO:<b@example.com>', 'DATA']) await talk.cmd(cmd);
  talk.socket.write(Buffer.concat([body, Buffer.from('.\r\n')]));
  const reply = await Promise.race([talk.next(), sleep(30_000).then(() => 'no reply in 30 s')]);
  talk.close();
  return `${reply.slice(0, 3)} in ${Date.now() - started} ms`;
}

/** The process's own view of its memory, from the default metrics of /metrics. */
async function heapOf({ httpPort }) {
  const text = await (await fetch(`http://127.0.0.1:${httpPort}/metrics`)).text();
  const mb = (name) => (Number(new RegExp(`^${name} (\\S+)`, 'm').exec(text)?.[1]) / 1048576).toFixed(0);
  return `${mb('nodejs_heap_size_total_bytes')} / ${mb('nodejs_heap_size_used_bytes')} MB, ${mb('nodejs_external_memory_bytes')} MB`;
}

try {
  await sleep(1000);
  const idle = rssMb(relay.pid);
  const talks = [];
  for (let i = 0; i < CONNECTIONS; i += 100) {
    const batch = await Promise.all(Array.from({ length: Math.min(100, CONNECTIONS - i) }, (_, j) => stall(i + j).catch(() => (tally('error'), null))));
    talks.push(...batch.filter(Boolean));
  }
  await sleep(3000); // let the server read what was sent
  // As a device would: try, and on a 421 try again a second later (for at most 30 s).
  const firstTry = Date.now();
  let second = await secondClient();
  for (let tries = 1; !second.startsWith('250') && Date.now() - firstTry < 30_000; tries++) {
    await sleep(1000);
    second = `${await secondClient()} (try ${tries + 1}, ${((Date.now() - firstTry) / 1000).toFixed(0)} s after the first)`;
  }
  await sleep(2000);
  const stalledPeak = peak;
  const heapStalled = await heapOf(relay);
  const partsStalled = rssParts(relay.pid);
  const stillOpen = talks.filter((t) => !t.closed).length;
  for (const talk of talks) talk.close();
  peak = 0; // from here: the peak while they close
  await sleep(5000);
  const after5 = rssMb(relay.pid);
  const heap5 = await heapOf(relay);
  await sleep(55_000);
  const after60 = rssMb(relay.pid);
  const heap60 = await heapOf(relay);
  const parts60 = rssParts(relay.pid);
  clearInterval(sampler);

  const malloc = Object.keys(mallocEnv()).length ? 'MALLOC_MMAP_THRESHOLD_=32768' : 'glibc malloc defaults';
  console.log(`| ${CONNECTIONS} stalled 250 KB uploads, ${SOURCES} source address(es)${values.raise ? ', limits raised' : ''}, ${malloc} | value |\n|---|---|`);
  for (const [what, n] of outcomes) console.log(`| ${what} | ${n} |`);
  console.log(`| still open when closed by the client | ${stillOpen} |`);
  console.log(`| RSS idle before | ${idle.toFixed(0)} MB |`);
  console.log(`| peak RSS while stalled | ${stalledPeak.toFixed(0)} MB |`);
  console.log(`| RSS while stalled, by kind | ${partsStalled} |`);
  console.log(`| V8 heap total / used, external, while stalled | ${heapStalled} |`);
  console.log(`| second client (250 KB from 127.0.0.1) | ${second} |`);
  console.log(`| peak RSS while they close (0–60 s) | ${peak.toFixed(0)} MB |`);
  console.log(`| RSS 5 s after close | ${after5.toFixed(0)} MB |`);
  console.log(`| V8 heap total / used, external, 5 s after close | ${heap5} |`);
  console.log(`| RSS 60 s after close | ${after60.toFixed(0)} MB |`);
  console.log(`| RSS 60 s after close, by kind | ${parts60} |`);
  console.log(`| V8 heap total / used, external, 60 s after close | ${heap60} |`);
} finally {
  clearInterval(sampler);
  await relay.stop();
}
