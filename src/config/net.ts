import { BlockList, isIP } from 'node:net';

export interface ListenAddress {
  host: string;
  port: number;
}

/** `0.0.0.0:25`, `[::1]:2525`, `localhost:2525` → host and port; undefined when malformed. */
export function parseHostPort(text: string): ListenAddress | undefined {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:\s[\]]+)):(\d{1,5})$/.exec(text.trim());
  if (!m) return undefined;
  const port = Number(m[3]);
  if (port > 65535) return undefined; // 0 = any free port (tests)
  const host = m[1] ?? m[2]!;
  if (m[1] !== undefined && isIP(host) !== 6) return undefined;
  return { host, port };
}

export function formatHostPort({ host, port }: ListenAddress): string {
  return isIP(host) === 6 ? `[${host}]:${port}` : `${host}:${port}`;
}

/** `192.168.0.0/16`, `::1/128`, or a bare address (a /32 or /128). */
export function parseCidr(text: string): { address: string; prefix: number; family: 'ipv4' | 'ipv6' } | undefined {
  const [address = '', prefixText, ...rest] = text.trim().split('/');
  const version = isIP(address);
  if (version === 0 || rest.length > 0) return undefined;
  const max = version === 4 ? 32 : 128;
  const prefix = prefixText === undefined ? max : /^\d+$/.test(prefixText) ? Number(prefixText) : NaN;
  if (!(prefix >= 0 && prefix <= max)) return undefined;
  return { address, prefix, family: version === 4 ? 'ipv4' : 'ipv6' };
}

/** A matcher for client addresses; IPv4-mapped IPv6 (`::ffff:10.0.0.5`) is checked as IPv4. */
export function networkMatcher(cidrs: string[]): (address: string) => boolean {
  const list = new BlockList();
  for (const text of cidrs) {
    const cidr = parseCidr(text);
    if (cidr) list.addSubnet(cidr.address, cidr.prefix, cidr.family);
  }
  return (address) => {
    const plain = address.startsWith('::ffff:') && isIP(address.slice(7)) === 4 ? address.slice(7) : address;
    const version = isIP(plain);
    if (version === 0) return false;
    return list.check(plain, version === 4 ? 'ipv4' : 'ipv6');
  };
}

export function isLoopbackHost(host: string): boolean {
  return host === 'localhost' || networkMatcher(['127.0.0.0/8', '::1/128'])(host);
}

/** A fully qualified name has a dot and no empty or illegal label; Google's relay insists on one. */
export function isFqdn(name: string): boolean {
  if (name.length > 253 || !name.includes('.')) return false;
  return name.split('.').every((label) => /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/i.test(label)) && !/^\d+$/.test(name.split('.').pop()!);
}
