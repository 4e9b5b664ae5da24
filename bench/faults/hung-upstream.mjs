#!/usr/bin/env node
// A hung primary upstream and a healthy second one (issue 12, item 2). The primary is a TCP server
// that accepts and never writes a byte; the secondary is the bench sink (bench/lib/sink-child.mjs).
// relaybox runs from dist/ (or RELAYBOX_CLI=/other/dist/cli.js, to measure another build the same
// way) with its default timeouts and concurrency 4; a fresh instance per scenario, so each one
// starts with the primary not yet known to hang. Loopback only.
//
//   node bench/faults/hung-upstream.mjs [--messages 20,1000] [--cap-s 900]
//
// Per scenario: N messages are submitted at once (4 SMTP sessions); `first` is when the first one
// reached the secondary (the first greeting timeout has just run out), `all` when the last did;
// `after first` is all − first: what the breaker is for. `--cap-s` stops a scenario that is still
// delivering after that long and reports how far it got (the old code needs hours for 1,000).
import { createServer } from 'node:net';
import { spawn } from 'node:child_process';
import { createWriteStream, existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { startSink } from '../lib/sink.mjs';
import { nodeLoad } from '../lib/smtp-client.mjs';
import { canConnect, fmt, freePort, log, nowMs, sleep, waitUntil } from '../lib/util.mjs';

const REPO = new URL('../..', import.meta.url).pathname.replace(/\/$/, '');
const CLI = process.env.RELAYBOX_CLI ?? join(REPO, 'dist/cli.js');
const { values } = parseArgs({ options: { messages: { type: 'string', default: '20,1000' }, 'cap-s': { type: 'string', default: '900' } } });
const counts = values.messages.split(',').map(Number);
const capMs = Number(values['cap-s']) * 1000;

if (!existsSync(CLI)) {
  console.error(`${CLI} is missing: run npm run build first`);
  process.exit(2);
}

/** Accepts TCP connections and never says a word: a hung MTA. */
async function silentServer() {
  const sockets = new Set();
  let connections = 0;
  const server = createServer((socket) => {
    connections++;
    sockets.add(socket);
    socket.on('error', () => {});
    socket.once('close', () => sockets.delete(socket));
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: server.address().port,
    get connections() { return connections; },
    close: () => new Promise((resolve) => { for (const s of sockets) s.destroy(); server.close(() => resolve()); }),
  };
}

async function startRelaybox({ hungPort, sinkPort }) {
  const dir = mkdtempSync(join(tmpdir(), 'relaybox-hung-'));
  const port = await freePort();
  const config = join(dir, 'relaybox.yaml');
  writeFileSync(config, [
    'hostname: bench.example.com',
    `data_dir: ${join(dir, 'spool')}`,
    `smtp: { listen: ["127.0.0.1:${port}"], tls: { mode: none } }`,
    'upstreams:',
    `  - { name: hung, type: smtp, host: 127.0.0.1, port: ${hungPort}, security: none }`,
    `  - { name: sink, type: smtp, host: 127.0.0.1, port: ${sinkPort}, security: none }`,
    'delivery: { concurrency: 4 }',
    'http: { listen: "127.0.0.1:0" }',
    'log: { level: warn }',
    '',
  ].join('\n'));
  const logPath = join(dir, 'relaybox.log');
  const child = spawn(process.execPath, [CLI, 'serve', '--config', config], { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
  const out = createWriteStream(logPath);
  child.stdout.pipe(out);
  child.stderr.pipe(out);
  let exited = null;
  child.once('exit', (code, signal) => (exited = { code, signal }));
  await waitUntil(async () => {
    if (exited) throw new Error(`relaybox exited before it was ready:\n${readFileSync(logPath, 'utf8')}`);
    return canConnect(port);
  }, 20_000, 'relaybox ready');
  return {
    port,
    logPath,
    async stop() {
      if (!exited) child.kill('SIGTERM');
      await waitUntil(() => exited, 20_000, 'relaybox exit').catch(() => child.kill('SIGKILL'));
      out.end();
    },
  };
}

async function scenario(n, sink) {
  const hung = await silentServer();
  sink.reset();
  const relay = await startRelaybox({ hungPort: hung.port, sinkPort: sink.port });
  try {
    const t0 = nowMs();
    const submit = nodeLoad({ port: relay.port, sessions: 4, messages: n, from: 'scanner@example.com', to: 'ops@example.com' });
    const done = await waitUntil(() => sink.arrivals.length >= n || nowMs() - t0 > capMs, capMs + 60_000, `${n} delivered`, 100);
    const submitted = await submit;
    const arrivals = sink.arrivals.map((a) => a.t - t0).sort((a, b) => a - b);
    const capped = done && arrivals.length < n;
    return {
      n,
      submitted: submitted.ok,
      delivered: arrivals.length,
      submitS: submitted.durationMs / 1000,
      firstS: arrivals.length ? arrivals[0] / 1000 : NaN,
      allS: capped ? NaN : arrivals.at(-1) / 1000,
      afterFirstS: capped ? NaN : (arrivals.at(-1) - arrivals[0]) / 1000,
      capped,
      hungConnections: hung.connections,
    };
  } finally {
    await relay.stop();
    await hung.close();
  }
}

const sink = await startSink(await freePort());
const rows = [];
try {
  for (const n of counts) {
    log(`scenario: ${n} messages, hung primary + healthy secondary (${CLI})`);
    rows.push(await scenario(n, sink));
    await sleep(500);
  }
} finally {
  await sink.stop();
}

console.log(`\nhung primary (accepts, never greets) + healthy secondary; relaybox ${CLI}; concurrency 4, default timeouts`);
console.log('| messages | delivered | submit s | first at s | all at s | all − first s | connections to the hung primary |');
console.log('|---:|---:|---:|---:|---:|---:|---:|');
for (const r of rows) {
  const all = r.capped ? `> ${fmt(capMs / 1000)} (cap)` : fmt(r.allS, 1);
  const after = r.capped ? `${r.delivered} in ${fmt(capMs / 1000 - r.firstS, 0)} s` : fmt(r.afterFirstS, 1);
  console.log(`| ${r.n} | ${r.delivered}/${r.submitted} | ${fmt(r.submitS, 1)} | ${fmt(r.firstS, 1)} | ${all} | ${after} | ${r.hungConnections} |`);
}
