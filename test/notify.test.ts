import PostalMime from 'postal-mime';
import { afterEach, describe, expect, it } from 'vitest';
import { parseConfig } from '../src/config/load.js';
import { NoticeMemory } from '../src/spool/noticeMemory.js';
import { configProblems, FILE_UPSTREAM } from './helpers/config.js';
import type { RelayApp } from '../src/app.js';
import { NOTICE_CLIENT } from '../src/spool/noticeMemory.js';
import { relayConfig, sendMail, startRelay, waitFor } from './helpers/relay.js';
import { TestUpstream, type Received } from './helpers/testUpstream.js';
import { tempDir } from './helpers/tmp.js';

const open: { close(): Promise<void> }[] = [];
afterEach(async () => {
  await Promise.all(open.splice(0).map((thing) => thing.close()));
});

async function upstreams(n: number, options: Parameters<typeof TestUpstream.start>[0][] = []): Promise<TestUpstream[]> {
  const started = await Promise.all(Array.from({ length: n }, (_, i) => TestUpstream.start(options[i] ?? {})));
  open.push(...started);
  return started;
}

const smtpUpstream = (name: string, up: TestUpstream, extra: Record<string, unknown> = {}) => ({ name, type: 'smtp', host: '127.0.0.1', port: up.port, security: 'none', ...extra });

/** The notices an upstream received: mail to the admin. */
const noticesIn = (up: TestUpstream): Received[] => up.messages.filter((m) => m.to.includes('it@example.com'));

async function notice(up: TestUpstream, n = 1) {
  const got = await waitFor(() => noticesIn(up).length >= n && noticesIn(up), 30_000, `${n} notice(s)`);
  return PostalMime.parse(got[n - 1]!.raw!);
}

const spooledNotices = (app: RelayApp) =>
  app.spool.db.prepare(`SELECT id, state, mail_from, subject FROM messages WHERE client = ? ORDER BY id`).all(NOTICE_CLIENT) as { id: number; state: string; mail_from: string; subject: string }[];

const failedCount = (app: RelayApp) => app.spool.db.prepare(`SELECT count(*) FROM messages WHERE state = 'failed' AND client IS NOT ?`).pluck().get(NOTICE_CLIENT) as number;

