/** What goes into the spool and what delivery gets back out of it. */
import { isIP } from 'node:net';

/** What the device said in MAIL FROM and what its message holds: what the upstream's MAIL FROM needs. */
export interface MailTraits {
  /** A byte of the message (header or body) is over 127. */
  eightBit: boolean;
  /** The device declared `BODY=8BITMIME`. */
  declared8BitMime: boolean;
  /** The device declared `SMTPUTF8`. */
  declaredSmtpUtf8: boolean;
}

export const SEVEN_BIT: MailTraits = { eightBit: false, declared8BitMime: false, declaredSmtpUtf8: false };

export interface AcceptedMessage {
  mailFrom: string;
  recipients: string[];
  client?: string | null;
  authUser?: string | null;
  subject?: string | null;
  /** Deliver through this upstream only (send-test --upstream). */
  onlyUpstream?: string | null;
  /** Absent: 7-bit, nothing declared. */
  traits?: MailTraits;
}

export interface ClaimedMessage {
  id: number;
  mailFrom: string;
  /** Recipients not yet delivered or failed. */
  recipients: string[];
  size: number;
  attempts: number;
  queuedAt: number;
  onlyUpstream: string | null;
  traits: MailTraits;
  /** The SMTP AUTH login it came with; null without one (or when logins are taken and ignored). */
  authUser: string | null;
  /** The IP address of the device that sent it; null when it came another way (API, MQTT, send-test). */
  clientAddress: string | null;
  /** The raw message, when it is small and was just accepted: delivery need not read it back. */
  body?: Uint8Array;
}

/** One upstream's answer for some recipients, as the delivery log keeps it. */
export interface AttemptRecord {
  event: 'delivered' | 'deferred' | 'failed';
  upstream: string | null;
  recipients: string[];
  reply: string;
  durationMs: number;
}

/**
 * The outcome of one delivery round. Recipients named in a `delivered` or `failed` record are
 * final; the rest stay pending until `retryAt`.
 */
export interface DeliveryOutcome {
  records: AttemptRecord[];
  retryAt: number;
  /**
   * Why the recipients still waiting wait, as delivery judged it (the most telling reply of a
   * fail-over round); absent: the last record's reply.
   */
  reason?: { upstream: string | null; reply: string };
  /** Held back by upstreams' sending limits only: nothing was tried, so it is no attempt (no longer backoff). */
  paced?: boolean;
}

/** `messages.client` of mail from an SMTP client: its address, then its HELO name in brackets. */
export function smtpClient(address: string, helo: string): string {
  return `${address} (${helo})`;
}

/** The address in a `messages.client` (see smtpClient): it never holds a space. Null for other clients (`http api`). */
export function clientAddressOf(client: string | null | undefined): string | null {
  const first = client?.split(' ', 1)[0] ?? '';
  return isIP(first) ? first : null;
}
