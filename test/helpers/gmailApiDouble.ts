import { randomBytes } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { FakeOauth } from './fakeOauth.js';
import { HttpsDouble, bearerOf, contentRange, type ScriptedAnswer } from './httpsDouble.js';

const SEND_SCOPE = 'https://www.googleapis.com/auth/gmail.send';
/** Google's documented limits: media upload up to 5 MB, a message up to 35 MB. */
export const GMAIL_MEDIA_MAX = 5 * 1024 * 1024;
export const GMAIL_MESSAGE_MAX = 35 * 1024 * 1024;
const RESUMABLE_UNIT = 256 * 1024;

/** Google's error shape (JSON API): `{error: {code, message, errors: [{reason}], status}}`. */
export const googleError = (status: number, reason: string, message: string, statusName = 'FAILED_PRECONDITION'): ScriptedAnswer => ({
  status,
  body: { error: { code: status, message, errors: [{ message, domain: 'global', reason }], status: statusName } },
});

interface Upload {
  received: Buffer[];
  next: number;
}

/**
 * The Gmail API's users.messages.send upload endpoint on 127.0.0.1: Bearer tokens with the
 * gmail.send scope for that very user (from the fake token endpoint), media uploads of
 * message/rfc822 up to 5 MB, and resumable uploads whose pieces must come in order, in multiples
 * of 256 KiB, with `Content-Range` (total `*` until the last) — 308 with `Range` until done.
 */
export class GmailApiDouble extends HttpsDouble {
  /** The raw messages as Gmail got them. */
  readonly sent: Buffer[] = [];
  readonly uploadTypes: string[] = [];
  private readonly uploads = new Map<string, Upload>();

  private constructor(
    private readonly fake: FakeOauth,
    private readonly user: string,
  ) {
    super();
  }

  static async start(options: { fake: FakeOauth; user: string; dir: string }): Promise<GmailApiDouble> {
    const double = new GmailApiDouble(options.fake, options.user);
    await double.listen(options.dir);
    return double;
  }

  protected route(req: IncomingMessage, url: URL, body: Buffer): ScriptedAnswer {
    const m = /^\/upload\/gmail\/v1\/users\/([^/]+)\/messages\/send$/.exec(url.pathname);
    if (!m) return googleError(404, 'notFound', 'Not Found', 'NOT_FOUND');
    const user = decodeURIComponent(m[1]!);
    const token = bearerOf(req);
    if (!token || !this.fake.accepts(user, token, SEND_SCOPE) || user !== this.user) {
      return googleError(401, 'authError', 'Request had invalid authentication credentials.', 'UNAUTHENTICATED');
    }
    const type = url.searchParams.get('uploadType') ?? '';
    const uploadId = url.searchParams.get('upload_id');
    if (req.method === 'PUT' && uploadId) return this.piece(req, uploadId, body);
    if (req.method !== 'POST') return googleError(405, 'methodNotAllowed', 'Method not allowed', 'INVALID_ARGUMENT');
    this.uploadTypes.push(type);
    if (type === 'media') {
      if (req.headers['content-type'] !== 'message/rfc822') return googleError(400, 'badContent', `Media type '${req.headers['content-type']}' is not supported.`, 'INVALID_ARGUMENT');
      if (body.length > GMAIL_MEDIA_MAX) return googleError(413, 'uploadTooLarge', 'Media upload too large: use a resumable upload', 'INVALID_ARGUMENT');
      return this.accept(body);
    }
    if (type === 'resumable') {
      if (req.headers['x-upload-content-type'] !== 'message/rfc822') return googleError(400, 'badContent', 'X-Upload-Content-Type must be message/rfc822', 'INVALID_ARGUMENT');
      const id = randomBytes(8).toString('hex');
      this.uploads.set(id, { received: [], next: 0 });
      return { status: 200, headers: { location: `${this.url}${url.pathname}?uploadType=resumable&upload_id=${id}` } };
    }
    return googleError(400, 'invalidArgument', `Invalid uploadType ${type}`, 'INVALID_ARGUMENT');
  }

  private piece(req: IncomingMessage, id: string, body: Buffer): ScriptedAnswer {
    const upload = this.uploads.get(id);
    if (!upload) return googleError(404, 'notFound', 'No such upload session', 'NOT_FOUND');
    const range = contentRange(req);
    if (!range || range.start !== upload.next || range.end - range.start + 1 !== body.length) {
      return googleError(400, 'badRequest', `expected bytes ${upload.next}-…, got ${req.headers['content-range']} with ${body.length} bytes`, 'INVALID_ARGUMENT');
    }
    const last = range.total !== null;
    if (last && range.total !== range.end + 1) return googleError(400, 'badRequest', 'the total does not end at this piece', 'INVALID_ARGUMENT');
    if (!last && body.length % RESUMABLE_UNIT !== 0) return googleError(400, 'badRequest', 'pieces must be multiples of 256 KiB', 'INVALID_ARGUMENT');
    upload.received.push(body);
    upload.next = range.end + 1;
    if (upload.next > GMAIL_MESSAGE_MAX) return googleError(413, 'uploadTooLarge', 'Message too large', 'INVALID_ARGUMENT');
    if (!last) return { status: 308, headers: { range: `bytes=0-${range.end}` } };
    this.uploads.delete(id);
    return this.accept(Buffer.concat(upload.received));
  }

  private accept(raw: Buffer): ScriptedAnswer {
    this.sent.push(raw);
    const id = randomBytes(8).toString('hex');
    return { status: 200, body: { id, threadId: id, labelIds: ['SENT'] } };
  }
}