describe('notices by mail', () => {
  it('digests failures: two refused messages within the window make one mail with sender, recipients, subject and reply', async () => {
    const [up] = await upstreams(1);
    up!.rejectRecipient('gone@example.com', 550, '5.1.1 <gone@example.com>: Recipient address rejected: User unknown');
    const dir = tempDir();
    const { app, port } = await startRelay(relayConfig(dir, { upstreams: [smtpUpstream('office', up!)], notify: { to: ['it@example.com'], digest: '6s' } }));
    await sendMail(port, { from: 'scanner@example.com', to: ['gone@example.com'], subject: 'Scan 1' });
    await sendMail(port, { from: 'copier@example.com', to: ['gone@example.com'], subject: 'Scan 2' });
    await waitFor(() => failedCount(app) === 2, 20_000, 'two failures');

    const mail = await notice(up!);
    expect(mail.subject).toBe('[relaybox] 2 messages failed');
    expect(mail.headers.find((h) => h.key === 'auto-submitted')?.value).toBe('auto-generated');
    expect(mail.text).toContain('they were NOT delivered');
    expect(mail.text).toMatch(/From: scanner@example\.com\n\s+To: gone@example\.com\n\s+Subject: Scan 1/);
    expect(mail.text).toContain('Subject: Scan 2');
    expect(mail.text).toContain('Reply from office: 550 5.1.1 <gone@example.com>: Recipient address rejected: User unknown');
    expect(mail.text).toContain('relaybox queue retry ID');
    // One digest for both, and the window closed behind it.
    expect(spooledNotices(app)).toHaveLength(1);
    expect(noticesIn(up!)).toHaveLength(1);
  });

  it('tells of a refused login at once, through the other upstream', async () => {
    const [locked, spare] = await upstreams(2, [{ auth: { user: 'scanner', pass: 'old' }, refuseLogins: { code: 535, text: '5.7.8 Username and Password not accepted' } }]);
    const dir = tempDir();
    const primary = smtpUpstream('gmail', locked!, { auth: { user: 'scanner', pass: 'old' } });
    // All mail is routed to gmail alone: only the notice takes another way.
    const routes = [{ match: {}, upstreams: ['gmail'] }];
    const { port } = await startRelay(relayConfig(dir, { upstreams: [primary, smtpUpstream('isp', spare!)], routes, notify: { to: ['it@example.com'], digest: '1h' } }));
    await sendMail(port, { to: ['office@example.com'] });

    // The digest window is an hour: only an immediate notice arrives within the test.
    const mail = await notice(spare!);
    expect(mail.subject).toBe('[relaybox] upstream gmail refuses its login');
    expect(mail.text).toContain('Reply from gmail: 535 5.7.8 Username and Password not accepted');
    expect(mail.text).toContain('sign in again');
    expect(spare!.messages).toHaveLength(1);
  });

  it('digests a quota refusal and sends the digest around the upstream over quota', async () => {
    const [capped, spare] = await upstreams(2);
    capped!.failData(550, '5.4.5 Daily user sending quota exceeded.');
    const dir = tempDir();
    const { port } = await startRelay(relayConfig(dir, { upstreams: [smtpUpstream('gmail', capped!), smtpUpstream('isp', spare!)], notify: { to: ['it@example.com'], digest: '2s' } }));
    await sendMail(port, { to: ['office@example.com'] });

    const mail = await notice(spare!);
    expect(mail.subject).toBe('[relaybox] 1 upstream in trouble');
    expect(mail.text).toMatch(/"gmail" is over its sending quota since .*\n\s+Reply from gmail: 550 5\.4\.5 Daily user sending quota exceeded\./);
  });

  it('digests an upstream that is down, and says so through the one that works', async () => {
    const [gone, spare] = await upstreams(2);
    await gone!.stop();
    const dir = tempDir();
    const { port } = await startRelay(relayConfig(dir, { upstreams: [smtpUpstream('nas-relay', gone!), smtpUpstream('isp', spare!)], notify: { to: ['it@example.com'], digest: '1s' } }));
    await sendMail(port, { to: ['office@example.com'] });

    const mail = await notice(spare!);
    expect(mail.subject).toBe('[relaybox] 1 upstream in trouble');
    expect(mail.text).toMatch(/"nas-relay" is down \(not reachable or refusing\) since \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC\n\s+Reply from nas-relay: .*ECONNREFUSED/);
    expect(mail.text).toContain('Hint: Nothing takes connections at 127.0.0.1 on that port: check host and port of upstream nas-relay');
  });

  it('tells at once when the disk is too full to take mail', async () => {
    const [up] = await upstreams(1);
    const dir = tempDir();
    const smtp = { listen: ['127.0.0.1:0'], tls: { mode: 'none' }, min_free_bytes: '1000000GB' };
    await startRelay(relayConfig(dir, { smtp, upstreams: [smtpUpstream('office', up!)], notify: { to: ['it@example.com'], digest: '1h' } }));

    const mail = await notice(up!);
    expect(mail.subject).toBe('[relaybox] disk full: new mail is refused');
    expect(mail.text).toMatch(/nearly full \(\d+ MB free, below 1024000000 MB\)/);
  });

  it('names a message still undelivered after stuck_after', async () => {
    const [up] = await upstreams(1);
    up!.rejectRecipient('full@example.com', 452, '4.2.2 Mailbox full');
    const dir = tempDir();
    const { port } = await startRelay(relayConfig(dir, { upstreams: [smtpUpstream('office', up!)], notify: { to: ['it@example.com'], digest: '1s', stuck_after: '3s', events: ['queue_stuck'] } }));
    // A warm delivery thread first: under load its first start alone can take longer than
    // stuck_after, and the stuck message would be named before it had any reply to show.
    await sendMail(port, { to: ['ok@example.com'], subject: 'warm-up' });
    await up!.waitForMessages(1);
    await sendMail(port, { to: ['full@example.com'], subject: 'Invoice scan' });

    const mail = await notice(up!);
    expect(mail.subject).toBe('[relaybox] 1 message stuck');
    expect(mail.text).toContain('still not delivered after 3s');
    expect(mail.text).toMatch(/To: full@example\.com\n\s+Subject: Invoice scan/);
    expect(mail.text).toContain('Reply from office: 452 4.2.2 Mailbox full');
  });

  it('never tells of a notice: a notice that fails is left out of the next digest', async () => {
    const [up] = await upstreams(1);
    up!.rejectRecipient('it@example.com', 550, '5.1.1 No such user');
    up!.rejectRecipient('gone@example.com', 550, '5.1.1 No such user');
    const dir = tempDir();
    const { app, port } = await startRelay(relayConfig(dir, { upstreams: [smtpUpstream('office', up!)], notify: { to: ['it@example.com'], digest: '1s' } }));
    await sendMail(port, { to: ['gone@example.com'], subject: 'First' });
    await waitFor(() => spooledNotices(app)[0]?.state === 'failed', 20_000, 'the first notice to fail');
    await sendMail(port, { to: ['gone@example.com'], subject: 'Second' });
    const second = await waitFor(() => spooledNotices(app)[1], 20_000, 'a second notice');
    // It counts the device's message only, not the failed notice before it.
    expect(second.subject).toBe('[relaybox] 1 message failed');
    await waitFor(() => spooledNotices(app)[1]?.state === 'failed', 20_000, 'the second notice to fail');
    expect(spooledNotices(app)).toHaveLength(2);
  });

  it('writes Japanese when notify.language is ja', async () => {
    const [up] = await upstreams(1);
    up!.rejectRecipient('gone@example.com', 550, '5.1.1 User unknown');
    const dir = tempDir();
    await startRelay(relayConfig(dir, { upstreams: [smtpUpstream('office', up!)], notify: { to: ['it@example.com'], digest: '1s', language: 'ja' } }))
      .then(({ port }) => sendMail(port, { to: ['gone@example.com'], subject: '見積書' }));
    const mail = await notice(up!);
    expect(mail.subject).toBe('[relaybox] 配信失敗 1 件');
    expect(mail.text).toContain('配信に失敗したメール');
    expect(mail.text).toContain('件名: 見積書');
    expect(mail.text).toContain('office の応答: 550 5.1.1 User unknown');
  });

  it('bounces a delivery status notification (RFC 3464) to an allowed sender, never to one outside the domains', async () => {
    const [up] = await upstreams(1);
    up!.rejectRecipient('gone@example.com', 550, '5.1.1 User unknown');
    const dir = tempDir();
    const smtp = { listen: ['127.0.0.1:0'], tls: { mode: 'none' }, allow_recipient_domains: ['example.com'] };
    const { app, port } = await startRelay(relayConfig(dir, { smtp, upstreams: [smtpUpstream('office', up!)], notify: { to: ['it@example.com'], digest: '4s', bounce_to_sender: true } }));
    await sendMail(port, { from: 'printer@elsewhere.test', to: ['gone@example.com'], subject: 'Outside' });
    await sendMail(port, { from: 'scanner@example.com', to: ['gone@example.com'], subject: 'Monthly report' });

    const dsn = await waitFor(() => up!.messages.find((m) => m.to.includes('scanner@example.com')), 20_000, 'the DSN');
    expect(dsn.from).toBe('');
    const parsed = await PostalMime.parse(dsn.raw!);
    expect(parsed.headers.find((h) => h.key === 'content-type')?.value).toMatch(/^multipart\/report; report-type=delivery-status;/);
    expect(parsed.headers.find((h) => h.key === 'auto-submitted')?.value).toBe('auto-replied');
    const status = parsed.attachments.find((a) => a.mimeType === 'message/delivery-status');
    // postal-mime hands a part's lines over with LF.
    const fields = Buffer.from(status!.content as ArrayBuffer).toString();
    expect(fields).toMatch(/^Reporting-MTA: dns; relaybox\.test\.example\nArrival-Date: .+\n\n/);
    expect(fields).toContain('Final-Recipient: rfc822; gone@example.com\nAction: failed\nStatus: 5.1.1\nDiagnostic-Code: smtp; 550 5.1.1 User unknown\n');
    const headers = parsed.attachments.find((a) => a.mimeType === 'text/rfc822-headers');
    expect(Buffer.from(headers!.content as ArrayBuffer).toString()).toContain('Subject: Monthly report');

    // The digest comes after both failures were handled: by then another DSN would be spooled.
    expect((await notice(up!)).subject).toBe('[relaybox] 2 messages failed');
    expect(spooledNotices(app).filter((n) => n.mail_from === '')).toHaveLength(1);
  });

  it('bounces nothing to an empty sender', async () => {
    const [up] = await upstreams(1);
    up!.rejectRecipient('gone@example.com', 550, '5.1.1 User unknown');
    const dir = tempDir();
    const { app, port } = await startRelay(relayConfig(dir, { upstreams: [smtpUpstream('office', up!)], notify: { to: ['it@example.com'], digest: '1s', bounce_to_sender: true } }));
    await sendMail(port, { from: '', raw: 'From: fax@example.com\r\nSubject: Null sender\r\n\r\nhi\r\n', to: ['gone@example.com'] });

    expect((await notice(up!)).subject).toBe('[relaybox] 1 message failed');
    expect(spooledNotices(app).filter((n) => n.mail_from === '')).toHaveLength(0);
  });

  it('keeps an open window across a restart: the digest goes out once, after it', async () => {
    const [up] = await upstreams(1);
    up!.rejectRecipient('gone@example.com', 550, '5.1.1 User unknown');
    const dir = tempDir();
    const raw = relayConfig(dir, { upstreams: [smtpUpstream('office', up!)], notify: { to: ['it@example.com'], digest: '3s' } });
    const first = await startRelay(raw);
    await sendMail(first.port, { to: ['gone@example.com'], subject: 'Before the restart' });
    await waitFor(() => new NoticeMemory(first.app.spool.db).load().flushAt !== null, 20_000, 'the window to open');
    await first.app.stop();

    const { app } = await startRelay(raw);
    const mail = await notice(up!);
    expect(mail.subject).toBe('[relaybox] 1 message failed');
    expect(mail.text).toContain('Subject: Before the restart');
    expect(spooledNotices(app)).toHaveLength(1);
  });
});

