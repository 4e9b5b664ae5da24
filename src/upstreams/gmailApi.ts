import type { GmailApiUpstreamConfig } from '../config/upstreams.js';
import { GOOGLE, authorizeCommand } from '../oauth/providers.js';
import { apiSessionFor, type ApiSession } from './apiSession.js';
import { discard, fixedChunks, peek, replay, type Peeked } from './bodyChunks.js';
import { withEnvelopeBcc } from './envelopeBcc.js';
import { apiErrorOf, describeApiError, jsonOf, retryAfterMs, type HttpsResponse } from './https.js';
import type { UpstreamContext } from './types.js';
import { UpstreamError, type Envelope, type BodyFactory, type SendOptions, type SendResult, type Upstream } from './types.js';

/** Google's media upload takes up to 5 MB in one request; larger goes resumable (REFERENCE.md). */
export const GMAIL_MEDIA_LIMIT = 5 * 1024 * 1024;
/** Resumable pieces: a multiple of 256 KiB, as Google's upload protocol wants; 1 MiB keeps two in memory cheap. */
export const GMAIL_CHUNK_BYTES = 4 * 256 * 1024;
/** A throttling answer without Retry-After holds the upstream this long. */
const DEFAULT_THROTTLE_MS = 60_000;
/** Google's words for "too much, later" on a 403 or 429 (Gmail API usage limits). */
const RATE_REASONS = new Set(['rateLimitExceeded', 'userRateLimitExceeded', 'dailyLimitExceeded', 'quotaExceeded']);

/**
 * The Gmail API's users.messages.send: the raw message uploaded as message/rfc822 with the narrow
 * `gmail.send` scope — for Workspace admins who will not grant `https://mail.google.com/` to SMTP.
 * Up to 5 MB in one media upload; larger ones in a resumable upload, streamed in 4 MiB pieces.
 */
export class GmailApiUpstream implements Upstream {
  readonly name: string;
  readonly type = 'gmail-api';
  private readonly session: ApiSession;
  private readonly sendUrl: string;

  constructor(
    private readonly config: GmailApiUpstreamConfig,
    context: UpstreamContext,
  ) {
    this.name = config.name;
    this.session = apiSessionFor(config, context);
    this.sendUrl = `${config.api_url}/upload/gmail/v1/users/${encodeURIComponent(config.user)}/messages/send`;
  }

  describe(): string {
    const tls = this.config.tls.verify ? '' : ', certificates NOT verified';
    return `${this.config.api_url} Gmail API (gmail.send) as ${this.config.user}${tls}; ${this.session.tokens.describe()}`;
  }

  async send(envelope: Envelope, body: BodyFactory, options?: SendOptions): Promise<SendResult> {
    this.session.checkStillWanted(options);
    await this.session.token();
    const peeked = await peek(withEnvelopeBcc(body(), envelope.to), GMAIL_MEDIA_LIMIT);
    options?.onSessionReady?.();
    let answer: HttpsResponse;
    try {
      answer = 'whole' in peeked ? await this.mediaUpload(peeked.whole) : await this.resumableUpload(peeked);
    } finally {
      await discard(peeked);
    }
    if (answer.status !== 200) throw this.failure(answer);
    const id = jsonOf(answer).id;
    return { accepted: [...envelope.to], rejected: [], reply: `${answer.status} OK Gmail API id ${typeof id === 'string' ? id : '?'}` };
  }

  async close(): Promise<void> {
    this.session.close();
  }

  signedInAgain(): void {
    this.session.tokens.source.invalidate();
  }

  private mediaUpload(message: Buffer): Promise<HttpsResponse> {
    return this.session.call(() => ({
      method: 'POST',
      url: `${this.sendUrl}?uploadType=media`,
      headers: { 'content-type': 'message/rfc822', 'content-length': message.length },
      body: message,
    }));
  }

  /** Google's resumable protocol: open a session, then PUT pieces with their byte range; 308 means "go on". */
  private async resumableUpload(peeked: Peeked): Promise<HttpsResponse> {
    const opened = await this.session.call(() => ({
      method: 'POST',
      url: `${this.sendUrl}?uploadType=resumable`,
      headers: { 'content-type': 'application/json; charset=UTF-8', 'x-upload-content-type': 'message/rfc822', 'content-length': 2 },
      body: '{}',
    }));
    const location = opened.headers.location;
    if (opened.status !== 200 || !location) return opened;
    const token = await this.session.token();
    let offset = 0;
    for await (const { bytes, last } of fixedChunks(replay(peeked), GMAIL_CHUNK_BYTES)) {
      const end = offset + bytes.length - 1;
      const answer = await this.session.client.request({
        method: 'PUT',
        url: location,
        headers: { authorization: `Bearer ${token}`, 'content-length': bytes.length, 'content-range': `bytes ${offset}-${end}/${last ? end + 1 : '*'}` },
        body: bytes,
      });
      if (last) return answer;
      if (answer.status !== 308) return answer;
      // The range Google has: anything short of ours means bytes were lost on the way.
      if (answer.headers.range !== `bytes=0-${end}`) throw new UpstreamError(`resumable upload: Google has ${answer.headers.range ?? 'nothing'} of bytes 0-${end}`, null, 'io');
      offset = end + 1;
    }
    throw new UpstreamError('resumable upload: the message was empty', null, 'io');
  }

  /** Google's answer as the upstream's error: who must act, and whether the message or the upstream is at fault. */
  private failure(answer: HttpsResponse): UpstreamError {
    const error = apiErrorOf(answer);
    const words = describeApiError(answer.status, error);
    const { status } = answer;
    if (status === 429 || status === 503 || (status === 403 && RATE_REASONS.has(error.reason ?? ''))) {
      const wait = retryAfterMs(answer.headers) ?? DEFAULT_THROTTLE_MS;
      return new UpstreamError(`${words} (holding for ${Math.ceil(wait / 1000)}s)`, 451, 'mail', 'quota', { retryAfterMs: wait });
    }
    if (status === 401 || status === 403 || (status === 400 && error.reason === 'failedPrecondition')) {
      return new UpstreamError(`${words} — ${this.authHint()}`, 535, 'auth', 'auth_failed');
    }
    if (status === 404) return new UpstreamError(`${words} — check user and api_url of upstream ${this.name}`, 550, 'auth', 'auth_failed');
    if (status === 413) return new UpstreamError(words, 552, 'data');
    if (status >= 400 && status < 500) return new UpstreamError(words, 554, 'data');
    return new UpstreamError(words, 451, 'io');
  }

  private authHint(): string {
    const scope = GOOGLE.sendScope;
    if (this.config.service_account_key) {
      return `allow the service account's client ID scope ${scope} for ${this.config.user} (Google Admin console > Security > API controls > Domain-wide delegation)`;
    }
    return `authorize as ${this.config.user} with scope ${scope} (${authorizeCommand('google', this.name)} --gmail-api)`;
  }
}
