import { readFileSync } from 'node:fs';
import type { IncomingHttpHeaders } from 'node:http';
import { Agent, request as httpsRequest } from 'node:https';
import type { TLSSocket } from 'node:tls';
import { UpstreamError, type SendPhase } from './types.js';

/** What an upstream's `tls` section says: the same keys as the SMTP upstreams'. */
export interface HttpsTls {
  verify: boolean;
  ca: string;
  min_version?: 'TLSv1' | 'TLSv1.1' | 'TLSv1.2' | 'TLSv1.3' | undefined;
}

export interface HttpsClientOptions {
  /** The upstream's name, for errors. */
  upstream: string;
  tls: HttpsTls;
  /** Connections kept open to the API: delivery concurrency. */
  maxSockets: number;
  /** `delivery.timeouts`: connect (DNS, TCP, TLS) and the wait for an answer with nothing moving. */
  connectMs: number;
  responseMs: number;
}

export interface HttpsRequest {
  method: 'GET' | 'POST' | 'PUT' | 'DELETE';
  url: string;
  headers?: Record<string, string | number>;
  /** Bodies are pieces the adapters hold anyway (≤ 4 MB); streaming is their job, by pieces. */
  body?: string | Buffer;
}

export interface HttpsResponse {
  status: number;
  headers: IncomingHttpHeaders;
  text: string;
}

/**
 * An answer larger than this is not an API's JSON: only its start is kept for the reply. Graph
 * echoes a created draft whole, body included (up to its 4 MB request limit).
 */
const MAX_ANSWER_BYTES = 8 * 1024 * 1024;

/**
 * One keep-alive HTTPS client per API upstream: connections are reused across messages (a TLS
 * handshake per message would cost more than the send), every request has a connect and an
 * answer budget, and a failure carries the phase delivery classifies by — before the request
 * reached the server (`connect`, `tls`) it is the upstream's problem; after, `io`.
 */
export class HttpsClient {
  private readonly agent: Agent;

