import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { checkServerIdentity, type ConnectionOptions, type PeerCertificate, type TLSSocket } from 'node:tls';
import type { DnsClient } from './dns.js';
import type { Endpoint } from './endpoints.js';
import { errorText, fail, ok, warn, type Finding } from './report.js';
import { ehloAuthMechanisms, ehloHas, SmtpWire, type Reply } from './smtpWire.js';

export interface ProbeOptions {
  /** Our EHLO name (config.hostname). */
  hostname: string;
  dns: DnsClient;
  timeoutMs: number;
  /** MAIL FROM to try (then RSET: no mail is sent); none skips that step. */
  sender?: string | undefined;
  /** The upstream type, for fixes that depend on it. */
  type: string;
}

/** A step that failed: the line to print, and the end of the probe. */
class Stop extends Error {
  constructor(readonly finding: Finding) {
    super(finding.message);
  }
}

/**
 * DNS → TCP → greeting → EHLO → STARTTLS (certificate) → EHLO → AUTH → MAIL FROM/RSET, one line
 * each, stopping at the first failure. Nothing is ever sent past MAIL FROM.
 */
export async function probeSmtp(topic: string, ep: Endpoint, opts: ProbeOptions): Promise<Finding[]> {
  const out: Finding[] = [];
  let wire: SmtpWire | undefined;
  const t = opts.timeoutMs;
  try {
    if (ep.tls.ca) {
      try {
        readFileSync(ep.tls.ca);
      } catch (err) {
        throw new Stop(fail(topic, `TLS: cannot read tls.ca ${ep.tls.ca}: ${errorText(err)}`, `make it readable by the relaybox user (0640 root:relaybox)`));
      }
    }
    const addresses = await resolve(topic, ep, opts, out);
    wire = await connect(topic, ep, addresses, opts, out);
    if (wire.tlsSocket) out.push(certificateFinding(topic, ep, wire.tlsSocket));

    const greeting = await wire.read(t).catch(stopAt(topic, 'greeting', ep));
    if (greeting.code !== 220) throw new Stop(fail(topic, `greeting: ${greeting.text}`, greetingFix(greeting)));
    out.push(ok(topic, `greeting: ${clip(greeting.text)}`));

    let ehlo = await ehloStep(topic, wire, opts, '', out);
    if (ep.security === 'starttls') {
      if (!ehloHas(ehlo.lines, 'STARTTLS')) {
        throw new Stop(fail(topic, 'STARTTLS: the server does not offer it, and relaybox will not send this upstream mail in clear.', 'check host and port (587 offers STARTTLS; 465 wants security: tls)'));
      }
      const reply = await wire.command('STARTTLS', t).catch(stopAt(topic, 'STARTTLS', ep));
      if (reply.code !== 220) throw new Stop(fail(topic, `STARTTLS: ${reply.text}`));
      const secure = await wire.upgrade(tlsOptions(ep), t).catch(stopAt(topic, 'STARTTLS', ep));
      out.push(certificateFinding(topic, ep, secure));
      ehlo = await ehloStep(topic, wire, opts, ' (after STARTTLS)', out);
    } else if (ep.security === 'none' && !isLoopback(ep.host)) {
      out.push(warn(topic, `TLS: none (security: none): mail${ep.auth ? ' and the password' : ''} cross the network in clear.`, 'use security: starttls (port 587) unless this relay is on a trusted network'));
    }

    await authStep(topic, wire, ep, ehlo, opts, out);
    // Without the OAuth login a MAIL FROM would only be refused for want of AUTH: it proves nothing.
    if (opts.sender && !ep.oauthUser) await senderStep(topic, wire, opts.sender, opts, out);
  } catch (err) {
    if (err instanceof Stop) out.push(err.finding);
    else out.push(fail(topic, `unexpected: ${errorText(err)}`));
  } finally {
    wire?.close();
  }
  return out;
}

async function resolve(topic: string, ep: Endpoint, opts: ProbeOptions, out: Finding[]): Promise<string[]> {
  if (isIP(ep.host)) return [ep.host];
  let found: string[];
  try {
    found = await opts.dns.addresses(ep.host, opts.timeoutMs);
  } catch (err) {
    throw new Stop(fail(topic, `DNS: looking up ${ep.host} failed: ${errorText(err)}`, 'check the DNS servers in /etc/resolv.conf (the router, or 1.1.1.1 / 8.8.8.8)'));
  }
  if (found.length === 0) throw new Stop(fail(topic, `DNS: ${ep.host} does not resolve (${opts.dns.describe}).`, 'check the spelling of host, and that this box has working DNS'));
  out.push(ok(topic, `DNS: ${ep.host} → ${found.slice(0, 3).join(', ')}${found.length > 3 ? ', …' : ''}`));
  return found;
}

