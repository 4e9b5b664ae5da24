import { generateKeyPairSync } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import addrs from 'email-addresses';
import { dkimSign, dkimVerify } from 'mailauth';
import PostalMime from 'postal-mime';
import { describe, expect, it } from 'vitest';
import { relayConfig, sendMail, startRelay } from './helpers/relay.js';
import { TestUpstream } from './helpers/testUpstream.js';
import { tempDir } from './helpers/tmp.js';

/**
 * Device mail sent over SMTP with nodemailer's client to relaybox, which signs with DKIM and
 * relays to a test upstream; there the message is read with parsers that share no code with
 * relaybox: postal-mime, email-addresses (strict RFC 5322) and mailauth's DKIM verifier.
 */

const keys = { relaybox: generateKeyPairSync('rsa', { modulusLength: 2048 }), device: generateKeyPairSync('rsa', { modulusLength: 2048 }) };
const pem = (k: keyof typeof keys) => keys[k].privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
const RECORDS: Record<string, keyof typeof keys> = { 'relaybox._domainkey.example.com': 'relaybox', 'mfp._domainkey.office.example.com': 'device' };

/** The TXT records a verifier would find, without DNS. */
async function resolver(name: string, rrtype: string): Promise<string[][]> {
  const key = RECORDS[name];
  if (rrtype !== 'TXT' || !key) throw Object.assign(new Error(`no ${rrtype} ${name}`), { code: 'ENOTFOUND' });
  const p = keys[key].publicKey.export({ type: 'spki', format: 'der' }).toString('base64');
  return [`v=DKIM1; k=rsa; p=${p}`.match(/.{1,255}/g)!];
}

const fixture = (name: string) => readFileSync(join(import.meta.dirname, 'fixtures/devices', name));

/** Sends `raw` through a relaybox of its own and returns what the upstream got, its lines and relaybox's signature checked. */
async function relayed(raw: Buffer | string): Promise<Buffer> {
  const up = await TestUpstream.start();
  const upstreams = [{ name: 'primary', type: 'smtp', host: '127.0.0.1', port: up.port, security: 'none' }];
  const { port } = await startRelay(relayConfig(tempDir(), { upstreams, dkim: { domain: 'example.com', selector: 'relaybox', private_key: pem('relaybox') } }));
  await sendMail(port, { from: 'mfp@office.example.com', to: ['office@example.com'], raw });
  const [got] = await up.waitForMessages(1, 30_000);
  const message = got!.raw!;
  expect(message.toString('latin1').split('\r\n').every((line) => line.length <= 998)).toBe(true);
  const { results } = await dkimVerify(message, { resolver });
  expect(results.find((r) => r.signingDomain === 'example.com')?.status.result).toBe('pass');
  return message;
}

/** The unfolded value of the first header field `name`, as a reader sees it. */
function header(message: Buffer, name: string): string | undefined {
  const head = message.toString('latin1').replace(/\r?\n/g, '\r\n').split('\r\n\r\n')[0]!.replace(/\r\n(?=[ \t])/g, '');
  const line = head.split('\r\n').find((l) => l.toLowerCase().startsWith(`${name.toLowerCase()}:`));
  return line?.slice(name.length + 1).trim();
}

describe('device fixtures through relaybox to an upstream', () => {
  it.each([
    ['from-no-address.eml', 'MFP-3F', 'mfp@office.example.com'],
    ['from-bare-word.eml', 'scanner', 'mfp@office.example.com'],
    ['from-unquoted-comma.eml', 'Scanner, 2F', 'scanner2f@office.example.com'],
  ])('%s arrives with From as one valid mailbox named as the device named itself', async (name, displayName, address) => {
    const message = await relayed(fixture(name));
    const from = header(message, 'From')!;
    const parsed = addrs.parseOneAddress({ input: from, rfc6532: true, strict: true });
    expect(parsed?.type).toBe('mailbox');
    expect(addrs.parseFrom({ input: from, rfc6532: true, strict: true })).toHaveLength(1);
    const email = await PostalMime.parse(message);
    expect(email.from).toMatchObject({ name: displayName, address });
  });

  it.each(['date-slashes.eml', 'date-asctime.eml', 'date-no-zone.eml'])('%s arrives with a Date a parser reads, the original kept', async (name) => {
    const before = Date.now();
    const message = await relayed(fixture(name));
    const date = header(message, 'Date')!;
    expect(date).toMatch(/^\w{3}, \d{2} \w{3} \d{4} \d{2}:\d{2}:\d{2} \+0000$/);
    const email = await PostalMime.parse(message);
    // The time relaybox received it: within the test's run, to the second.
    expect(Date.parse(email.date!)).toBeGreaterThanOrEqual(Math.floor(before / 1000) * 1000);
    expect(Date.parse(email.date!)).toBeLessThanOrEqual(Date.now());
    expect(header(message, 'X-Original-Date')).toBe(header(fixture(name), 'Date'));
  });

  it('to-long-no-spaces.eml arrives with every one of its 60 recipients whole in To', async () => {
    const message = await relayed(fixture('to-long-no-spaces.eml'));
    const lines = message.toString().split('\r\n');
    const continuations = lines.slice(lines.findIndex((l) => l.startsWith('To: ')) + 1).filter((_, i, rest) => rest.slice(0, i + 1).every((l) => l.startsWith(' ')));
    expect(continuations.length).toBeGreaterThan(0);
    // Each fold comes after a comma: every continuation starts with a whole address.
    for (const line of continuations) expect(line).toMatch(/^ user\d\d@office\.example\.com(,|$)/);
    const to = addrs.parseAddressList({ input: header(message, 'To')!, strict: true });
    expect(to?.map((a) => (a as { address: string }).address)).toEqual(Array.from({ length: 60 }, (_, i) => `user${String(i).padStart(2, '0')}@office.example.com`));
  });

  it('a 1.9 MB header line arrives folded into lines of at most 998 octets, and signed', async () => {
    const raw = `From: sensor@lab.example.com\r\nTo: ops@example.com\r\nSubject: huge header\r\nX-Dump: ${'x'.repeat(1_900_000)}\r\n\r\nbody\r\n`;
    const message = await relayed(raw);
    expect(message.toString('latin1').replace(/\r\n /g, '')).toContain(`X-Dump: ${'x'.repeat(1_900_000)}\r\n`);
  }, 60_000);

  it('a message the device signed with DKIM itself leaves byte for byte, both signatures verifying', async () => {
    const deviceKey = { signingDomain: 'office.example.com', selector: 'mfp', privateKey: pem('device') };
    const message = fixture('well-formed.eml').toString().replace(/\n/g, '\r\n').replace('scanner@example.com', 'mfp@office.example.com');
    const { signatures } = await dkimSign(message, { ...deviceKey, signatureData: [deviceKey] });
    const signed = signatures + message;
    const got = await relayed(signed);
    // relaybox puts its own signature on top and changes nothing else.
    expect(got.toString().replace(/^DKIM-Signature:.*\r\n(?:[ \t].*\r\n)*/, '')).toBe(signed);
    const { results } = await dkimVerify(got, { resolver });
    expect(results.map((r) => [r.signingDomain, r.status.result])).toEqual([
      ['example.com', 'pass'],
      ['office.example.com', 'pass'],
    ]);
  });
});
