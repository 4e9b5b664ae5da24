import { describe, expect, it } from 'vitest';
import { AuthThrottle } from '../src/throttle.js';

const MIN = 60_000;

describe('AuthThrottle: the lockout rule shared by SMTP AUTH and the admin token', () => {
  it('locks after 5 failures in 15 minutes, for 1 min, then 2, 4 … never past 1 h; a success starts over', () => {
    let now = 1_000_000;
    const throttle = new AuthThrottle({ now: () => now });
    const lockFor = (): number => {
      for (let i = 0; i < 4; i++) expect(throttle.failed('10.0.0.9')).toBeNull();
      const lockout = throttle.failed('10.0.0.9')!;
      expect(throttle.lockedUntil('10.0.0.9')).toBe(lockout.until);
      expect(throttle.lockedUntil('10.0.0.10')).toBeNull(); // another address is not affected
      const ms = lockout.until - now;
      now = lockout.until; // wait it out
      expect(throttle.lockedUntil('10.0.0.9')).toBeNull();
      return ms / MIN;
    };
    expect(Array.from({ length: 8 }, lockFor)).toEqual([1, 2, 4, 8, 16, 32, 60, 60]);
    throttle.succeeded('10.0.0.9');
    expect(lockFor()).toBe(1);
  });

  it('forgets failures older than the 15-minute window', () => {
    let now = 0;
    const throttle = new AuthThrottle({ now: () => now });
    for (let i = 0; i < 4; i++) throttle.failed('10.0.0.9');
    now += 16 * MIN;
    for (let i = 0; i < 4; i++) expect(throttle.failed('10.0.0.9')).toBeNull();
    expect(throttle.failed('10.0.0.9')).not.toBeNull();
  });
});
