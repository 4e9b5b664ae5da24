import { lookup } from 'node:dns/promises';
import { promises as dns } from 'node:dns';
import { isIP } from 'node:net';

/** The lookups doctor makes; one resolver for all of them, so a test can answer every one. */
export interface DnsClient {
  /** `system resolver` or `DNS server 127.0.0.1:5353`, for the report. */
  readonly describe: string;
  /** IPv4 and IPv6 addresses of a host name; [] when it has none. */
  addresses(name: string, timeoutMs: number): Promise<string[]>;
  /** TXT records, each joined from its strings; [] when there are none (or the name does not exist). */
  txt(name: string, timeoutMs: number): Promise<string[]>;
}

/** A lookup that found nothing is an answer, not an error: NXDOMAIN and NODATA give []. */
const ABSENT = new Set(['ENOTFOUND', 'ENODATA', 'NXDOMAIN', 'ENONAME']);

/** `host:port` → a DnsClient that asks that server only; none → the system's resolver. */
export function dnsClient(server?: string): DnsClient {
  if (server) {
    const resolver = new dns.Resolver({ timeout: 2_000, tries: 2 });
    // setServers takes `1.2.3.4:53` and `[::1]:53`; a bare address means port 53.
    resolver.setServers([server]);
    return {
      describe: `DNS server ${server}`,
      addresses: (name, ms) => withTimeout(bothFamilies(resolver, name), ms, `looking up ${name}`),
      txt: (name, ms) => withTimeout(txtOf(resolver, name), ms, `looking up TXT ${name}`),
    };
  }
  const resolver = new dns.Resolver({ timeout: 3_000, tries: 2 });
  return {
    describe: 'system resolver',
    // getaddrinfo, like every other program on the box: /etc/hosts counts.
    addresses: (name, ms) =>
      withTimeout(
        lookup(name, { all: true }).then(
          (found) => [...new Set(found.map((a) => a.address))],
          (err: NodeJS.ErrnoException) => (ABSENT.has(err.code ?? '') || err.code === 'EAI_AGAIN' ? [] : Promise.reject(err)),
        ),
        ms,
        `looking up ${name}`,
      ),
    txt: (name, ms) => withTimeout(txtOf(resolver, name), ms, `looking up TXT ${name}`),
  };
}

async function bothFamilies(resolver: dns.Resolver, name: string): Promise<string[]> {
  if (isIP(name)) return [name];
  const [v4, v6] = await Promise.allSettled([resolver.resolve4(name), resolver.resolve6(name)]);
  const found = [...(v4.status === 'fulfilled' ? v4.value : []), ...(v6.status === 'fulfilled' ? v6.value : [])];
  if (found.length > 0) return found;
  for (const r of [v4, v6]) {
    if (r.status === 'rejected' && !ABSENT.has((r.reason as NodeJS.ErrnoException).code ?? '')) throw r.reason;
  }
  return [];
}

async function txtOf(resolver: dns.Resolver, name: string): Promise<string[]> {
  try {
    // A TXT record longer than 255 bytes arrives as several strings that belong together.
    return (await resolver.resolveTxt(name)).map((chunks) => chunks.join(''));
  } catch (err) {
    if (ABSENT.has((err as NodeJS.ErrnoException).code ?? '')) return [];
    throw err;
  }
}

export function withTimeout<T>(work: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(Object.assign(new Error(`no answer in ${Math.round(ms / 1000)} s ${what}`), { code: 'ETIMEOUT' })), ms);
  });
  return Promise.race([work, timeout]).finally(() => clearTimeout(timer));
}
