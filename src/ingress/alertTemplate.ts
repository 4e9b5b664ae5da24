/**
 * The placeholders of `mqtt.alerts[].subject` and `.body`. One rule for all: `{{ name.path }}`,
 * a dot-separated path into
 *   topic      the topic the alert came on              sensors/freezer/alert
 *   segments   its levels, counted from 0               {{segments.1}} → freezer
 *   payload    the payload as text                      {{payload}}
 *              or, when it is JSON, a path into it      {{payload.message}}, {{payload.temp.c}}, {{payload.list.0}}
 *   time       when relaybox received it (ISO 8601)     {{time}}
 * A path that leads nowhere (a field the payload lacks, a payload that is not JSON) renders as
 * nothing; a name not in this list is left as written, so a typo shows in the mail, not a blank.
 */

export interface AlertInput {
  topic: string;
  payload: Buffer;
  at: Date;
}

/** Payloads larger than this are cut in mail (the subject and body of an alert are for people). */
export const MAX_PAYLOAD_CHARS = 100_000;
const MAX_SUBJECT_CHARS = 250;

const PLACEHOLDER = /\{\{\s*([A-Za-z_][\w-]*)((?:\.[\w-]+)*)\s*\}\}/g;

export function payloadText(payload: Buffer, max = MAX_PAYLOAD_CHARS): string {
  const text = payload.toString('utf8');
  return text.length > max ? `${text.slice(0, max)}… (${payload.length} bytes, cut)` : text;
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

function walk(value: unknown, path: string[]): unknown {
  let current = value;
  for (const key of path) {
    if (current === null || typeof current !== 'object') return undefined;
    current = (current as Record<string, unknown>)[key];
  }
  return current;
}

function show(value: unknown): string {
  if (value === undefined || value === null) return '';
  return typeof value === 'object' ? JSON.stringify(value) : String(value);
}

export function renderTemplate(template: string, input: AlertInput): string {
  const text = payloadText(input.payload);
  let json: unknown;
  let parsed = false;
  return template.replace(PLACEHOLDER, (whole, name: string, rest: string) => {
    const path = rest ? rest.slice(1).split('.') : [];
    switch (name) {
      case 'topic':
        return path.length === 0 ? input.topic : '';
      case 'segments':
        return show(walk(input.topic.split('/'), path));
      case 'time':
        return input.at.toISOString();
      case 'payload':
        if (path.length === 0) return text;
        if (!parsed) {
          json = parseJson(text);
          parsed = true;
        }
        return show(walk(json, path));
      default:
        return whole;
    }
  });
}

/** A subject is one line: newlines from a payload must not end the header. */
export function renderSubject(template: string, input: AlertInput): string {
  const line = renderTemplate(template, input).replace(/\s+/g, ' ').trim();
  return line.length > MAX_SUBJECT_CHARS ? `${line.slice(0, MAX_SUBJECT_CHARS - 1)}…` : line || `Alert on ${input.topic}`;
}

export function renderBody(template: string | undefined, input: AlertInput): string {
  if (template !== undefined) return renderTemplate(template, input);
  return `Alert on ${input.topic} at ${input.at.toISOString()}:\n\n${payloadText(input.payload)}\n`;
}

/** The digest of alerts a storm guard held back: one line per alert, time and payload. */
export function renderDigest(topic: string, alerts: { at: number; payload: Buffer }[], intervalMs: number): { subject: string; text: string } {
  const n = alerts.length;
  const lines = alerts.map((a) => `${new Date(a.at).toISOString()}  ${payloadText(a.payload, 2000).replace(/\r?\n/g, '\n    ')}`);
  const text =
    `${n} more ${n === 1 ? 'alert' : 'alerts'} arrived on ${topic} within ${Math.round(intervalMs / 1000)} s of the previous mail ` +
    `(min_interval); they are collected here instead of one mail each.\n\n${lines.join('\n')}\n`;
  return { subject: `${n} more ${n === 1 ? 'alert' : 'alerts'} on ${topic}`, text };
}
