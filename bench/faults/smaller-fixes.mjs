#!/usr/bin/env node
// Issue 12, item 5: what a device and a person see, on a given relaybox build.
//   node bench/faults/smaller-fixes.mjs [relaybox checkout with dist/ built]   (default: this one)
// Loopback only. Prints one table row per case; run it on 17f245c (before) and on the fix (after).
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

const root = resolve(process.argv[2] ?? join(import.meta.dirname, '../..'));
const { RelayApp } = await import(join(root, 'dist/app.js'));
const { validateConfig } = await import(join(root, 'dist/config/load.js'));
const { getMessage } = await import(join(root, 'dist/spool/log.js'));
const { SMTPServer } = await import(join(root, 'node_modules/smtp-server/dist/esm/smtp-server.js')).catch(() => import('smtp-server'));
const { pino } = await import(join(root, 'node_modules/pino/pino.js')).catch(() => import('pino'));
const { stringify } = await import(join(root, 'node_modules/yaml/dist/index.js')).catch(() => import('yaml'));

const rows = [];
const row = (item, kase, outcome) => rows.push([item, kase, outcome]);

/** An upstream answering every DATA with `reply`. */
async function upstream(reply) {
  const server = new SMTPServer({ authOptional: true, disabledCommands: ['STARTTLS'], logger: false, onData(stream, _s, cb) {
    stream.resume();
    stream.on('end', () => cb(Object.assign(new Error(reply.slice(4)), { responseCode: Number(reply.slice(0, 3)) })));
  } });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  return { port: server.server.address().port, close: () => new Promise((r) => server.close(r)) };
}

/** One SMTP dialogue; the reply to each line. */
async function talk(port, lines) {
  const socket = connect(port, '127.0.0.1');
  let buf = '';
  const replies = [];
  const next = () => new Promise((res) => {
    const look = () => {
      const m = /^(?:\d{3}-[^\r\n]*\r\n)*(\d{3}(?: [^\r\n]*)?)\r\n/.exec(buf);
      if (m) { buf = buf.slice(m[0].length); res(m[1]); } else socket.once('data', (d) => { buf += d; look(); });
    };
    look();
  });
  await next();
  for (const line of lines) { socket.write(`${line}\r\n`); replies.push(await next()); }
  socket.destroy();
  return replies;
}

async function relay(dir, extra) {
  const config = validateConfig({ hostname: 'relaybox.test.example', data_dir: dir, smtp: { listen: ['127.0.0.1:2525'], tls: { mode: 'none' }, ...extra.smtp }, http: { listen: '127.0.0.1:0' },
    upstreams: extra.upstreams ?? [{ name: 'out', type: 'file', dir: join(dir, 'out') }], delivery: { retry: { first: '1h', max: '1h', give_up_after: '2h' } } });
  config.smtp.listen = [{ host: '127.0.0.1', port: 0 }];
  const app = await RelayApp.start(config, pino({ level: 'silent' }));
  return { app, port: app.smtpAddresses[0].port };
}

// (a) the basic reply code decides
for (const reply of ['451 5.7.1 Greylisted, try again later', '550 4.2.2 Mailbox full']) {
  const dir = mkdtempSync(join(tmpdir(), 'rb-bench-'));
  const up = await upstream(reply);
  const { app, port } = await relay(dir, { upstreams: [{ name: 'up', type: 'smtp', host: '127.0.0.1', port: up.port, security: 'none' }] });
  const r = await talk(port, ['EHLO b', 'MAIL FROM:<s@example.com>', 'RCPT TO:<a@example.com>', 'DATA', 'Subject: x\r\n\r\nx\r\n.']);
  const id = Number(/queued as (\d+)/.exec(r.at(-1))[1]);
  let state;
  for (let i = 0; i < 200 && !['deferred', 'failed'].includes(state); i++, await sleep(25)) state = getMessage(app.spool.db, id)?.state;
  row('5a', `upstream answers "${reply.slice(0, 9)}"`, `message ${state}`);
  await app.stop();
  await up.close();
  rmSync(dir, { recursive: true, force: true });
}

// (b) the CLI's CSV
{
  const dir = mkdtempSync(join(tmpdir(), 'rb-bench-'));
  const { app, port } = await relay(dir, {});
  await talk(port, ['EHLO b', 'MAIL FROM:<s@example.com>', 'RCPT TO:<a@example.com>', 'DATA', 'Subject: =HYPERLINK("http://evil.example","open")\r\n\r\nx\r\n.']);
  await sleep(300);
  await app.stop();
  const file = join(dir, 'c.yaml');
  writeFileSync(file, stringify({ hostname: 'relaybox.test.example', data_dir: dir, upstreams: [{ name: 'out', type: 'file', dir: join(dir, 'out') }] }));
  const csv = spawnSync(process.execPath, [join(root, 'dist/cli.js'), 'log', 'export', '--format', 'csv', '--config', file], { encoding: 'utf8' }).stdout;
  const cell = csv.split('\n')[1]?.match(/"?('?=HYPERLINK)/)?.[1] ?? '?';
  row('5b', 'log export --format csv, subject =HYPERLINK(…)', `cell starts ${cell.slice(0, 2)}`);
  rmSync(dir, { recursive: true, force: true });
}

// (c) IDN and trailing dots
for (const [allowed, rcpts] of [
  [['bücher.example'], ['a@bücher.example', 'a@xn--bcher-kva.example']],
  [['xn--bcher-kva.example'], ['a@xn--bcher-kva.example', 'a@bücher.example']],
  [['example.com.'], ['a@example.com', 'a@example.com.']],
  [['example.com'], ['a@example.com.']],
]) {
  const dir = mkdtempSync(join(tmpdir(), 'rb-bench-'));
  let started;
  try {
    started = await relay(dir, { smtp: { allow_recipient_domains: allowed } });
  } catch (err) {
    row('5c', `allow_recipient_domains: [${allowed}]`, `config refused: ${String(err.problems ?? err.message).slice(0, 70)}`);
    rmSync(dir, { recursive: true, force: true });
    continue;
  }
  for (const rcpt of rcpts) {
    const r = await talk(started.port, ['EHLO b', 'MAIL FROM:<s@example.com> SMTPUTF8', `RCPT TO:<${rcpt}>`]);
    row('5c', `allow [${allowed}], RCPT ${rcpt}`, r[2].slice(0, 40));
  }
  await started.app.stop();
  rmSync(dir, { recursive: true, force: true });
}

const width = [0, 1, 2].map((i) => Math.max(...rows.map((r) => r[i].length)));
console.log(`relaybox at ${root}`);
for (const r of rows) console.log(r.map((c, i) => c.padEnd(width[i])).join(' | '));
process.exit(0);
