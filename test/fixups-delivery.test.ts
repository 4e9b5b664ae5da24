import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { validateConfig } from '../src/config/load.js';
import { listMessages } from '../src/spool/log.js';
import { relayConfig, sendMail, startRelay, waitFor } from './helpers/relay.js';
import { TestUpstream } from './helpers/testUpstream.js';
import { tempDir } from './helpers/tmp.js';

const smtp = (name: string, port: number) => ({ name, type: 'smtp', host: '127.0.0.1', port, security: 'none' });
const fixture = (name: string) => readFileSync(join(import.meta.dirname, 'fixtures/devices', name));

/** The header fields of a received message, unfolded, as [lower-case name, value]. */
function fieldsOf(raw: Buffer): [string, string][] {
  const head = raw.toString('latin1').split('\r\n\r\n')[0]!.replace(/\r\n(?=[ \t])/g, '');
  return head.split('\r\n').map((l) => [l.slice(0, l.indexOf(':')).toLowerCase(), l.slice(l.indexOf(':') + 1).trim()]);
}
const values = (raw: Buffer, name: string) => fieldsOf(raw).filter(([n]) => n === name).map(([, v]) => v);

async function relayTo(overrides: Record<string, unknown> = {}) {
  const up = await TestUpstream.start();
  const relay = await startRelay(relayConfig(tempDir(), { upstreams: [smtp('primary', up.port)], ...overrides }));
  return { up, ...relay };
}

describe('fix-ups on the way out', () => {
  it('a sloppy scanner message arrives with Message-ID, Date and one From', async () => {
    const { up, port } = await relayTo();
    const raw = 'From: scanner@office.example.com\nFrom: MFP <mfp@office.example.com>\nTo: office@example.com\nSubject: Scan\n\nPDF\n';
    await sendMail(port, { from: 'scanner@office.example.com', to: ['office@example.com'], raw });
    const [got] = await up.waitForMessages(1);
    const text = got!.raw!.toString('latin1');
    expect(values(got!.raw!, 'from')).toEqual(['scanner@office.example.com']);
    expect(values(got!.raw!, 'message-id')).toEqual([expect.stringMatching(/^<[^<>@\s]+@relaybox\.test\.example>$/)]);
    expect(values(got!.raw!, 'date')).toEqual([expect.stringMatching(/^\w{3}, \d{2} \w{3} \d{4} \d{2}:\d{2}:\d{2} \+0000$/)]);
    expect(text).not.toMatch(/(^|[^\r])\n/);
    expect(text.endsWith('\r\n\r\nPDF\r\n')).toBe(true);
  });

  it('delivers a well-formed message byte for byte', async () => {
    const { up, port } = await relayTo();
    const raw = fixture('well-formed.eml').toString().replace(/\n/g, '\r\n');
    await sendMail(port, { from: 'scanner@example.com', to: ['office@example.com'], raw });
    const [got] = await up.waitForMessages(1);
    expect(got!.raw!.toString()).toBe(raw);
  });

  it('splits the one-line HTML of a printer, keeping every line within 998 octets', async () => {
    const { up, port } = await relayTo();
    await sendMail(port, { from: 'printer@office.example.com', to: ['office@example.com'], raw: fixture('printer-long-body-line.eml') });
    const [got] = await up.waitForMessages(1);
    expect(got!.raw!.toString().split('\r\n').every((l) => l.length <= 998)).toBe(true);
  });
});

describe('smtp.rewrite', () => {
  const rewrite = { envelope_from: 'relay@example.com', header_from: 'Office Scanner <scanner@example.com>' };

  it('replaces the envelope sender and the From, keeping the device From in Reply-To', async () => {
    const { up, port, app } = await relayTo({ smtp: { listen: ['127.0.0.1:0'], tls: { mode: 'none' }, rewrite } });
    const raw = 'From: "MFP 2F" <mfp@lan.local>\r\nTo: office@example.com\r\nSubject: Scan\r\n\r\nPDF\r\n';
    await sendMail(port, { from: 'mfp@lan.local', to: ['office@example.com'], raw });
    const [got] = await up.waitForMessages(1);
    expect(got!.from).toBe('relay@example.com');
    expect(values(got!.raw!, 'from')).toEqual(['Office Scanner <scanner@example.com>']);
    expect(values(got!.raw!, 'reply-to')).toEqual(['"MFP 2F" <mfp@lan.local>']);
    // The spool and the log keep what the device said.
    await waitFor(() => listMessages(app.spool.db)[0]?.state === 'delivered');
    expect(app.spool.db.prepare('SELECT mail_from FROM messages').pluck().get()).toBe('mfp@lan.local');
  });

  it('keeps a Reply-To the device set, and only rewrites what is configured', async () => {
    const { up, port } = await relayTo({ smtp: { listen: ['127.0.0.1:0'], tls: { mode: 'none' }, rewrite: { header_from: 'scanner@example.com' } } });
    const raw = 'From: mfp@lan.local\r\nReply-To: boss@example.com\r\nTo: office@example.com\r\n\r\nPDF\r\n';
    await sendMail(port, { from: 'mfp@lan.local', to: ['office@example.com'], raw });
    const [got] = await up.waitForMessages(1);
    expect(got!.from).toBe('mfp@lan.local');
    expect(values(got!.raw!, 'from')).toEqual(['scanner@example.com']);
    expect(values(got!.raw!, 'reply-to')).toEqual(['boss@example.com']);
  });

  it('gives a message without From the rewritten envelope sender as From', async () => {
    const { up, port } = await relayTo({ smtp: { listen: ['127.0.0.1:0'], tls: { mode: 'none' }, rewrite: { envelope_from: 'relay@example.com' } } });
    await sendMail(port, { from: 'root@nas', to: ['it@example.com'], raw: 'Subject: cron\r\n\r\nok\r\n' });
    const [got] = await up.waitForMessages(1);
    expect(values(got!.raw!, 'from')).toEqual(['relay@example.com']);
  });

  it('refuses addresses that are not addresses, naming the key', () => {
    const bad = (rw: Record<string, string>) => () => validateConfig(relayConfig(tempDir(), { smtp: { rewrite: rw } }));
    expect(bad({ envelope_from: 'Scanner <s@example.com>' })).toThrow(/smtp\.rewrite\.envelope_from: expected an address like scanner@example\.com/);
    expect(bad({ header_from: 'scanner' })).toThrow(/smtp\.rewrite\.header_from: expected an address/);
    expect(bad({ header_from: 'a@example.com\r\nBcc: x@evil.example' })).toThrow(/smtp\.rewrite\.header_from/);
    expect(() => validateConfig(relayConfig(tempDir(), { smtp: { rewrite: { header_from: '"Büro, 2F" <scan@example.com>' } } }))).not.toThrow();
  });
});
