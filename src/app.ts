import type { Logger } from 'pino';
import { formatHostPort, type ListenAddress } from './config/net.js';
import type { Config } from './config/schema.js';
import { DeliveryThread } from './delivery/thread.js';
import { RelayEvents } from './events.js';
import { SmtpIngress } from './ingress/smtp.js';
import { isDiskFull, openSpoolMakingRoom } from './spool/diskFull.js';
import { DiskSpace } from './spool/diskSpace.js';
import { SpoolStore } from './spool/store.js';
import type { Feature, FeatureContext } from './feature.js';
import { UpstreamBudgets } from './health/budgets.js';
import { StatusTracker } from './health/tracker.js';
import { rateLimitsOf } from './config/rate.js';
import { ReplyHints } from './hints/hint.js';
import { VERSION } from './version.js';
import type { WebConsole } from './web/server.js';

const PRUNE_EVERY_MS = 6 * 3_600_000;

/**
 * The service, wired: spool → delivery → upstreams, SMTP ingress in front, events for whoever
 * listens. Starts in dependency order and stops in reverse, so nothing is accepted that cannot
 * be stored and nothing is stored half.
 */
interface AppParts {
  config: Config;
  logger: Logger;
  events: RelayEvents;
  spool: SpoolStore;
  delivery: DeliveryThread;
  ingress: SmtpIngress;
  status: StatusTracker;
  features: Feature[];
  disk: DiskSpace;
}

export class RelayApp {
  private pruneTimer: NodeJS.Timeout | undefined;
  private stopping: Promise<void> | undefined;
  private smtpBound: ListenAddress[] = [];

  private constructor(private readonly parts: AppParts) {}

  /** Opens the spool, recovers what a crash left, starts delivery and then ingress. */
  static async start(config: Config, logger: Logger, options: { configPath?: string } = {}): Promise<RelayApp> {
    const events = new RelayEvents();
    // On a full disk relaybox starts all the same: no new mail until there is room, delivery goes on.
    const db = openSpoolMakingRoom(config.data_dir);
    const spool = new SpoolStore(db, events, { queued: (message) => delivery.queue(message), logger });
    const disk = new DiskSpace({ dataDir: config.data_dir, db, minFreeBytes: config.smtp.min_free_bytes, maxMessageBytes: config.smtp.max_message_bytes, logger });
    const recovered = spool.recoverInterrupted();
    if (recovered > 0) logger.warn({ count: recovered }, 'messages interrupted by a crash are queued again');
    // Before delivery starts: the totals it remembers count the log up to here, events the rest.
    const upstreamNames = config.upstreams.map((u) => u.name);
    const budgets = new UpstreamBudgets({ events, db, limits: new Map(config.upstreams.map((u) => [u.name, rateLimitsOf(u)])) });
    const status = new StatusTracker({ events, db, upstreams: upstreamNames, version: VERSION, disk, hints: new ReplyHints(config), budgets });
    // Mail committed here is handed to the delivery thread from memory, not read back.
    const delivery = new DeliveryThread({ config, logger, events, nextDueAt: () => spool.nextDueAt(), onCrash: (err) => crashed(logger, err) });
    try {
      await delivery.start();
    } catch (err) {
      spool.close();
      throw err;
    }
    // The delivery thread starts while the device is still sending, not after its 250.
    const ingress = new SmtpIngress({ config, spool, logger, events, onTransaction: () => delivery.expectMail(), diskSpace: disk });
    const features = await createFeatures({ config, logger, events, spool, status, configPath: options.configPath });
    const app = new RelayApp({ config, logger, events, spool, delivery, ingress, status, features, disk });
    disk.start();
    events.on('message', (e) => {
      if (e.event === 'dropped') delivery.dropped(e.id);
    });
    events.on('due', () => delivery.due());
    events.on('reconnected', (e) => delivery.reconnected(e.upstream));
    app.prune();
    try {
      app.smtpBound = await ingress.start();
      for (const feature of features) await feature.start();
      const http = app.httpAddress ? formatHostPort(app.httpAddress) : 'off';
      logger.info({ smtp: app.smtpBound.map(formatHostPort), http, upstreams: upstreamNames, data_dir: config.data_dir }, 'relaybox started');
    } catch (err) {
      await app.stop();
      throw err;
    }
    return app;
  }

