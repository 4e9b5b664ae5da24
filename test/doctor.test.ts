import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { SMTPServer } from 'smtp-server';
import { stringify } from 'yaml';
import { formatFinding, type Finding } from '../src/doctor/report.js';
import { runDoctor, type DoctorOptions } from '../src/doctor/run.js';
import { FakeDns, type DnsTable } from './helpers/fakeDns.js';
import { FakeOauth } from './helpers/fakeOauth.js';
import { relayConfig } from './helpers/relay.js';
import { TestUpstream, type TestUpstreamOptions } from './helpers/testUpstream.js';
import { tempDir } from './helpers/tmp.js';

const closers: { close(): Promise<void> }[] = [];
afterEach(async () => {
  await Promise.all(closers.splice(0).map((c) => c.close()));
});

const DOMAIN_RECORDS: DnsTable = {
  'relaybox.test.example': { A: ['192.0.2.10'] },
  'example.com': { TXT: ['v=spf1 include:spf.example.net ~all', 'google-site-verification=abc'] },
  'spf.example.net': { TXT: ['v=spf1 include:_spf.google.com include:sendgrid.net -all'] },
  '_dmarc.example.com': { TXT: ['v=DMARC1; p=quarantine; rua=mailto:dmarc@example.com'] },
};

async function fakeDns(table: DnsTable = DOMAIN_RECORDS): Promise<FakeDns> {
  const dns = await FakeDns.start(structuredClone(table));
  closers.push(dns);
  return dns;
}

async function upstream(options: TestUpstreamOptions): Promise<TestUpstream> {
  const up = await TestUpstream.start(options);
  closers.push(up);
  return up;
}

/** Writes the config (and the test upstream's CA) and runs doctor on it in this process. */
async function doctor(dir: string, overrides: Record<string, unknown>, opts: Partial<DoctorOptions> & { dns: FakeDns }) {
  const file = join(dir, 'relaybox.yaml');
  writeFileSync(file, stringify(relayConfig(dir, overrides)));
  const { findings, configValid } = await runDoctor({ configFile: file, dnsServer: opts.dns.server, timeoutMs: 3000, ntp: async () => 'yes', ...opts });
  return { findings, configValid, text: findings.map(formatFinding).join('\n') };
}

function lines(findings: Finding[], topic: string, level?: Finding['level']): string[] {
  return findings.filter((f) => f.topic === topic && (!level || f.level === level)).map((f) => f.message);
}

function caFile(dir: string, up: TestUpstream): string {
  const ca = join(dir, 'upstream-ca.pem');
  writeFileSync(ca, up.cert!);
  return ca;
}

