import { EventEmitter } from 'node:events';

/** The states of SPEC: queued → delivering → delivered | deferred | failed; a person's drop → dropped. */
export type MessageState = 'queued' | 'delivering' | 'delivered' | 'deferred' | 'failed' | 'dropped';

/** One change of a message's state; what status, MQTT and the web console listen to. */
export interface MessageEvent {
  id: number;
  event: 'accepted' | 'delivered' | 'deferred' | 'failed' | 'dropped';
  /** The upstream that answered, when one did. */
  upstream: string | null;
  /** The reply that caused the change (the upstream's words, or relaybox's own reason). */
  reply: string | null;
  /** The recipients the change is about. */
  recipients: string[];
  at: Date;
  /** How long the delivery attempt took, when the change is an attempt's outcome (metrics). */
  durationMs?: number;
}

/** Why an upstream fails, when a person has to act (or wait) rather than the network recover. */
export type UpstreamProblem = 'auth_failed' | 'quota' | 'clock' | 'ehlo_rejected';

/** What an upstream did on one attempt; feeds its ok/error state in status. */
export interface UpstreamEvent {
  upstream: string;
  ok: boolean;
  /** Why a failing upstream fails, when that is known: a person has to act on these. */
  problem?: UpstreamProblem;
  reply: string | null;
  at: Date;
  /**
   * While the upstream is set aside after a failure before MAIL FROM (its circuit breaker is
   * open): when one delivery may try it again. null: it is not set aside. Absent: unchanged.
   */
  nextProbeAt?: Date | null;
}

/** Which login a security event is about: SMTP AUTH or the console's admin token. */
export type AuthService = 'smtp' | 'http';

/** A failed login, or a client address locked out after too many (src/throttle.ts). */
export interface AuthEvent {
  event: 'auth_failed' | 'auth_locked';
  service: AuthService;
  /** The client's IP address. */
  client: string;
  /** auth_locked: when the address may try again. */
  until?: Date;
  at: Date;
}

interface EventMap {
  message: [MessageEvent];
  /** Security events: failed logins and lockouts (metrics, MQTT `<p>/events`, the console). */
  auth: [AuthEvent];
  upstream: [UpstreamEvent];
  /** A message became due without a state event (a person's retry): delivery should look now. */
  due: [{ id: number }];
  /**
   * A person signed in again for an upstream (the console's Reconnect) and its new refresh token is
   * stored: delivery should stop setting it aside, and status should stop calling it auth_failed.
   */
  reconnected: [{ upstream: string; at: Date }];
}

/** The typed bus that features listen to; emitters never wait on listeners. */
export class RelayEvents extends EventEmitter<EventMap> {}
