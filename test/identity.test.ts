import nodemailer from 'nodemailer';
import PostalMime from 'postal-mime';
import { afterEach, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { ConfigError, validateConfig } from '../src/config/load.js';
import { Router } from '../src/delivery/routes.js';
import { hashPassword } from '../src/ingress/passwords.js';
import { getMessage, listMessages } from '../src/spool/log.js';
import type { Upstream } from '../src/upstreams/types.js';
import { SmtpTalk, startIngress, type RunningIngress } from './ingress-harness.js';
import { relayConfig, startRelay, waitFor } from './helpers/relay.js';
import { TestUpstream, type Received } from './helpers/testUpstream.js';
import { tempDir } from './helpers/tmp.js';

// One identity per device (issue 15): routes by login and client address, each with its own
// senders, and logins held to the senders they may use.

const smtp = (name: string, port: number) => ({ name, type: 'smtp', host: '127.0.0.1', port, security: 'none' });
const b64 = (text: string) => Buffer.from(text).toString('base64');
const PASSWORD = 's3cret!';
let hash: string;

beforeAll(async () => {
  hash = await hashPassword(PASSWORD);
});

function problems(raw: Record<string, unknown>): string[] {
  try {
    validateConfig(raw);
    return [];
  } catch (err) {
    if (err instanceof ConfigError) return err.problems;
    throw err;
  }
}

async function upstream(): Promise<TestUpstream> {
  const started = await TestUpstream.start();
  onTestFinished(() => started.close());
  return started;
}

/** A device on `host` (127.0.0.1 or ::1), logged in or not, sending one message. */
async function send(port: number, options: { host?: string; auth?: string; from: string; headerFrom?: string; subject: string }): Promise<string> {
  const transport = nodemailer.createTransport({
    host: options.host ?? '127.0.0.1',
    port,
    secure: false,
    ignoreTLS: true,
    auth: options.auth ? { user: options.auth, pass: PASSWORD } : undefined,
  });
  try {
    const raw = `From: ${options.headerFrom ?? options.from}\r\nTo: office@example.com\r\nSubject: ${options.subject}\r\n\r\nscan attached\r\n`;
    const info = await transport.sendMail({ envelope: { from: options.from, to: ['office@example.com'] }, raw });
    return info.response;
  } finally {
    transport.close();
  }
}

/** What a mail client shows of a message that reached an upstream. */
async function shown(received: Received) {
  const mail = await PostalMime.parse(received.raw!);
  return { envelopeFrom: received.from, from: mail.from, replyTo: mail.replyTo, subject: mail.subject };
}

describe('one identity per device, end to end', () => {
  it('sends the scanner as scanner@ and the NAS as nas@, each through its own upstream; anonymous mail keeps smtp.rewrite', async () => {
    const [main, scannerUp, nasUp] = await Promise.all([upstream(), upstream(), upstream()]);
    // The scanner's upstream refuses the first try: the retry reads the message back from the
    // spool, and must still know whose it was.
    scannerUp.failData(451, '4.3.0 Try again later', 1);
    const { app, port } = await startRelay(
      relayConfig(tempDir(), {
        smtp: {
          listen: ['127.0.0.1:0'],
          tls: { mode: 'none' },
          auth: {
            users: [
              { username: 'scanner', password_hash: hash, allowed_from: ['*@office.example'] },
              { username: 'nas', password_hash: hash },
            ],
          },
          rewrite: { envelope_from: 'relay@example.com' },
        },
        upstreams: [smtp('main', main.port), smtp('scanner-up', scannerUp.port), smtp('nas-up', nasUp.port)],
        routes: [
          {
            match: { user: 'scanner' },
            upstreams: ['scanner-up'],
            rewrite: { envelope_from: 'scanner@example.com', header_from: 'Scanner 3F <scanner@example.com>' },
          },
          { match: { user: 'nas' }, upstreams: ['nas-up'], rewrite: { envelope_from: 'nas@example.com', header_from: 'nas@example.com' } },
        ],
      }),
    );
    expect(await send(port, { auth: 'scanner', from: 'mfp-3f@office.example', headerFrom: 'MFP 3F <mfp-3f@office.example>', subject: 'scan' })).toMatch(/^250 /);
    expect(await send(port, { auth: 'nas', from: 'backup@nas.lan', subject: 'backup done' })).toMatch(/^250 /);
    // No login, AUTH optional: no route's `user` matches, and no allowed_from applies.
    expect(await send(port, { from: 'printer@office.example', subject: 'toner low' })).toMatch(/^250 /);

    const [scan] = await scannerUp.waitForMessages(1);
    const [backup] = await nasUp.waitForMessages(1);
    const [toner] = await main.waitForMessages(1);
    expect(await shown(scan!)).toEqual({
      envelopeFrom: 'scanner@example.com',
      from: { name: 'Scanner 3F', address: 'scanner@example.com' },
      replyTo: [{ name: 'MFP 3F', address: 'mfp-3f@office.example' }],
      subject: 'scan',
    });
    expect(await shown(backup!)).toMatchObject({ envelopeFrom: 'nas@example.com', from: { address: 'nas@example.com' }, subject: 'backup done' });
    // smtp.rewrite has no header_from: the printer's own From stays.
    expect(await shown(toner!)).toMatchObject({ envelopeFrom: 'relay@example.com', from: { address: 'printer@office.example' }, subject: 'toner low' });
    expect(main.messages).toHaveLength(1);

    const scanned = listMessages(app.spool.db).find((m) => m.subject === 'scan')!;
    const history = await waitFor(() => {
      const detail = getMessage(app.spool.db, scanned.id);
      return detail?.state === 'delivered' && detail.history;
    });
    expect(history.map((h) => [h.event, h.upstream])).toEqual([
      ['accepted', null],
      ['deferred', 'scanner-up'],
      ['delivered', 'scanner-up'],
    ]);
  });

  it('routes by the device address: 127.0.0.1 and ::1 are two devices', async () => {
    const [v4, v6] = await Promise.all([upstream(), upstream()]);
    const { app } = await startRelay(
      relayConfig(tempDir(), {
        smtp: { listen: ['127.0.0.1:0', '[::1]:0'], tls: { mode: 'none' } },
        upstreams: [smtp('v4', v4.port), smtp('v6', v6.port)],
        routes: [
          { match: { client: '::1/128' }, upstreams: ['v6'], rewrite: { envelope_from: 'ipv6-device@example.com' } },
          { match: { client: '127.0.0.0/8' }, upstreams: ['v4'], rewrite: { envelope_from: 'ipv4-device@example.com' } },
        ],
      }),
    );
    const ports = Object.fromEntries(app.smtpAddresses.map((a) => [a.host, a.port]));
    await send(ports['::1']!, { host: '::1', from: 'scanner@office.example', subject: 'from v6' });
    await send(ports['127.0.0.1']!, { from: 'scanner@office.example', subject: 'from v4' });
    const [six] = await v6.waitForMessages(1);
    const [four] = await v4.waitForMessages(1);
    expect([six!.from, (await shown(six!)).subject]).toEqual(['ipv6-device@example.com', 'from v6']);
    expect([four!.from, (await shown(four!)).subject]).toEqual(['ipv4-device@example.com', 'from v4']);
    expect(v4.messages).toHaveLength(1);
    expect(v6.messages).toHaveLength(1);
  });
});

describe('allowed_from', () => {
  let running: RunningIngress | undefined;
  afterEach(async () => {
    await running?.close();
    running = undefined;
  });

  async function loggedIn(user: string | null): Promise<SmtpTalk> {
    running ??= await startIngress({
      auth: {
        users: [
          { username: 'scanner', password_hash: hash, allowed_from: ['scanner@office.example', '*@scans.office.example'] },
          { username: 'nas', password_hash: hash },
        ],
      },
    });
    const { talk } = await SmtpTalk.open(running.port);
    await talk.cmd('EHLO mfp');
    if (user) expect(await talk.cmd(`AUTH PLAIN ${b64(`\0${user}\0${PASSWORD}`)}`)).toMatch(/^235 /);
    return talk;
  }

  const message = (from: string, body = 'hello') => `From: ${from}\r\nSubject: scan\r\n\r\n${body}\r\n.\r\n`;

  it('refuses an envelope sender outside the list at MAIL FROM', async () => {
    const talk = await loggedIn('scanner');
    expect(await talk.cmd('MAIL FROM:<ceo@example.com>')).toBe('553 5.7.1 <ceo@example.com>: not allowed for user scanner');
    expect(await talk.cmd('MAIL FROM:<>')).toBe('553 5.7.1 <>: not allowed for user scanner');
    // Patterns match as routes' do: whole address, any case.
    expect(await talk.cmd('MAIL FROM:<Scanner@Office.Example>')).toMatch(/^250 /);
    await talk.cmd('RSET');
    expect(await talk.sendRaw(message('Floor 2 <mfp2@scans.office.example>'), 'mfp2@scans.office.example')).toMatch(/^250 /);
    await talk.quit();
    expect(running!.count('messages')).toBe(1);
  });

  it('refuses a header From outside the list at the end of DATA, and keeps nothing of the message', async () => {
    const talk = await loggedIn('scanner');
    expect(await talk.sendRaw(message('CEO <ceo@example.com>'), 'scanner@office.example')).toBe('553 5.7.1 <ceo@example.com>: not allowed for user scanner');
    // Every author counts, and a message too big to stay in memory leaves nothing on disk either.
    const big = 'x'.repeat(76) + '\r\n';
    const reply = await talk.sendRaw(message('scanner@office.example, boss@example.com', big.repeat(20_000)), 'scanner@office.example');
    expect(reply).toBe('553 5.7.1 <boss@example.com>: not allowed for user scanner');
    // A second From field is checked too (the fix-ups would drop it, but a person reads the header).
    expect(await talk.sendRaw(`From: scanner@office.example\r\nFrom: ceo@example.com\r\n\r\nhi\r\n.\r\n`, 'scanner@office.example')).toMatch(/^553 5\.7\.1 <ceo@example.com>/);
    // The session goes on: an allowed message after the refusals is taken.
    expect(await talk.sendRaw(message('=?utf-8?Q?Scanner_B=C3=BCro?= <scanner@office.example>'), 'scanner@office.example')).toMatch(/^250 /);
    await talk.quit();
    expect(running!.count('messages')).toBe(1);
    expect(running!.count('body_chunks')).toBe(0);
  });

  it('refuses a header section too long to check for a From', async () => {
    const talk = await loggedIn('scanner');
    const padding = `X-Padding: ${'p'.repeat(900)}\r\n`.repeat(80);
    const reply = await talk.sendRaw(`${padding}From: ceo@example.com\r\n\r\nhi\r\n.\r\n`, 'scanner@office.example');
    expect(reply).toBe('553 5.7.1 header section too large to check its From for user scanner');
    await talk.quit();
    expect(running!.count('messages')).toBe(0);
  });

  it('leaves logins without a list and sessions without a login alone', async () => {
    const nas = await loggedIn('nas');
    expect(await nas.sendRaw(message('ceo@example.com'), 'anyone@example.com')).toMatch(/^250 /);
    await nas.quit();
    const anonymous = await loggedIn(null);
    expect(await anonymous.sendRaw(message('ceo@example.com'), 'anyone@example.com')).toMatch(/^250 /);
    await anonymous.quit();
    expect(running!.count('messages')).toBe(2);
  });
});

describe('config', () => {
  const upstreams = [smtp('scanner-up', 587), smtp('nas-up', 588)];
  const users = [{ username: 'scanner', password_hash: '$scrypt$x' }, { username: 'nas', password_hash: '$scrypt$x' }];
  const withRoutes = (routes: unknown[], auth: unknown = { users }) => relayConfig(tempDir(), { smtp: { auth }, upstreams, routes });

  it('takes the SPEC example', () => {
    const route = {
      match: { from: '*@x.example', to: '*@y.example', user: 'scanner', client: '192.168.1.50/32' },
      upstreams: ['scanner-up'],
      rewrite: { envelope_from: 'scanner@example.com', header_from: 'Scanner <scanner@example.com>' },
    };
    expect(validateConfig(withRoutes([route])).routes).toEqual([route]);
  });

  it('names the key of a client that is no CIDR', () => {
    const routes = [
      { match: { client: '192.168.1.0/24' }, upstreams: ['scanner-up'] },
      { match: { client: 'fd00::/64' }, upstreams: ['scanner-up'] },
      { match: { client: '192.168.1.300/32' }, upstreams: ['nas-up'] },
      { match: { client: 'scanner.lan' }, upstreams: ['nas-up'] },
    ];
    expect(problems(withRoutes(routes))).toEqual([
      'routes[2].match.client: not a CIDR like 192.168.1.20/32 or fd00::/64, got "192.168.1.300/32"',
      'routes[3].match.client: not a CIDR like 192.168.1.20/32 or fd00::/64, got "scanner.lan"',
    ]);
  });

  it('refuses a route for a login that does not exist, or for logins that are ignored', () => {
    expect(problems(withRoutes([{ match: { user: 'scaner' }, upstreams: ['scanner-up'] }]))).toEqual([
      'routes[0].match.user: no user named "scaner" in smtp.auth.users (have: scanner, nas)',
    ]);
    expect(problems(withRoutes([{ match: { user: 'scanner' }, upstreams: ['scanner-up'] }], {}))).toEqual([
      'routes[0].match.user: no user named "scanner" in smtp.auth.users (smtp.auth.users is empty: no session logs in as anyone)',
    ]);
  });

  it('checks a route rewrite and allowed_from like their smtp counterparts', () => {
    const routes = [{ match: {}, upstreams: ['nas-up'], rewrite: { envelope_from: 'Scanner <s@example.com>', reply_to: 'x@example.com' } }];
    expect(problems(withRoutes(routes))).toEqual([
      'routes[0].rewrite.envelope_from: expected an address like scanner@example.com',
      'routes[0].rewrite.reply_to: unknown key',
    ]);
    const auth = (allowed_from: unknown) => ({ users: [{ username: 'scanner', password_hash: '$scrypt$x', allowed_from }] });
    expect(problems(withRoutes([], auth([])))).toEqual(['smtp.auth.users[0].allowed_from: name at least one address pattern, or leave allowed_from out']);
    expect(problems(withRoutes([], auth(['<scanner@example.com>'])))).toEqual([
      'smtp.auth.users[0].allowed_from[0]: expected an address pattern like *@sensors.example.com',
    ]);
  });
});

describe('Router with logins and addresses', () => {
  const all = ['main', 'scanner-up'].map((name) => ({ name }) as Upstream);
  const router = new Router({
    routes: [{ match: { user: 'scanner' }, upstreams: ['scanner-up'], rewrite: { header_from: '' } }],
    upstreams: all,
    rewrite: { envelope_from: 'relay@example.com', header_from: 'Relay <relay@example.com>' },
  });

  it('matches a `user` only for that login; a route rewrite key overrides smtp.rewrite, one left out keeps it', () => {
    const plan = (authUser: string | null) => router.plan({ mailFrom: 'a@b.example', recipients: ['c@d.example'], authUser, clientAddress: '127.0.0.1' });
    expect(plan('scanner').map((g) => [g.upstreams.map((u) => u.name), g.rewrite])).toEqual([[['scanner-up'], { envelope_from: 'relay@example.com', header_from: '' }]]);
    // An AUTH taken and ignored (no smtp.auth.users) leaves no login: it is nobody's mail.
    expect(plan(null).map((g) => [g.rule, g.rewrite.header_from])).toEqual([[null, 'Relay <relay@example.com>']]);
  });
});