describe('relaybox doctor against loopback upstreams and a fake DNS server', () => {
  it('walks DNS → TCP → greeting → EHLO → STARTTLS → AUTH → MAIL FROM and checks SPF and DMARC', async () => {
    const dir = tempDir();
    const dns = await fakeDns({ ...DOMAIN_RECORDS, localhost: { A: ['127.0.0.1'] } });
    const up = await upstream({ tls: true, requireTls: true, auth: { user: 'apikey', pass: 's3cret' } });
    const { findings, text } = await doctor(
      dir,
      {
        smtp: { listen: ['127.0.0.1:0'], tls: { mode: 'none' }, rewrite: { envelope_from: 'scanner@example.com' } },
        upstreams: [
          { name: 'sg', type: 'smtp', provider: 'sendgrid', host: 'localhost', port: up.port, tls: { ca: caFile(dir, up) }, auth: { user: 'apikey', pass: 's3cret' } },
        ],
      },
      { dns },
    );
    expect(findings.filter((f) => f.level !== 'OK'), text).toEqual([]);
    const steps = lines(findings, 'upstream sg').map((m) => m.split(/[: ]/)[0]);
    expect(steps).toEqual(['DNS', 'TCP', 'greeting', 'EHLO', 'TLS', 'EHLO', 'AUTH', 'MAIL']);
    expect(text).toContain('DNS: localhost → 127.0.0.1');
    expect(text).toMatch(/TLS: TLSv1\.3; certificate valid for localhost; issued by localhost, until \d{4}-/);
    expect(text).toContain('EHLO relaybox.test.example: accepted; offers STARTTLS');
    expect(text).toContain('AUTH as apikey: accepted');
    expect(text).toContain('MAIL FROM:<scanner@example.com>: accepted (then RSET; nothing was sent)');
    expect(text).toMatch(/SPF: includes sendgrid\.net \(SendGrid\) through spf\.example\.net/);
    expect(text).toContain('DMARC: p=quarantine');
    expect(text).toContain('hostname: relaybox.test.example is fully qualified and resolves to 192.0.2.10');
    expect(up.logins).toBe(1);
    expect(up.messages).toHaveLength(0); // a probe never sends mail
    expect(dns.queries).toContain('_dmarc.example.com TXT');
  });

  it('fails at AUTH with the server words and a fix, and stops there', async () => {
    const dir = tempDir();
    const dns = await fakeDns();
    const up = await upstream({ tls: true, auth: { user: 'apikey', pass: 'right' } });
    const { findings } = await doctor(
      dir,
      { upstreams: [{ name: 'p', type: 'smtp', host: '127.0.0.1', port: up.port, tls: { ca: caFile(dir, up) }, auth: { user: 'apikey', pass: 'wrong' } }] },
      { dns },
    );
    const failed = findings.filter((f) => f.level === 'FAIL');
    expect(failed).toHaveLength(1);
    expect(failed[0]!.message).toBe('AUTH as apikey: 535 5.7.8 Username and Password not accepted');
    expect(failed[0]!.fix).toMatch(/auth\.user and auth\.pass/);
    expect(lines(findings, 'upstream p').at(-1)).toMatch(/^AUTH/); // nothing after the failure
  });

  it("gives the provider's fix for a refused login from the reply hint table", async () => {
    const dir = tempDir();
    const dns = await fakeDns();
    const up = await upstream({ tls: true, auth: { user: 'scanner@example.com', pass: 'x' }, refuseLogins: { code: 535, text: '5.7.8 Username and Password not accepted. https://support.google.com/mail/?p=BadCredentials - gsmtp' } });
    const { findings } = await doctor(
      dir,
      { upstreams: [{ name: 'gmail', type: 'gmail-app-password', host: '127.0.0.1', port: up.port, tls: { ca: caFile(dir, up) }, user: 'scanner@example.com', password: 'abcd efgh ijkl mnop' }] },
      { dns },
    );
    const failed = findings.filter((f) => f.level === 'FAIL');
    expect(failed.map((f) => f.message)).toEqual(['AUTH as scanner@example.com: 535 5.7.8 Username and Password not accepted. https://support.google.com/mail/?p=BadCredentials - gsmtp']);
    expect(failed[0]!.fix).toMatch(/^Google refused the app password of scanner@example\.com: it was revoked, or 2-Step Verification was turned off/);
  });

  it('refuses a certificate it cannot verify, and only warns when tls.verify is off', async () => {
    const dir = tempDir();
    const dns = await fakeDns();
    const up = await upstream({ tls: true });
    const strict = await doctor(dir, { upstreams: [{ name: 'p', type: 'smtp', host: '127.0.0.1', port: up.port }] }, { dns });
    const [tlsFail] = strict.findings.filter((f) => f.level === 'FAIL');
    expect(tlsFail!.message).toMatch(/^TLS: TLSv1\.\d; certificate not trusted: self-signed \(DEPTH_ZERO_SELF_SIGNED_CERT\)/);
    expect(tlsFail!.fix).toMatch(/tls\.ca/);

    const lax = await doctor(dir, { upstreams: [{ name: 'p', type: 'smtp', host: '127.0.0.1', port: up.port, tls: { verify: false } }] }, { dns });
    expect(lines(lax.findings, 'upstream p', 'WARN')[0]).toMatch(/NOT trusted .* tls\.verify is false/);
    expect(lax.findings.some((f) => f.level === 'FAIL')).toBe(false);
  });

  it('says which step failed: no STARTTLS offered, connection refused, a 421 greeting, an unknown host', async () => {
    const dir = tempDir();
    const dns = await fakeDns();
    const plain = await upstream({});
    const noTls = await doctor(dir, { upstreams: [{ name: 'p', type: 'smtp', host: '127.0.0.1', port: plain.port }] }, { dns });
    expect(lines(noTls.findings, 'upstream p', 'FAIL')).toEqual([expect.stringMatching(/^STARTTLS: the server does not offer it/)]);

    const clear = await doctor(dir, { upstreams: [{ name: 'p', type: 'smtp', host: '127.0.0.1', port: plain.port, security: 'none' }] }, { dns });
    expect(clear.findings.filter((f) => f.level !== 'OK')).toEqual([]); // loopback in clear is fine

    const busy = await upstream({});
    busy.failConnect(421, '4.7.0 Try again later, closing connection.');
    const refused = await doctor(dir, { upstreams: [{ name: 'p', type: 'smtp', host: '127.0.0.1', port: busy.port, security: 'none' }] }, { dns });
    expect(lines(refused.findings, 'upstream p', 'FAIL')).toEqual(['greeting: 421 4.7.0 Try again later, closing connection.']);

    await busy.stop();
    const down = await doctor(dir, { upstreams: [{ name: 'p', type: 'smtp', host: '127.0.0.1', port: busy.port, security: 'none' }] }, { dns });
    const [tcp] = down.findings.filter((f) => f.level === 'FAIL');
    expect(tcp!.message).toMatch(/^TCP: cannot connect to 127\.0\.0\.1:\d+: .*ECONNREFUSED/);
    expect(tcp!.fix).toMatch(/check host and port/);

    const unknown = await doctor(dir, { upstreams: [{ name: 'p', type: 'smtp', host: 'nowhere.test.example', port: 587 }] }, { dns });
    expect(lines(unknown.findings, 'upstream p', 'FAIL')).toEqual([expect.stringMatching(/^DNS: nowhere\.test\.example does not resolve \(DNS server 127\.0\.0\.1:\d+\)/)]);
  });

  it("probes Google's relay with our EHLO name and reports a refused sender with the Admin console fix", async () => {
    const dir = tempDir();
    const dns = await fakeDns({ ...DOMAIN_RECORDS, 'example.com': { TXT: ['v=spf1 mx -all'] } });
    const up = await upstream({ tls: true, requireTls: true });
    const config = {
      smtp: { listen: ['127.0.0.1:0'], tls: { mode: 'none' }, rewrite: { envelope_from: 'scanner@example.com' } },
      upstreams: [{ name: 'google', type: 'gmail-relay', host: '127.0.0.1', port: up.port, tls: { ca: caFile(dir, up) } }],
    };
    const good = await doctor(dir, config, { dns });
    expect(lines(good.findings, 'upstream google')).toContain("AUTH: not used (Google's relay knows this site by its public IP address and the EHLO/sender domain)");
    const spf = lines(good.findings, 'sender example.com', 'WARN');
    expect(spf[0]).toMatch(/does not include _spf\.google\.com, so Google's servers are not authorised/);
    expect(good.findings.find((f) => f.message === spf[0])!.fix).toBe('add include:_spf.google.com to the SPF record (before the final ~all or -all)');

    // Google answers MAIL FROM with 550 5.7.0 when the site's IP is not registered.
    const google = new SMTPServer({
      logger: false,
      authOptional: true,
      disabledCommands: ['AUTH'],
      hideENHANCEDSTATUSCODES: true,
      onMailFrom: (_a, _s, cb) => cb(Object.assign(new Error('5.7.0 Mail relay denied [192.0.2.1]. Invalid credentials for relay for one of the domains in: example.com'), { responseCode: 550 })),
    });
    await new Promise<void>((resolve) => google.listen(0, '127.0.0.1', resolve));
    closers.push({ close: () => new Promise<void>((resolve) => google.close(() => resolve())) });
    const port = (google.server.address() as { port: number }).port;
    const refusing = await doctor(dir, { ...config, upstreams: [{ name: 'google', type: 'gmail-relay', host: '127.0.0.1', port, tls: { verify: false } }] }, { dns });
    const [refusal] = refusing.findings.filter((f) => f.level === 'FAIL');
    expect(refusal!.message).toMatch(/^MAIL FROM:<scanner@example\.com>: 550 5\.7\.0 Mail relay denied .*Invalid credentials for relay/);
    expect(refusal!.fix).toMatch(/Apps > Google Workspace > Gmail > Routing > SMTP relay service/);
  });

  it('checks SPF and DMARC records: missing, doubled, and nested includes', async () => {
    const dir = tempDir();
    const up = await upstream({ tls: true });
    const config = {
      smtp: { listen: ['127.0.0.1:0'], tls: { mode: 'none' }, rewrite: { envelope_from: 'scanner@example.com' } },
      upstreams: [{ name: 'g', type: 'gmail-relay', host: '127.0.0.1', port: up.port, tls: { ca: caFile(dir, up) } }],
    };
    const none = await doctor(dir, config, { dns: await fakeDns({ 'relaybox.test.example': { A: ['192.0.2.10'] }, 'example.com': { TXT: ['hello'] } }) });
    const senderLines = none.findings.filter((f) => f.topic === 'sender example.com');
    expect(senderLines.map((f) => f.level)).toEqual(['WARN', 'WARN']);
    expect(senderLines[0]!.fix).toBe('add a TXT record at example.com: "v=spf1 include:_spf.google.com ~all"');
    expect(senderLines[1]!.fix).toBe('add a TXT record at _dmarc.example.com: "v=DMARC1; p=none; rua=mailto:postmaster@example.com"');

    const doubled = await doctor(dir, config, { dns: await fakeDns({ ...DOMAIN_RECORDS, 'example.com': { TXT: ['v=spf1 include:_spf.google.com ~all', 'v=spf1 -all'] } }) });
    expect(lines(doubled.findings, 'sender example.com', 'FAIL')).toEqual([expect.stringMatching(/publishes 2 SPF records/)]);

    const nested = await doctor(dir, config, { dns: await fakeDns() });
    expect(lines(nested.findings, 'sender example.com', 'OK')[0]).toBe('SPF: includes _spf.google.com (Google) through spf.example.net');
  });

  it("checks an OAuth upstream's transport, then gets a fresh token once (the login itself is left to send-test)", async () => {
    const dir = tempDir();
    const dns = await fakeDns();
    const tokens = await FakeOauth.start({ clients: { 'id.apps.googleusercontent.com': 'x' } });
    closers.push(tokens);
    tokens.addRefreshToken('r', { user: 'scanner@example.com', clientId: 'id.apps.googleusercontent.com' });
    const up = await upstream({ tls: true, xoauth2: () => true });
    const { findings } = await doctor(
      dir,
      {
        upstreams: [
          { name: 'gmail', type: 'gmail-oauth2', user: 'scanner@example.com', client_id: 'id.apps.googleusercontent.com', client_secret: 'x', refresh_token: 'r', host: '127.0.0.1', port: up.port, tls: { ca: caFile(dir, up) }, token_url: tokens.tokenUrl },
        ],
      },
      { dns },
    );
    expect(lines(findings, 'upstream gmail')).toContain('AUTH: XOAUTH2 offered for scanner@example.com; a real send proves the rest: relaybox send-test --to you@example.com');
    expect(lines(findings, 'upstream gmail')).toContain('token: refresh token from the configuration: the token endpoint gave a fresh access token (no mail sent)');
    expect(lines(findings, 'upstream gmail', 'FAIL')).toEqual([]);
    expect(up.logins).toBe(0);
  });

  it('checks hostname, clock and spool, and reports a bad configuration alone', async () => {
    const dir = tempDir();
    const dns = await fakeDns();
    const short = await doctor(dir, { hostname: 'raspberrypi' }, { dns, ntp: async () => 'no' });
    expect(lines(short.findings, 'hostname', 'WARN')[0]).toMatch(/"raspberrypi" is not fully qualified/);
    expect(lines(short.findings, 'clock', 'WARN')[0]).toMatch(/not synchronised by NTP/);
    expect(lines(short.findings, 'spool', 'OK')[0]).toMatch(/writable by .*; no spool.db yet; .* free/);
    expect(lines(short.findings, 'upstream outbox', 'OK')[0]).toMatch(/writes \.eml files into .*outbox \(made at the first message\)/);

    const unresolved = await doctor(dir, { hostname: 'box.unknown.example' }, { dns });
    expect(lines(unresolved.findings, 'hostname', 'WARN')[0]).toMatch(/does not resolve/);

    const epoch = await doctor(dir, {}, { dns, now: () => 0 });
    const clock = epoch.findings.find((f) => f.topic === 'clock')!;
    expect(clock.level).toBe('FAIL');
    expect(clock.message).toMatch(/the clock says 1970-01-01T00:00:00Z/);
    expect(clock.fix).toMatch(/timedatectl set-ntp true/);

    const file = join(dir, 'not-a-dir');
    writeFileSync(file, '');
    const spool = await doctor(dir, { data_dir: file }, { dns });
    expect(lines(spool.findings, 'spool', 'FAIL')).toEqual([`data_dir ${file} is not a directory.`]);

    const bad = await doctor(dir, { smtp: { listen: ['2525x'] } }, { dns });
    expect(bad.configValid).toBe(false);
    expect(bad.findings).toHaveLength(1);
    expect(bad.text).toMatch(/^FAIL config: .*relaybox\.yaml: smtp\.listen\[0\]: expected host:port, got "2525x"\. Fix: edit /);
  });

  it('checks the DKIM key in DNS against the signing key', async () => {
    const dir = tempDir();
    const { generateKeyPairSync } = await import('node:crypto');
    const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 1024 });
    const keyFile = join(dir, 'dkim.key');
    writeFileSync(keyFile, privateKey.export({ type: 'pkcs8', format: 'pem' }));
    chmodSync(keyFile, 0o600);
    mkdirSync(join(dir, 'outbox'));
    const p = publicKey.export({ type: 'spki', format: 'der' }).toString('base64');
    const dkim = { domain: 'example.com', selector: 'relaybox', private_key: { file: keyFile } };
    const good = await doctor(dir, { dkim }, { dns: await fakeDns({ ...DOMAIN_RECORDS, 'relaybox._domainkey.example.com': { TXT: [`v=DKIM1; k=rsa; p=${p}`] } }) });
    expect(lines(good.findings, 'dkim example.com', 'OK')).toEqual(['relaybox._domainkey.example.com publishes the key relaybox signs with']);
    const missing = await doctor(dir, { dkim }, { dns: await fakeDns() });
    expect(missing.findings.find((f) => f.topic === 'dkim example.com')!.fix).toContain(`p=${p}`);
  });
});
