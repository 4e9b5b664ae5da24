import type { AddressInfo } from 'node:net';
import type pino from 'pino';
import type { SMTPServer } from 'smtp-server';
import type { ListenAddress } from '../config/net.js';

/** Binds one smtp-server; resolves with the address actually bound (port 0 → real port). */
export function listenOn(server: SMTPServer, { host, port }: ListenAddress): Promise<ListenAddress> {
  return new Promise((resolve, reject) => {
    server.server.once('error', reject);
    server.listen(port, host, () => {
      server.server.off('error', reject);
      const address = server.server.address() as AddressInfo;
      resolve({ host: address.address, port: address.port });
    });
  });
}

/** Mostly clients that vanish mid-session; a failed TLS handshake is worth a person's look. */
export function logServerError(logger: pino.Logger, err: Error & { code?: string; remoteAddress?: string }): void {
  const fields = { err: err.message, code: err.code, address: err.remoteAddress };
  const legacy = /UNSUPPORTED_PROTOCOL|NO_SHARED_CIPHER/.test(err.code ?? '');
  if (legacy) logger.warn(fields, 'smtp TLS handshake failed: an old device may need smtp.tls.min_version TLSv1');
  else logger[/SSL|TLS/.test(err.code ?? '') ? 'warn' : 'debug'](fields, 'smtp connection error');
}

/** Stops listening; idle clients hear `reply` (421) at once, a message in flight may finish. */
export function closeServer(server: SMTPServer, reply: string): Promise<void> {
  return new Promise<void>((resolve) => {
    server.close(() => resolve());
    for (const connection of server.connections) {
      // Outside a mail transaction there is nothing to lose by hanging up now.
      if (!connection.session.envelope?.mailFrom) connection.send(421, reply);
    }
  });
}
