import PostalMime, { type Address, type Attachment, type Email } from 'postal-mime';
import type { ApiSession } from './apiSession.js';
import { fixedChunks } from './bodyChunks.js';
import { decodedBody, type Skeleton, type SpilledBody } from './graphSpill.js';
import { jsonOf, type HttpsResponse } from './https.js';
import { UpstreamError } from './types.js';

/** Attachments under 3 MB are posted whole; larger ones go through an upload session (Microsoft's rule). */
export const GRAPH_INLINE_ATTACHMENT_LIMIT = 3 * 1024 * 1024;
/** Upload session pieces: a multiple of 320 KiB under the 4 MB request limit; 1.25 MiB keeps memory low (3.75 MiB pieces cost 20 MB more). */
export const GRAPH_UPLOAD_CHUNK_BYTES = 4 * 320 * 1024;
/** Graph takes custom headers (X-…) on a draft, a few of them only. */
const MAX_CUSTOM_HEADERS = 5;

export interface DraftContext {
  session: ApiSession;
  /** `…/v1.0/users/{user}` */
  mailbox: string;
  /** The message with its large base64 bodies in files (graphSpill.ts). */
  skeleton: () => Promise<Skeleton>;
  /** The whole message in one piece: only when the skeleton could not be matched up. */
  whole: () => Promise<ArrayBuffer>;
  failure: (answer: HttpsResponse) => UpstreamError;
}

/** An attachment to add: its bytes from the parser's memory, or read back from a spilled body. */
interface Part {
  attachment: Attachment;
  size: number;
  bytes: () => AsyncIterable<Buffer>;
}

/**
 * A message over Graph's 4 MB request limit: parsed (postal-mime), created as a draft, its
 * attachments added (large ones through upload sessions, in byte ranges), then sent. A draft left
 * by a failure is deleted, so retries do not pile drafts up in the mailbox.
 */
export async function sendAsDraft(ctx: DraftContext): Promise<void> {
  const skeleton = await ctx.skeleton();
  try {
    let parsed = await PostalMime.parse(skeleton.raw, { attachmentEncoding: 'arraybuffer' });
    let parts = partsOf(parsed, skeleton.bodies);
    // A marker the parser did not hand back as one attachment (a body cut in two, base64 in a
    // text part): the skeleton cannot be trusted, so parse the whole message as it is.
    if (!parts) {
      parsed = await PostalMime.parse(await ctx.whole(), { attachmentEncoding: 'arraybuffer' });
      parts = partsOf(parsed, new Map())!;
    }
    await sendDraft(ctx, parsed, parts);
  } finally {
    skeleton.dispose();
  }
}

/** Each attachment with where its bytes come from; null when some spilled body is not exactly one attachment. */
function partsOf(parsed: Email, bodies: Map<string, SpilledBody>): Part[] | null {
  const claimed = new Set<string>();
  const parts = parsed.attachments.map((attachment): Part => {
    const content = new Uint8Array(attachment.content as ArrayBuffer);
    const spilled = content.length < 100 ? bodies.get(Buffer.from(content).toString('latin1')) : undefined;
    if (!spilled) return { attachment, size: content.length, bytes: async function* () { yield Buffer.from(content.buffer, content.byteOffset, content.length); } };
    claimed.add(Buffer.from(content).toString('latin1'));
    return { attachment, size: spilled.bytes, bytes: () => decodedBody(spilled) };
  });
  const text = `${parsed.text ?? ''}${parsed.html ?? ''}`;
  const stray = [...bodies.keys()].some((marker) => !claimed.has(marker) || text.includes(marker));
  return stray ? null : parts;
}

async function sendDraft(ctx: DraftContext, parsed: Email, parts: Part[]): Promise<void> {
  const created = await ctx.session.call(() => json('POST', `${ctx.mailbox}/messages`, draftOf(parsed)));
  const id = jsonOf(created).id;
  if (created.status !== 201 || typeof id !== 'string') throw ctx.failure(created);
  const draft = `${ctx.mailbox}/messages/${encodeURIComponent(id)}`;
  try {
    for (const part of parts) await addAttachment(ctx, draft, part);
    const sent = await ctx.session.call(() => ({ method: 'POST', url: `${draft}/send`, headers: { 'content-length': 0 }, body: '' }));
    if (sent.status !== 202) throw ctx.failure(sent);
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

async function addAttachment(ctx: DraftContext, draft: string, part: Part): Promise<void> {
  const a = part.attachment;
  const name = a.filename ?? (a.mimeType === 'message/rfc822' ? 'message.eml' : 'attachment');
  const inline = a.disposition === 'inline' && a.contentId ? { isInline: true, contentId: a.contentId.replace(/^<|>$/g, '') } : {};
  if (part.size < GRAPH_INLINE_ATTACHMENT_LIMIT) {
    const pieces: Buffer[] = [];
    for await (const piece of part.bytes()) pieces.push(piece);
    const resource = { '@odata.type': '#microsoft.graph.fileAttachment', name, contentType: a.mimeType, contentBytes: Buffer.concat(pieces).toString('base64'), ...inline };
    const added = await ctx.session.call(() => json('POST', `${draft}/attachments`, resource));
    if (added.status !== 201) throw ctx.failure(added);
    return;
  }
  const item = { AttachmentItem: { attachmentType: 'file', name, size: part.size, contentType: a.mimeType, ...inline } };
  const opened = await ctx.session.call(() => json('POST', `${draft}/attachments/createUploadSession`, item));
  const uploadUrl = jsonOf(opened).uploadUrl;
  if (opened.status !== 201 || typeof uploadUrl !== 'string') throw ctx.failure(opened);
  await upload(ctx, uploadUrl, part);
}

/**
 * PUTs the bytes in ranges. The upload URL carries its own authorization: Microsoft says not to
 * send the bearer token there. `200` with nextExpectedRanges means "go on", `201` "done".
 */
async function upload(ctx: DraftContext, uploadUrl: string, part: Part): Promise<void> {
  let start = 0;
  for await (const { bytes: piece, last } of fixedChunks(part.bytes(), GRAPH_UPLOAD_CHUNK_BYTES)) {
    const end = start + piece.length - 1;
    if (last && end !== part.size - 1) throw new UpstreamError(`upload session: the attachment has ${end + 1} bytes, not the ${part.size} announced`, null, 'io');
    const answer = await ctx.session.client.request({
      method: 'PUT',
      url: uploadUrl,
      headers: { 'content-type': 'application/octet-stream', 'content-length': piece.length, 'content-range': `bytes ${start}-${end}/${part.size}` },
      body: piece,
    });
    if (last && (answer.status === 201 || answer.status === 200)) return;
    if (answer.status !== 200) throw ctx.failure(answer);
    const next = (jsonOf(answer).nextExpectedRanges as unknown[] | undefined)?.[0];
    if (typeof next !== 'string' || !next.startsWith(`${end + 1}-`)) {
      throw new UpstreamError(`upload session: Graph expects ${String(next)} after bytes ${start}-${end}`, null, 'io');
    }
    start = end + 1;
  }
}

function json(method: 'POST', url: string, body: unknown): { method: 'POST'; url: string; headers: Record<string, string | number>; body: string } {
  const text = JSON.stringify(body);
  return { method, url, headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) }, body: text };
}
