/**
 * Slows password guessing, per client address: after `maxFailures` failed logins within `windowMs`
 * the address is locked out for `firstLockoutMs`, and each further lockout doubles that, up to
 * `maxLockoutMs`. A successful login forgets the address. Shared by SMTP AUTH and the console's
 * admin token; each keeps its own instance (a console guess does not lock out a scanner).
 */
export interface ThrottleOptions {
  maxFailures?: number;
  windowMs?: number;
  firstLockoutMs?: number;
  maxLockoutMs?: number;
  /** After this long without a failure an address starts again from the first lockout. */
  forgetAfterMs?: number;
  /** Addresses remembered at most; past it the oldest entry goes (a flood must not grow memory). */
  maxClients?: number;
  now?: () => number;
}

/** A lockout that has just begun. */
export interface Lockout {
  client: string;
  /** The failure that started it (ms since the epoch). */
  at: number;
  /** When the address may try again (ms since the epoch). */
  until: number;
  /** Failures in the window that led to it. */
  failures: number;
  /** How many lockouts in a row this is (1 for the first). */
  strike: number;
}

interface ClientRecord {
  /** Times of the failures inside the window, oldest first. */
  failures: number[];
  lockedUntil: number;
  strikes: number;
  lastFailure: number;
}

export const AUTH_THROTTLE_DEFAULTS = {
  maxFailures: 5,
  windowMs: 15 * 60_000,
  firstLockoutMs: 60_000,
  maxLockoutMs: 3_600_000,
  forgetAfterMs: 24 * 3_600_000,
  maxClients: 10_000,
} as const;

export class AuthThrottle {
  private readonly clients = new Map<string, ClientRecord>();
  private readonly options: Required<Omit<ThrottleOptions, 'now'>>;
  private readonly now: () => number;

  constructor(options: ThrottleOptions = {}) {
    const { now, ...rest } = options;
    this.options = { ...AUTH_THROTTLE_DEFAULTS, ...rest };
    this.now = now ?? Date.now;
  }

  /** The end of the address's lockout (ms since the epoch), or null when it may try. */
  lockedUntil(client: string): number | null {
    const record = this.clients.get(client);
    return record && record.lockedUntil > this.now() ? record.lockedUntil : null;
  }

  /** Counts a failed login; returns the lockout when this failure starts one. */
  failed(client: string): Lockout | null {
    const now = this.now();
    const { maxFailures, windowMs, firstLockoutMs, maxLockoutMs, forgetAfterMs } = this.options;
    let record = this.clients.get(client);
    if (record && now - record.lastFailure > forgetAfterMs && record.lockedUntil <= now) record = undefined;
    record ??= { failures: [], lockedUntil: 0, strikes: 0, lastFailure: now };
    // Re-inserted so that the Map's order is the order of last failure (oldest evicted first).
    this.clients.delete(client);
    this.clients.set(client, record);
    this.evict();
    record.lastFailure = now;
    record.failures = record.failures.filter((at) => now - at < windowMs);
    record.failures.push(now);
    if (record.failures.length < maxFailures || record.lockedUntil > now) return null;
    const failures = record.failures.length;
    record.strikes += 1;
    record.lockedUntil = now + Math.min(maxLockoutMs, firstLockoutMs * 2 ** (record.strikes - 1));
    // A new lockout needs a full set of new failures after it ends.
    record.failures = [];
    return { client, at: now, until: record.lockedUntil, failures, strike: record.strikes };
  }

  /** A good login: the address starts again from nothing. */
  succeeded(client: string): void {
    this.clients.delete(client);
  }

  /** Addresses locked out now, with when each may try again. */
  locked(): { client: string; until: number }[] {
    const now = this.now();
    return [...this.clients].filter(([, r]) => r.lockedUntil > now).map(([client, r]) => ({ client, until: r.lockedUntil }));
  }

  clear(): void {
    this.clients.clear();
  }

  private evict(): void {
    while (this.clients.size > this.options.maxClients) this.clients.delete(this.clients.keys().next().value!);
  }
}

/** Seconds to put in Retry-After or a reply, rounded up, at least 1. */
export function secondsUntil(until: number, now = Date.now()): number {
  return Math.max(1, Math.ceil((until - now) / 1000));
}
