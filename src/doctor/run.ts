import { existsSync } from 'node:fs';
import { pino } from 'pino';
import { ConfigError, loadConfigFile } from '../config/load.js';
import type { Config } from '../config/schema.js';
import type { UpstreamConfig } from '../config/upstreams.js';
import { ReplyHints } from '../hints/hint.js';
import { createUpstream } from '../upstreams/registry.js';
import { dnsClient, withTimeout, type DnsClient } from './dns.js';
import { apiSenderOf, probeApi } from './apiProbe.js';
import { endpointOf, type SpfExpectation } from './endpoints.js';
import { checkOAuthToken } from './oauthToken.js';
import { errorText, fail, ok, warn, type Finding } from './report.js';
import { checkDkim, checkSenderDomain } from './senderDomain.js';
import { probeSmtp } from './smtpProbe.js';
import { checkClock, checkHostname, checkSpool, nearestExisting, ntpSynchronized, writable, type NtpState } from './system.js';

export interface DoctorOptions {
  configFile: string;
  /** `host:port` of the DNS server to ask; none: the system's resolver. */
  dnsServer?: string | undefined;
  /** Per network step. */
  timeoutMs?: number;
  /** A sender address to check (MAIL FROM probe, SPF/DMARC) when the config names none. */
  from?: string | undefined;
  /** Skip everything that leaves the box (DNS, upstreams). */
  offline?: boolean;
  now?: () => number;
  ntp?: () => Promise<NtpState>;
}

export interface DoctorResult {
  findings: Finding[];
  /** False when the configuration could not be loaded: nothing else was checked. */
  configValid: boolean;
}

export async function runDoctor(options: DoctorOptions): Promise<DoctorResult> {
  const timeoutMs = options.timeoutMs ?? 10_000;
  let config: Config;
  try {
    config = loadConfigFile(options.configFile);
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    const fix = !existsSync(options.configFile)
      ? 'write one (the package installs /etc/relaybox/relaybox.yaml), or pass --config FILE'
      : err.problems.some((p) => p.includes('EACCES'))
        ? 'the file is readable by root and group relaybox only: sudo relaybox doctor'
        : `edit ${options.configFile}, then run relaybox check-config`;
    return { findings: err.problems.map((p) => fail('config', `${options.configFile}: ${p}`, fix)), configValid: false };
  }
  const dns = dnsClient(options.dnsServer);
  const names = config.upstreams.map((u) => `${u.name} (${u.type})`).join(', ');
  const findings: Finding[] = [ok('config', `${options.configFile} is valid; upstreams in order: ${names}`)];

  const network = !options.offline;
  const [host, clock, spool, ...rest] = await Promise.all([
    network ? checkHostname(config, options.configFile, dns, timeoutMs) : Promise.resolve([]),
    checkClock((options.now ?? Date.now)(), options.ntp ?? ntpSynchronized),
    checkSpool(config),
    ...config.upstreams.map((u) => checkUpstream(u, config, dns, timeoutMs, network, options.from)),
    ...(network ? senderChecks(config, dns, timeoutMs, options.from) : []),
    ...(network && config.dkim ? [checkDkim(config.dkim, dns, timeoutMs)] : []),
  ]);
  findings.push(...host!, ...clock!, ...spool!, ...rest.flat());
  return { findings, configValid: true };
}

