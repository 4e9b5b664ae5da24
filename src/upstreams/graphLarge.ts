import PostalMime, { type Address, type Attachment, type Email } from 'postal-mime';
import type { ApiSession } from './apiSession.js';
import { jsonOf, type HttpsResponse } from './https.js';
import { UpstreamError } from './types.js';

/** Attachments under 3 MB are posted whole; larger ones go through an upload session (Microsoft's rule). */
export const GRAPH_INLINE_ATTACHMENT_LIMIT = 3 * 1024 * 1024;
/** Upload session pieces: a multiple of 320 KiB, under the 4 MB request limit. */
export const GRAPH_UPLOAD_CHUNK_BYTES = 12 * 320 * 1024;
/** Graph takes custom headers (X-…) on a draft, a few of them only. */
const MAX_CUSTOM_HEADERS = 5;

export interface DraftContext {
  session: ApiSession;
  /** `…/v1.0/users/{user}` */
  mailbox: string;
  /** The whole message, read when needed (the parser wants it in one piece). */
  read: () => Promise<ArrayBuffer>;
  failure: (answer: HttpsResponse) => UpstreamError;
}

/**
 * A message over Graph's 4 MB request limit: parsed (postal-mime), created as a draft, its
 * attachments added (large ones through upload sessions, in byte ranges), then sent. A draft left
 * by a failure is deleted, so retries do not pile drafts up in the mailbox.
 */
export async function sendAsDraft(ctx: DraftContext): Promise<{ bytes: number }> {
  let raw: ArrayBuffer | null = await ctx.read();
  const bytes = raw.byteLength;
  const parsed = await PostalMime.parse(raw, { attachmentEncoding: 'arraybuffer' });
  // Only the parsed parts are needed from here: let the raw message go while attachments upload.
  raw = null;
  const created = await ctx.session.call(() => json('POST', `${ctx.mailbox}/messages`, draftOf(parsed)));
  const id = jsonOf(created).id;
  if (created.status !== 201 || typeof id !== 'string') throw ctx.failure(created);
  const draft = `${ctx.mailbox}/messages/${encodeURIComponent(id)}`;
  try {
    for (const attachment of parsed.attachments) await addAttachment(ctx, draft, attachment);
    const sent = await ctx.session.call(() => ({ method: 'POST', url: `${draft}/send`, headers: { 'content-length': 0 }, body: '' }));
    if (sent.status !== 202) throw ctx.failure(sent);
    return { bytes };
  } catch (err) {
    await ctx.session.call(() => ({ method: 'DELETE', url: draft })).catch(() => undefined);
    throw err;
  }
}

/** The draft as Graph's message resource: what the recipients see, and who receives it. */
function draftOf(m: Email): Record<string, unknown> {
  const from = mailboxes(m.from ? [m.from] : [])[0];
  const custom = m.headers.filter((h) => /^x-/i.test(h.key)).slice(0, MAX_CUSTOM_HEADERS);
  return {
    subject: m.subject ?? '',
    body: m.html !== undefined ? { contentType: 'html', content: m.html } : { contentType: 'text', content: m.text ?? '' },
    ...(from ? { from } : {}),
    toRecipients: mailboxes(m.to),
    ccRecipients: mailboxes(m.cc),
    bccRecipients: mailboxes(m.bcc),
    replyTo: mailboxes(m.replyTo),
    ...(custom.length > 0 ? { internetMessageHeaders: custom.map((h) => ({ name: h.originalKey, value: h.value })) } : {}),
  };
}

function mailboxes(list: Address[] | undefined): Array<{ emailAddress: { address: string; name?: string } }> {
  const flat = (list ?? []).flatMap((a) => (a.group ? a.group : [a]));
  return flat.filter((a) => a.address).map((a) => ({ emailAddress: { address: a.address!, ...(a.name ? { name: a.name } : {}) } }));
}

async function addAttachment(ctx: DraftContext, draft: string, a: Attachment): Promise<void> {
  const bytes = new Uint8Array(a.content as ArrayBuffer);
  const name = a.filename ?? (a.mimeType === 'message/rfc822' ? 'message.eml' : 'attachment');
  const inline = a.disposition === 'inline' && a.contentId ? { isInline: true, contentId: a.contentId.replace(/^<|>$/g, '') } : {};
  if (bytes.length < GRAPH_INLINE_ATTACHMENT_LIMIT) {
    const resource = { '@odata.type': '#microsoft.graph.fileAttachment', name, contentType: a.mimeType, contentBytes: Buffer.from(bytes).toString('base64'), ...inline };
    const added = await ctx.session.call(() => json('POST', `${draft}/attachments`, resource));
    if (added.status !== 201) throw ctx.failure(added);
    return;
  }
  const item = { AttachmentItem: { attachmentType: 'file', name, size: bytes.length, contentType: a.mimeType, ...inline } };
  const opened = await ctx.session.call(() => json('POST', `${draft}/attachments/createUploadSession`, item));
  const uploadUrl = jsonOf(opened).uploadUrl;
  if (opened.status !== 201 || typeof uploadUrl !== 'string') throw ctx.failure(opened);
  await upload(ctx, uploadUrl, bytes);
}

/**
 * PUTs the bytes in ranges. The upload URL carries its own authorization: Microsoft says not to
 * send the bearer token there. `200` with nextExpectedRanges means "go on", `201` "done".
 */
async function upload(ctx: DraftContext, uploadUrl: string, bytes: Uint8Array): Promise<void> {
  for (let start = 0; start < bytes.length; start += GRAPH_UPLOAD_CHUNK_BYTES) {
    const piece = bytes.subarray(start, Math.min(bytes.length, start + GRAPH_UPLOAD_CHUNK_BYTES));
    const end = start + piece.length - 1;
    const answer = await ctx.session.client.request({
      method: 'PUT',
      url: uploadUrl,
      headers: { 'content-type': 'application/octet-stream', 'content-length': piece.length, 'content-range': `bytes ${start}-${end}/${bytes.length}` },
      body: Buffer.from(piece.buffer, piece.byteOffset, piece.length),
    });
    const last = end === bytes.length - 1;
    if (last && (answer.status === 201 || answer.status === 200)) return;
    if (answer.status !== 200) throw ctx.failure(answer);
    const next = (jsonOf(answer).nextExpectedRanges as unknown[] | undefined)?.[0];
    if (typeof next !== 'string' || !next.startsWith(`${end + 1}-`)) {
      throw new UpstreamError(`upload session: Graph expects ${String(next)} after bytes ${start}-${end}`, null, 'io');
    }
  }
}

function json(method: 'POST', url: string, body: unknown): { method: 'POST'; url: string; headers: Record<string, string | number>; body: string } {
  const text = JSON.stringify(body);
  return { method, url, headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) }, body: text };
}
