import type { SMTPServerError, SMTPServerSession } from 'smtp-server';
import { hasCatchAll, RouteMatcher, type RoutedEnvelope } from '../config/routeMatch.js';
import type { Config } from '../config/schema.js';
import { fits, largest, sizeLimits, tooLargeText, type SizeLimit } from '../config/sizeLimits.js';
import { clientAddressOf } from '../spool/types.js';
import { smtpError } from './replies.js';

/**
 * The upstreams' size limits, as the device hears them: EHLO advertises the largest message any
 * route can take (smtp-server then answers `MAIL FROM … SIZE=` above it with 552 5.3.4 at once),
 * and at the end of DATA a message too large for every upstream of a recipient's route hears
 * 552 5.3.4 naming the provider and the sizes — on the scanner's panel, not later in a bounce.
 * A message that fits one upstream of each recipient's route is taken; delivery skips the
 * upstreams it is too large for (delivery/sizeFit.ts).
 */
export class SizeGuard {
  /** The SIZE advertised in EHLO, and the most DATA takes in. */
  readonly advertised: number;
  /** Whose limit that is: the upstream's, or the box's own (`smtp.max_message_bytes`, no label). */
  private readonly advertisedLimit: SizeLimit;
  private readonly matcher: RouteMatcher;
  /** Per rule of `routes`: the upstream of its list that takes the largest messages. */
  private readonly ruleLimits: Array<SizeLimit | undefined>;
  /** Where a recipient no rule matches goes: every upstream. */
  private readonly everyUpstream: SizeLimit | undefined;

  constructor(config: Pick<Config, 'smtp' | 'upstreams' | 'routes'>) {
    const routes = config.routes ?? [];
    const limits = sizeLimits(config.upstreams);
    this.matcher = new RouteMatcher(routes);
    this.ruleLimits = routes.map((r) => largest(r.upstreams.flatMap((name) => limits.get(name) ?? [])));
    this.everyUpstream = largest([...limits.values()]);
    const reachable = hasCatchAll(routes) ? this.ruleLimits : [...this.ruleLimits, this.everyUpstream];
    const most = largest(reachable.flatMap((limit) => limit ?? []));
    const box = config.smtp.max_message_bytes;
    this.advertisedLimit = most && most.bytes !== 0 && most.bytes < box ? most : { bytes: box, label: '' };
    this.advertised = this.advertisedLimit.bytes;
  }

  /** The words for `MAIL FROM … SIZE=` above the advertised size (see sizeReply.ts). */
  mailFromRefusal(declared: number): string {
    return tooLargeText(this.advertisedLimit, declared);
  }

  /**
   * At RCPT TO, when MAIL FROM declared a SIZE= this recipient's route cannot take: 552 5.3.4 now
   * (RFC 1870 lets a server refuse a recipient for size), before the device uploads the scan.
   */
  recipientRefusal(session: SMTPServerSession, rcpt: string): SMTPServerError | null {
    const mailFrom = session.envelope.mailFrom;
    const declared = Number((mailFrom && mailFrom.args ? mailFrom.args : {}).SIZE ?? 0);
    if (!mailFrom || !Number.isSafeInteger(declared) || declared <= 0) return null;
    const authUser = typeof session.user === 'string' ? session.user : null;
    return this.refusal({ mailFrom: mailFrom.address, recipients: [rcpt], authUser, clientAddress: clientAddressOf(session.remoteAddress) }, declared);
  }

  /** The 552 5.3.4 for a message of `size` bytes, or null when every recipient's route can carry it. */
  refusal(envelope: RoutedEnvelope, size: number): SMTPServerError | null {
    for (const index of this.matcher.ruleIndexes(envelope)) {
      const limit = index === null ? this.everyUpstream : this.ruleLimits[index];
      if (limit && !fits(limit, size)) return smtpError(552, tooLargeText(limit, size));
    }
    return null;
  }
}
