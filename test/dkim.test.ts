import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { existsSync, readdirSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import { dkimVerify } from 'mailauth';
import { describe, expect, it } from 'vitest';
import { ConfigError, validateConfig } from '../src/config/load.js';
import { createDkimSigner, DKIM_MEMORY_BYTES, sweepStaleCache } from '../src/message/dkim.js';
import { applyFixups } from '../src/message/fixupsStream.js';
import { relayConfig, sendMail, startRelay, waitFor } from './helpers/relay.js';
import { TestUpstream } from './helpers/testUpstream.js';
import { tempDir } from './helpers/tmp.js';

// One key for the file: RSA generation is slow on a small CI box.
const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const PEM = privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
const DOMAIN = 'example.com';
const SELECTOR = 'relaybox';

/** The TXT record a verifier would find at relaybox._domainkey.example.com, without DNS. */
async function resolver(name: string, rrtype: string): Promise<string[][]> {
  if (rrtype !== 'TXT' || name !== `${SELECTOR}._domainkey.${DOMAIN}`) throw Object.assign(new Error(`no ${rrtype} ${name}`), { code: 'ENOTFOUND' });
  const p = publicKey.export({ type: 'spki', format: 'der' }).toString('base64');
  const record = `v=DKIM1; k=rsa; p=${p}`;
  return [record.match(/.{1,255}/g)!]; // split into <=255-character strings, as DNS does
}

/** Verified by mailauth — a verifier that shares no code with nodemailer's signer. */
async function verify(message: Buffer) {
  const { results } = await dkimVerify(message, { resolver });
  return results;
}

function signer(cacheDir = tempDir()) {
  return createDkimSigner({ domain: DOMAIN, selector: SELECTOR, privateKey: PEM, cacheDir });
}

const small = Buffer.from(
  'From: scanner@example.com\r\nTo: office@example.com\r\nSubject: Scan 0003\r\nDate: Fri, 05 Jan 2024 09:30:00 +0000\r\n' +
    'Message-ID: <scan-0003@example.com>\r\n\r\nPDF attached.\r\n',
);

describe('DKIM signing', () => {
  it('signs a small message rsa-sha256, relaxed/relaxed, and a verifier says pass', async () => {
    const signed = await buffer(signer()(Readable.from([small])));
    expect(signed.subarray(signed.length - small.length).equals(small)).toBe(true); // only a header is added
    const header = signed.toString().split('\r\n\r\n')[0]!.replace(/\r\n[ \t]+/g, ' ');
    expect(header).toMatch(/^DKIM-Signature: v=1; a=rsa-sha256; c=relaxed\/relaxed; d=example\.com; q=dns\/txt; s=relaybox;/);
    expect(header).toMatch(/h=from:subject:date:message-id:to;/);
    const results = await verify(signed);
    expect(results).toHaveLength(1);
    expect(results[0]!.status.result).toBe('pass');
    expect(results[0]!.status.aligned).toBe('example.com');
  });

  it('signs the fixed-up message, so the added Message-ID and Date are covered', async () => {
    const sloppy = Buffer.from('From: scanner@example.com\r\nSubject: a\r\nSubject: b\r\nTo: x@example.com\r\n\r\nbody\r\n');
    const ctx = { hostname: 'relaybox.example.com', messageId: 'm1@relaybox.example.com', date: new Date(), envelopeFrom: '', headerFrom: '' };
    const signed = await buffer(signer()(applyFixups(Readable.from([sloppy]), ctx)));
    expect(signed.toString()).toMatch(/h=from:subject:date:message-id:to;/);
    expect((await verify(signed))[0]!.status.result).toBe('pass');
    // A verifier catches a change after signing: the point of signing last.
    const tampered = Buffer.from(signed.toString().replace('Subject: a', 'Subject: c'));
    expect((await verify(tampered))[0]!.status.result).toBe('fail');
  });

  it('keeps a 30 MB scan on disk, not in memory, while signing it, and cleans up', async () => {
    const cacheDir = tempDir();
    const line = Buffer.from(`${'QUJD'.repeat(19)}\r\n`);
    const chunk = Buffer.concat(Array.from({ length: 3360 }, () => line)); // ~262 KB
    const head = Buffer.from('From: scanner@example.com\r\nTo: a@example.com\r\nSubject: big\r\n\r\n');
    const source = Readable.from((function* () { yield head; for (let i = 0; i < 120; i++) yield chunk; })());
    const signed = signer(cacheDir)(source) as Readable & { usingCache?: boolean };
    let bytes = 0;
    let cachedBytes = -1;
    for await (const piece of signed as AsyncIterable<Buffer>) {
      // The signature goes on top, so the whole body is read before the first byte comes out:
      // by then it must sit in the cache file, all but the first 256 KiB.
      if (cachedBytes === -1) cachedBytes = readdirSync(cacheDir).reduce((n, f) => n + statSync(join(cacheDir, f)).size, 0);
      bytes += piece.length;
    }
    expect(bytes).toBeGreaterThan(31_000_000);
    expect(signed.usingCache).toBe(true);
    expect(cachedBytes).toBeGreaterThan(31_000_000 - 2 * DKIM_MEMORY_BYTES);
    await new Promise((r) => setTimeout(r, 50));
    expect(readdirSync(cacheDir)).toEqual([]);
  }, 60_000);

  it('sweeps cache files a killed process left behind, and only old ones', () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'message.old'), 'x');
    writeFileSync(join(dir, 'message.new'), 'x');
    const old = (Date.now() - 7 * 3_600_000) / 1000;
    utimesSync(join(dir, 'message.old'), old, old);
    sweepStaleCache(dir);
    expect(existsSync(join(dir, 'message.old'))).toBe(false);
    expect(existsSync(join(dir, 'message.new'))).toBe(true);
  });
});

