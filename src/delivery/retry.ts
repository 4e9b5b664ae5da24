import type { SendPhase } from '../upstreams/types.js';

export type ReplyClass = 'temporary' | 'permanent';

/** `550 5.7.1 ...` → `5.7.1` */
export function enhancedStatus(reply: string): string | null {
  const m = /^\s*\d{3}[ -]([245])\.(\d{1,3})\.(\d{1,3})\b/.exec(reply);
  return m ? `${m[1]}.${m[2]}.${m[3]}` : null;
}

/**
 * Google answers its daily relay limits with 5xx, Microsoft 365 its 10,000 recipients a day with
 * `554 5.2.0 STOREDRV.Submission.Exception:SubmissionQuotaExceededException`; they mean "quota",
 * not "this message is bad": hold the mail until the window passes instead of failing it
 * (REFERENCE.md).
 */
export function isQuotaReply(reply: string): boolean {
  return /daily (smtp )?(relay )?limit|sending limit exceeded|quota ?exceeded/i.test(reply) || enhancedStatus(reply) === '5.4.5';
}

const UPSTREAM_PHASES: ReadonlySet<SendPhase> = new Set(['connect', 'tls', 'greeting', 'ehlo', 'auth']);

/**
 * Whether a failure is worth retrying. A failure before MAIL FROM says something about the
 * upstream (down, TLS, credentials), never about the message, so the mail waits and fails over.
 * After it, the basic reply code decides: the enhanced code's class ought to agree with
 * it, and when a server gets that wrong (`451 5.7.1`, `550 4.2.2`) the basic code is the one every
 * MTA acts on, so a `4xx` is retried and a `5xx` is not, whatever the enhanced code says.
 */
export function classifyReply(code: number | null, reply: string, phase: SendPhase): ReplyClass {
  if (code === null || UPSTREAM_PHASES.has(phase)) return 'temporary';
  if (isQuotaReply(reply)) return 'temporary';
  return String(code).startsWith('5') ? 'permanent' : 'temporary';
}

/** `first` doubling per attempt up to `max`, spread ±20% so a backlog doesn't retry in lockstep. */
export function retryDelay(attemptsSoFar: number, policy: { first: number; max: number }, random = Math.random): number {
  const base = Math.min(policy.max, policy.first * 2 ** Math.min(attemptsSoFar, 30));
  return Math.round(base * (0.8 + 0.4 * random()));
}
