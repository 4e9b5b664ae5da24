import { createPublicKey } from 'node:crypto';
import type { DkimConfig } from '../config/dkim.js';
import type { DnsClient } from './dns.js';
import type { SpfExpectation } from './endpoints.js';
import { errorText, fail, ok, warn, type Finding } from './report.js';

/** Domains whose SPF and DMARC belong to the mailbox provider, not to the person running relaybox. */
const PROVIDER_DOMAINS = /(^|\.)(gmail\.com|googlemail\.com|outlook\.com|hotmail\.com|live\.com|onmicrosoft\.com)$/i;

/** RFC 7208 §4.6.4: more DNS-querying terms than this and receivers give up (permerror). */
const SPF_LOOKUP_LIMIT = 10;

export async function checkSenderDomain(domain: string, expected: SpfExpectation[], dns: DnsClient, timeoutMs: number): Promise<Finding[]> {
  const topic = `sender ${domain}`;
  if (PROVIDER_DOMAINS.test(domain)) return [ok(topic, `the mailbox provider's own domain: its SPF and DMARC are the provider's`)];
  const [spf, dmarc] = await Promise.all([checkSpf(topic, domain, expected, dns, timeoutMs), checkDmarc(topic, domain, dns, timeoutMs)]);
  return [...spf, ...dmarc];
}

async function checkSpf(topic: string, domain: string, expected: SpfExpectation[], dns: DnsClient, ms: number): Promise<Finding[]> {
  let records: string[];
  try {
    records = spfRecords(await dns.txt(domain, ms));
  } catch (err) {
    return [warn(topic, `SPF: cannot look up TXT ${domain}: ${errorText(err)}`, 'check the DNS servers in /etc/resolv.conf')];
  }
  const suggest = `v=spf1 ${[...new Set(expected.map((e) => `include:${e.includes[0]}`))].join(' ')} ~all`;
  if (records.length === 0) {
    return [warn(topic, `SPF: ${domain} publishes no SPF record; receivers cannot tell relaybox's upstream may send for it.`, `add a TXT record at ${domain}: "${suggest}"`)];
  }
  if (records.length > 1) {
    return [fail(topic, `SPF: ${domain} publishes ${records.length} SPF records; receivers treat that as an error (permerror).`, 'merge them into one TXT record')];
  }
  const walk = await walkSpf(domain, dns, ms);
  const out: Finding[] = [];
  if (walk.lookups > SPF_LOOKUP_LIMIT) {
    out.push(warn(topic, `SPF: ${domain}'s record needs ${walk.lookups} DNS lookups; more than ${SPF_LOOKUP_LIMIT} is an error at receivers.`, 'flatten or remove includes'));
  }
  if (expected.length === 0) {
    out.push(ok(topic, `SPF: "${clip(records[0]!)}" (which include an unknown relay needs is for its provider to say)`));
    return out;
  }
  for (const e of expected) {
    const hit = e.includes.find((name) => walk.includes.has(name));
    if (hit) {
      const via = walk.includes.get(hit);
      out.push(ok(topic, `SPF: includes ${hit} (${e.provider})${via && via !== domain ? ` through ${via}` : ''}`));
    } else {
      out.push(
        warn(
          topic,
          `SPF: "${clip(records[0]!)}" does not include ${e.includes[0]}, so ${e.provider}'s servers are not authorised to send for ${domain}.`,
          `add include:${e.includes[0]} to the SPF record (before the final ~all or -all)`,
        ),
      );
    }
  }
  return out;
}

/** Every include:/redirect= reachable from a domain's SPF record, with where it was found. */
async function walkSpf(domain: string, dns: DnsClient, ms: number): Promise<{ includes: Map<string, string>; lookups: number }> {
  const includes = new Map<string, string>();
  let lookups = 0;
  const seen = new Set<string>();
  const visit = async (name: string, depth: number): Promise<void> => {
    if (seen.has(name) || depth > SPF_LOOKUP_LIMIT) return;
    seen.add(name);
    let record: string | undefined;
    try {
      record = spfRecords(await dns.txt(name, ms))[0];
    } catch {
      return;
    }
    if (!record) return;
    for (const term of record.split(/\s+/).slice(1)) {
      const m = /^[+~?-]?(include:|redirect=)(.+)$/i.exec(term);
      if (/^[+~?-]?(a|mx|ptr|exists)([:/]|$)/i.test(term)) lookups += 1;
      if (!m) continue;
      lookups += 1;
      const target = m[2]!.toLowerCase().replace(/\.$/, '');
      if (!includes.has(target)) includes.set(target, name);
      await visit(target, depth + 1);
    }
  };
  await visit(domain, 0);
  return { includes, lookups };
}

function spfRecords(txt: string[]): string[] {
  return txt.filter((t) => /^v=spf1(\s|$)/i.test(t.trim())).map((t) => t.trim());
}

async function checkDmarc(topic: string, domain: string, dns: DnsClient, ms: number): Promise<Finding[]> {
  let records: string[];
  try {
    records = (await dns.txt(`_dmarc.${domain}`, ms)).filter((t) => /^v=DMARC1\s*(;|$)/i.test(t.trim()));
  } catch (err) {
    return [warn(topic, `DMARC: cannot look up TXT _dmarc.${domain}: ${errorText(err)}`)];
  }
  if (records.length === 0) {
    return [
      warn(
        topic,
        `DMARC: no record at _dmarc.${domain}; Gmail and Yahoo expect one from domains that send regularly.`,
        `add a TXT record at _dmarc.${domain}: "v=DMARC1; p=none; rua=mailto:postmaster@${domain}"`,
      ),
    ];
  }
  if (records.length > 1) return [fail(topic, `DMARC: _dmarc.${domain} has ${records.length} records; receivers ignore them all.`, 'keep exactly one')];
  const policy = /(?:^|;)\s*p\s*=\s*([a-z]+)/i.exec(records[0]!)?.[1]?.toLowerCase() ?? 'none';
  return [ok(topic, `DMARC: p=${policy} ("${clip(records[0]!)}")`)];
}

/** The DKIM key in DNS must be the public half of the key relaybox signs with. */
export async function checkDkim(dkim: DkimConfig, dns: DnsClient, ms: number): Promise<Finding[]> {
  const name = `${dkim.selector}._domainkey.${dkim.domain}`;
  const topic = `dkim ${dkim.domain}`;
  const ours = createPublicKey(dkim.private_key).export({ type: 'spki', format: 'der' }).toString('base64');
  const fix = `publish TXT ${name}: "v=DKIM1; k=rsa; p=${ours}"`;
  let records: string[];
  try {
    records = (await dns.txt(name, ms)).filter((t) => /(^|;)\s*p=/.test(t));
  } catch (err) {
    return [warn(topic, `cannot look up TXT ${name}: ${errorText(err)}`)];
  }
  if (records.length === 0) return [fail(topic, `no DKIM key at ${name}: receivers cannot check relaybox's signatures.`, fix)];
  const published = /(?:^|;)\s*p=([^;]*)/.exec(records[0]!)?.[1]?.replace(/\s+/g, '') ?? '';
  if (published !== ours) return [fail(topic, `the key at ${name} is not the public half of dkim.private_key.`, fix)];
  return [ok(topic, `${name} publishes the key relaybox signs with`)];
}

function clip(text: string): string {
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}
