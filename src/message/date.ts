import { field, renamed, valueOf, type Field } from './fields.js';

const MONTHS = ['jan', 'feb', 'mar', 'apr', 'may', 'jun', 'jul', 'aug', 'sep', 'oct', 'nov', 'dec'];

/**
 * RFC 5322 §3.3 date-time, with the obsolete forms §4.3 tells readers to accept: 2- and 3-digit
 * years, zone names (UT, GMT, EST…, military letters) and whitespace around the colons. ABNF
 * literals are case-insensitive. Comments are removed before matching.
 */
const DATE_TIME = new RegExp(
  '^(?:(?:mon|tue|wed|thu|fri|sat|sun)\\s*,\\s*)?(\\d{1,2})\\s+(' + MONTHS.join('|') + ')\\s+(\\d{2,})\\s+' +
    '(\\d{2})\\s*:\\s*(\\d{2})(?:\\s*:\\s*(\\d{2}))?\\s+([+-]\\d{4}|ut|gmt|[ecmp][sd]t|[a-ik-z])$',
  'i',
);

/** Whether a Date value is an RFC 5322 date-time that names a real moment (31 Feb is not). */
export function isRfc5322Date(value: string): boolean {
  const m = DATE_TIME.exec(withoutComments(value).trim());
  if (!m) return false;
  const [day, hour, minute, second] = [m[1], m[4], m[5], m[6] ?? '0'].map(Number) as [number, number, number, number];
  const digits = m[3]!.length;
  const year = digits === 2 ? Number(m[3]) + (Number(m[3]) < 50 ? 2000 : 1900) : digits === 3 ? Number(m[3]) + 1900 : Number(m[3]);
  const month = MONTHS.indexOf(m[2]!.toLowerCase());
  const daysInMonth = new Date(Date.UTC(year, month + 1, 0)).getUTCDate();
  const zoneMinutes = /^[+-]/.test(m[7]!) ? Number(m[7]!.slice(3)) : 0;
  return year >= 1900 && day >= 1 && day <= daysInMonth && hour <= 23 && minute <= 59 && second <= 60 && zoneMinutes <= 59;
}

function withoutComments(value: string): string {
  let previous;
  // Innermost first, so nested comments go too; a quoted-pair inside one is skipped over.
  do {
    previous = value;
    value = value.replace(/\((?:[^()\\]|\\.)*\)/g, ' ');
  } while (value !== previous);
  return value;
}

/** RFC 5322 date-time in UTC: `Tue, 02 Jan 2024 15:04:05 +0000`. */
export function rfc5322Date(date: Date): string {
  return date.toUTCString().replace(/GMT$/, '+0000');
}

/**
 * A missing Date is added and a malformed one (`2024/01/02 10:00`, no zone, asctime) replaced,
 * both with the time relaybox received the message; the device's value is kept in X-Original-Date.
 */
export function fixDate(fields: Field[], received: Date, changed: string[]): void {
  const index = fields.findIndex((f) => f.key === 'date');
  const fresh = field('Date', rfc5322Date(received));
  if (index === -1) {
    fields.push(fresh);
    changed.push('added Date');
    return;
  }
  const device = fields[index]!;
  const value = valueOf(device);
  if (isRfc5322Date(value)) return;
  if (value === '') {
    fields.splice(index, 1, fresh);
    changed.push('replaced an empty Date');
  } else {
    fields.splice(index, 1, fresh, renamed('X-Original-Date', device));
    changed.push('replaced a malformed Date, the device Date kept in X-Original-Date');
  }
}
