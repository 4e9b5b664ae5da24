import { randomBytes } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { FakeOauth } from './fakeOauth.js';
import { HttpsDouble, bearerOf, contentRange, type ScriptedAnswer } from './httpsDouble.js';

const GRAPH_SCOPE = 'https://graph.microsoft.com/.default';
/** Microsoft's documented limit on one request. */
export const GRAPH_MAX_REQUEST = 4 * 1024 * 1024;
const UPLOAD_UNIT = 320 * 1024;

export interface GraphAttachment {
  name: string;
  contentType: string;
  bytes: Buffer;
  isInline: boolean;
  viaUploadSession: boolean;
}

/** What Graph sent: a MIME message as given, or a draft built from JSON with its attachments. */
export type GraphSent = { kind: 'mime'; mime: Buffer } | { kind: 'draft'; draft: Record<string, any>; attachments: GraphAttachment[] };

interface Draft {
  resource: Record<string, any>;
  attachments: GraphAttachment[];
}

interface UploadSession {
  draftId: string;
  name: string;
  contentType: string;
  isInline: boolean;
  size: number;
  pieces: Buffer[];
  next: number;
}

const graphError = (status: number, code: string, message: string): ScriptedAnswer => ({ status, body: { error: { code, message, innerError: { date: new Date().toISOString() } } } });

/**
 * Microsoft Graph's mail endpoints on 127.0.0.1, as strict as the real service: app-only Bearer
 * tokens for the Graph scope (from the fake token endpoint), `sendMail` with base64 MIME as
 * text/plain under the 4 MB request limit, drafts (Mail.ReadWrite), attachments, upload sessions
 * with Content-Range pieces in multiples of 320 KiB, `send`, and the mailbox read doctor does.
 */
export class GraphDouble extends HttpsDouble {
  readonly sent: GraphSent[] = [];
  /** Mail.ReadWrite granted: drafts may be made. */
  readWrite = true;
  readonly drafts = new Map<string, Draft>();
  private readonly sessions = new Map<string, UploadSession>();

  private constructor(
    private readonly fake: FakeOauth,
    private readonly mailbox: string,
  ) {
    super();
  }

  static async start(options: { fake: FakeOauth; mailbox: string; dir: string }): Promise<GraphDouble> {
    const double = new GraphDouble(options.fake, options.mailbox);
    await double.listen(options.dir);
    return double;
  }

  protected route(req: IncomingMessage, url: URL, body: Buffer): ScriptedAnswer {
    if (req.method === 'PUT' && url.pathname.startsWith('/upload/')) return this.uploadPiece(req, url.pathname.slice('/upload/'.length), body);
    const token = bearerOf(req);
    if (!token || !this.fake.accepts(this.mailbox, token, GRAPH_SCOPE)) return graphError(401, 'InvalidAuthenticationToken', 'Access token has expired or is not yet valid.');
    const m = /^\/v1\.0\/users\/([^/]+)(\/.*)?$/.exec(url.pathname);
    if (!m || decodeURIComponent(m[1]!) !== this.mailbox) return graphError(404, 'ErrorInvalidUser', `The requested user '${m ? decodeURIComponent(m[1]!) : '?'}' is invalid.`);
    if (body.length > GRAPH_MAX_REQUEST) return graphError(413, 'ErrorRequestEntityTooLarge', 'The request is larger than 4 MB.');
    const rest = m[2] ?? '';
    if (req.method === 'GET' && rest === '') return { status: 200, body: { id: 'user-id', mail: this.mailbox, userPrincipalName: this.mailbox } };
    if (req.method === 'POST' && rest === '/sendMail') return this.sendMime(req, body);
    if (req.method === 'POST' && rest === '/messages') return this.createDraft(req, body);
    const d = /^\/messages\/([^/]+)(\/.*)?$/.exec(rest);
    const draft = d ? this.drafts.get(decodeURIComponent(d[1]!)) : undefined;
    if (!d || !draft) return graphError(404, 'ErrorItemNotFound', 'The specified object was not found in the store.');
    const id = decodeURIComponent(d[1]!);
    const action = d[2] ?? '';
    if (req.method === 'DELETE' && action === '') return this.drafts.delete(id) ? { status: 204 } : graphError(404, 'ErrorItemNotFound', 'gone');
    if (req.method === 'POST' && action === '/attachments') return this.addAttachment(req, draft, body);
    if (req.method === 'POST' && action === '/attachments/createUploadSession') return this.createUploadSession(req, id, body);
    if (req.method === 'POST' && action === '/send') {
      this.drafts.delete(id);
      this.sent.push({ kind: 'draft', draft: draft.resource, attachments: draft.attachments });
      return { status: 202 };
    }
    return graphError(400, 'BadRequest', `Unsupported request ${req.method} ${url.pathname}`);
  }