async function connect(topic: string, ep: Endpoint, addresses: string[], opts: ProbeOptions, out: Finding[]): Promise<SmtpWire> {
  let last: unknown;
  // IPv4 first: a Pi on a home router often has an IPv6 address but no IPv6 route.
  const ordered = [...addresses.filter((a) => isIP(a) === 4), ...addresses.filter((a) => isIP(a) === 6)];
  for (const address of ordered) {
    const started = Date.now();
    try {
      const wire = await SmtpWire.open(address, ep.port, opts.timeoutMs, ep.security === 'tls' ? tlsOptions(ep) : undefined);
      out.push(ok(topic, `TCP: connected to ${address}:${ep.port}${ep.security === 'tls' ? ' with TLS' : ''} in ${Date.now() - started} ms`));
      return wire;
    } catch (err) {
      last = err;
    }
  }
  const code = (last as NodeJS.ErrnoException)?.code;
  const fix =
    code === 'ECONNREFUSED'
      ? `nothing accepts connections on port ${ep.port} there: check host and port`
      : code === 'ETIMEDOUT'
        ? `outgoing port ${ep.port} may be blocked by the firewall or the ISP (many block 25; use 587)`
        : 'check the network route to the upstream';
  throw new Stop(fail(topic, `TCP: cannot connect to ${ep.host}:${ep.port}: ${errorText(last)}`, fix));
}

async function ehloStep(topic: string, wire: SmtpWire, opts: ProbeOptions, when: string, out: Finding[]): Promise<Reply> {
  const label = `EHLO ${opts.hostname}${when}`;
  const reply = await wire.command(`EHLO ${opts.hostname}`, opts.timeoutMs).catch((err) => {
    throw new Stop(fail(topic, `${label}: ${errorText(err)}`, ehloFix(opts)));
  });
  if (reply.code !== 250) throw new Stop(fail(topic, `${label}: ${reply.text}`, ehloFix(opts)));
  const offers = ['STARTTLS', 'SIZE', 'AUTH'].flatMap((k) => {
    if (k === 'AUTH') {
      const mechs = ehloAuthMechanisms(reply.lines);
      return mechs.length ? [`AUTH ${mechs.join(' ')}`] : [];
    }
    return ehloHas(reply.lines, k) ? [reply.lines.find((l) => l.toUpperCase().startsWith(k))!.trim()] : [];
  });
  out.push(ok(topic, `${label}: accepted${offers.length ? `; offers ${offers.join(', ')}` : ''}`));
  return reply;
}

async function authStep(topic: string, wire: SmtpWire, ep: Endpoint, ehlo: Reply, opts: ProbeOptions, out: Finding[]): Promise<void> {
  const mechs = ehloAuthMechanisms(ehlo.lines);
  if (ep.oauthUser) {
    if (!mechs.includes('XOAUTH2')) throw new Stop(fail(topic, `AUTH: the server does not offer XOAUTH2 (offers: ${mechs.join(' ') || 'none'}).`, 'check host and port'));
    out.push(ok(topic, `AUTH: XOAUTH2 offered for ${ep.oauthUser}; a real send proves the rest: relaybox send-test --to you@example.com`));
    return;
  }
  if (!ep.auth) {
    const why = opts.type === 'gmail-relay' ? "Google's relay knows this site by its public IP address and the EHLO/sender domain" : 'none configured';
    out.push(ok(topic, `AUTH: not used (${why})`));
    return;
  }
  const { user, pass } = ep.auth;
  const t = opts.timeoutMs;
  let reply: Reply;
  if (mechs.includes('PLAIN')) {
    reply = await wire.command(`AUTH PLAIN ${Buffer.from(`\0${user}\0${pass}`).toString('base64')}`, t).catch(stopAt(topic, 'AUTH', ep));
  } else if (mechs.includes('LOGIN')) {
    reply = await wire.command('AUTH LOGIN', t).catch(stopAt(topic, 'AUTH', ep));
    if (reply.code === 334) reply = await wire.command(Buffer.from(user).toString('base64'), t).catch(stopAt(topic, 'AUTH', ep));
    if (reply.code === 334) reply = await wire.command(Buffer.from(pass).toString('base64'), t).catch(stopAt(topic, 'AUTH', ep));
  } else {
    throw new Stop(fail(topic, `AUTH: the server offers no password login (PLAIN or LOGIN)${ep.security === 'none' ? ' without TLS' : ''}.`, 'check host, port and security'));
  }
  if (reply.code !== 235) throw new Stop(fail(topic, `AUTH as ${user}: ${reply.text}`, authFix(reply, opts.type)));
  out.push(ok(topic, `AUTH as ${user}: accepted`));
}

async function senderStep(topic: string, wire: SmtpWire, sender: string, opts: ProbeOptions, out: Finding[]): Promise<void> {
  const reply = await wire.command(`MAIL FROM:<${sender}>`, opts.timeoutMs).catch((err) => {
    throw new Stop(fail(topic, `MAIL FROM:<${sender}>: ${errorText(err)}`));
  });
  await wire.command('RSET', opts.timeoutMs).catch(() => undefined);
  if (reply.code !== 250) {
    const relay = opts.type === 'gmail-relay' && /relay/i.test(reply.text);
    throw new Stop(
      fail(
        topic,
        `MAIL FROM:<${sender}>: ${reply.text}`,
        relay
          ? "register this site's public IP address in Google Admin (Apps > Google Workspace > Gmail > Routing > SMTP relay service) and make hostname and the sender domains yours"
          : 'the upstream refuses this sender: use an address it allows (smtp.rewrite.envelope_from)',
      ),
    );
  }
  out.push(ok(topic, `MAIL FROM:<${sender}>: accepted (then RSET; nothing was sent)`));
}