async function checkUpstream(u: UpstreamConfig, config: Config, dns: DnsClient, timeoutMs: number, network: boolean, from?: string): Promise<Finding[]> {
  const topic = `upstream ${u.name}`;
  if (u.type === 'file') {
    const target = existsSync(u.dir) ? u.dir : nearestExisting(u.dir);
    return (await writable(target))
      ? [ok(topic, `writes .eml files into ${u.dir}${existsSync(u.dir) ? '' : ' (made at the first message)'}`)]
      : [fail(topic, `${target} is not writable`, `sudo install -d -o relaybox -g relaybox ${u.dir}`)];
  }
  if (u.type === 'microsoft365-graph' || u.type === 'gmail-api') {
    // Nobody signed in is known without the network; the probe gets the token itself.
    const unsigned = await checkOAuthToken(u, { dataDir: config.data_dir, timeoutMs, network: false });
    if (unsigned.length > 0) return unsigned;
    return network ? probeApi(topic, u, { dns, timeoutMs, dataDir: config.data_dir }) : [ok(topic, `${u.type} as ${u.user} (not probed: --offline)`)];
  }
  const ep = endpointOf(u);
  if (!ep) return [warn(topic, `doctor does not know how to probe type ${u.type}`)];
  const token = u.type === 'gmail-oauth2' || u.type === 'microsoft365-oauth2' ? checkOAuthToken(u, { dataDir: config.data_dir, timeoutMs, network }) : Promise.resolve([]);
  if (!network) return [ok(topic, `${ep.host}:${ep.port} ${ep.security} (not probed: --offline)`), ...(await token)];
  const findings = [...(await probeSmtp(topic, ep, { hostname: config.hostname, dns, timeoutMs, sender: senderFor(config, ep.mailbox, from), type: u.type })), ...(await token)];
  // An adapter may offer its own end-to-end check (e.g. an OAuth token refresh); use it when it does.
  if (ep.oauthUser && !findings.some((f) => f.level === 'FAIL')) findings.push(...(await adapterVerify(u, config, timeoutMs, topic)));
  return withHints(findings, u.name, new ReplyHints(config));
}

/**
 * A failing step whose reply the hint table knows gets the table's fix (src/hints): the same words
 * the console and `queue show` give for that reply from that provider.
 */
function withHints(findings: Finding[], upstream: string, hints: ReplyHints): Finding[] {
  return findings.map((f) => {
    if (f.level !== 'FAIL') return f;
    // `AUTH as x: 535 5.7.139 …` → the server's reply; otherwise the whole message (socket errors).
    const reply = /(?:^|: )([245]\d\d[ -].*)$/s.exec(f.message)?.[1] ?? f.message;
    const hint = hints.for(upstream, reply);
    return hint ? { ...f, fix: hint } : f;
  });
}

async function adapterVerify(u: UpstreamConfig, config: Config, timeoutMs: number, topic: string): Promise<Finding[]> {
  let upstream: ReturnType<typeof createUpstream> | undefined;
  try {
    upstream = createUpstream(u, { hostname: config.hostname, concurrency: 1, logger: pino({ level: 'silent' }), dataDir: config.data_dir });
    const verify = (upstream as { verify?: () => Promise<unknown> }).verify;
    if (typeof verify !== 'function') return [];
    await withTimeout(Promise.resolve(verify.call(upstream)), timeoutMs * 3, `verifying ${u.name}`);
    return [ok(topic, 'AUTH: the adapter logged in with a fresh token')];
  } catch (err) {
    return [fail(topic, `AUTH: ${errorText(err)}`, `run relaybox oauth ${u.type.startsWith('gmail') ? 'google' : 'microsoft'} again if the token was revoked or expired`)];
  } finally {
    await upstream?.close().catch(() => undefined);
  }
}

/** The envelope sender relaybox will use upstream, when it can be known. */
function senderFor(config: Config, mailbox: string | undefined, from: string | undefined): string | undefined {
  return config.smtp.rewrite.envelope_from || mailbox || from || undefined;
}

/** One SPF/DMARC check per sender domain, with the includes every upstream sending for it needs. */
function senderChecks(config: Config, dns: DnsClient, timeoutMs: number, from?: string): Promise<Finding[]>[] {
  const byDomain = new Map<string, SpfExpectation[]>();
  for (const u of config.upstreams) {
    const ep = endpointOf(u) ?? apiSenderOf(u);
    if (!ep) continue;
    const sender = senderFor(config, ep.mailbox, from);
    const domain = sender?.split('@')[1]?.toLowerCase();
    if (!domain) continue;
    const list = byDomain.get(domain) ?? [];
    if (ep.spf && !list.some((e) => e.provider === ep.spf!.provider)) list.push(ep.spf);
    byDomain.set(domain, list);
  }
  if (byDomain.size === 0) {
    const smtpLike = config.upstreams.some((u) => endpointOf(u));
    return smtpLike
      ? [Promise.resolve([ok('sender', 'SPF/DMARC not checked: the devices choose the sender (set smtp.rewrite.envelope_from, or pass --from scanner@example.com)')])]
      : [];
  }
  return [...byDomain].map(([domain, expected]) => checkSenderDomain(domain, expected, dns, timeoutMs).catch((err) => [warn(`sender ${domain}`, errorText(err))]));
}