  constructor(private readonly options: HttpsClientOptions) {
    let ca: string | undefined;
    if (options.tls.ca) {
      try {
        // Replaces the system store, like the SMTP upstreams: the operator trusts exactly this CA.
        ca = readFileSync(options.tls.ca, 'utf8');
      } catch (err) {
        throw new Error(`upstream ${options.upstream}: cannot read tls.ca ${options.tls.ca}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
      }
    }
    this.agent = new Agent({
      keepAlive: true,
      maxSockets: Math.max(1, options.maxSockets),
      rejectUnauthorized: options.tls.verify,
      ...(ca ? { ca } : {}),
      ...(options.tls.min_version ? { minVersion: options.tls.min_version } : {}),
    });
  }

  request(req: HttpsRequest): Promise<HttpsResponse> {
    const { connectMs, responseMs } = this.options;
    return new Promise<HttpsResponse>((resolve, reject) => {
      let connected = false;
      let settled = false;
      const fail = (err: unknown) => {
        if (settled) return;
        settled = true;
        clearTimeout(connectTimer);
        outgoing.destroy();
        reject(networkFailure(err, connected ? 'io' : 'connect'));
      };
      const outgoing = httpsRequest(req.url, { method: req.method, headers: req.headers, agent: this.agent }, (res) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (chunk: Buffer) => {
          if (size < MAX_ANSWER_BYTES) chunks.push(chunk);
          size += chunk.length;
        });
        res.on('error', fail);
        res.on('end', () => {
          if (settled) return;
          settled = true;
          clearTimeout(connectTimer);
          resolve({ status: res.statusCode ?? 0, headers: res.headers, text: Buffer.concat(chunks).toString('utf8').slice(0, MAX_ANSWER_BYTES) });
        });
      });
      const connectTimer = setTimeout(() => fail(new TimeoutError(`no connection within ${Math.round(connectMs / 1000)}s`)), connectMs);
      outgoing.on('socket', (socket: TLSSocket) => {
        const ready = () => {
          connected = true;
          clearTimeout(connectTimer);
        };
        // A kept-alive socket is ready at once; a new one once its TLS handshake is done.
        if (socket.connecting || !socket.encrypted || socket.authorized === undefined) socket.once('secureConnect', ready);
        else ready();
      });
      outgoing.setTimeout(responseMs, () => fail(new TimeoutError(`no answer within ${Math.round(responseMs / 1000)}s`)));
      outgoing.on('error', fail);
      outgoing.end(req.body);
    });
  }

  close(): void {
    this.agent.destroy();
  }
}

class TimeoutError extends Error {}

const TLS_CODES = /^(ERR_TLS|ERR_SSL|CERT_|SELF_SIGNED|DEPTH_ZERO|UNABLE_TO_|HOSTNAME_MISMATCH|ERR_OSSL)/;

/** A request that got no HTTP answer, as the upstream's error; `reply` says why in a person's words. */
function networkFailure(err: unknown, stage: 'connect' | 'io'): UpstreamError {
  if (err instanceof UpstreamError) return err;
  const e = err as NodeJS.ErrnoException;
  const code = e?.code ?? '';
  const phase: SendPhase = TLS_CODES.test(code) ? 'tls' : stage;
  const words = e instanceof TimeoutError ? e.message : `${e?.message ?? String(err)}${code && !String(e?.message).includes(code) ? ` (${code})` : ''}`;
  return new UpstreamError(words, null, phase);
}

/**
 * `Retry-After` in ms: delay-seconds or an HTTP date (RFC 9110 §10.2.3); undefined when absent or
 * unreadable. Never negative.
 */
export function retryAfterMs(headers: IncomingHttpHeaders, now = Date.now()): number | undefined {
  const value = headers['retry-after'];
  if (typeof value !== 'string' || value.trim() === '') return undefined;
  if (/^\s*\d+\s*$/.test(value)) return Number(value) * 1000;
  const at = Date.parse(value);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}

/** An API's JSON error as `code: message` — Graph's `{error: {code, message}}`, Google's `{error: {status, message, errors: [{reason}]}}`. */
export interface ApiError {
  code: string;
  message: string;
  /** Google's `errors[0].reason` (`rateLimitExceeded`), when given. */
  reason?: string;
}

/** An answer's JSON object, or an empty one when it is not JSON (a proxy's HTML page, nothing). */
export function jsonOf(response: HttpsResponse): Record<string, unknown> {
  try {
    const parsed: unknown = JSON.parse(response.text);
    return parsed && typeof parsed === 'object' && !Array.isArray(parsed) ? (parsed as Record<string, unknown>) : {};
  } catch {
    return {};
  }
}

export function apiErrorOf(response: HttpsResponse): ApiError {
  const error = jsonOf(response).error;
  if (error && typeof error === 'object') {
    const e = error as { code?: unknown; status?: unknown; message?: unknown; errors?: Array<{ reason?: unknown }> };
    const code = typeof e.code === 'string' ? e.code : typeof e.status === 'string' ? e.status : String(e.code ?? response.status);
    const reason = typeof e.errors?.[0]?.reason === 'string' ? e.errors[0].reason : undefined;
    const message = typeof e.message === 'string' ? e.message.split(/\r?\n/)[0]!.slice(0, 500) : '';
    return { code, message, ...(reason ? { reason } : {}) };
  }
  return { code: `HTTP ${response.status}`, message: response.text.replace(/\s+/g, ' ').trim().slice(0, 200) };
}

/** `HTTP 403 ErrorAccessDenied: Access is denied.` — the provider's words as the reply. */
export function describeApiError(status: number, error: ApiError): string {
  const code = error.code === `HTTP ${status}` ? '' : ` ${error.code}${error.reason && error.reason !== error.code ? `/${error.reason}` : ''}`;
  return `HTTP ${status}${code}${error.message ? `: ${error.message}` : ''}`;
}
