import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface LoopbackRedirect {
  /** `http://127.0.0.1:PORT/` — what the provider sends the browser back to. */
  redirectUri: string;
  port: number;
  close(): Promise<void>;
}

/** Looks at a redirect's path and query; returns the sentence the browser shows. */
export type RedirectHandler = (pathAndQuery: string) => string;

const page = (text: string) =>
  `<!doctype html><meta charset="utf-8"><title>relaybox</title><body style="font-family:sans-serif;margin:3em"><p>${text.replace(/[<>&]/g, '')}</p></body>`;

/**
 * An HTTP listener on 127.0.0.1 for the OAuth redirect (RFC 8252 §7.3). Loopback only: a browser
 * on another machine reaches it through `ssh -L PORT:127.0.0.1:PORT`. Requests without `code` or
 * `error` (a favicon, a scanner) get a 404 and change nothing.
 */
export async function listenForRedirect(port: number, handle: RedirectHandler): Promise<LoopbackRedirect> {
  const server: Server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    if (req.method !== 'GET' || url.pathname !== '/' || (!url.searchParams.has('code') && !url.searchParams.has('error'))) {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
      return;
    }
    const text = handle(req.url ?? '/');
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', connection: 'close' }).end(page(text));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  const bound = (server.address() as AddressInfo).port;
  return {
    redirectUri: `http://127.0.0.1:${bound}/`,
    port: bound,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
