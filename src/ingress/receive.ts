import { isAscii } from 'node:buffer';
import { Writable } from 'node:stream';
import type pino from 'pino';
import type { SMTPServerDataStream, SMTPServerSession } from 'smtp-server';
import { CrlfNormalizer } from '../message/crlf.js';
import { HEADER_SCAN_BYTES, subjectOf } from '../message/headers.js';
import { noteStreamedBytes } from '../memory.js';
import type { MemoryBudget } from '../memoryBudget.js';
import type { BodyWriter } from '../spool/body.js';
import type { SpoolStore } from '../spool/store.js';
import { clientAddressOf, smtpClient } from '../spool/types.js';
import { drain } from '../streams.js';
import type { DiskGuard } from './diskGuard.js';
import type { ConnectionLimits } from './limits.js';
import { REPLY, smtpError } from './replies.js';
import type { SenderPolicy } from './senderPolicy.js';
import type { SizeGuard } from './sizeGuard.js';

export interface MessageReceiverOptions {
  spool: SpoolStore;
  logger: pino.Logger;
  /** `smtp.max_message_bytes`: larger messages hear 552 and nothing of them is kept. */
  maxMessageBytes: number;
  /** The upstreams' limits: a message too large for a recipient's route hears 552 5.3.4 and nothing is kept. */
  sizes: SizeGuard;
  /** Bodies on their way in, over every session; past it they go to the spool as they arrive. */
  bodyBudget: MemoryBudget;
  /** Told when DATA starts and ends (a session in DATA is never closed to make room). */
  limits: ConnectionLimits;
  /** Turns a write that failed for want of space into 452 4.3.1. */
  diskGuard: DiskGuard;
  /** Checks the header From against the login's `allowed_from`. */
  senders: SenderPolicy;
}

/**
 * The DATA phase: streams one message into the spool and commits it (fsynced) before the client
 * hears 250. Whatever goes wrong before that, the client hears 4xx/5xx and nothing stays behind.
 */
export class MessageReceiver {
  constructor(private readonly options: MessageReceiverOptions) {}

  /** Resolves with the spool id; rejects with the SMTP error the client is to hear. */
  async receive(stream: SMTPServerDataStream, session: SMTPServerSession): Promise<number> {
    const { spool, logger, sizes, diskGuard } = this.options;
    // Past what any route takes, nothing more is stored: the message will be refused anyway.
    const limit = Math.min(this.options.maxMessageBytes, sizes.advertised);
    const writer = spool.receive();
    writer.limitMemory(this.options.bodyBudget);
    let size = 0;
    // Found while the body streams in (isAscii is a vector scan, and stops mattering once true):
    // delivery then knows, without reading the body again, that it needs BODY=8BITMIME upstream.
    let eightBit = false;
    let oversized = false;
    let storeError: unknown;
    // Never fails: after an oversize or a spool error it keeps draining, so the client finishes
    // DATA and then hears the refusal, instead of an answer in the middle of its upload.
    const sink = new Writable({
      write: (chunk: Buffer, _encoding, done) => {
        size += chunk.length;
        if (oversized || storeError !== undefined) return done();
        if (size > limit) {
          oversized = true;
          this.discard(writer);
          return done();
        }
        if (!eightBit && !isAscii(chunk)) eightBit = true;
        try {
          writer.write(chunk);
          noteStreamedBytes(chunk.length);
        } catch (err) {
          storeError = err;
          this.discard(writer);
        }
        done();
      },
    });
    this.options.limits.dataStarted(session);
    try {
      await drain(stream, new CrlfNormalizer(), sink);
    } catch (err) {
      this.discard(writer);
      logger.debug({ address: session.remoteAddress, err: (err as Error).message }, 'smtp client went away during DATA');
      throw smtpError(451, REPLY.tryAgain);
    } finally {
      this.options.limits.dataEnded(session);
    }

    const client = smtpClient(session.remoteAddress, session.hostNameAppearsAs || session.clientHostname);
    const from = session.envelope.mailFrom ? session.envelope.mailFrom.address : '';
    const recipients = session.envelope.rcptTo.map((r) => r.address);
    const authUser = typeof session.user === 'string' ? session.user : null;
    const oversize = oversized || stream.sizeExceeded;
    const tooLarge = sizes.refusal({ mailFrom: from, recipients, authUser, clientAddress: clientAddressOf(client) }, size) ?? (oversize ? smtpError(552, REPLY.tooBig) : null);
    if (tooLarge) {
      this.discard(writer);
      logger.warn({ client, size, limit: this.options.maxMessageBytes, reply: tooLarge.message }, 'smtp message refused: too large for smtp.max_message_bytes or for every upstream of its route');
      throw tooLarge;
    }
    if (storeError !== undefined) throw diskGuard.storeFailed(storeError, { client, what: 'could not write a message body to the spool' });
    const head = writer.head(HEADER_SCAN_BYTES);
    const notAllowed = this.options.senders.header(session, head, size <= HEADER_SCAN_BYTES);
    if (notAllowed) {
      this.discard(writer);
      logger.warn({ client, auth_user: session.user, reply: notAllowed.message }, 'smtp message refused: its header From is not in the allowed_from of its login');
      throw notAllowed;
    }

    const traits = { eightBit, declared8BitMime: session.envelope.bodyType === '8bitmime', declaredSmtpUtf8: session.envelope.smtpUtf8 === true };
    let id: number;
    try {
      id = await spool.accept(writer, { mailFrom: from, recipients, client, authUser, subject: subjectOf(head), traits });
    } catch (err) {
      this.discard(writer);
      throw diskGuard.storeFailed(err, { client, what: 'could not commit a message to the spool' });
    }
    logger.info({ id, from, rcpts: recipients.length, size: writer.size, client, auth_user: authUser }, 'accepted');
    return id;
  }

  /** Drops a partial body; if even that fails, recoverInterrupted() removes it at next start. */
  private discard(writer: BodyWriter): void {
    try {
      this.options.spool.discard(writer);
    } catch (err) {
      this.options.logger.error({ err }, 'could not remove a partial message body from the spool');
    }
  }
}
