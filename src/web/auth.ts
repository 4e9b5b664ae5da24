import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { Context, Hono, MiddlewareHandler } from 'hono';
import type { Logger } from 'pino';
import { deleteCookie, getCookie, setCookie } from 'hono/cookie';
import { isLoopbackHost } from '../config/net.js';
import type { RelayEvents } from '../events.js';
import { AuthThrottle, secondsUntil, type ThrottleOptions } from '../throttle.js';

/** How a request was let in: the bearer token, a console session cookie, or no token configured. */
export type AuthKind = 'bearer' | 'session' | 'open';
export type WebEnv = { Variables: { auth: AuthKind }; Bindings: { incoming?: { socket?: { remoteAddress?: string } } } };

/** The console sends this on every state-changing request; a cross-site page cannot set it. */
export const CSRF_HEADER = 'X-Relaybox-CSRF';
const SESSION_TTL_MS = 12 * 3_600_000;
const MAX_SESSIONS = 200;
/** Routes anyone may call: the page shell and its static files carry no data; login needs none. */
const PUBLIC = new Set(['/', '/healthz', '/api/login', '/api/logout', '/api/session']);
const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

interface Session {
  csrf: string;
  expiresAt: number;
}

/**
 * `http.admin_token`: a bearer token for tools, and for the console a login that trades the token
 * for a random session id in an HttpOnly, SameSite=Strict cookie (the token itself never leaves
 * the server again). Cookie-authenticated writes must also carry the session's CSRF token in
 * `X-Relaybox-CSRF`. With no token (loopback only, enforced by the config) requests must name a
 * loopback Host, which defeats DNS rebinding, and browser writes must come from the same origin.
 * Guessing the token is throttled per client address (src/throttle.ts): once locked out, every
 * bearer request and login from the address gets 429 with Retry-After, right token or not.
 */
export class WebAuth {
  private readonly tokenDigest: Buffer | null;
  private readonly sessions = new Map<string, Session>();
  private readonly throttle: AuthThrottle;

  constructor(
    token: string,
    private readonly cookieName: string,
    private readonly options: { events?: RelayEvents; logger?: Logger; throttle?: ThrottleOptions } = {},
  ) {
    this.tokenDigest = token ? digest(token) : null;
    this.throttle = new AuthThrottle(options.throttle);
  }

  get required(): boolean {
    return this.tokenDigest !== null;
  }

  middleware(): MiddlewareHandler<WebEnv> {
    return async (c, next) => {
      const path = c.req.path;
      if (path === '/healthz') return next();
      if (!this.required) {
        if (!isLoopbackHost(hostOf(c.req.header('host') ?? ''))) return c.json({ error: 'without http.admin_token only a loopback Host (127.0.0.1, localhost) is served' }, 403);
        if (!SAFE_METHODS.has(c.req.method) && crossOrigin(c)) return c.json({ error: 'cross-origin request refused' }, 403);
        c.set('auth', 'open');
        return next();
      }
      if (PUBLIC.has(path) || path.startsWith('/assets/')) return next();
      const bearer = /^Bearer\s+(\S+)\s*$/i.exec(c.req.header('authorization') ?? '')?.[1];
      if (bearer !== undefined) {
        const client = clientOf(c);
        const locked = this.lockedOut(c, client);
        if (locked) return locked;
        if (!this.tokenMatches(bearer)) return this.failed(c, client) ?? unauthorized(c, 'wrong token');
        this.throttle.succeeded(client);
        c.set('auth', 'bearer');
        return next();
      }
      const session = this.session(getCookie(c, this.cookieName));
      if (!session) return unauthorized(c, 'log in, or send Authorization: Bearer <http.admin_token>');
      if (!SAFE_METHODS.has(c.req.method) && !sameToken(c.req.header(CSRF_HEADER) ?? '', session.csrf)) {
        return c.json({ error: `missing or wrong ${CSRF_HEADER} header` }, 403);
      }
      c.set('auth', 'session');
      return next();
    };
  }

  /** POST /api/login (JSON or form `token`), POST /api/logout, GET /api/session. */
  routes(app: Hono<WebEnv>): void {
    app.post('/api/login', async (c) => {
      if (!this.required) return c.json({ ok: true, required: false, csrf: '' });
      const client = clientOf(c);
      const locked = this.lockedOut(c, client);
      if (locked) return locked;
      const token = await submittedToken(c);
      if (!token || !this.tokenMatches(token)) return this.failed(c, client) ?? c.json({ error: 'wrong token' }, 401);
      this.throttle.succeeded(client);
      const [id, session] = this.createSession();
      setCookie(c, this.cookieName, id, { httpOnly: true, sameSite: 'Strict', path: '/', maxAge: SESSION_TTL_MS / 1000 });
      return c.json({ ok: true, required: true, csrf: session.csrf });
    });
    app.post('/api/logout', (c) => {
      const id = getCookie(c, this.cookieName);
      if (id) this.sessions.delete(id);
      deleteCookie(c, this.cookieName, { path: '/' });
      return c.json({ ok: true });
    });
    app.get('/api/session', (c) => {
      if (!this.required) return c.json({ required: false, authenticated: true, csrf: '' });
      const session = this.session(getCookie(c, this.cookieName));
      return c.json({ required: true, authenticated: Boolean(session), csrf: session?.csrf ?? '' });
    });
  }

