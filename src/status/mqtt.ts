import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { MqttConfig } from '../config/mqtt.js';
import type { AuthEvent, MessageEvent } from '../events.js';
import type { Feature, FeatureContext } from '../feature.js';
import { ReplyHints } from '../hints/hint.js';
import { VERSION } from '../version.js';
import { remoteConsoleUrl } from './consoleUrl.js';
import { discoveryMessages } from './homeassistant.js';
import type { BrokerConnection } from './mqttClient.js';

/** SPEC: the status is republished on change, at most once a second. */
export const STATUS_MIN_INTERVAL_MS = 1000;
/** Republished this often without a change too, so that oldest_age_s and uptime_s move. */
const STATUS_REFRESH_MS = 60_000;
/** Where the discovery topics last published are remembered, to clear those no longer wanted. */
export const DISCOVERY_STATE_FILE = 'mqtt-discovery.json';

/**
 * Status out: `<p>/status` (retained, throttled, again on every reconnect), `<p>/events` (one per
 * message state change, only while connected: events the broker misses are counted, not kept),
 * and Home Assistant discovery. Availability and the will belong to the connection.
 */
export class MqttStatus implements Feature {
  readonly name = 'mqtt-status';
  /** Events that happened while the broker was away, since start. */
  droppedEvents = 0;
  private droppedSinceConnect = 0;
  private throttle: NodeJS.Timeout | undefined;
  private changedMeanwhile = false;
  private refresh: NodeJS.Timeout | undefined;
  private readonly statusTopic: string;
  private readonly eventsTopic: string;
  private readonly mqtt: MqttConfig;
  private readonly hints: ReplyHints;
  private readonly onChange = () => this.statusChanged();
  private readonly onMessage = (e: MessageEvent) => this.publishEvent(e);
  private readonly onAuth = (e: AuthEvent) => {
    // Lockouts only: a person may act on one; single failed logins are for the metrics.
    if (e.event !== 'auth_locked') return;
    this.publishToEvents({ event: e.event, service: e.service, client: e.client, until: e.until?.toISOString() ?? null, at: e.at.toISOString() });
  };

  constructor(
    private readonly broker: BrokerConnection,
    private readonly context: FeatureContext,
  ) {
    this.mqtt = context.config.mqtt!;
    this.hints = new ReplyHints(context.config);
    this.statusTopic = `${broker.base}/status`;
    this.eventsTopic = `${broker.base}/events`;
    broker.onConnect(() => this.connected());
    if (this.mqtt.home_assistant.enabled) {
      // Home Assistant says `online` here when it starts: it may have lost what it knew.
      broker.subscribe(`${this.mqtt.home_assistant.discovery_prefix}/status`, 0, async (_topic, payload) => {
        if (payload.toString() === 'online') this.connected();
      });
    }
  }

  async start(): Promise<void> {
    this.context.status.on('change', this.onChange);
    this.context.events.on('message', this.onMessage);
    this.context.events.on('auth', this.onAuth);
    this.refresh = setInterval(this.onChange, STATUS_REFRESH_MS);
    this.refresh.unref();
  }

  async stop(): Promise<void> {
    this.context.status.off('change', this.onChange);
    this.context.events.off('message', this.onMessage);
    this.context.events.off('auth', this.onAuth);
    clearInterval(this.refresh);
    clearTimeout(this.throttle);
    this.throttle = undefined;
  }

  /** Everything retained again: after a broker restart it may have kept nothing. */
  private connected(): void {
    this.publishDiscovery();
    // At once, and the next change no sooner than a second later.
    clearTimeout(this.throttle);
    this.throttle = undefined;
    this.changedMeanwhile = false;
    this.statusChanged();
    if (this.droppedSinceConnect > 0) {
      this.context.logger.info({ dropped: this.droppedSinceConnect }, 'MQTT events missed while the broker was away (the status is current again)');
      this.droppedSinceConnect = 0;
    }
  }

  /** Leading edge at once, then at most one more per interval carrying the last change. */
  private statusChanged(): void {
    if (this.throttle) {
      this.changedMeanwhile = true;
      return;
    }
    this.publishStatus();
    this.throttle = setTimeout(() => {
      this.throttle = undefined;
      if (this.changedMeanwhile) {
        this.changedMeanwhile = false;
        this.statusChanged();
      }
    }, STATUS_MIN_INTERVAL_MS);
    this.throttle.unref();
  }

  private publishStatus(): void {
    if (!this.broker.connected) return; // republished on connect
    this.broker.publish(this.statusTopic, JSON.stringify(this.context.status.snapshot()), { retain: true });
  }

  private publishEvent(e: MessageEvent): void {
    // Only a refusal or a wait has something to fix; a delivery's `250 OK` is not looked up.
    const hint = e.event === 'deferred' || e.event === 'failed' ? this.hints.for(e.upstream, e.reply) : null;
    this.publishToEvents({ id: e.id, event: e.event, upstream: e.upstream, reply: e.reply, hint, at: e.at.toISOString() });
  }

  /** `<p>/events`: message state changes, and security events (`auth_locked`). */
  private publishToEvents(payload: Record<string, unknown>): void {
    if (!this.broker.publish(this.eventsTopic, JSON.stringify(payload))) {
      this.droppedEvents += 1;
      this.droppedSinceConnect += 1;
    }
  }

  /**
   * Publishes the configs, and clears (empty retained payload) those published before that are no
   * longer wanted: an upstream removed, node_id or discovery_prefix changed, discovery turned off.
   */
  private publishDiscovery(): void {
    const { home_assistant } = this.mqtt;
    const wanted = home_assistant.enabled
      ? discoveryMessages({
          discoveryPrefix: home_assistant.discovery_prefix,
          nodeId: this.broker.nodeId,
          base: this.broker.base,
          version: VERSION,
          upstreams: this.context.config.upstreams.map((u) => u.name),
          configurationUrl: this.context.config.http.enabled ? remoteConsoleUrl(this.context.config.http.listen) : undefined,
        })
      : [];
    const wantedTopics = new Set(wanted.map((m) => m.topic));
    const before = this.readPublished();
    let complete = true;
    for (const topic of before) if (!wantedTopics.has(topic)) complete &&= this.broker.publish(topic, '', { retain: true });
    for (const m of wanted) complete &&= this.broker.publish(m.topic, m.payload, { retain: true });
    // Only a complete round may forget the old topics; otherwise the next connect clears them.
    const remember = complete ? [...wantedTopics] : [...new Set([...before, ...wantedTopics])];
    if (remember.length !== before.length || remember.some((t, i) => t !== before[i])) this.writePublished(remember);
  }

  private get stateFile(): string {
    return join(this.context.config.data_dir, DISCOVERY_STATE_FILE);
  }

  private readPublished(): string[] {
    try {
      const parsed = JSON.parse(readFileSync(this.stateFile, 'utf8')) as { topics?: unknown };
      return Array.isArray(parsed.topics) ? parsed.topics.filter((t): t is string => typeof t === 'string') : [];
    } catch {
      return [];
    }
  }

  private writePublished(topics: string[]): void {
    try {
      const tmp = `${this.stateFile}.tmp`;
      writeFileSync(tmp, `${JSON.stringify({ topics }, null, 1)}\n`);
      renameSync(tmp, this.stateFile);
    } catch (err) {
      this.context.logger.warn({ err }, 'could not remember the published Home Assistant discovery topics');
    }
  }
}
