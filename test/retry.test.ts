import { describe, expect, it } from 'vitest';
import { classifyReply, enhancedStatus, retryDelay } from '../src/delivery/retry.js';

describe('reply classes', () => {
  it('reads the enhanced status code', () => {
    expect(enhancedStatus('550 5.7.26 Unauthenticated email')).toBe('5.7.26');
    expect(enhancedStatus('250-2.0.0 OK')).toBe('2.0.0');
    expect(enhancedStatus('451 try later')).toBeNull();
  });

  it.each([
    [null, 'connect ECONNREFUSED 127.0.0.1:25', 'connect', 'temporary'],
    [421, '421 4.7.0 Try again later, closing connection. (EHLO)', 'ehlo', 'temporary'],
    [535, '535 5.7.8 Username and Password not accepted', 'auth', 'temporary'],
    [530, '530 5.7.0 Must issue a STARTTLS command first', 'greeting', 'temporary'],
    [451, '451 4.3.0 Mail server temporarily rejected message', 'data', 'temporary'],
    [450, '450 4.2.1 Peak SMTP relay limit exceeded', 'rcpt', 'temporary'],
    [550, '550 5.4.5 Daily SMTP relay limit exceeded for user', 'rcpt', 'temporary'],
    [550, '550 5.7.1 Daily SMTP relay limit exceeded for customer', 'mail', 'temporary'],
    [554, '554 5.2.0 STOREDRV.Submission.Exception:SubmissionQuotaExceededException; Failed to process message due to a permanent exception', 'data', 'temporary'],
    // Other daily limits from Microsoft's and Google's documentation: held like the rest.
    [550, "550 5.1.90 Your message can't be sent because you've reached your daily limit for message recipients", 'data', 'temporary'],
    [550, '550 5.4.5 Daily user sending limit exceeded. For more information on Gmail sending limits go to https://support.google.com/a/answer/166852 - gsmtp', 'mail', 'temporary'],
    [550, '550 5.2.2 STOREDRV.Submission.Exception:SubmissionQuotaExceededException', 'data', 'temporary'],
    [550, '550 5.1.1 The email account that you tried to reach does not exist', 'rcpt', 'permanent'],
    [550, '550 5.7.1 [203.0.113.5] Messages missing a valid Message-ID header are not accepted', 'data', 'permanent'],
    [554, '554 5.6.0 Message is malformed', 'data', 'permanent'],
    [552, '552 message too big', 'data', 'permanent'],
    // The basic code decides when the enhanced code disagrees with it.
    [451, '451 5.7.1 Greylisted, please try again later', 'rcpt', 'temporary'],
    [452, '452 5.2.2 Mailbox full', 'data', 'temporary'],
    [550, '550 4.2.2 mailbox full (odd but real)', 'rcpt', 'permanent'],
    [554, '554 4.4.7 Message expired', 'data', 'permanent'],
  ] as const)('%s %s at %s → %s', (code, reply, phase, expected) => {
    expect(classifyReply(code, reply, phase)).toBe(expected);
  });

  it('backs off exponentially from first to max, with jitter', () => {
    const policy = { first: 60_000, max: 3_600_000 };
    const mid = () => 0.5;
    expect([0, 1, 2, 3, 6, 7, 40].map((n) => retryDelay(n, policy, mid))).toEqual([60_000, 120_000, 240_000, 480_000, 3_600_000, 3_600_000, 3_600_000]);
    expect(retryDelay(0, policy, () => 0)).toBe(48_000);
    expect(retryDelay(0, policy, () => 0.999999)).toBeLessThanOrEqual(72_000);
  });
});