function tlsOptions(ep: Endpoint): ConnectionOptions {
  const options: ConnectionOptions = { rejectUnauthorized: false };
  // Verified by hand below (certificateFinding), so that a bad certificate is described, not just refused.
  if (ep.tls.ca) options.ca = readFileSync(ep.tls.ca, 'utf8');
  if (ep.tls.min_version) options.minVersion = ep.tls.min_version as ConnectionOptions['minVersion'];
  if (!isIP(ep.host)) options.servername = ep.host;
  return options;
}

function certificateFinding(topic: string, ep: Endpoint, socket: TLSSocket): Finding {
  const cert = socket.getPeerCertificate();
  const code = socket.authorized ? undefined : String(socket.authorizationError);
  const identity = !code || code === 'ERR_TLS_CERT_ALTNAME_INVALID' ? checkServerIdentity(ep.host, cert as PeerCertificate)?.message : undefined;
  const problem = identity ?? (code ? `${CERT_ERRORS[code] ?? 'rejected'} (${code})` : undefined);
  const about = describeCert(cert);
  const protocol = socket.getProtocol() ?? 'TLS';
  if (problem) {
    if (!ep.tls.verify) return warn(topic, `TLS: ${protocol}; certificate NOT trusted (${problem}), accepted only because tls.verify is false; ${about}`, 'set tls.ca to the CA that signed it and remove verify: false');
    throw new Stop(fail(topic, `TLS: ${protocol}; certificate not trusted: ${problem}; ${about}`, 'if the upstream uses a private CA, set tls.ca: /etc/relaybox/upstream-ca.pem; otherwise check the host name and the clock'));
  }
  const days = Math.floor((Date.parse(cert.valid_to) - Date.now()) / 86_400_000);
  if (days < 14) return warn(topic, `TLS: ${protocol}; certificate valid but expires in ${days} days; ${about}`, "the upstream's operator must renew it");
  return ok(topic, `TLS: ${protocol}; certificate valid for ${ep.host}; ${about}`);
}

/** OpenSSL's verdicts in words. */
const CERT_ERRORS: Record<string, string> = {
  DEPTH_ZERO_SELF_SIGNED_CERT: 'self-signed',
  SELF_SIGNED_CERT_IN_CHAIN: 'signed by a CA this box does not trust',
  UNABLE_TO_VERIFY_LEAF_SIGNATURE: 'issued by a CA this box does not know',
  UNABLE_TO_GET_ISSUER_CERT_LOCALLY: 'issued by a CA this box does not know',
  CERT_HAS_EXPIRED: 'expired',
  CERT_NOT_YET_VALID: 'not valid yet (is the clock right?)',
};

function describeCert(cert: PeerCertificate): string {
  const issuer = cert.issuer?.O ?? cert.issuer?.CN ?? 'unknown issuer';
  return `issued by ${Array.isArray(issuer) ? issuer[0] : issuer}, until ${new Date(cert.valid_to).toISOString().slice(0, 10)}`;
}

function stopAt(topic: string, step: string, ep: Endpoint): (err: unknown) => never {
  return (err) => {
    const tlsHint = step === 'STARTTLS' ? 'an old server may need tls.min_version; a TLS-intercepting firewall breaks this too' : undefined;
    throw new Stop(fail(topic, `${step} (${ep.host}:${ep.port}): ${errorText(err)}`, tlsHint));
  };
}

function greetingFix(reply: Reply): string {
  if (reply.code === 421 || reply.code === 554) return 'the upstream refuses this address: check the public IP is not on a blocklist and is allowed by the provider';
  return 'is this an SMTP server? check host and port';
}

function ehloFix(opts: ProbeOptions): string {
  return `Google and others answer 421 to a name that is not fully qualified or not yours: set hostname (now "${opts.hostname}") to a name in your domain`;
}

function authFix(reply: Reply, type: string): string {
  if (/5\.7\.9/.test(reply.text) || reply.code === 534) return 'the account needs an app password (2-Step Verification on, then myaccount.google.com/apppasswords)';
  if (type === 'gmail-app-password') return 'make a new app password (myaccount.google.com/apppasswords); Workspace admins may have turned app passwords off';
  return 'check auth.user and auth.pass (for SendGrid the user is literally "apikey")';
}

function isLoopback(host: string): boolean {
  return host === 'localhost' || host.startsWith('127.') || host === '::1';
}

function clip(text: string): string {
  return text.length > 100 ? `${text.slice(0, 97)}...` : text;
}
