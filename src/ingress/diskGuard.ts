import type pino from 'pino';
import type { SMTPServerAddress, SMTPServerError } from 'smtp-server';
import { isDiskFull } from '../spool/diskFull.js';
import type { DiskSpace } from '../spool/diskSpace.js';
import { REPLY, smtpError } from './replies.js';

/** RFC 3463 4.3.1: mail system full. Postfix says the same for queue_minfree. */
export const DISK_FULL_REPLY = '4.3.1 Insufficient system storage, try again later';

/**
 * The ingress's side of a full disk: new mail is refused at MAIL FROM (452 4.3.1) while the spool
 * has too little room, or at once when SIZE= says the message will not fit; a spool write that
 * fails for want of space anyway answers the same. DiskSpace logs the state, so a refused
 * message adds no log line of its own.
 */
export class DiskGuard {
  constructor(private readonly options: { disk?: DiskSpace; logger: pino.Logger }) {}

  /** Null to go on with the transaction, or the refusal. */
  mailFrom(address: SMTPServerAddress): SMTPServerError | null {
    const { disk } = this.options;
    if (!disk) return null;
    const declared = Number((address.args || {}).SIZE ?? 0);
    return disk.fits(Number.isSafeInteger(declared) ? declared : 0) ? null : smtpError(452, DISK_FULL_REPLY);
  }

  /** A spool write failed: 452 4.3.1 for want of space, else 451 4.3.0 (and the error logged). */
  storeFailed(err: unknown, context: { client: string; what: string }): SMTPServerError {
    if (isDiskFull(err)) {
      this.options.disk?.sawFull();
      this.options.logger.debug({ client: context.client, err: (err as Error).message }, context.what);
      return smtpError(452, DISK_FULL_REPLY);
    }
    this.options.logger.error({ err, client: context.client }, context.what);
    return smtpError(451, REPLY.tryAgain);
  }
}
