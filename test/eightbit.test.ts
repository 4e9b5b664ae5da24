import { generateKeyPairSync } from 'node:crypto';
import { dkimVerify } from 'mailauth';
import SMTPConnection from 'nodemailer/lib/smtp-connection';
import PostalMime from 'postal-mime';
import { describe, expect, it } from 'vitest';
import { Readable } from 'node:stream';
import { text as streamText } from 'node:stream/consumers';
import { toSevenBit } from '../src/message/sevenBit.js';
import { openSpool } from '../src/spool/db.js';
import { listMessages } from '../src/spool/log.js';
import { SpoolStore } from '../src/spool/store.js';
import { relayConfig, startRelay, waitFor } from './helpers/relay.js';
import { TestUpstream, type TestUpstreamOptions } from './helpers/testUpstream.js';
import { tempDir } from './helpers/tmp.js';

const smtp = (name: string, port: number) => ({ name, type: 'smtp', host: '127.0.0.1', port, security: 'none' });

const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const DKIM = { domain: 'example.com', selector: 'relaybox', private_key: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString() };

/** The key at relaybox._domainkey.example.com, without DNS. */
async function resolver(name: string, rrtype: string): Promise<string[][]> {
  if (rrtype !== 'TXT' || name !== 'relaybox._domainkey.example.com') throw Object.assign(new Error(`no ${rrtype} ${name}`), { code: 'ENOTFOUND' });
  const record = `v=DKIM1; k=rsa; p=${publicKey.export({ type: 'spki', format: 'der' }).toString('base64')}`;
  return [record.match(/.{1,255}/g)!];
}

/** A device speaking SMTP through nodemailer's client, declaring `BODY=8BITMIME` only when told to. */
async function deviceSends(port: number, envelope: { from: string; to: string[]; use8BitMime?: boolean }, raw: Buffer): Promise<void> {
  const connection = new SMTPConnection({ host: '127.0.0.1', port, ignoreTLS: true });
  await new Promise<void>((resolve, reject) => {
    connection.once('error', reject);
    connection.connect(() => resolve());
  });
  try {
    await new Promise((resolve, reject) => connection.send(envelope, raw, (err, info) => (err ? reject(err) : resolve(info))));
  } finally {
    connection.quit();
  }
}

async function relayTo(upstreams: TestUpstreamOptions[], overrides: Record<string, unknown> = {}) {
  const ups = await Promise.all(upstreams.map((options) => TestUpstream.start(options)));
  const relay = await startRelay(relayConfig(tempDir(), { upstreams: ups.map((up, i) => smtp(`up${i}`, up.port)), ...overrides }));
  return { ups, ...relay };
}

const crlf = (lines: string[]) => Buffer.from(lines.join('\r\n'), 'utf8');

/** Well-formed, so that the fix-ups leave them as they are. */
const wellFormed = (body: string[]) => crlf(['From: scanner@example.com', 'To: office@example.com', 'Subject: Scan', 'Date: Fri, 05 Jan 2024 09:30:00 +0000', 'Message-ID: <scan-1@scanner.example.com>', ...body, '']);
const EIGHT_BIT_TEXT = wellFormed(['MIME-Version: 1.0', 'Content-Type: text/plain; charset=utf-8', 'Content-Transfer-Encoding: 8bit', '', 'Grüße']);
const SEVEN_BIT_TEXT = wellFormed(['', 'Hello']);

/** What a reader sees: the same for the 8-bit original and its 7-bit form. */
async function reading(raw: Buffer) {
  const mail = await PostalMime.parse(raw);
  return {
    from: mail.from,
    to: mail.to,
    subject: mail.subject,
    text: mail.text,
    attachments: mail.attachments.map((a) => ({ filename: a.filename, mimeType: a.mimeType })),
  };
}