describe('notify: in the configuration', () => {
  it('has defaults: every event, a 15 minute digest, 4h stuck_after, English, no DSN', () => {
    expect(parseConfig(`notify: { to: [it@example.com] }\n${FILE_UPSTREAM}`).notify).toEqual({
      to: ['it@example.com'],
      events: ['failed', 'auth_failed', 'upstream_down', 'quota', 'disk', 'queue_stuck'],
      digest: 900_000,
      stuck_after: 14_400_000,
      bounce_to_sender: false,
      language: 'en',
    });
  });

  it('names the key of a bad value', () => {
    expect(configProblems(`notify: { to: [it] }\n${FILE_UPSTREAM}`)).toEqual(['notify.to[0]: expected a mail address like it@example.com']);
    expect(configProblems(`notify: { to: [] }\n${FILE_UPSTREAM}`)).toEqual(['notify.to: at least one recipient is needed']);
    expect(configProblems(`notify: { to: [it@example.com], events: [failed, fire] }\n${FILE_UPSTREAM}`)[0]).toMatch(/^notify\.events\[1\]: /);
    expect(configProblems(`notify: { to: [it@example.com], digest: soon }\n${FILE_UPSTREAM}`)).toEqual(['notify.digest: expected a duration like 30s, 10m, 48h or 7d, got "soon"']);
    expect(configProblems(`notify: { to: [it@example.com], language: de }\n${FILE_UPSTREAM}`)[0]).toMatch(/^notify\.language: /);
  });

  it('refuses a notice recipient outside smtp.allow_recipient_domains: notices must not open a relay', () => {
    const yaml = `smtp: { allow_recipient_domains: [example.com] }\nnotify: { to: [it@example.net, ops@Example.com] }\n${FILE_UPSTREAM}`;
    expect(configProblems(yaml)).toEqual(['notify.to[0]: "it@example.net" is outside smtp.allow_recipient_domains (example.com)']);
  });
});
