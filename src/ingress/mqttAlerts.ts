import type { Logger } from 'pino';
import type { AlertRule } from '../config/mqtt.js';
import type { Feature, FeatureContext } from '../feature.js';
import { composeMessage } from '../message/compose.js';
import { HeldAlerts, type AlertWindow } from '../spool/heldAlerts.js';
import type { SpoolStore } from '../spool/store.js';
import type { BrokerConnection } from '../status/mqttClient.js';
import { renderBody, renderDigest, renderSubject } from './alertTemplate.js';

/** A digest lists at most this many alerts; a bigger backlog goes out as several digests at once. */
const DIGEST_MAX_ALERTS = 500;
/** setTimeout's limit (~24.8 days); a longer wait is taken in steps. */
const MAX_TIMER_MS = 2 ** 31 - 1;
/** After a digest could not be spooled (a full disk), try again this much later. */
const RETRY_FLUSH_MS = 60_000;

/** Identifies a rule across restarts by what it does, not where it stands in the list. */
function ruleKey(rule: AlertRule): string {
  return `${rule.topic}\n${rule.to.join(',')}`;
}

/**
 * MQTT in: each message on an `mqtt.alerts` rule's topic becomes a mail in the spool, like any
 * SMTP message. The broker gets its acknowledgement only after the mail (or, inside a storm
 * guard's interval, the held alert) is committed, so a crash never loses an alert: at worst it
 * comes again and is sent twice.
 *
 * Storm guard (`min_interval`): per rule and topic the first alert goes out at once and opens a
 * window; alerts inside it are held in the spool (table alert_held), and when the window ends
 * they go out as one digest, which opens the next window. A steady storm thus yields one mail
 * per interval. Windows and held alerts are in the spool too, so timers are re-armed after a
 * restart and no digest is lost to one.
 */
export class MqttAlerts implements Feature {
  readonly name = 'mqtt-alerts';
  private readonly holds: HeldAlerts;
  private readonly spool: SpoolStore;
  private readonly logger: Logger;
  private readonly timers = new Map<string, NodeJS.Timeout>();
  /** Alerts and digests run one at a time, so a window is never read and changed by two at once. */
  private chain: Promise<unknown> = Promise.resolve();
  private stopping = false;

  constructor(
    broker: BrokerConnection,
    private readonly context: FeatureContext,
  ) {
    this.spool = context.spool;
    this.logger = context.logger;
    this.holds = new HeldAlerts(context.spool.db);
    const rules = context.config.mqtt?.alerts ?? [];
    for (const filter of new Set(rules.map((r) => r.topic))) {
      const mine = rules.filter((r) => r.topic === filter);
      const qos = Math.max(...mine.map((r) => r.qos)) as 0 | 1;
      broker.subscribe(filter, qos, (topic, payload) => this.receive(mine, topic, payload));
    }
  }

  /** Re-arms the windows a previous run left, so their held alerts still go out. */
  async start(): Promise<void> {
    for (const w of this.holds.windows()) this.arm(w);
  }

  /** Lets the alert in progress finish; what is held stays in the spool for the next start. */
  async stop(): Promise<void> {
    this.stopping = true;
    for (const timer of this.timers.values()) clearTimeout(timer);
    this.timers.clear();
    await this.chain.catch(() => undefined);
  }

  private receive(rules: AlertRule[], topic: string, payload: Buffer): Promise<void> {
    // Not acknowledged: the broker keeps it for the next run.
    if (this.stopping) return Promise.reject(new Error('relaybox is stopping'));
    const at = Date.now();
    return this.serial(async () => {
      for (const rule of rules) await this.handle(rule, topic, payload, at);
    });
  }

  private async handle(rule: AlertRule, topic: string, payload: Buffer, at: number): Promise<void> {
    const key = ruleKey(rule);
    const from = rule.from ?? `relaybox@${this.context.config.hostname}`;
    if (rule.min_interval > 0) {
      const window = this.holds.window(key, topic);
      // Also hold when the window has ended but its digest has not gone yet: keeps the order.
      if (window && (window.holdUntil > at || this.holds.countHeld(key, topic) > 0)) {
        this.holds.hold(key, topic, at, payload);
        this.arm(window);
        return;
      }
    }
    const input = { topic, payload, at: new Date(at) };
    const id = await this.spoolMail(from, rule.to, renderSubject(rule.subject, input), renderBody(rule.body, input), topic);
    this.logger.info({ id, topic, rule: rule.topic }, 'MQTT alert spooled');
    if (rule.min_interval > 0) {
      const window: AlertWindow = { rule: key, topic, holdUntil: at + rule.min_interval, intervalMs: rule.min_interval, mailFrom: from, recipients: rule.to };
      this.holds.openWindow(window);
      this.arm(window);
    }
  }

  /** When the window ends: its held alerts as digests, then the next window (or none if quiet). */
  private async flush(rule: string, topic: string): Promise<void> {
    const window = this.holds.window(rule, topic);
    if (!window) return;
    if (window.holdUntil > Date.now()) return this.arm(window); // a long wait taken in steps
    let sent = 0;
    for (;;) {
      const held = this.holds.held(rule, topic, DIGEST_MAX_ALERTS);
      if (held.length === 0) break;
      const digest = renderDigest(topic, held, window.intervalMs);
      const id = await this.spoolMail(window.mailFrom, window.recipients, digest.subject, digest.text, topic);
      // Spooled before forgotten: a crash in between sends this digest twice, never zero times.
      this.holds.release(rule, topic, held[held.length - 1]!.id, Date.now() + window.intervalMs);
      this.logger.info({ id, topic, alerts: held.length }, 'MQTT alert digest spooled');
      sent += held.length;
    }
    if (sent === 0) {
      this.holds.release(rule, topic, 0, null);
      return;
    }
    this.arm({ ...window, holdUntil: Date.now() + window.intervalMs });
  }

  private arm(window: AlertWindow): void {
    if (this.stopping) return;
    const id = `${window.rule}\n${window.topic}`;
    clearTimeout(this.timers.get(id));
    const delay = Math.min(Math.max(0, window.holdUntil - Date.now()), MAX_TIMER_MS);
    const timer = setTimeout(() => {
      this.timers.delete(id);
      this.serial(() => this.flush(window.rule, window.topic)).catch((err: unknown) => {
        this.logger.error({ err, topic: window.topic }, 'MQTT alert digest not spooled; trying again later');
        this.arm({ ...window, holdUntil: Date.now() + RETRY_FLUSH_MS });
      });
    }, delay);
    timer.unref();
    this.timers.set(id, timer);
  }

  private async spoolMail(from: string, to: string[], subject: string, text: string, topic: string): Promise<number> {
    const bytes = await composeMessage({ from, to, subject, text, hostname: this.context.config.hostname });
    const body = this.spool.receive();
    try {
      body.write(bytes);
      return await this.spool.accept(body, { mailFrom: from, recipients: to, client: `mqtt ${topic}`, subject });
    } catch (err) {
      body.discard();
      throw err;
    }
  }

  private serial<T>(work: () => Promise<T>): Promise<T> {
    const run = this.chain.then(work, work);
    this.chain = run.catch(() => undefined);
    return run;
  }
}