  get events(): RelayEvents {
    return this.parts.events;
  }

  get spool(): SpoolStore {
    return this.parts.spool;
  }

  get status(): StatusTracker {
    return this.parts.status;
  }

  /** Where SMTP actually listens (port 0 in tests becomes a real port). */
  get smtpAddresses(): ListenAddress[] {
    return this.smtpBound;
  }

  /** Where the web console and API listen (port 0 in tests becomes a real port); undefined when http is off. */
  get httpAddress(): ListenAddress | undefined {
    return this.webConsole?.address;
  }

  /** Why the configured console is off (its port could not be opened); the service runs on without it. */
  get httpOff(): string | undefined {
    return this.webConsole?.off;
  }

  private get webConsole(): WebConsole | undefined {
    return this.parts.features.find((f) => f.name === 'http') as WebConsole | undefined;
  }

  /** Stop accepting, let deliveries in flight finish (bounded), close the spool. Idempotent. */
  stop(): Promise<void> {
    this.stopping ??= (async () => {
      const { ingress, delivery, spool, config, logger, features, disk, status } = this.parts;
      clearTimeout(this.pruneTimer);
      disk.stop();
      await ingress.stop();
      for (const feature of [...features].reverse()) {
        await feature.stop().catch((err: unknown) => logger.error({ err, feature: feature.name }, 'feature did not stop cleanly'));
      }
      await delivery.stop(config.delivery.shutdown_grace);
      status.stop();
      spool.close();
      logger.info('relaybox stopped');
    })();
    return this.stopping;
  }

  private prune(): void {
    const { spool, config, logger } = this.parts;
    try {
      const removed = spool.prune(Date.now() - config.delivery.keep_log);
      if (removed > 0) logger.info({ removed }, 'pruned old messages from the log');
    } catch (err) {
      // On a full disk even a delete may find no room for the log of the change: next time.
      logger[isDiskFull(err) ? 'warn' : 'error']({ err }, 'pruning the log failed');
    }
    this.pruneTimer = setTimeout(() => this.prune(), PRUNE_EVERY_MS);
    this.pruneTimer.unref();
  }
}

/** The optional parts, each present when its section is configured. */
async function createFeatures(context: FeatureContext): Promise<Feature[]> {
  // Loaded only when configured: each library costs a Pi megabytes of resident memory.
  const features: Feature[] = [];
  if (context.config.mqtt) features.push(...(await mqttFeatures(context)));
  if (context.config.http.enabled) features.push(...(await import('./web/server.js')).webFeature(context));
  if (context.config.notify) features.push(new (await import('./notify/notices.js')).MailNotices(context));
  return features;
}

/**
 * One broker connection shared by status out and alerts in (one client id, one will). The
 * connection comes first so that it stops last: alerts finish what they took, then `offline`.
 */
async function mqttFeatures(context: FeatureContext): Promise<Feature[]> {
  const [{ BrokerConnection }, { MqttStatus }, { MqttAlerts }] = await Promise.all([
    import('./status/mqttClient.js'),
    import('./status/mqtt.js'),
    import('./ingress/mqttAlerts.js'),
  ]);
  const broker = new BrokerConnection(context.config.mqtt!, { hostname: context.config.hostname, logger: context.logger });
  return [broker, new MqttStatus(broker, context), new MqttAlerts(broker, context)];
}

/** Without its delivery thread the service would take mail and never send it: better to restart. */
function crashed(logger: Logger, err: Error): never {
  logger.fatal({ err }, 'the delivery thread died; exiting so that the service manager restarts relaybox');
  logger.flush();
  process.exit(70);
}
