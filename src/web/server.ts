import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { formatHostPort, type ListenAddress } from '../config/net.js';
import type { Feature, FeatureContext } from '../feature.js';
import { AuthLockouts } from '../status/lockouts.js';
import { RelayMetrics } from '../status/metrics.js';
import { VERSION } from '../version.js';
import type { ConsoleRoutes } from './console.js';

/**
 * SPEC's `http:` section: the web console, the HTTP API, /healthz and /metrics. The port is
 * opened at start and the metrics count from start; the routes (console.ts) load on the first
 * request.
 */
export class WebConsole implements Feature {
  readonly name = 'http';
  private server: Server | undefined;
  private bound: ListenAddress | undefined;
  private offReason: string | undefined;
  private running = false;
  private readonly metrics: RelayMetrics;
  private readonly lockouts: AuthLockouts;
  private routes: Promise<ConsoleRoutes> | undefined;

  constructor(private readonly context: FeatureContext) {
    const { config, events, status, spool } = context;
    this.metrics = new RelayMetrics({ events, status, db: spool.db, dataDir: config.data_dir, version: VERSION });
    this.lockouts = new AuthLockouts(events);
  }

  /** Where the console actually listens (port 0 in tests becomes a real port); undefined until started. */
  get address(): ListenAddress | undefined {
    return this.bound;
  }

  /** Why the console is off although configured (its port could not be opened); undefined when it is on. */
  get off(): string | undefined {
    return this.offReason;
  }

  async start(): Promise<void> {
    const { host, port } = this.context.config.http.listen;
    const server = createServer((req, res) => this.handle(req, res));
    const failure = await new Promise<NodeJS.ErrnoException | undefined>((resolve) => {
      server.once('error', resolve);
      server.listen(port, host, () => resolve(undefined));
    });
    if (failure) {
      // Mail matters more than the console: SMTP and delivery go on without it (a port taken by
      // Mailpit or MailHog, which use 8025 too, is the usual reason).
      this.offReason = `http.listen ${formatHostPort({ host, port })}: ${listenFailure(failure, port)}`;
      this.context.logger.error({ http: formatHostPort({ host, port }), code: failure.code }, `console off: ${this.offReason}; SMTP and delivery go on. Change http.listen (or set http.enabled: false) and restart`);
      return;
    }
    server.on('error', (err) => this.context.logger.error({ err }, 'http server error'));
    const info = server.address() as AddressInfo;
    this.server = server;
    this.bound = { host, port: info.port };
    this.running = true;
    const auth = this.context.config.http.admin_token ? 'admin_token' : 'none (loopback only)';
    this.context.logger.info({ http: formatHostPort(this.bound), auth }, 'http listening');
  }

  async stop(): Promise<void> {
    this.running = false;
    this.metrics.close();
    this.lockouts.close();
    void this.routes?.then((routes) => routes.close(), () => {});
    const server = this.server;
    if (!server) return;
    this.server = undefined;
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    server.closeAllConnections(); // browsers keep connections open; they must not hold the stop
    await closed;
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    this.routes ??= import('./console.js').then(({ ConsoleRoutes }) => new ConsoleRoutes({ context: this.context, metrics: this.metrics, lockouts: this.lockouts, running: () => this.running }));
    this.routes.then(
      (routes) => routes.listener(req, res),
      (err: unknown) => {
        this.context.logger.error({ err }, 'the web console could not be loaded');
        res.writeHead(500, { 'Content-Type': 'application/json' }).end('{"error":"internal error; see the relaybox log"}');
      },
    );
  }
}

function listenFailure(err: NodeJS.ErrnoException, port: number): string {
  if (err.code === 'EADDRINUSE') return `another program is listening there${port === 8025 ? ' (Mailpit and MailHog use 8025 too)' : ''}`;
  if (err.code === 'EACCES') return 'permission denied (ports below 1024 need CAP_NET_BIND_SERVICE)';
  if (err.code === 'EADDRNOTAVAIL') return 'no network interface of this machine has that address';
  return err.message;
}

/** The `http:` feature when enabled; app.ts adds it to the optional parts. */
export function webFeature(context: FeatureContext): Feature[] {
  return context.config.http.enabled ? [new WebConsole(context)] : [];
}