describe('8BITMIME upstream', () => {
  it('declares BODY=8BITMIME for 8-bit mail the device did not declare, and sends 7-bit mail as ever', async () => {
    const { ups: [up], port } = await relayTo([{}]);
    await deviceSends(port, { from: 'scanner@example.com', to: ['office@example.com'] }, EIGHT_BIT_TEXT);
    await deviceSends(port, { from: 'scanner@example.com', to: ['office@example.com'] }, SEVEN_BIT_TEXT);
    const got = await up!.waitForMessages(2);
    const eight = got.find((m) => m.raw!.includes('Gr'))!;
    const seven = got.find((m) => m.raw!.includes('Hello'))!;
    expect(eight.mailParams).toMatchObject({ BODY: '8BITMIME' });
    expect(eight.raw!.equals(EIGHT_BIT_TEXT)).toBe(true); // passed as it came
    expect(seven.mailParams).toEqual({});
    expect(seven.raw!.equals(SEVEN_BIT_TEXT)).toBe(true);
  });

  it('declares BODY=8BITMIME when the device declared it, and keeps that in the spool', async () => {
    const { ups: [up], port, app } = await relayTo([{}]);
    await deviceSends(port, { from: 'scanner@example.com', to: ['office@example.com'], use8BitMime: true }, SEVEN_BIT_TEXT);
    const [got] = await up!.waitForMessages(1);
    expect(got!.mailParams).toMatchObject({ BODY: '8BITMIME' });
    expect(app.spool.db.prepare('SELECT traits FROM messages').pluck().get()).toBe(2);
  });

  it('converts 8-bit mail to 7-bit for an upstream without 8BITMIME: same text once read, DKIM verifies', async () => {
    const { ups: [up], port } = await relayTo([{ hide8BitMime: true }], { dkim: DKIM });
    const attachment = Buffer.from([0x25, 0x50, 0x44, 0x46, 0x0d, 0x0a, 0xff, 0x00, 0xfe, 0x80, 0x0d, 0x0a, 0x45, 0x4f, 0x46]);
    const original = Buffer.concat([
      crlf([
        'From: "Müller, Jürgen" <scanner@example.com>',
        'To: office@example.com',
        'Subject: Scan vom Drucker im Büro — größer als gedacht, mit einem langen Betreff über achtzig Zeichen',
        'MIME-Version: 1.0',
        'Content-Type: multipart/mixed; boundary="b1"',
        '',
        '--b1',
        'Content-Type: text/plain; charset=utf-8',
        'Content-Transfer-Encoding: 8bit',
        '',
        'Grüße aus dem Büro = gut ',
        'ä'.repeat(400), // 800 octets: a longer line is split by the fix-ups before conversion
        '--b1',
        'Content-Type: application/pdf; name="Bericht ü.pdf"',
        'Content-Disposition: attachment; filename="Bericht ü.pdf"',
        'Content-Transfer-Encoding: binary',
        '',
        '',
      ]),
      attachment,
      crlf(['', '--b1--', '']),
    ]);
    await deviceSends(port, { from: 'scanner@example.com', to: ['office@example.com'], use8BitMime: true }, original);
    const [got] = await up!.waitForMessages(1);
    expect(got!.mailParams).toEqual({});
    expect([...got!.raw!].every((b) => b < 0x80)).toBe(true);
    expect(got!.raw!.toString('latin1').split('\r\n').every((l) => l.length <= 998)).toBe(true);
    expect(await reading(got!.raw!)).toEqual(await reading(original));
    // Byte for byte (postal-mime reads the line breaks of an unencoded part as LF).
    const [sent] = (await PostalMime.parse(got!.raw!)).attachments;
    expect(Buffer.from(sent!.content as ArrayBuffer).equals(attachment)).toBe(true);
    const { results } = await dkimVerify(got!.raw!, { resolver });
    expect(results.map((r: { status: { result: string } }) => r.status.result)).toEqual(['pass']);
  });
});

describe('SMTPUTF8 upstream', () => {
  const utf8Mail = crlf(['From: scanner@example.com', 'To: jürgen@example.com', 'Subject: Scan', '', 'Hello', '']);

  it('an address that needs SMTPUTF8 goes to the upstream that offers it, declared', async () => {
    const { ups: [old, modern], port, app } = await relayTo([{ hideSmtpUtf8: true }, {}]);
    await deviceSends(port, { from: 'scanner@example.com', to: ['jürgen@example.com'] }, utf8Mail);
    const [got] = await modern!.waitForMessages(1);
    // relaybox offered SMTPUTF8 and the device used it; the To header makes the message 8-bit.
    expect(app.spool.db.prepare('SELECT traits FROM messages').pluck().get()).toBe(1 | 4);
    expect(got!.to).toEqual(['jürgen@example.com']);
    expect(got!.mailParams).toMatchObject({ SMTPUTF8: true });
    expect(old!.messages).toEqual([]);
  });

  it('fails the message with the reason when no upstream offers SMTPUTF8, sending nothing', async () => {
    const { ups: [old], port, app } = await relayTo([{ hideSmtpUtf8: true }]);
    await deviceSends(port, { from: 'scanner@example.com', to: ['jürgen@example.com'] }, utf8Mail);
    const failed = await waitFor(() => listMessages(app.spool.db).find((m) => m.state === 'failed'), 10_000, 'the message to fail');
    expect(failed.lastReply).toMatch(/does not offer SMTPUTF8.*<jürgen@example\.com>/);
    expect(old!.messages).toEqual([]);
    // The connection stays good for the next message.
    await deviceSends(port, { from: 'scanner@example.com', to: ['office@example.com'] }, SEVEN_BIT_TEXT);
    await old!.waitForMessages(1);
  });
});

