import { readFileSync } from 'node:fs';
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import type { Logger } from 'pino';
import type { MqttConfig } from '../config/mqtt.js';
import type { Feature } from '../feature.js';

/** Reconnect waits grow from the first to the last, doubling, while the broker stays away. */
export const RECONNECT_FIRST_MS = 1000;
export const RECONNECT_MAX_MS = 60_000;
/** What may wait in the socket for a slow broker before publishes are dropped (see `publish`). */
const MAX_UNSENT_BYTES = 1024 * 1024;
/** How long a clean shutdown waits to say `offline` and disconnect before it just closes. */
const END_TIMEOUT_MS = 2000;

/** `relaybox.example.com` → `relaybox_example_com`: safe as a topic level and a Home Assistant id. */
export function nodeIdOf(config: MqttConfig, hostname: string): string {
  if (config.node_id) return config.node_id;
  return hostname.toLowerCase().replace(/[^a-z0-9_-]+/g, '_').replace(/^_+|_+$/g, '') || 'relaybox';
}

/** Called for each message on a subscribed filter; the message is acknowledged when it resolves. */
export type MessageHandler = (topic: string, payload: Buffer) => Promise<void>;

interface Subscription {
  filter: string;
  qos: 0 | 1;
  handler: MessageHandler;
}

/** MQTT's matching: `+` is one level, a trailing `#` any number of them (the parent included). */
export function topicMatches(filter: string, topic: string): boolean {
  const f = filter.split('/');
  const t = topic.split('/');
  // `#` and `+` never match a first level starting with `$` ($SYS and friends).
  if (topic.startsWith('$') && (f[0] === '#' || f[0] === '+')) return false;
  for (let i = 0; i < f.length; i++) {
    if (f[i] === '#') return i === f.length - 1;
    if (i >= t.length) return false;
    if (f[i] !== '+' && f[i] !== t[i]) return false;
  }
  return f.length === t.length;
}

/**
 * The one connection to the broker that status out and alerts in share: one client id, one will.
 * The broker is optional and may come and go; nothing here ever throws for it being away, and
 * nothing is queued for it while it is: callers publish only while connected (`publish` says
 * whether it did), and mqtt.js is told not to queue QoS 0 (`queueQoSZero: false`).
 *
 * Alerts are QoS 1 with a persistent session (`clean: false`, a fixed client id): the broker
 * keeps what arrives while relaybox is away, and redelivers what relaybox has not acknowledged.
 * An incoming message is acknowledged only when its handler has resolved (the alert is in the
 * spool): mqtt.js sends the PUBACK after the `handleMessage` callback, one message at a time;
 * a handler that fails leaves it unacknowledged, and a reconnect makes the broker send it again.
 * `customHandleAcks` would do the same but only under MQTT 5, and under 3.1.1 it silently acks at
 * once; `handleMessage` holds the ack back under both.
 */
export class BrokerConnection implements Feature {
  readonly name = 'mqtt';
  /** `<topic_prefix>/<node_id>`, the root of everything relaybox publishes. */
  readonly base: string;
  readonly nodeId: string;
  readonly availabilityTopic: string;
  private client: MqttClient | undefined;
  private readonly subscriptions: Subscription[] = [];
  private readonly connectListeners: (() => void)[] = [];
  private away = false;
  private redeliveryTimer: NodeJS.Timeout | undefined;
  private redeliveryDelay = RECONNECT_FIRST_MS;

  constructor(
    private readonly config: MqttConfig,
    private readonly options: { hostname: string; logger: Logger },
  ) {
    this.nodeId = nodeIdOf(config, options.hostname);
    this.base = `${config.topic_prefix}/${this.nodeId}`;
    this.availabilityTopic = `${this.base}/availability`;
  }

  get connected(): boolean {
    return this.client?.connected ?? false;
  }

  /** The mqtt.js client, for tests that check it keeps nothing queued while the broker is away. */
  get mqttClient(): MqttClient | undefined {
    return this.client;
  }

  /** Runs on every (re)connection: the place to publish retained state again. */
  onConnect(listener: () => void): void {
    this.connectListeners.push(listener);
  }

  /** Register before `start`: a persistent session may deliver the moment the connection opens. */
  subscribe(filter: string, qos: 0 | 1, handler: MessageHandler): void {
    this.subscriptions.push({ filter, qos, handler });
  }

  /**
   * Publishes when connected; false (and nothing kept) when not, or when the socket still holds
   * more than MAX_UNSENT_BYTES: a broker that reads slowly must not make relaybox buffer without end.
   */
  publish(topic: string, payload: string, options: { retain?: boolean } = {}): boolean {
    const client = this.client;
    if (!client?.connected) return false;
    if ((client.stream?.writableLength ?? 0) > MAX_UNSENT_BYTES) return false;
    client.publish(topic, payload, { qos: 0, retain: options.retain ?? false }, (err) => {
      if (err) this.options.logger.debug({ err, topic }, 'MQTT publish failed');
    });
    return true;
  }

