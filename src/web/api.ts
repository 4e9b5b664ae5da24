import { Hono, type Context } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import type { Logger } from 'pino';
import { canonicalDomain } from '../config/domains.js';
import type { Config } from '../config/schema.js';
import type { MessageState } from '../events.js';
import { ReplyHints } from '../hints/hint.js';
import { subjectOf } from '../message/headers.js';
import { isDiskFull } from '../spool/diskFull.js';
import { getMessage, listMessages, messageHead } from '../spool/log.js';
import type { SpoolStore } from '../spool/store.js';
import { retryAll } from '../spool/bulk.js';
import type { AuthLockouts } from '../status/lockouts.js';
import type { StatusTracker } from '../health/tracker.js';
import type { WebEnv } from './auth.js';
import { detailJson, summaryJson } from './messageJson.js';

export interface ApiDeps {
  config: Config;
  logger: Logger;
  spool: SpoolStore;
  status: StatusTracker;
  lockouts?: AuthLockouts;
}

const STATES: MessageState[] = ['queued', 'delivering', 'delivered', 'deferred', 'failed', 'dropped'];
const MAX_LIMIT = 1000;
const MAX_QUERY_CHARS = 200;
/** The JSON of POST /api/send: a short text mail from a tool; attachments are SMTP's job. */
const SEND_BODY_BYTES = 1024 * 1024;

function badRequest(c: Context<WebEnv>, message: string): Response {
  return c.json({ error: message }, 400);
}

/** `?limit=` and friends: a whole number in range, or a reason it is not. */
function wholeNumber(text: string | undefined, name: string, min: number, max: number): number | string | undefined {
  if (text === undefined || text === '') return undefined;
  const n = /^\d{1,15}$/.test(text) ? Number(text) : NaN;
  return n >= min && n <= max ? n : `${name}: expected a whole number from ${min} to ${max}, got "${text}"`;
}

