import { writeFileSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { certificate } from './testUpstream.js';

/** An answer a test scripts in advance: the next matching request gets it instead of the normal one. */
export interface ScriptedAnswer {
  status: number;
  body?: unknown;
  headers?: Record<string, string>;
}

/** One request a double saw: what the tests assert on besides the double's own checks. */
export interface SeenRequest {
  method: string;
  path: string;
  status: number;
}

/**
 * The part of the Graph and Gmail API doubles that is only HTTPS: a server on 127.0.0.1 with the
 * test CA (`caFile` for the upstream's tls.ca), bodies read whole, JSON answers, and answers
 * scripted by the tests (`answerNext`) for the failures the providers document.
 */
export abstract class HttpsDouble {
  readonly seen: SeenRequest[] = [];
  url = '';
  caFile = '';
  /** Connections opened: a client that reuses its connection opens few. */
  connections = 0;
  private server: Server | undefined;
  private readonly scripted: Array<{ match: RegExp; answer: ScriptedAnswer }> = [];

  protected async listen(dir: string): Promise<void> {
    const { cert, key } = await certificate();
    this.caFile = join(dir, 'api-ca.pem');
    writeFileSync(this.caFile, cert);
    const server = createServer({ cert, key }, (req, res) => void this.handle(req, res));
    server.on('secureConnection', () => (this.connections += 1));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
    this.server = server;
    this.url = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
  }

  /** The next request whose `METHOD path` matches gets this answer (and is not otherwise handled). */
  answerNext(match: RegExp, answer: ScriptedAnswer, times = 1): void {
    for (let i = 0; i < times; i++) this.scripted.push({ match, answer });
  }

  async close(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    if (!server) return;
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  /** The real service's handling; returns the answer. */
  protected abstract route(req: IncomingMessage, url: URL, body: Buffer): Promise<ScriptedAnswer> | ScriptedAnswer;

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const body = Buffer.concat(chunks);
    const url = new URL(req.url ?? '/', this.url);
    const line = `${req.method} ${url.pathname}`;
    const i = this.scripted.findIndex((s) => s.match.test(line));
    const answer = i >= 0 ? this.scripted.splice(i, 1)[0]!.answer : await this.route(req, url, body);
    this.seen.push({ method: req.method ?? '', path: url.pathname, status: answer.status });
    const text = answer.body === undefined ? '' : JSON.stringify(answer.body);
    res.writeHead(answer.status, { ...(text ? { 'content-type': 'application/json' } : {}), ...answer.headers }).end(text);
  }
}

/** Bearer token of a request, or null. */
export function bearerOf(req: IncomingMessage): string | null {
  const m = /^Bearer (\S+)$/.exec(req.headers.authorization ?? '');
  return m ? m[1]! : null;
}

/** `Content-Range: bytes 0-99/1000` (total `*` when unknown). */
export function contentRange(req: IncomingMessage): { start: number; end: number; total: number | null } | null {
  const m = /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec(req.headers['content-range'] ?? '');
  return m ? { start: Number(m[1]), end: Number(m[2]), total: m[3] === '*' ? null : Number(m[3]) } : null;
}

export const refused = (status: number, body: unknown): ScriptedAnswer => ({ status, body });
