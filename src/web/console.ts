// Routing: Hono on @hono/node-server. Small (no dependencies of its own), maintained, typed, runs on
// Node 20 as plain ESM with no build step, and its Request/Response handlers let the CSV export
// stream. The alternatives were hand-parsing paths or find-my-way plus our own body/cookie code.
import { getRequestListener } from '@hono/node-server';
import { Hono } from 'hono';
import { createHash } from 'node:crypto';
import { constants as fsConstants, readdirSync, readFileSync } from 'node:fs';
import { access } from 'node:fs/promises';
import type { RequestListener } from 'node:http';
import { extname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FeatureContext } from '../feature.js';
import { spoolPath } from '../spool/db.js';
import type { AuthLockouts } from '../status/lockouts.js';
import type { RelayMetrics } from '../status/metrics.js';
import { apiRoutes } from './api.js';
import { WebAuth, type WebEnv } from './auth.js';
import { backupDownload } from './backup.js';
import { logCsv } from './csv.js';
import { reconnectRoutes } from './reconnect.js';

/** Beside this module in src/ (tests) and in dist/ (the build copies them). */
const ASSETS_DIR = fileURLToPath(new URL('./assets/', import.meta.url));

const CONTENT_TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
};

const SECURITY_HEADERS: Record<string, string> = {
  'Content-Security-Policy':
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
  'X-Content-Type-Options': 'nosniff',
  'X-Frame-Options': 'DENY',
  'Referrer-Policy': 'no-referrer',
  'Cross-Origin-Opener-Policy': 'same-origin',
  'Cross-Origin-Resource-Policy': 'same-origin',
};

export interface ConsoleDeps {
  context: FeatureContext;
  metrics: RelayMetrics;
  /** Addresses locked out after failed logins: /api/status lists them for the console. */
  lockouts?: AuthLockouts;
  /** False once relaybox is stopping: /healthz says so. */
  running: () => boolean;
}

/**
 * The console's routes as a node:http listener: the pages, the API, /healthz and /metrics.
 * server.ts loads this module on the first request, so a box whose console nobody opens never
 * carries Hono and Node's fetch classes (about 4 MiB).
 */
export class ConsoleRoutes {
  readonly listener: RequestListener;
  private readonly auth: WebAuth;
  private readonly assets = loadAssets();
  private readonly reconnect: ReturnType<typeof reconnectRoutes>;

  constructor(private readonly deps: ConsoleDeps) {
    const { config } = deps.context;
    this.auth = new WebAuth(config.http.admin_token, `relaybox_session_${config.http.listen.port}`, { events: deps.context.events, logger: deps.context.logger });
    this.reconnect = reconnectRoutes(deps.context);
    this.listener = getRequestListener(this.app().fetch, { overrideGlobalObjects: false });
  }

  /** Forgets every session and ends every sign-in: a stopped console lets nobody in. */
  close(): void {
    this.auth.clear();
    this.reconnect.close();
  }

  private app(): Hono<WebEnv> {
    const { config, logger } = this.deps.context;
    const app = new Hono<WebEnv>();
    app.use('*', async (c, next) => {
      await next();
      for (const [name, value] of Object.entries(SECURITY_HEADERS)) c.res.headers.set(name, value);
      if (!c.res.headers.has('Cache-Control')) c.res.headers.set('Cache-Control', c.req.path.startsWith('/assets/') ? 'no-cache' : 'no-store');
    });
    app.use('*', this.auth.middleware());
    this.auth.routes(app);

    app.on(['GET', 'HEAD'], '/healthz', async (c) => {
      const problem = await this.healthProblem();
      if (problem) return c.json({ status: 'unavailable', reason: problem }, 503);
      // Running and delivering, but new mail hears 452 4.3.1 until there is room (smtp.min_free_bytes).
      const disk = this.deps.context.status.disk();
      if (disk && !disk.accepting) return c.json({ status: 'degraded', reason: disk.reason, free_bytes: disk.free_bytes, min_free_bytes: disk.min_free_bytes }, 503);
      return c.json({ status: 'ok' });
    });
    app.get('/metrics', async (c) => c.body(await this.deps.metrics.text(), 200, { 'Content-Type': this.deps.metrics.contentType }));
    app.get('/', (c) => this.asset(c.req.header('if-none-match'), 'index.html'));
    app.get('/assets/:name', (c) => this.asset(c.req.header('if-none-match'), c.req.param('name')));
    app.get('/api/log.csv', logCsv(config.data_dir));
    app.get('/api/backup', backupDownload({ config, configPath: this.deps.context.configPath, logger }));
    app.route('/api', apiRoutes({ ...this.deps.context, lockouts: this.deps.lockouts }));
    app.route('/api', this.reconnect.routes);

    app.notFound((c) => c.json({ error: `no route ${c.req.method} ${c.req.path}` }, 404));
    app.onError((err, c) => {
      logger.error({ err, method: c.req.method, path: c.req.path }, 'http request failed');
      return c.json({ error: 'internal error; see the relaybox log' }, 500);
    });
    return app;
  }

  private asset(ifNoneMatch: string | undefined, name: string): Response {
    const file = this.assets.get(name);
    if (!file) return new Response(JSON.stringify({ error: `no asset ${name}` }), { status: 404, headers: { 'Content-Type': 'application/json' } });
    if (ifNoneMatch === file.etag) return new Response(null, { status: 304, headers: { ETag: file.etag } });
    return new Response(file.body, { headers: { 'Content-Type': file.type, ETag: file.etag } });
  }

  /** Null when the service runs, the database is open and data_dir is writable (room: see the disk status). */
  private async healthProblem(): Promise<string | null> {
    const { config, spool } = this.deps.context;
    if (!this.deps.running()) return 'relaybox is stopping';
    if (!spool.db.open) return 'the spool database is closed';
    for (const path of [config.data_dir, spoolPath(config.data_dir)]) {
      try {
        await access(path, fsConstants.W_OK);
      } catch (err) {
        return `${path} is not writable (${(err as NodeJS.ErrnoException).code ?? String(err)})`;
      }
    }
    return null;
  }
}

interface Asset {
  body: Buffer;
  type: string;
  etag: string;
}

/** Read once at start: a handful of small files, served from memory with an ETag of their content. */
function loadAssets(): Map<string, Asset> {
  const assets = new Map<string, Asset>();
  for (const name of readdirSync(ASSETS_DIR)) {
    const type = CONTENT_TYPES[extname(name)];
    if (!type) continue;
    const body = readFileSync(join(ASSETS_DIR, name));
    assets.set(name, { body, type, etag: `"${createHash('sha256').update(body).digest('base64url').slice(0, 16)}"` });
  }
  return assets;
}
