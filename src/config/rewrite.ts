import { z } from 'zod';

/**
 * The senders relaybox puts on outgoing mail instead of the device's (SPF/DMARC alignment):
 * `smtp.rewrite`, and a route's own `rewrite`. Checked here so that a typo fails at load, not as
 * a 553 from the upstream; no CR/LF can reach a header.
 */
const envelopeFrom = z.string().regex(/^$|^[^\s<>@]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$/, 'expected an address like scanner@example.com');

const headerFrom = z
  .string()
  .regex(
    /^$|^[^\s<>@]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$|^[^\r\n<>]*<[^\s<>@]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+>$/,
    'expected an address like scanner@example.com or "Scanner <scanner@example.com>"',
  );

/** `smtp.rewrite`: '' keeps the device's sender. */
export const smtpRewrite = z.strictObject({ envelope_from: envelopeFrom.default(''), header_from: headerFrom.default('') }).prefault({});

/** `routes[].rewrite`: a key given replaces `smtp.rewrite`'s for the mail the route matches ('' keeps the device's); a key left out keeps it. */
export const routeRewrite = z.strictObject({ envelope_from: envelopeFrom.optional(), header_from: headerFrom.optional() });

export type Rewrite = z.output<typeof smtpRewrite>;