/** The JSON routes of SPEC under /api, except the CSV log (csv.ts) and login (auth.ts). */
export function apiRoutes(deps: ApiDeps): Hono<WebEnv> {
  const { spool, status, config, logger, lockouts } = deps;
  const db = spool.db;
  const hints = new ReplyHints(config);
  const api = new Hono<WebEnv>();

  // auth_lockouts: client addresses locked out now after failed logins (SMTP AUTH, admin token).
  api.get('/status', (c) => c.json({ ...status.snapshot(), auth_lockouts: lockouts?.active() ?? [] }));

  api.get('/messages', (c) => {
    const q = c.req.query();
    if (q.status && !STATES.includes(q.status as MessageState)) return badRequest(c, `status: expected one of ${STATES.join(', ')}, got "${q.status}"`);
    const limit = wholeNumber(q.limit, 'limit', 1, MAX_LIMIT) ?? 50;
    const before = wholeNumber(q.before, 'before', 1, Number.MAX_SAFE_INTEGER);
    if (typeof limit === 'string') return badRequest(c, limit);
    if (typeof before === 'string') return badRequest(c, before);
    const text = (q.q ?? '').trim();
    if (text.length > MAX_QUERY_CHARS) return badRequest(c, `q: at most ${MAX_QUERY_CHARS} characters`);
    const messages = listMessages(db, { status: q.status || undefined, limit, before, text: text || undefined });
    // A full page may have more behind it: `next_before` is the `before` of the next page.
    const next = messages.length === limit ? messages[messages.length - 1]!.id : null;
    return c.json({ messages: messages.map((m) => summaryJson(m, hints)), next_before: next });
  });

  api.get('/messages/:id', (c) => {
    const id = messageId(c);
    if (typeof id === 'string') return badRequest(c, id);
    const m = getMessage(db, id);
    if (!m) return c.json({ error: `no message ${id}` }, 404);
    const head = messageHead(db, id);
    return c.json(detailJson(m, messageHead(db, id), hints));
  });

  api.post('/messages/:id/retry', (c) => {
    const id = messageId(c);
    if (typeof id === 'string') return badRequest(c, id);
    if (spool.retry(id)) {
      logger.info({ id, auth: c.get('auth') }, 'retry requested over http');
      return c.json({ ok: true, id, state: 'queued' });
    }
    return refused(c, id, 'retried: only failed, deferred or queued messages can be');
  });

  // Every deferred message (as `postqueue -f`), or deferred and failed: `{"which": "deferred" | "all"}`.
  api.post('/messages/retry', async (c) => {
    const body = (await c.req.json().catch(() => null)) as { which?: unknown } | null;
    const which = body?.which;
    if (which !== 'deferred' && which !== 'all') return badRequest(c, 'send JSON {"which": "deferred"} or {"which": "all"}');
    const ids = retryAll(spool, which);
    logger.info({ which, count: ids.length, auth: c.get('auth') }, 'bulk retry requested over http');
    return c.json({ ok: true, which, ids });
  });

  api.delete('/messages/:id', (c) => {
    const id = messageId(c);
    if (typeof id === 'string') return badRequest(c, id);
    if (spool.drop(id, 'dropped by a person (web console or API)')) {
      logger.info({ id, auth: c.get('auth') }, 'message dropped over http');
      return c.json({ ok: true, id, state: 'dropped' });
    }
    return refused(c, id, 'dropped: delivered and dropped messages cannot be');
  });

  api.post(
    '/send',
    bodyLimit({ maxSize: SEND_BODY_BYTES, onError: (c) => c.json({ error: `the request is larger than ${SEND_BODY_BYTES} bytes` }, 413) }),
    async (c) => {
      if (!(c.req.header('content-type') ?? '').toLowerCase().startsWith('application/json')) {
        return c.json({ error: 'send JSON: Content-Type: application/json, body {"to", "subject", "text"}' }, 415);
      }
      let raw: unknown;
      try {
        raw = await c.req.json();
      } catch {
        return badRequest(c, 'the body is not valid JSON');
      }
      // Loaded on first use: zod and nodemailer's MIME composer would otherwise stay in the
      // service's memory (about 2 MiB) for a route few use.
      const [{ parseSendBody }, { composeMessage }] = await Promise.all([import('./sendBody.js'), import('../message/compose.js')]);
      const parsed = parseSendBody(raw);
      if (typeof parsed === 'string') return badRequest(c, parsed);
      const { to, subject, text } = parsed;
      const allowed = config.smtp.allow_recipient_domains;
      const denied = to.find((rcpt) => allowed.length > 0 && !allowed.includes(canonicalDomain(rcpt.slice(rcpt.lastIndexOf('@') + 1)) ?? ''));
      if (denied) return badRequest(c, `to: relaying to ${denied} denied (not in smtp.allow_recipient_domains)`);
      const from = parsed.from ?? `relaybox@${config.hostname}`;
      // Like SMTP's 452 4.3.1: no new mail while the disk is nearly full (smtp.min_free_bytes).
      const diskFull = (reason: string | null) => c.json({ error: `not accepted now: ${reason ?? 'the disk is full'}` }, 503, { 'Retry-After': '60' });
      const disk = status.disk();
      if (disk && !disk.accepting) return diskFull(disk.reason);
      const bytes = await composeMessage({ from, to, subject, text, hostname: config.hostname });
      const body = spool.receive();
      body.write(bytes);
      let id: number;
      try {
        id = await spool.accept(body, { mailFrom: from, recipients: to, client: 'http api', subject: subjectOf(bytes) });
      } catch (err) {
        if (!isDiskFull(err)) throw err;
        return diskFull(null);
      }
      logger.info({ id, from, rcpts: to.length, size: bytes.length, client: 'http api' }, 'accepted');
      return c.json({ id, state: 'queued' }, 202, { Location: `/api/messages/${id}` });
    },
  );

  function refused(c: Context<WebEnv>, id: number, what: string): Response {
    const m = getMessage(db, id);
    if (!m) return c.json({ error: `no message ${id}` }, 404);
    return c.json({ error: `message ${id} is ${m.state} and cannot be ${what}` }, 409);
  }

  return api;
}

function messageId(c: Context<WebEnv>): number | string {
  const text = c.req.param('id') ?? '';
  return /^\d{1,15}$/.test(text) ? Number(text) : `expected a message id (a number), got "${text}"`;
}
