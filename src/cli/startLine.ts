import type { RelayApp } from '../app.js';
import { formatHostPort } from '../config/net.js';
import { consoleUrl } from '../status/consoleUrl.js';
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
