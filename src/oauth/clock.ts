import { TokenError } from './errors.js';

/**
 * Nothing built after this date can run before it. A Raspberry Pi has no real-time clock and boots
 * in 1970 until NTP answers; a JWT minted then is refused, and expiry arithmetic is meaningless.
 */
export const EARLIEST_SANE_TIME = Date.UTC(2025, 0, 1);

export function assertClockSane(now: number): void {
  if (now >= EARLIEST_SANE_TIME) return;
  const shown = new Date(now).toISOString().replace(/\.\d{3}Z$/, 'Z');
  throw new TokenError(`the system clock says ${shown}: OAuth needs the right time — check NTP (timedatectl)`, 'clock');
}
