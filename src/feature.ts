import type { Logger } from 'pino';
import type { Config } from './config/schema.js';
import type { RelayEvents } from './events.js';
import type { SpoolStore } from './spool/store.js';
import type { StatusTracker } from './health/tracker.js';

/** What an optional part of the service (MQTT, web console, …) is given; it only listens and reads. */
export interface FeatureContext {
  config: Config;
  logger: Logger;
  events: RelayEvents;
  /** Read through `spool.db` with the spool/log.ts queries; write only through the store's methods. */
  spool: SpoolStore;
  status: StatusTracker;
  /** The configuration file the service was started from (`serve --config`); the console's backup carries it. */
  configPath?: string;
}

/**
 * An independent part of the service wired by app.ts. `start` must not fail the service for an
 * outside dependency that is merely away (a broker down); it fails only on bad configuration.
 * A port it cannot bind leaves it off, logged, while mail goes on (the web console).
 */
export interface Feature {
  readonly name: string;
  start(): Promise<void>;
  stop(): Promise<void>;
}
