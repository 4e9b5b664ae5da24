import { Hono, type Context } from 'hono';
import type { Logger } from 'pino';
import type { Config } from '../config/schema.js';
import type { RelayEvents } from '../events.js';
import { ReconnectFlows, ReconnectRefusal } from '../oauth/reconnect.js';
import { refreshTokenOrigin } from '../oauth/refreshStore.js';
import { signInTarget, type SignInTarget } from '../oauth/signIn.js';
import { retryAll } from '../spool/bulk.js';
import type { SpoolStore } from '../spool/store.js';
import type { WebEnv } from './auth.js';

export interface ReconnectDeps {
  config: Config;
  logger: Logger;
  events: RelayEvents;
  spool: SpoolStore;
}

/**
 * The console's Reconnect (src/oauth/reconnect.ts) over HTTP, behind the console's token, cookie
 * and CSRF rules like every other route:
 *   GET    /api/reconnect                        the upstreams a person can sign in again for
 *   POST   /api/upstreams/:name/reconnect        starts a sign-in (device code, or a link and a paste)
 *   GET    /api/upstreams/:name/reconnect        how it goes: waiting | done | failed, in words
 *   POST   /api/upstreams/:name/reconnect/complete  {redirect_url}: the address the browser ended on
 *   DELETE /api/upstreams/:name/reconnect        cancels it
 * Once the new token is stored, the upstream is no longer set aside and deferred mail is due now.
 */
export function reconnectRoutes(deps: ReconnectDeps): { routes: Hono<WebEnv>; close(): void } {
  const { config, logger, events, spool } = deps;
  const flows = new ReconnectFlows({
    dataDir: config.data_dir,
    logger,
    onConnected: (upstream) => {
      // First the breaker and the status, then the mail: the retried mail must find the upstream open.
      events.emit('reconnected', { upstream, at: new Date() });
      // The upstream's mail may be recorded against another one (it was set aside), so all deferred mail is due.
      const ids = retryAll(spool, 'deferred');
      logger.info({ upstream, retried: ids.length }, 'reconnect: deferred mail is due now');
    },
  });
  const api = new Hono<WebEnv>();

  api.get('/reconnect', (c) =>
    c.json({
      upstreams: config.upstreams.flatMap((u) => {
        const target = signInTarget(u);
        if (!target) return [];
        return [{ upstream: u.name, provider: target.provider, flow: target.flow, has_token: hasToken(config, target), state: flows.view(u.name)?.state ?? null }];
      }),
    }),
  );

  api.post('/upstreams/:name/reconnect', async (c) => {
    const target = targetOf(c, config);
    if (target instanceof Response) return target;
    try {
      return c.json(await flows.start(target), 201);
    } catch (err) {
      return refusal(c, err);
    }
  });

  api.get('/upstreams/:name/reconnect', (c) => {
    const target = targetOf(c, config);
    if (target instanceof Response) return target;
    const view = flows.view(target.upstream.name);
    return view ? c.json(view) : c.json({ error: `no sign-in for ${target.upstream.name} was started: POST to this address starts one` }, 404);
  });

  api.post('/upstreams/:name/reconnect/complete', async (c) => {
    const target = targetOf(c, config);
    if (target instanceof Response) return target;
    const body = (await c.req.json().catch(() => null)) as { redirect_url?: unknown } | null;
    const url = body?.redirect_url;
    if (typeof url !== 'string' || url.trim() === '' || url.length > 8192) {
      return c.json({ error: 'redirect_url: expected the whole address from the browser\'s address bar, as JSON {"redirect_url": "http://127.0.0.1:…/?state=…&code=…"}' }, 400);
    }
    try {
      return c.json(await flows.complete(target.upstream.name, url));
    } catch (err) {
      return refusal(c, err);
    }
  });

  api.delete('/upstreams/:name/reconnect', (c) => {
    const target = targetOf(c, config);
    if (target instanceof Response) return target;
    if (!flows.cancel(target.upstream.name)) return c.json({ error: `no sign-in for ${target.upstream.name} is waiting` }, 409);
    return c.json(flows.view(target.upstream.name));
  });

  return { routes: api, close: () => flows.close() };
}

function targetOf(c: Context<WebEnv>, config: Config): SignInTarget | Response {
  const name = c.req.param('name') ?? '';
  const upstream = config.upstreams.find((u) => u.name === name);
  if (!upstream) return c.json({ error: `no upstream named "${name}" (have: ${config.upstreams.map((u) => u.name).join(', ')})` }, 404);
  const target = signInTarget(upstream);
  if (!target) {
    return c.json({ error: `upstream ${name} (type ${upstream.type}) has no sign-in to renew: only gmail-oauth2, gmail-api and microsoft365-oauth2 with a person's refresh token have one` }, 409);
  }
  return target;
}

function hasToken(config: Config, target: SignInTarget): boolean {
  return refreshTokenOrigin(config.data_dir, target.upstream.name, target.upstream.refresh_token) !== 'none';
}

function refusal(c: Context<WebEnv>, err: unknown): Response {
  if (err instanceof ReconnectRefusal) return c.json({ error: err.message, ...(err.reason ? { reason: err.reason } : {}) }, err.status);
  throw err;
}
