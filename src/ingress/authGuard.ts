import type pino from 'pino';
import type { SMTPServerError } from 'smtp-server';
import type { RelayEvents } from '../events.js';
import { AuthThrottle, secondsUntil, type ThrottleOptions } from '../throttle.js';
import { REPLY, smtpError } from './replies.js';

/**
 * SMTP AUTH guessing, slowed per client address: the fifth failure within 15 minutes answers
 * `421 4.7.0` and hangs up, and until the lockout ends every AUTH from that address gets the same
 * without its password being looked at (so a right guess during the lockout teaches nothing).
 */
export class SmtpAuthGuard {
  private readonly throttle: AuthThrottle;

  constructor(
    private readonly options: { logger: pino.Logger; events?: RelayEvents; throttle?: ThrottleOptions },
  ) {
    this.throttle = new AuthThrottle(options.throttle);
  }

  /** The refusal while `address` is locked out; null when it may try. */
  refusal(address: string): SMTPServerError | null {
    const until = this.throttle.lockedUntil(address);
    return until === null ? null : smtpError(421, REPLY.authLocked(secondsUntil(until)));
  }

  /** Counts a failure; returns the refusal (421, hang up) when it starts a lockout. */
  failed(address: string): SMTPServerError | null {
    const at = new Date();
    this.options.events?.emit('auth', { event: 'auth_failed', service: 'smtp', client: address, at });
    const lockout = this.throttle.failed(address);
    if (!lockout) return null;
    const until = new Date(lockout.until);
    this.options.logger.warn(
      { address, failures: lockout.failures, lockout: lockout.strike, until: until.toISOString() },
      'smtp authentication locked out for this address: too many failed logins',
    );
    this.options.events?.emit('auth', { event: 'auth_locked', service: 'smtp', client: address, until, at: new Date(lockout.at) });
    return smtpError(421, REPLY.authLocked(secondsUntil(lockout.until)));
  }

  succeeded(address: string): void {
    this.throttle.succeeded(address);
  }
}