describe('dkim config', () => {
  const base = (dkim: unknown) => relayConfig(tempDir(), { dkim });

  it('reads private_key from a file, as SPEC shows', () => {
    const file = join(tempDir(), 'dkim.key');
    writeFileSync(file, PEM);
    const config = validateConfig(base({ domain: 'Example.COM', selector: 'relaybox', private_key: { file } }));
    expect(config.dkim).toEqual({ domain: 'example.com', selector: 'relaybox', private_key: PEM.replace(/\n$/, '') });
  });

  it('refuses a key that cannot sign, with the key path', () => {
    const problems = (dkim: unknown) => {
      try {
        validateConfig(base(dkim));
        return [];
      } catch (err) {
        return (err as ConfigError).problems;
      }
    };
    expect(problems({ domain: 'example.com', selector: 's', private_key: 'not a key' })).toEqual([
      'dkim.private_key: expected a PEM private key (-----BEGIN PRIVATE KEY----- or -----BEGIN RSA PRIVATE KEY-----)',
    ]);
    const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
    expect(problems({ domain: 'example.com', selector: 's', private_key: ec })[0]).toMatch(/^dkim\.private_key: expected an RSA private key/);
    expect(problems({ domain: 'example.com', selector: 's', private_key: { file: '/nonexistent/dkim.key' } })).toEqual([
      'dkim.private_key: cannot read /nonexistent/dkim.key: ENOENT',
    ]);
    expect(problems({ domain: 'localhost', selector: 's', private_key: PEM })).toEqual(['dkim.domain: expected a domain name like example.com']);
    expect(problems({ domain: 'example.com', private_key: PEM })).toEqual(['dkim.selector: is required']);
  });
});

/** relaybox signing with the test key, relaying to a test upstream. */
async function signingRelay() {
  const up = await TestUpstream.start();
  const dir = tempDir();
  const { port } = await startRelay(
    relayConfig(dir, {
      upstreams: [{ name: 'primary', type: 'smtp', host: '127.0.0.1', port: up.port, security: 'none' }],
      dkim: { domain: DOMAIN, selector: SELECTOR, private_key: PEM },
    }),
  );
  return { up, dir, port };
}

describe('DKIM end to end', () => {
  it('a sloppy scanner message arrives signed, and the receiving side verifies it', async () => {
    const { up, dir, port } = await signingRelay();
    await sendMail(port, { from: 'scanner@example.com', to: ['office@example.com'], raw: 'From: scanner@example.com\nTo: office@example.com\nSubject: scan\n\nPDF\n' });
    const [received] = await up.waitForMessages(1);
    const text = received!.raw!.toString();
    expect(text).toMatch(/^DKIM-Signature: /);
    expect(text).toMatch(/\r\nMessage-ID: <[^>]+@relaybox\.test\.example>\r\n/);
    const results = await verify(received!.raw!);
    expect(results.map((r) => r.status.result)).toEqual(['pass']);
    expect(existsSync(join(dir, 'tmp'))).toBe(true);
  });

  it('a 30 MB scan goes out signed through the disk cache and verifies', async () => {
    const { up, dir, port } = await signingRelay();
    const base64 = randomBytes(22 * 1024 * 1024).toString('base64').replace(/.{76}/g, '$&\r\n');
    const raw = Buffer.from(`From: scanner@example.com\r\nTo: a@example.com\r\nSubject: big scan\r\nContent-Type: application/pdf\r\nContent-Transfer-Encoding: base64\r\n\r\n${base64}\r\n`);
    await sendMail(port, { to: ['a@example.com'], raw });
    const [received] = await up.waitForMessages(1, 60_000);
    expect(received!.size).toBeGreaterThan(30_000_000);
    expect((await verify(received!.raw!)).map((r) => r.status.result)).toEqual(['pass']);
    await waitFor(() => readdirSync(join(dir, 'tmp')).length === 0, 5_000, 'the DKIM cache file to be removed');
  }, 120_000);
});
