import { join } from 'node:path';
import type { Readable } from 'node:stream';
import type { Microsoft365GraphUpstreamConfig } from '../config/upstreams.js';
import { apiSessionFor, type ApiSession } from './apiSession.js';
import { discard, peek, replay } from './bodyChunks.js';
import { withEnvelopeBcc } from './envelopeBcc.js';
import { dataDirOf } from './oauthPresets.js';
import { sendAsDraft } from './graphLarge.js';
import { spillLargeBodies, sweepSpills } from './graphSpill.js';
import { apiErrorOf, describeApiError, retryAfterMs, type HttpsResponse } from './https.js';
import type { UpstreamContext } from './types.js';
import { UpstreamError, type Envelope, type BodyFactory, type SendOptions, type SendResult, type Upstream } from './types.js';

/**
 * Microsoft documents 4 MB per request and the MIME goes base64 (4 bytes for every 3): a message
 * of up to 3,000,000 bytes makes a request of at most 4,000,000. Read "MB" as the smaller of its
 * two meanings: a request Microsoft refuses would fail the message.
 */
export const GRAPH_REQUEST_LIMIT = 4_000_000;
export const GRAPH_MIME_LIMIT = Math.floor(GRAPH_REQUEST_LIMIT / 4) * 3;
/** A throttling answer without Retry-After holds the upstream this long. */
const DEFAULT_THROTTLE_MS = 60_000;

/**
 * Microsoft Graph `sendMail` with app-only access: the one way Microsoft still supports for a box
 * to send as a mailbox when SMTP AUTH is switched off. A message up to the 4 MB request limit goes
 * as MIME, unchanged; a larger one as a draft with upload sessions for its attachments, then sent
 * (graphLarge.ts; this needs Mail.ReadWrite). Not DKIM-signed: Microsoft signs what it sends.
 */
export class GraphUpstream implements Upstream {
  readonly name: string;
  readonly type = 'microsoft365-graph';
  private readonly session: ApiSession;
  /** `https://graph.microsoft.com/v1.0/users/{user}` */
  private readonly mailbox: string;
  /** Large messages are parsed (graphLarge.ts): one at a time keeps memory bounded. */
  private largeTurn: Promise<unknown> = Promise.resolve();
  /** `<data_dir>/tmp`: large bodies wait there while their draft is made. */
  private readonly tmpDir: string;

  constructor(
    private readonly config: Microsoft365GraphUpstreamConfig,
    context: UpstreamContext,
  ) {
    this.name = config.name;
    this.session = apiSessionFor(config, context);
    this.mailbox = `${config.graph_url}/v1.0/users/${encodeURIComponent(config.user)}`;
    this.tmpDir = join(dataDirOf(context, config.name), 'tmp');
    sweepSpills(this.tmpDir);
  }

  describe(): string {
    const tls = this.config.tls.verify ? '' : ', certificates NOT verified';
    return `${this.config.graph_url} Graph sendMail as ${this.config.user}${tls}; ${this.session.tokens.describe()}`;
  }

  async send(envelope: Envelope, body: BodyFactory, options?: SendOptions): Promise<SendResult> {
    this.session.checkStillWanted(options);
    await this.session.token();
    const message = () => withEnvelopeBcc(body({ dkim: false }), envelope.to);
    const peeked = await peek(message(), GRAPH_MIME_LIMIT);
    options?.onSessionReady?.();
    try {
      // A large message is read on from where the peek stopped: one pass over the spool.
      const reply = 'whole' in peeked ? await this.sendMime(peeked.whole) : await this.inTurn(() => this.sendLarge(replay(peeked), message));
      return { accepted: [...envelope.to], rejected: [], reply };
    } finally {
      await discard(peeked);
    }
  }

  async close(): Promise<void> {
    this.session.close();
  }

  /** Graph's MIME form: the message base64-encoded as a text/plain body. */
  private async sendMime(mime: Buffer): Promise<string> {
    const encoded = mime.toString('base64');
    const answer = await this.session.call(() => ({
      method: 'POST',
      url: `${this.mailbox}/sendMail`,
      headers: { 'content-type': 'text/plain', 'content-length': encoded.length },
      body: encoded,
    }));
    if (answer.status !== 202) throw this.failure(answer, false);
    return '202 Accepted by Microsoft Graph sendMail';
  }

  private async sendLarge(rest: AsyncIterable<Buffer>, message: () => Readable): Promise<string> {
    await sendAsDraft({
      session: this.session,
      mailbox: this.mailbox,
      skeleton: () => spillLargeBodies(rest, this.tmpDir),
      whole: () => readWhole(message),
      failure: (answer) => this.failure(answer, true),
    });
    return '202 Accepted by Microsoft Graph (sent as a draft with upload sessions)';
  }

  private inTurn<T>(work: () => Promise<T>): Promise<T> {
    const result = this.largeTurn.then(work);
    this.largeTurn = result.catch(() => undefined);
    return result;
  }

  /** Microsoft's answer as the upstream's error: who must act, and whether the message or the upstream is at fault. */
  private failure(answer: HttpsResponse, large: boolean): UpstreamError {
    const error = apiErrorOf(answer);
    const words = describeApiError(answer.status, error);
    const { status } = answer;
    const user = this.config.user;
    if (status === 429 || status === 503) {
      const wait = retryAfterMs(answer.headers) ?? DEFAULT_THROTTLE_MS;
      return new UpstreamError(`${words} (holding for ${Math.ceil(wait / 1000)}s)`, 451, 'mail', 'quota', { retryAfterMs: wait });
    }
    if (status === 403 && error.code === 'ErrorSendAsDenied') {
      return new UpstreamError(
        `${words} — ${user} may not send as this From: give it SendAs on that address (Add-RecipientPermission <from> -Trustee ${user} -AccessRights SendAs), or set smtp.rewrite.header_from to ${user}`,
        550,
        'data',
      );
    }
    if (status === 401 || status === 403) {
      const permissions = large ? 'Mail.Send and Mail.ReadWrite (mail over 4 MB goes as a draft)' : 'Mail.Send';
      return new UpstreamError(
        `${words} — grant the app the ${permissions} application permission${large ? 's' : ''} with admin consent (Entra admin center > App registrations > API permissions), and check that no application access policy or RBAC for Applications scope leaves out ${user}`,
        535,
        'auth',
        'auth_failed',
      );
    }
    if (status === 404) return new UpstreamError(`${words} — ${user} has no Exchange Online mailbox (check user and tenant_id of upstream ${this.name})`, 550, 'auth', 'auth_failed');
    if (status === 413) return new UpstreamError(words, 552, 'data');
    if (status >= 400 && status < 500) return new UpstreamError(words, 554, 'data');
    return new UpstreamError(words, 451, 'io');
  }
}

/**
 * The whole message in one ArrayBuffer, for the MIME parser: counted in a first pass so that it is
 * held once, never as a list of chunks plus their concatenation.
 */
async function readWhole(message: () => Readable): Promise<ArrayBuffer> {
  let size = 0;
  for await (const chunk of message()) size += (chunk as Buffer).length;
  const raw = new ArrayBuffer(size);
  const view = new Uint8Array(raw);
  let at = 0;
  for await (const chunk of message()) {
    const bytes = chunk as Buffer;
    if (at + bytes.length > size) throw new UpstreamError('the message changed while being read', null, 'io');
    view.set(bytes, at);
    at += bytes.length;
  }
  return raw;
}