describe('the 7-bit form', () => {
  const sevenBit = async (message: Buffer) => Buffer.from(await streamText(toSevenBit(Readable.from([message.subarray(0, 7), message.subarray(7)]))), 'latin1');
  const isSevenBit = (b: Buffer) => [...b].every((x) => x < 0x80);

  it('walks into a forwarded message/rfc822 and encodes its 8-bit text', async () => {
    const original = crlf([
      'From: a@example.com', 'Subject: Fwd', 'MIME-Version: 1.0', 'Content-Type: multipart/mixed; boundary=outer', '',
      '--outer', 'Content-Type: message/rfc822', 'Content-Transfer-Encoding: 8bit', '',
      'From: b@example.com', 'Subject: Übersicht', 'Content-Type: text/plain; charset=utf-8', '', 'Größe', '',
      '--outer--', '',
    ]);
    const out = await sevenBit(original);
    expect(isSevenBit(out)).toBe(true);
    expect(out.toString()).toContain('Content-Type: message/rfc822\r\nContent-Transfer-Encoding: 7bit\r\n\r\nFrom: b@example.com\r\nSubject: =?utf-8?B?');
    // postal-mime shows a forwarded message inline, its headers included.
    const { text } = await PostalMime.parse(out);
    expect(text).toBe((await PostalMime.parse(original)).text);
    expect(text).toContain('Subject: Übersicht');
  });

  it('keeps a raw Shift_JIS subject in its charset, and gives a bare 8-bit message its MIME headers', async () => {
    const subject = Buffer.from([0x83, 0x58, 0x83, 0x4c, 0x83, 0x83, 0x83, 0x93]); // スキャン
    const original = Buffer.concat([Buffer.from('From: mfp@example.com\r\nSubject: '), subject, Buffer.from('\r\nContent-Type: text/plain; charset=Shift_JIS\r\n\r\n'), subject, Buffer.from('\r\n')]);
    const out = await sevenBit(original);
    expect(isSevenBit(out)).toBe(true);
    expect(out.toString()).toContain('Subject: =?shift_jis?B?');
    expect(out.toString()).toContain('MIME-Version: 1.0\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n');
    const read = await PostalMime.parse(out);
    expect([read.subject, read.text]).toEqual(['スキャン', 'スキャン\n']);
  });

  it('encodes a line of any length in pieces, holding none of it whole', async () => {
    const long = 'ä'.repeat(20_000) + ' ';
    const original = crlf(['From: a@example.com', 'Content-Type: multipart/mixed; boundary=b', '', '--b', 'Content-Type: text/plain; charset=utf-8', '', long, '--b', 'Content-Type: application/octet-stream', '', long, '--b--', '']);
    const out = await sevenBit(original);
    expect(isSevenBit(out)).toBe(true);
    expect(Math.max(...out.toString('latin1').split('\r\n').map((l) => l.length))).toBeLessThanOrEqual(76);
    const read = await PostalMime.parse(out);
    expect(read.text).toBe((await PostalMime.parse(original)).text);
    expect(Buffer.from(read.attachments[0]!.content as ArrayBuffer).toString()).toBe(long);
  });

  it('fails, rather than send 8-bit, on a header address that only SMTPUTF8 can carry', async () => {
    const original = crlf(['From: jürgen@example.com', 'To: a@example.com', '', 'Grüße', '']);
    await expect(sevenBit(original)).rejects.toThrow(/From header holds an address with 8-bit bytes \(jürgen@example\.com\)/);
  });
});

describe('spool traits', () => {
  it('a spool from before the traits column opens, and its mail counts as 7-bit', () => {
    const dir = tempDir();
    const db = openSpool(dir);
    db.exec(`ALTER TABLE messages DROP COLUMN traits; DROP TABLE status_memory; PRAGMA user_version = 2;`);
    db.exec(`INSERT INTO messages (received_at, queued_at, mail_from, size, state, next_attempt_at, updated_at, body) VALUES (1, 1, 'a@example.com', 5, 'queued', 1, 1, x'6869')`);
    db.exec(`INSERT INTO recipients (message_id, rcpt, state) VALUES (1, 'b@example.com', 'pending')`);
    db.close();
    const store = new SpoolStore(openSpool(dir));
    try {
      expect(store.claim(1)?.traits).toEqual({ eightBit: false, declared8BitMime: false, declaredSmtpUtf8: false });
    } finally {
      store.close();
    }
  });
});
