import { networkInterfaces } from 'node:os';
import type { RelayApp } from '../app.js';
import { formatHostPort, type ListenAddress } from '../config/net.js';
import { VERSION } from '../version.js';

/**
 * The one line a person reads when relaybox starts, beside the JSON log:
 * `relaybox 0.1.0: SMTP on 127.0.0.1:2525, console http://127.0.0.1:8025/`.
 */
export function startLine(app: RelayApp): string {
  const smtp = app.smtpAddresses.map(formatHostPort).join(', ');
  const web = app.httpAddress ? consoleUrl(app.httpAddress) : `off (${app.httpOff ?? 'http.enabled: false'})`;
  return `relaybox ${VERSION}: SMTP on ${smtp}, console ${web}\n`;
}

/** A URL a browser can open: for a console on every address, this machine's first LAN address. */
function consoleUrl({ host, port }: ListenAddress): string {
  const wildcard = host === '0.0.0.0' || host === '::';
  const shown = wildcard ? (lanAddress() ?? '127.0.0.1') : host;
  return `http://${formatHostPort({ host: shown, port })}/`;
}

function lanAddress(): string | undefined {
  const addresses = Object.values(networkInterfaces()).flat();
  return addresses.find((a) => a && a.family === 'IPv4' && !a.internal)?.address;
}
