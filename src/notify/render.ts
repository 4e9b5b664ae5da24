import type { NoticedMessage, UpstreamNote } from '../spool/noticeMemory.js';
import type { Words } from './words.js';

/** What a notice's text is made of; the caller has looked up hints and the console link. */
export interface RenderContext {
  words: Words;
  hostname: string;
  /** The console's address when devices' admins can reach it (http beyond loopback); else undefined. */
  consoleUrl: string | undefined;
  hint: (upstream: string | null, reply: string | null) => string | null;
}

export interface NoticeText {
  subject: string;
  text: string;
}

export interface Digest {
  failed: NoticedMessage[];
  failedTotal: number;
  stuck: NoticedMessage[];
  stuckAfter: string;
  notes: UpstreamNote[];
}

/** `2026-11-27 14:20:05 UTC`: the same in both languages, and what the console's CSV explains. */
export function formatTime(ms: number): string {
  return `${new Date(ms).toISOString().slice(0, 19).replace('T', ' ')} UTC`;
}

function replyLines(c: RenderContext, upstream: string | null, reply: string | null): string[] {
  if (!reply) return [];
  const hint = c.hint(upstream, reply);
  return [`    ${c.words.reply(upstream)}: ${reply}`, ...(hint ? [`    ${c.words.hint}: ${hint}`] : [])];
}

function messageLines(c: RenderContext, m: NoticedMessage): string[] {
  const w = c.words;
  return [
    `  #${m.id}  ${formatTime(m.at)}`,
    `    ${w.from}: ${m.mailFrom || '<>'}`,
    `    ${w.to}: ${m.recipients.join(', ')}`,
    `    ${w.subject}: ${m.subject ?? w.noSubject}`,
    `    ${w.received}: ${formatTime(m.receivedAt)}`,
    ...replyLines(c, m.upstream, m.reply),
    ...(c.consoleUrl ? [`    ${w.console}: ${c.consoleUrl}#/messages/${m.id}`] : []),
    '',
  ];
}

function finish(c: RenderContext, body: string[], todo: string[]): string {
  const w = c.words;
  const link = c.consoleUrl ? [`${w.console}: ${c.consoleUrl}`] : [];
  return [...body, `${w.todo}:`, ...todo.map((t) => `- ${t}`), ...link, '', w.footer(c.hostname), ''].join('\n');
}

export function renderAuthFailed(c: RenderContext, upstream: string, reply: string | null): NoticeText {
  const w = c.words;
  const body = [w.authFailed(upstream), '', ...replyLines(c, upstream, reply).map((l) => l.trimStart()), ''];
  return { subject: w.authFailedSubject(upstream), text: finish(c, body, [w.authFailedTodo]) };
}

export function renderDisk(c: RenderContext, free: string, min: string): NoticeText {
  const w = c.words;
  return { subject: w.diskSubject, text: finish(c, [w.disk(free, min), ''], [w.diskTodo]) };
}

export function renderDigest(c: RenderContext, d: Digest): NoticeText {
  const w = c.words;
  const parts: string[] = [];
  const body: string[] = [];
  const todo: string[] = [];
  if (d.failedTotal > 0) {
    parts.push(w.failedCount(d.failedTotal));
    body.push(w.failedHead, '', ...d.failed.flatMap((m) => messageLines(c, m)));
    if (d.failedTotal > d.failed.length) body.push(`  ${w.more(d.failedTotal - d.failed.length)}`, '');
    todo.push(w.failedTodo);
  }
  if (d.notes.length > 0) {
    parts.push(w.upstreamCount(new Set(d.notes.map((n) => n.upstream)).size));
    body.push(w.upstreamHead, '');
    for (const n of d.notes) {
      const since = formatTime(n.at);
      body.push(`  ${n.kind === 'quota' ? w.quota(n.upstream, since) : w.upstreamDown(n.upstream, since)}`, ...replyLines(c, n.upstream, n.reply), '');
    }
    todo.push(w.upstreamTodo);
  }
  if (d.stuck.length > 0) {
    parts.push(w.stuckCount(d.stuck.length));
    body.push(w.stuckHead(d.stuckAfter), '', ...d.stuck.flatMap((m) => messageLines(c, m)));
    todo.push(w.stuckTodo);
  }
  return { subject: w.digestSubject(parts), text: finish(c, body, todo) };
}