  clear(): void {
    this.sessions.clear();
    this.throttle.clear();
  }

  private tokenMatches(candidate: string): boolean {
    return this.tokenDigest !== null && timingSafeEqual(digest(candidate), this.tokenDigest);
  }

  private session(id: string | undefined): Session | undefined {
    const session = id ? this.sessions.get(id) : undefined;
    if (!session) return undefined;
    if (session.expiresAt < Date.now()) {
      this.sessions.delete(id!);
      return undefined;
    }
    return session;
  }

  private createSession(): [string, Session] {
    const now = Date.now();
    for (const [id, s] of this.sessions) if (s.expiresAt < now) this.sessions.delete(id);
    // Oldest first in a Map: past the cap, the oldest login goes.
    while (this.sessions.size >= MAX_SESSIONS) this.sessions.delete(this.sessions.keys().next().value!);
    const id = randomBytes(32).toString('base64url');
    const session = { csrf: randomBytes(24).toString('base64url'), expiresAt: now + SESSION_TTL_MS };
    this.sessions.set(id, session);
    return [id, session];
  }

  /** 429 with Retry-After while `client` is locked out; null when it may try. */
  private lockedOut(c: Context<WebEnv>, client: string): Response | null {
    const until = this.throttle.lockedUntil(client);
    return until === null ? null : tooMany(c, until);
  }

  /** Counts a wrong token; the 429 when this one starts a lockout. */
  private failed(c: Context<WebEnv>, client: string): Response | null {
    const at = new Date();
    const events = this.options.events;
    events?.emit('auth', { event: 'auth_failed', service: 'http', client, at });
    const lockout = this.throttle.failed(client);
    if (!lockout) return null;
    const until = new Date(lockout.until).toISOString();
    this.options.logger?.warn({ address: client, failures: lockout.failures, lockout: lockout.strike, until }, 'http admin token locked out for this address: too many wrong tokens');
    events?.emit('auth', { event: 'auth_locked', service: 'http', client, until: new Date(lockout.until), at: new Date(lockout.at) });
    return tooMany(c, lockout.until);
  }
}

function clientOf(c: Context<WebEnv>): string {
  return c.env?.incoming?.socket?.remoteAddress ?? 'unknown';
}

function tooMany(c: Context<WebEnv>, until: number): Response {
  const seconds = secondsUntil(until);
  return c.json({ error: `too many wrong tokens from this address; try again in ${seconds} s` }, 429, { 'Retry-After': String(seconds) });
}

function digest(text: string): Buffer {
  return createHash('sha256').update(text).digest();
}

function sameToken(a: string, b: string): boolean {
  return a !== '' && timingSafeEqual(digest(a), digest(b));
}

function unauthorized(c: Context<WebEnv>, message: string): Response {
  return c.json({ error: message }, 401, { 'WWW-Authenticate': 'Bearer realm="relaybox"' });
}

async function submittedToken(c: Context<WebEnv>): Promise<string | undefined> {
  try {
    if ((c.req.header('content-type') ?? '').includes('application/json')) {
      const body = (await c.req.json()) as { token?: unknown };
      return typeof body?.token === 'string' ? body.token : undefined;
    }
    const form = await c.req.parseBody();
    return typeof form.token === 'string' ? form.token : undefined;
  } catch {
    return undefined;
  }
}

/** `127.0.0.1:8025` → `127.0.0.1`; `[::1]:8025` → `::1`. */
export function hostOf(hostHeader: string): string {
  const m = /^\[([^\]]+)\](?::\d+)?$/.exec(hostHeader) ?? /^([^:]+)(?::\d+)?$/.exec(hostHeader);
  return m?.[1]?.toLowerCase() ?? '';
}

/** A browser says where a request comes from; tools like curl say nothing and are let through. */
function crossOrigin(c: Context<WebEnv>): boolean {
  const site = c.req.header('sec-fetch-site');
  if (site === 'cross-site' || site === 'same-site') return true;
  const origin = c.req.header('origin');
  if (!origin) return false;
  try {
    return new URL(origin).host !== c.req.header('host');
  } catch {
    return true;
  }
}
