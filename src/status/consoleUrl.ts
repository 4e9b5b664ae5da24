import { networkInterfaces } from 'node:os';
import { formatHostPort, isLoopbackHost, type ListenAddress } from '../config/net.js';

/** A URL a browser can open: for a console on every address, this machine's first LAN address. */
export function consoleUrl({ host, port }: ListenAddress): string {
  const wildcard = host === '0.0.0.0' || host === '::';
  const shown = wildcard ? (lanAddress() ?? '127.0.0.1') : host;
  return `http://${formatHostPort({ host: shown, port })}/`;
}

/** The console's URL for a browser on another machine (Home Assistant's "Visit" link), or none when only loopback can reach it. */
export function remoteConsoleUrl(listen: ListenAddress): string | undefined {
  if (isLoopbackHost(listen.host)) return undefined;
  const url = consoleUrl(listen);
  return url.startsWith('http://127.0.0.1:') ? undefined : url;
}

/** None when the addresses cannot be read (a sandbox without netlink sockets): a URL is never worth a crash. */
export function lanAddress(): string | undefined {
  try {
    const addresses = Object.values(networkInterfaces()).flat();
    return addresses.find((a) => a && a.family === 'IPv4' && !a.internal)?.address;
  } catch {
    return undefined;
  }
}
