import { createHash, generateKeyPairSync, randomBytes, X509Certificate } from 'node:crypto';
import { mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import selfsigned from 'selfsigned';
import { afterEach, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { formatFinding } from '../src/doctor/report.js';
import { runDoctor } from '../src/doctor/run.js';
import { getMessage } from '../src/spool/log.js';
import { GRAPH_UPLOAD_CHUNK_BYTES } from '../src/upstreams/graphLarge.js';
import { configProblems } from './helpers/config.js';
import { FakeDns } from './helpers/fakeDns.js';
import { FakeOauth } from './helpers/fakeOauth.js';
import { GRAPH_MAX_REQUEST, GraphDouble, graphError } from './helpers/graphDouble.js';
import { relayConfig, runCli, sendMail, startRelay, waitFor } from './helpers/relay.js';
import { TestUpstream } from './helpers/testUpstream.js';
import { tempDir } from './helpers/tmp.js';

const open: Array<{ close(): Promise<void> }> = [];
afterEach(async () => {
  await Promise.all(open.splice(0).map((thing) => thing.close()));
});

const USER = 'scanner@contoso.com';
const TENANT = '11111111-2222-3333-4444-555555555555';

/** A fake Entra token endpoint and a Graph double, and the upstream config for them. */
async function world(options: { certificate?: boolean } = {}) {
  const dir = tempDir();
  let credential: Record<string, unknown> = { client_secret: 'app-secret' };
  let certificates: Record<string, { publicKey: string; thumbprint: string }> | undefined;
  if (options.certificate) {
    const pems = await selfsigned.generate([{ name: 'commonName', value: 'relaybox' }], { keySize: 2048, algorithm: 'sha256' });
    const cert = new X509Certificate(pems.cert);
    const file = join(dir, 'app.pem');
    writeFileSync(file, pems.private + pems.cert);
    credential = { certificate: { file } };
    certificates = { 'app-id': { publicKey: pems.public, thumbprint: Buffer.from(cert.fingerprint.replaceAll(':', ''), 'hex').toString('base64url') } };
  }
  const fake = await FakeOauth.start({ clients: { 'app-id': 'app-secret' }, ...(certificates ? { certificates } : {}) });
  const graph = await GraphDouble.start({ fake, mailbox: USER, dir });
  open.push(fake, graph);
  const upstream = { name: 'graph', type: 'microsoft365-graph', user: USER, tenant_id: TENANT, client_id: 'app-id', ...credential, graph_url: graph.url, token_url: fake.tokenUrl, tls: { ca: graph.caFile } };
  return { dir, fake, graph, upstream };
}

async function smtpUpstream() {
  const up = await TestUpstream.start();
  open.push(up);
  return { up, config: { name: 'smtp', type: 'smtp', host: '127.0.0.1', port: up.port, security: 'none' } };
}

const idOf = (response: string) => Number(/queued as (\d+)/.exec(response)![1]);
type App = Awaited<ReturnType<typeof startRelay>>['app'];
const settled = (app: App, id: number, state: 'delivered' | 'failed' | 'deferred') =>
  waitFor(() => {
    const m = getMessage(app.spool.db, id);
    return m?.state === state && m;
  }, 60_000, `message ${id} ${state}`);
const attempts = (m: { history: Array<{ event: string; upstream: string | null; reply: string | null }> }) => m.history.filter((h) => h.event !== 'accepted');

const headers = (to: string) => `From: ${USER}\r\nTo: ${to}\r\nSubject: Scan\r\nDate: Fri, 05 Jan 2024 09:30:00 +0000\r\nMessage-ID: <scan-1@contoso.com>\r\n`;
const scan = (to = 'office@contoso.com') => `${headers(to)}\r\nPDF attached\r\n`;

/** A scanner's message: a line of text and a PDF of `pdf` bytes, base64 in 76-character lines. */
function scanWithPdf(pdf: Buffer, to = 'office@contoso.com'): Buffer {
  const b64 = pdf.toString('base64').replace(/.{76}/g, '$&\r\n');
  return Buffer.from(
    `${headers(to)}MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="b1"\r\n\r\n` +
      `--b1\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nScanned by the office MFP\r\n` +
      `--b1\r\nContent-Type: application/pdf; name="scan.pdf"\r\nContent-Disposition: attachment; filename="scan.pdf"\r\nContent-Transfer-Encoding: base64\r\n\r\n${b64}\r\n--b1--\r\n`,
  );
}

const sha256 = (data: Buffer | string) => createHash('sha256').update(data).digest('hex');

describe('microsoft365-graph upstream', () => {
  it('sends a small message as base64 MIME, unchanged and not DKIM-signed (Microsoft signs)', async () => {
    const { fake, graph, dir, upstream } = await world();
    const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 1024 });
    const dkim = { domain: 'contoso.com', selector: 'relaybox', private_key: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString() };
    const { app, port } = await startRelay(relayConfig(dir, { upstreams: [upstream], dkim }));
    const raw = scan();
    const id = idOf((await sendMail(port, { from: USER, to: ['office@contoso.com'], raw })).response);
    const m = await settled(app, id, 'delivered');
    expect(attempts(m)).toMatchObject([{ event: 'delivered', upstream: 'graph', reply: '202 Accepted by Microsoft Graph sendMail' }]);
    expect(graph.sent).toHaveLength(1);
    const sent = graph.sent[0]!;
    expect(sent.kind).toBe('mime');
    expect(sent.kind === 'mime' && sha256(sent.mime)).toBe(sha256(raw));
    expect(fake.requests.map((r) => [r.grant, r.params.scope])).toEqual([['client_credentials', 'https://graph.microsoft.com/.default']]);
    expect(app.status.upstream('graph')?.state).toBe('ok');
  });

  it('envelope-only recipients go as Bcc (a FRITZ!Box names nobody in To:)', async () => {
    const { graph, dir, upstream } = await world();
    const { app, port } = await startRelay(relayConfig(dir, { upstreams: [upstream] }));
    const raw = `From: ${USER}\r\nSubject: Fax\r\n\r\nfax attached\r\n`;
    await settled(app, idOf((await sendMail(port, { from: USER, to: ['a@contoso.com', 'b@example.com'], raw })).response), 'delivered');
    const sent = graph.sent[0]!;
    expect(sent.kind === 'mime' && sent.mime.toString()).toMatch(/^Bcc: a@contoso\.com,\r\n b@example\.com\r\n/);
  });

  it('signs in with a certificate credential (a JWT client assertion, no secret)', async () => {
    const { fake, graph, dir, upstream } = await world({ certificate: true });
    const { app, port } = await startRelay(relayConfig(dir, { upstreams: [upstream] }));
    await settled(app, idOf((await sendMail(port, { from: USER, to: ['a@contoso.com'], raw: scan('a@contoso.com') })).response), 'delivered');
    expect(graph.sent).toHaveLength(1);
    expect(fake.requests[0]!.params).toMatchObject({ client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer' });
    expect(fake.requests[0]!.params.client_secret).toBeUndefined();
  });

  it('verifies the API certificate: one not signed by a trusted CA stops the send before any request', async () => {
    const { graph, dir, upstream } = await world();
    const { app, port } = await startRelay(relayConfig(dir, { upstreams: [{ ...upstream, tls: {} }], delivery: { retry: { first: '1h', max: '1h', give_up_after: '2h' } } }));
    const m = await settled(app, idOf((await sendMail(port, { from: USER, to: ['a@contoso.com'], raw: scan('a@contoso.com') })).response), 'deferred');
    expect(attempts(m)[0]!.reply).toMatch(/certificate|self.signed/i);
    expect(graph.seen).toEqual([]);
    expect(app.status.upstream('graph')?.state).toBe('down');
  });

  it('401 refreshes the token once and sends; the connection is reused', async () => {
    const { fake, graph, dir, upstream } = await world();
    const { app, port } = await startRelay(relayConfig(dir, { upstreams: [upstream] }));
    await settled(app, idOf((await sendMail(port, { from: USER, to: ['a@contoso.com'], raw: scan('a@contoso.com') })).response), 'delivered');
    fake.expireAccessTokens();
    await settled(app, idOf((await sendMail(port, { from: USER, to: ['a@contoso.com'], raw: scan('a@contoso.com') })).response), 'delivered');
    expect(graph.seen.map((s) => s.status)).toEqual([202, 401, 202]);
    expect(fake.tokenRequests('client_credentials')).toBe(2);
    expect(graph.connections).toBe(1);
  });

  it('403 ErrorAccessDenied is auth_failed with the fix, and the mail waits', async () => {
    const { graph, dir, upstream } = await world();
    graph.answerNext(/sendMail$/, graphError(403, 'ErrorAccessDenied', 'Access is denied. Check credentials and try again.'));
    const { app, port } = await startRelay(relayConfig(dir, { upstreams: [upstream], delivery: { retry: { first: '1h', max: '1h', give_up_after: '2h' } } }));
    const m = await settled(app, idOf((await sendMail(port, { from: USER, to: ['a@contoso.com'], raw: scan('a@contoso.com') })).response), 'deferred');
    expect(attempts(m)[0]!.reply).toMatch(/^HTTP 403 ErrorAccessDenied: Access is denied\. .* — grant the app the Mail\.Send application permission with admin consent .* application access policy .* scanner@contoso\.com$/);
    expect(app.status.upstream('graph')?.state).toBe('auth_failed');
  });

  it('403 ErrorSendAsDenied fails the message with a hint naming SendAs', async () => {
    const { graph, dir, upstream } = await world();
    graph.answerNext(/sendMail$/, graphError(403, 'ErrorSendAsDenied', 'The user account which was used to submit this request does not have the right to send mail on behalf of the specified sending account.'));
    const { app, port } = await startRelay(relayConfig(dir, { upstreams: [upstream] }));
    const m = await settled(app, idOf((await sendMail(port, { from: USER, to: ['a@contoso.com'], raw: scan('a@contoso.com') })).response), 'failed');
    expect(attempts(m).at(-1)!.reply).toMatch(/ErrorSendAsDenied: .* — scanner@contoso\.com may not send as this From: give it SendAs .*smtp\.rewrite\.header_from/);
  });

  it("400 fails the message with Microsoft's words", async () => {
    const { graph, dir, upstream } = await world();
    graph.answerNext(/sendMail$/, graphError(400, 'ErrorInvalidRecipients', 'At least one recipient is not valid.'));
    const { app, port } = await startRelay(relayConfig(dir, { upstreams: [upstream] }));
    const m = await settled(app, idOf((await sendMail(port, { from: USER, to: ['a@contoso.com'], raw: scan('a@contoso.com') })).response), 'failed');
    expect(attempts(m).at(-1)!.reply).toBe('HTTP 400 ErrorInvalidRecipients: At least one recipient is not valid.');
  });

  it('429 with Retry-After holds Graph, and the mail fails over to SMTP in the same round', async () => {
    const { graph, dir, upstream } = await world();
    const { up, config } = await smtpUpstream();
    graph.answerNext(/sendMail$/, { ...graphError(429, 'ApplicationThrottled', 'Application is over its MailboxConcurrency limit.'), headers: { 'retry-after': '300' } });
    const { app, port } = await startRelay(relayConfig(dir, { upstreams: [upstream, config] }));
    const m = await settled(app, idOf((await sendMail(port, { from: USER, to: ['a@contoso.com'], raw: scan('a@contoso.com') })).response), 'delivered');
    expect(attempts(m).map((h) => [h.event, h.upstream])).toEqual([
      ['deferred', 'graph'],
      ['delivered', 'smtp'],
    ]);
    expect(attempts(m)[0]!.reply).toBe('HTTP 429 ApplicationThrottled: Application is over its MailboxConcurrency limit. (holding for 300s)');
    await settled(app, idOf((await sendMail(port, { from: USER, to: ['b@contoso.com'], raw: scan('b@contoso.com') })).response), 'delivered');
    expect(graph.seen).toHaveLength(1);
    expect(up.messages).toHaveLength(2);
  });

  it('the hold lasts as long as Retry-After says, not quota_hold', async () => {
    const { graph, dir, upstream } = await world();
    const { up, config } = await smtpUpstream();
    graph.answerNext(/sendMail$/, { ...graphError(503, 'ServiceUnavailable', 'Service Unavailable'), headers: { 'retry-after': '1' } });
    const { app, port } = await startRelay(relayConfig(dir, { upstreams: [upstream, config], delivery: { quota_hold: '1h' } }));
    const first = await settled(app, idOf((await sendMail(port, { from: USER, to: ['a@contoso.com'], raw: scan('a@contoso.com') })).response), 'delivered');
    expect(attempts(first).map((h) => h.upstream)).toEqual(['graph', 'smtp']);
    const heldAt = Date.now();
    await waitFor(() => Date.now() - heldAt > 1500, 5000, 'the hold of Retry-After: 1 to pass');
    const second = await settled(app, idOf((await sendMail(port, { from: USER, to: ['b@contoso.com'], raw: scan('b@contoso.com') })).response), 'delivered');
    expect(attempts(second).map((h) => h.upstream)).toEqual(['graph']);
    expect(up.messages).toHaveLength(1);
  });

  it('SMTP down: the mail fails over to Graph in the same round', async () => {
    const { graph, dir, upstream } = await world();
    const { up, config } = await smtpUpstream();
    up.failConnect(421, '4.3.2 Service not available');
    const { app, port } = await startRelay(relayConfig(dir, { upstreams: [config, upstream] }));
    const m = await settled(app, idOf((await sendMail(port, { from: USER, to: ['a@contoso.com'], raw: scan('a@contoso.com') })).response), 'delivered');
    expect(attempts(m).map((h) => [h.event, h.upstream])).toEqual([
      ['deferred', 'smtp'],
      ['delivered', 'graph'],
    ]);
    expect(graph.sent).toHaveLength(1);
  });

  it('a message whose base64 would pass the 4 MB request limit goes as a draft with its attachment', async () => {
    const { graph, dir, upstream } = await world();
    const { app, port } = await startRelay(relayConfig(dir, { upstreams: [upstream] }));
    // 3.3 MB of MIME: as base64 it would be a request over Microsoft's 4 MB.
    const pdf = randomBytes(2_400_000);
    const raw = scanWithPdf(pdf, 'a@contoso.com');
    expect(Math.ceil(raw.length / 3) * 4).toBeGreaterThan(GRAPH_MAX_REQUEST);
    const m = await settled(app, idOf((await sendMail(port, { from: USER, to: ['a@contoso.com', 'b@example.com'], raw })).response), 'delivered');
    expect(attempts(m).at(-1)!.reply).toMatch(/^202 Accepted by Microsoft Graph \(sent as a draft/);
    const sent = graph.sent[0]!;
    if (sent.kind !== 'draft') throw new Error('expected a draft');
    expect(sent.draft).toMatchObject({
      subject: 'Scan',
      body: { contentType: 'text', content: 'Scanned by the office MFP\n' },
      toRecipients: [{ emailAddress: { address: 'a@contoso.com' } }],
      bccRecipients: [{ emailAddress: { address: 'b@example.com' } }],
    });
    expect(sent.attachments).toMatchObject([{ name: 'scan.pdf', contentType: 'application/pdf', viaUploadSession: false }]);
    expect(sha256(sent.attachments[0]!.bytes)).toBe(sha256(pdf));
    expect(graph.drafts.size).toBe(0);
  });

  it('a 30 MB scan goes through upload sessions in 320 KiB multiples, the PDF intact; no spilled body stays on the card', async () => {
    const { graph, dir, upstream } = await world();
    // What a power cut in the middle of an earlier large send leaves behind.
    mkdirSync(join(dir, 'tmp'), { recursive: true });
    writeFileSync(join(dir, 'tmp', 'graph.0123456789ab.0.b64'), 'QUJD\r\n'.repeat(1000));
    const { app, port } = await startRelay(relayConfig(dir, { upstreams: [upstream] }));
    const pdf = randomBytes(22 * 1024 * 1024);
    const raw = scanWithPdf(pdf);
    expect(raw.length).toBeGreaterThan(30_000_000);
    await settled(app, idOf((await sendMail(port, { from: USER, to: ['office@contoso.com'], raw })).response), 'delivered');
    const sent = graph.sent[0]!;
    if (sent.kind !== 'draft') throw new Error('expected a draft');
    expect(sent.attachments).toHaveLength(1);
    expect(sent.attachments[0]!.viaUploadSession).toBe(true);
    expect(sha256(sent.attachments[0]!.bytes)).toBe(sha256(pdf));
    expect(graph.seen.filter((s) => s.method === 'PUT').length).toBe(Math.ceil(pdf.length / GRAPH_UPLOAD_CHUNK_BYTES));
    expect(readdirSync(join(dir, 'tmp')).filter((f) => f.startsWith('graph.'))).toEqual([]);
  }, 120_000);

  it('a large base64 text body (no attachment) is parsed whole and arrives as the draft body', async () => {
    const { graph, dir, upstream } = await world();
    const { app, port } = await startRelay(relayConfig(dir, { upstreams: [upstream] }));
    const text = 'All work and no play makes a scanner a dull box.\n'.repeat(48_000);
    const b64 = Buffer.from(text).toString('base64').replace(/.{76}/g, '$&\r\n');
    const raw = `${headers('a@contoso.com')}MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n${b64}\r\n`;
    await settled(app, idOf((await sendMail(port, { from: USER, to: ['a@contoso.com'], raw })).response), 'delivered');
    const sent = graph.sent[0]!;
    if (sent.kind !== 'draft') throw new Error('expected a draft');
    expect(sha256(sent.draft.body.content)).toBe(sha256(text));
  });

  it('a large message without Mail.ReadWrite: auth_failed naming Mail.ReadWrite', async () => {
    const { graph, dir, upstream } = await world();
    graph.readWrite = false;
    const { app, port } = await startRelay(relayConfig(dir, { upstreams: [upstream], delivery: { retry: { first: '1h', max: '1h', give_up_after: '2h' } } }));
    const m = await settled(app, idOf((await sendMail(port, { from: USER, to: ['a@contoso.com'], raw: scanWithPdf(randomBytes(4_000_000), 'a@contoso.com') })).response), 'deferred');
    expect(attempts(m)[0]!.reply).toMatch(/^HTTP 403 ErrorAccessDenied: .* Mail\.Send and Mail\.ReadWrite \(mail over 4 MB goes as a draft\)/);
    expect(app.status.upstream('graph')?.state).toBe('auth_failed');
  });
});

describe('configuration of the HTTPS upstreams', () => {
  const graphYaml = (extra: string) =>
    `data_dir: /tmp/x\nupstreams:\n  - { name: graph, type: microsoft365-graph, user: scanner@contoso.com, client_id: app, ${extra} }\n`;

  it('names the key and the problem', () => {
    expect(configProblems(graphYaml('tenant_id: common, client_secret: s'))).toEqual(['upstreams[0].tenant_id: app-only access needs your directory (tenant) ID, not common/organizations']);
    expect(configProblems(graphYaml(`tenant_id: ${TENANT}`))).toEqual(["upstreams[0].client_secret: is required, or certificate: { file: app.pem } (the app's credential)"]);
    expect(configProblems(graphYaml(`tenant_id: ${TENANT}, client_secret: s, graph_url: http://graph.example`))).toEqual(['upstreams[0].graph_url: expected an https:// URL']);
    const dir = tempDir();
    writeFileSync(join(dir, 'key-only.pem'), generateKeyPairSync('rsa', { modulusLength: 1024 }).privateKey.export({ type: 'pkcs8', format: 'pem' }).toString());
    expect(configProblems(graphYaml(`tenant_id: ${TENANT}, certificate: { file: ${join(dir, 'key-only.pem')} }`))).toEqual([
      'upstreams[0].certificate: expected one PEM file with the private key and the certificate (cat app.key app.crt > app.pem); it has no CERTIFICATE block',
    ]);
    expect(configProblems(`data_dir: /tmp/x\nupstreams: [{ name: g, type: gmail-api, user: scanner@example.com }]\n`)).toEqual([
      'upstreams[0].client_id: is required (the Desktop-type OAuth client), or service_account_key for a Workspace service account',
      "upstreams[0].client_secret: is required: Google's token endpoint wants the Desktop client's secret too",
    ]);
  });
});

describe('doctor and check-config for microsoft365-graph', () => {
  async function doctorLines(dir: string, upstream: Record<string, unknown>, topic = 'upstream graph'): Promise<string[]> {
    const dns = await FakeDns.start({ 'contoso.com': { TXT: ['v=spf1 include:spf.example.net -all'] } });
    open.push(dns);
    const file = join(dir, 'relaybox.yaml');
    writeFileSync(file, stringify(relayConfig(dir, { upstreams: [upstream] })));
    const { findings } = await runDoctor({ configFile: file, timeoutMs: 5000, ntp: async () => 'yes', dnsServer: dns.server });
    return findings.filter((f) => f.topic === topic).map(formatFinding);
  }

  it("checks that the mailbox's domain lets Microsoft 365 send for it (SPF)", async () => {
    const { dir, upstream } = await world();
    expect((await doctorLines(dir, upstream, 'sender contoso.com')).join('\n')).toMatch(/does not include spf\.protection\.outlook\.com/);
  });

  it('checks TLS, a token and the mailbox; a refused read is only a warning that explains the permissions', async () => {
    const { graph, dir, upstream } = await world();
    const found = await doctorLines(dir, upstream);
    expect(found).toEqual([
      expect.stringMatching(/^OK {3}upstream graph: TLS: 127\.0\.0\.1:\d+ certificate verified/),
      'OK   upstream graph: token: app-only (client credentials) for scanner@contoso.com: the token endpoint gave an access token',
      'OK   upstream graph: mailbox scanner@contoso.com found; sending needs the Mail.Send application permission, mail over 4 MB goes as a draft and needs the Mail.ReadWrite application permission too',
    ]);
    graph.answerNext(/^GET /, graphError(403, 'Authorization_RequestDenied', 'Insufficient privileges to complete the operation.'));
    expect((await doctorLines(dir, upstream)).at(-1)).toMatch(/^WARN upstream graph: reading scanner@contoso\.com was refused \(HTTP 403\): not needed for sending \(Mail\.Send\).*Mail\.ReadWrite.* Fix: optional: grant User\.Read\.All/);
  });

  it('check-config describes the upstream without its secret', async () => {
    const { dir, upstream } = await world();
    const file = join(dir, 'relaybox.yaml');
    writeFileSync(file, stringify(relayConfig(dir, { upstreams: [upstream] })));
    const { code, stdout } = await runCli(['check-config', '--config', file]);
    expect(code).toBe(0);
    expect(stdout).toMatch(/upstream 1 graph \(microsoft365-graph\): https:\/\/127\.0\.0\.1:\d+ Graph sendMail as scanner@contoso\.com; app-only \(client credentials\) for scanner@contoso\.com/);
    expect(stdout).not.toContain('app-secret');
  });
});
