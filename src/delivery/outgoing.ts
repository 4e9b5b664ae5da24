import { join } from 'node:path';
import type { Readable } from 'node:stream';
import type { Logger } from 'pino';
import type { DkimConfig } from '../config/dkim.js';
import type { Rewrite } from '../config/rewrite.js';
import { createDkimSigner } from '../message/dkim.js';
import { applyFixups } from '../message/fixupsStream.js';
import { toSevenBit } from '../message/sevenBit.js';
import type { ClaimedMessage } from '../spool/store.js';
import type { BodyFactory } from '../upstreams/types.js';

export interface OutgoingOptions {
  /** relaybox's `hostname`: the domain of added Message-IDs. */
  hostname: string;
  dkim?: DkimConfig | undefined;
  /** `data_dir`: DKIM spools big messages to `<data_dir>/tmp` while signing. */
  dataDir: string;
  logger: Logger;
}

/**
 * What goes upstream for a spooled message: the envelope sender after the rewrite of its route
 * (or `smtp.rewrite`), and the
 * body fixed up (src/message/fixups.ts), made 7-bit for an upstream without 8BITMIME
 * (src/message/sevenBit.ts), and then DKIM-signed. The spool keeps what the device
 * sent; this is redone for every attempt, so a config change applies to mail already queued.
 */
export class OutgoingMessages {
  private readonly sign: ((message: Readable) => Readable) | null;

  constructor(private readonly options: OutgoingOptions) {
    const { dkim } = options;
    this.sign = dkim
      ? createDkimSigner({ domain: dkim.domain, selector: dkim.selector, privateKey: dkim.private_key, cacheDir: join(options.dataDir, 'tmp') })
      : null;
  }

  envelopeFrom(message: ClaimedMessage, rewrite: Rewrite): string {
    return rewrite.envelope_from || message.mailFrom;
  }

  /** A factory of fresh streams of the outgoing message, as `Upstream.send` wants it. */
  body(message: ClaimedMessage, stored: () => Readable, rewrite: Rewrite): BodyFactory {
    const { hostname, logger } = this.options;
    const reported = new Set<string>();
    const ctx = {
      hostname,
      // Derived from the spool row, not random: every attempt and fail-over sends the same id and
      // Date, so a resend after a lost final reply is recognisably the same message (Gmail folds
      // copies with one Message-ID into one).
      messageId: `${message.queuedAt.toString(36)}.${message.id}.relaybox@${hostname}`,
      date: new Date(message.queuedAt),
      envelopeFrom: this.envelopeFrom(message, rewrite),
      headerFrom: rewrite.header_from,
      onFix: (changed: string[]) => {
        const fresh = changed.filter((c) => !reported.has(c));
        if (fresh.length === 0) return;
        fresh.forEach((c) => reported.add(c));
        // Said once per delivery round: the operator sees what relaybox did to a device's mail.
        logger.info({ id: message.id, fixups: fresh }, 'message fixed up for delivery');
      },
    };
    return (form) => {
      const fixed = applyFixups(stored(), ctx);
      // Only 8-bit mail is ever converted: a 7-bit message is the same in either form.
      const sent = form?.sevenBit && message.traits.eightBit ? toSevenBit(fixed) : fixed;
      return this.sign && form?.dkim !== false ? this.sign(sent) : sent;
    };
  }
}