  private sendMime(req: IncomingMessage, body: Buffer): ScriptedAnswer {
    if (!(req.headers['content-type'] ?? '').startsWith('text/plain')) return graphError(415, 'ErrorInvalidContentType', 'MIME must be sent as text/plain');
    const text = body.toString('latin1').replace(/\r?\n/g, '');
    if (!/^[A-Za-z0-9+/]*={0,2}$/.test(text) || text.length % 4 !== 0) return graphError(400, 'ErrorMimeContentInvalidBase64String', 'Invalid base64 string for MIME content.');
    this.sent.push({ kind: 'mime', mime: Buffer.from(text, 'base64') });
    return { status: 202 };
  }

  private createDraft(req: IncomingMessage, body: Buffer): ScriptedAnswer {
    if (!this.readWrite) return graphError(403, 'ErrorAccessDenied', 'Access is denied. Check credentials and try again.');
    if (req.headers['content-type'] !== 'application/json') return graphError(415, 'UnsupportedMediaType', 'expected JSON');
    const resource = JSON.parse(body.toString('utf8')) as Record<string, any>;
    const id = `AAMk${randomBytes(6).toString('hex')}`;
    this.drafts.set(id, { resource, attachments: [] });
    return { status: 201, body: { id, ...resource, isDraft: true } };
  }

  private addAttachment(req: IncomingMessage, draft: Draft, body: Buffer): ScriptedAnswer {
    const a = JSON.parse(body.toString('utf8')) as Record<string, any>;
    if (a['@odata.type'] !== '#microsoft.graph.fileAttachment' || typeof a.contentBytes !== 'string') return graphError(400, 'ErrorInvalidRequest', 'fileAttachment with contentBytes expected');
    const bytes = Buffer.from(a.contentBytes, 'base64');
    if (bytes.length >= 3 * 1024 * 1024) return graphError(413, 'ErrorRequestEntityTooLarge', 'attachments of 3 MB or more need an upload session');
    draft.attachments.push({ name: a.name, contentType: a.contentType, bytes, isInline: !!a.isInline, viaUploadSession: false });
    return { status: 201, body: { id: `att-${draft.attachments.length}` } };
  }

  private createUploadSession(req: IncomingMessage, draftId: string, body: Buffer): ScriptedAnswer {
    const item = (JSON.parse(body.toString('utf8')) as { AttachmentItem?: Record<string, any> }).AttachmentItem;
    if (!item || item.attachmentType !== 'file' || !Number.isInteger(item.size) || item.size < 3 * 1024 * 1024 || item.size > 150 * 1024 * 1024) {
      return graphError(400, 'ErrorInvalidRequest', 'AttachmentItem with attachmentType file and a size of 3 MB to 150 MB expected');
    }
    const session = randomBytes(8).toString('hex');
    this.sessions.set(session, { draftId, name: item.name, contentType: item.contentType, isInline: !!item.isInline, size: item.size, pieces: [], next: 0 });
    return { status: 201, body: { uploadUrl: `${this.url}/upload/${session}`, expirationDateTime: new Date(Date.now() + 3_600_000).toISOString(), nextExpectedRanges: ['0-'] } };
  }

  /** One PUT of an upload session: no bearer token (the URL is the authorization), the next range, a multiple of 320 KiB. */
  private uploadPiece(req: IncomingMessage, id: string, body: Buffer): ScriptedAnswer {
    const session = this.sessions.get(id);
    if (!session) return graphError(404, 'ErrorItemNotFound', 'upload session not found');
    if (req.headers.authorization) return graphError(401, 'InvalidAuthenticationToken', 'do not send an Authorization header to the upload URL');
    const range = contentRange(req);
    if (!range || range.total !== session.size || range.start !== session.next || range.end - range.start + 1 !== body.length || Number(req.headers['content-length']) !== body.length) {
      return graphError(416, 'InvalidRange', `expected bytes ${session.next}-…/${session.size}, got ${req.headers['content-range']} with ${body.length} bytes`);
    }
    const last = range.end === session.size - 1;
    if (body.length > GRAPH_MAX_REQUEST || (!last && body.length % UPLOAD_UNIT !== 0)) return graphError(400, 'InvalidChunkSize', 'pieces must be multiples of 320 KiB, at most 4 MB');
    session.pieces.push(body);
    session.next = range.end + 1;
    if (!last) return { status: 200, body: { expirationDateTime: new Date(Date.now() + 3_600_000).toISOString(), nextExpectedRanges: [`${session.next}-${session.size - 1}`] } };
    this.sessions.delete(id);
    const draft = this.drafts.get(session.draftId);
    draft?.attachments.push({ name: session.name, contentType: session.contentType, bytes: Buffer.concat(session.pieces), isInline: session.isInline, viaUploadSession: true });
    return { status: 201, headers: { location: `${this.url}/v1.0/attachments/${id}` } };
  }
}

export { graphError };