  async start(): Promise<void> {
    const { logger } = this.options;
    // mqtt.js only reads these when it (re)connects, so a missing CA file is found now, not later.
    const ca = this.config.tls.ca ? readFileSync(this.config.tls.ca) : undefined;
    const persistent = this.subscriptions.some((s) => s.qos > 0);
    const options: IClientOptions = {
      clientId: `relaybox_${this.nodeId}`,
      clean: !persistent,
      protocolVersion: 4,
      keepalive: 30,
      connectTimeout: 10_000,
      reconnectPeriod: RECONNECT_FIRST_MS,
      reconnectOnConnackError: true,
      queueQoSZero: false,
      resubscribe: false, // subscribe() below runs on every connect, session or not
      will: { topic: this.availabilityTopic, payload: Buffer.from('offline'), qos: 1, retain: true },
      ...(this.config.username !== undefined ? { username: this.config.username } : {}),
      ...(this.config.password !== undefined ? { password: this.config.password } : {}),
      ...(ca ? { ca } : {}),
      rejectUnauthorized: this.config.tls.verify,
    };
    const client = mqtt.connect(this.config.url, options);
    this.client = client;
    client.handleMessage = (packet, done) => {
      this.dispatch(packet.topic, packet.payload as Buffer).then(
        () => {
          this.redeliveryDelay = RECONNECT_FIRST_MS;
          done();
        },
        (err: unknown) => {
          logger.error({ err, topic: packet.topic }, 'MQTT message not taken; the broker keeps it and sends it again');
          // With an error mqtt.js sends no PUBACK and goes on with the next message.
          done(err instanceof Error ? err : new Error(String(err)));
          if (packet.qos > 0) this.askForRedelivery();
        },
      );
    };
    client.on('connect', () => {
      client.options.reconnectPeriod = RECONNECT_FIRST_MS;
      logger.info({ url: this.safeUrl(), base: this.base }, this.away ? 'MQTT broker reachable again' : 'connected to the MQTT broker');
      this.away = false;
      this.subscribeAll(client);
      client.publish(this.availabilityTopic, 'online', { qos: 0, retain: true });
      for (const listener of this.connectListeners) listener();
    });
    // Each failed attempt doubles the wait before the next, up to a minute.
    client.on('reconnect', () => {
      client.options.reconnectPeriod = Math.min((client.options.reconnectPeriod ?? RECONNECT_FIRST_MS) * 2, RECONNECT_MAX_MS);
    });
    client.on('offline', () => {
      if (!this.away) logger.warn({ url: this.safeUrl() }, 'MQTT broker away; status is republished when it is back, mail flows meanwhile');
      this.away = true;
    });
    client.on('error', (err) => {
      // Refused connections repeat every attempt; the 'offline' warning already said so.
      if (!this.away || !/ECONNREFUSED|ECONNRESET|ETIMEDOUT|EHOSTUNREACH/.test(String((err as NodeJS.ErrnoException).code))) {
        logger.warn({ err: { message: err.message, code: (err as NodeJS.ErrnoException).code } }, 'MQTT connection problem');
      }
    });
  }

  /**
   * A broker resends an unacknowledged message only when the session resumes, so reconnect
   * (cleanly: no will) after a moment, waiting longer each time it keeps failing.
   */
  private askForRedelivery(): void {
    if (this.redeliveryTimer) return;
    this.redeliveryTimer = setTimeout(() => {
      this.redeliveryTimer = undefined;
      this.client?.reconnect();
    }, this.redeliveryDelay);
    this.redeliveryDelay = Math.min(this.redeliveryDelay * 2, RECONNECT_MAX_MS);
  }

  /** Says `offline` (retained) while it still can, then disconnects; the will is for crashes. */
  async stop(): Promise<void> {
    clearTimeout(this.redeliveryTimer);
    const client = this.client;
    if (!client) return;
    this.client = undefined;
    if (client.connected) {
      await new Promise<void>((resolve) => client.publish(this.availabilityTopic, 'offline', { qos: 0, retain: true }, () => resolve()));
    }
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => client.end(true, () => resolve()), END_TIMEOUT_MS);
      client.end(!client.connected, () => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  private subscribeAll(client: MqttClient): void {
    if (this.subscriptions.length === 0) return;
    const map = Object.fromEntries(this.subscriptions.map((s) => [s.filter, { qos: s.qos }]));
    client.subscribe(map, (err) => {
      if (err) this.options.logger.error({ err }, 'MQTT subscription refused');
    });
  }

  /** Every subscription whose filter matches gets the message; one not matching any is let go. */
  private async dispatch(topic: string, payload: Buffer): Promise<void> {
    for (const s of this.subscriptions) {
      if (topicMatches(s.filter, topic)) await s.handler(topic, payload);
    }
  }

  /** The URL without credentials someone may have written into it. */
  private safeUrl(): string {
    const url = new URL(this.config.url);
    url.username = '';
    url.password = '';
    return url.toString();
  }
}
