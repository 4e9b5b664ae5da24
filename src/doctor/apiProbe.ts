import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { connect, type ConnectionOptions } from 'node:tls';
import type { ApiUpstreamConfig, UpstreamConfig } from '../config/upstreams.js';
import { reasonOf } from '../oauth/errors.js';
import { tokenSourceFor } from '../oauth/sources.js';
import { HttpsClient } from '../upstreams/https.js';
import type { DnsClient } from './dns.js';
import { withTimeout } from './dns.js';
import { GOOGLE_SPF, MICROSOFT_SPF, type SpfExpectation } from './endpoints.js';
import { errorText, fail, ok, warn, type Finding } from './report.js';

export interface ApiProbeOptions {
  dns: DnsClient;
  timeoutMs: number;
  /** data_dir: the token cache the service shares. */
  dataDir: string;
}

/** The mailbox an HTTPS upstream sends as, and the SPF include its provider's servers need (for the sender check). */
export function apiSenderOf(u: UpstreamConfig): { mailbox: string; spf: SpfExpectation } | undefined {
  if (u.type === 'microsoft365-graph') return { mailbox: u.user, spf: MICROSOFT_SPF };
  if (u.type === 'gmail-api') return { mailbox: u.user, spf: GOOGLE_SPF };
  return undefined;
}

/** A step that failed: its line ends the probe. */
class Stop extends Error {
  constructor(readonly finding: Finding) {
    super(finding.message);
  }
}

/**
 * An HTTPS API upstream (microsoft365-graph, gmail-api): DNS → TLS (certificate) → an access token
 * → for Graph, a read of the mailbox where the app may (a refusal there is only a warning: sending
 * needs Mail.Send alone). Nothing is sent.
 */
export async function probeApi(topic: string, config: ApiUpstreamConfig, opts: ApiProbeOptions): Promise<Finding[]> {
  const out: Finding[] = [];
  const base = config.type === 'microsoft365-graph' ? config.graph_url : config.api_url;
  const url = new URL(base);
  try {
    await resolveHost(topic, url.hostname, opts, out);
    await tlsHandshake(topic, url, config, opts, out);
    const token = await accessToken(topic, config, opts, out);
    if (config.type === 'microsoft365-graph') await readMailbox(topic, config, token, opts, out);
  } catch (err) {
    out.push(err instanceof Stop ? err.finding : fail(topic, `unexpected: ${errorText(err)}`));
  }
  return out;
}

async function resolveHost(topic: string, host: string, opts: ApiProbeOptions, out: Finding[]): Promise<void> {
  if (isIP(host)) return;
  const found = await opts.dns.addresses(host, opts.timeoutMs).catch((err: unknown) => {
    throw new Stop(fail(topic, `DNS: ${host}: ${errorText(err)} (${opts.dns.describe})`, 'check the network and /etc/resolv.conf'));
  });
  out.push(ok(topic, `DNS: ${host} → ${found.slice(0, 3).join(', ')}`));
}

async function tlsHandshake(topic: string, url: URL, config: ApiUpstreamConfig, opts: ApiProbeOptions, out: Finding[]): Promise<void> {
  const options: ConnectionOptions = { host: url.hostname, port: Number(url.port || 443), rejectUnauthorized: config.tls.verify, ALPNProtocols: ['http/1.1'] };
  if (!isIP(url.hostname)) options.servername = url.hostname;
  if (config.tls.ca) {
    try {
      options.ca = readFileSync(config.tls.ca, 'utf8');
    } catch (err) {
      throw new Stop(fail(topic, `TLS: cannot read tls.ca ${config.tls.ca}: ${errorText(err)}`, 'make it readable by the relaybox user (0640 root:relaybox)'));
    }
  }
  const socket = connect(options);
  try {
    await withTimeout(new Promise<void>((resolve, reject) => socket.once('secureConnect', resolve).once('error', reject)), opts.timeoutMs, `TLS with ${url.host}`);
  } catch (err) {
    socket.destroy();
    throw new Stop(fail(topic, `TLS: ${url.host}: ${errorText(err)}`, 'check the clock (timedatectl), a proxy that intercepts TLS, or tls.ca'));
  }
  const cert = socket.getPeerCertificate();
  socket.destroy();
  const verified = config.tls.verify ? 'verified' : 'NOT verified (tls.verify: false)';
  out.push((config.tls.verify ? ok : warn)(topic, `TLS: ${url.host} certificate ${verified}${cert.valid_to ? `, valid until ${cert.valid_to}` : ''}`));
}

async function accessToken(topic: string, config: ApiUpstreamConfig, opts: ApiProbeOptions, out: Finding[]): Promise<string> {
  const { source, describe } = tokenSourceFor(config, opts.dataDir);
  try {
    const token = await withTimeout(source.getToken(), opts.timeoutMs * 3, `a token for ${config.name}`);
    out.push(ok(topic, `token: ${describe()}: the token endpoint gave an access token`));
    return token.accessToken;
  } catch (err) {
    const fix = config.type === 'gmail-api' ? `allow scope https://www.googleapis.com/auth/gmail.send (domain-wide delegation), or run relaybox oauth google --gmail-api --upstream ${config.name}` : 'check tenant_id, client_id and the credential in the Entra admin center';
    throw new Stop(fail(topic, `token: ${reasonOf(err)}`, fix));
  }
}

/** GET /users/{user}: the mailbox exists. Reading it needs User.Read.All, which sending does not: a 403 is a warning. */
async function readMailbox(topic: string, config: ApiUpstreamConfig & { type: 'microsoft365-graph' }, token: string, opts: ApiProbeOptions, out: Finding[]): Promise<void> {
  const client = new HttpsClient({ upstream: config.name, tls: config.tls, maxSockets: 1, connectMs: opts.timeoutMs, responseMs: opts.timeoutMs });
  const large = 'mail over 4 MB goes as a draft and needs the Mail.ReadWrite application permission too';
  try {
    const answer = await client.request({ method: 'GET', url: `${config.graph_url}/v1.0/users/${encodeURIComponent(config.user)}`, headers: { authorization: `Bearer ${token}`, accept: 'application/json' } });
    if (answer.status === 200) out.push(ok(topic, `mailbox ${config.user} found; sending needs the Mail.Send application permission, ${large}`));
    else if (answer.status === 403 || answer.status === 401) {
      out.push(warn(topic, `reading ${config.user} was refused (HTTP ${answer.status}): not needed for sending (Mail.Send), but doctor cannot confirm the mailbox; ${large}`, 'optional: grant User.Read.All to let doctor read the mailbox'));
    } else if (answer.status === 404) {
      out.push(fail(topic, `mailbox ${config.user} not found (HTTP 404)`, 'check user and tenant_id: the mailbox must exist in this tenant with an Exchange Online licence'));
    } else out.push(warn(topic, `reading ${config.user}: HTTP ${answer.status}`));
  } catch (err) {
    out.push(fail(topic, `reading ${config.user}: ${errorText(err)}`));
  } finally {
    client.close();
  }
}
