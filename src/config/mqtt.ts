import { z } from 'zod';
import { duration, readableFile } from './fields.js';
import { secret } from './secret.js';

/**
 * `mqtt:` — status out (availability, status, events, Home Assistant discovery) and sensor alerts
 * in. Optional: without it, or with the broker away, relaybox accepts and delivers as ever.
 */

const brokerUrl = z.string().refine(
  (text) => {
    try {
      const url = new URL(text);
      return (url.protocol === 'mqtt:' || url.protocol === 'mqtts:') && url.hostname !== '';
    } catch {
      return false;
    }
  },
  { error: (issue) => `expected mqtt://host[:port] or mqtts://host[:port], got "${String(issue.input)}"` },
);

/** A subscription filter: `+` stands for one whole level, `#` only as the last one. */
export function isTopicFilter(text: string): boolean {
  if (text === '' || text.includes('\u0000')) return false;
  const levels = text.split('/');
  return levels.every((level, i) => {
    if (level.includes('#')) return level === '#' && i === levels.length - 1;
    return !level.includes('+') || level === '+';
  });
}

const topicFilter = z.string().refine(isTopicFilter, {
  error: (issue) => `expected an MQTT topic filter like sensors/+/alert or ups/#, got "${String(issue.input)}"`,
});

/** A topic level or levels we publish under: no wildcards, no empty level at either end. */
const topicBase = z
  .string()
  .regex(/^[^+#/][^+#]*$/, 'expected topic levels without "+", "#" or a leading "/"')
  .transform((text) => text.replace(/\/+$/, ''));

const address = z.string().regex(/^[^\s@<>]+@[^\s@<>]+$/, 'expected a mail address like ops@example.com');

/**
 * One rule of `mqtt.alerts`: messages on `topic` become mail to `to`. Templates are described in
 * config/relaybox.example.yaml and src/ingress/alertTemplate.ts.
 */
export const alertRule = z.strictObject({
  topic: topicFilter,
  to: z.array(address).min(1, 'at least one recipient is needed'),
  subject: z.string().min(1),
  body: z.string().optional(),
  from: address.optional(),
  /** Storm guard per rule and topic: at most one mail per interval; the rest go out as one digest. */
  min_interval: duration.default(0),
  /**
   * 1 (default): the broker keeps an alert until relaybox has spooled it. 0: best effort. QoS 2
   * is refused on purpose: mqtt.js keeps its half-done QoS 2 state in memory, where a crash
   * would lose the alert after the broker has let go of it.
   */
  qos: z.union([z.literal(0), z.literal(1)]).default(1),
});

export const mqtt = z.strictObject({
  url: brokerUrl.default('mqtt://127.0.0.1:1883'),
  topic_prefix: topicBase.default('relaybox'),
  /** Empty: the configured hostname, made safe for topics and Home Assistant ids. */
  node_id: z.string().regex(/^[A-Za-z0-9_-]*$/, 'use letters, digits, "-" or "_" only').default(''),
  username: z.string().optional(),
  password: secret.optional(),
  tls: z
    .strictObject({
      /** A CA file (PEM) for a broker with its own certificate authority; system CAs otherwise. */
      ca: readableFile.optional(),
      verify: z.boolean().default(true),
    })
    .prefault({}),
  home_assistant: z
    .strictObject({
      enabled: z.boolean().default(true),
      discovery_prefix: topicBase.default('homeassistant'),
    })
    .prefault({}),
  alerts: z.array(alertRule).default([]),
});

export type MqttConfig = z.output<typeof mqtt>;
export type AlertRule = z.output<typeof alertRule>;
