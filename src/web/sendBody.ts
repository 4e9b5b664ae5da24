import { z } from 'zod';
import { describeIssue } from '../config/issues.js';

const address = z
  .string()
  .trim()
  .max(254)
  .regex(/^[^\s@<>()",;:\\[\]]+@[A-Za-z0-9.-]+\.[A-Za-z0-9-]+$/, { error: (issue) => `expected an email address like ops@example.com, got ${JSON.stringify(issue.input)}` });

/** A missing key reads `is required`; a wrong one says what was expected. */
function expected(what: string) {
  return (issue: { input?: unknown }) => (issue.input === undefined ? 'is required' : `expected ${what}`);
}

const sendBody = z.strictObject({
  to: z.preprocess(
    (v) => (typeof v === 'string' ? [v] : v),
    z.array(address, { error: expected('an address or a list of addresses') }).min(1, 'at least one recipient is needed').max(100, 'at most 100 recipients'),
  ),
  subject: z.string({ error: expected('a string') }).max(998, 'at most 998 characters'),
  text: z.string({ error: expected('a string') }),
  from: address.optional(),
});

export type SendBody = z.infer<typeof sendBody>;

/** The body of POST /api/send, checked; or what is wrong with it, one `key: problem` per issue. */
export function parseSendBody(raw: unknown): SendBody | string {
  const parsed = sendBody.safeParse(raw);
  return parsed.success ? parsed.data : parsed.error.issues.map(describeIssue).join('; ');
}
