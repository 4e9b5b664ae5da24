import { randomUUID } from 'node:crypto';
import MailComposer from 'nodemailer/lib/mail-composer';

export interface ComposedMail {
  from: string;
  to: string[];
  subject: string;
  text: string;
  /** The domain of the Message-ID: relaybox's hostname. */
  hostname: string;
  date?: Date;
  /** More header fields, e.g. `Auto-Submitted: auto-generated` on notices. */
  headers?: Record<string, string>;
}

/**
 * A well-formed RFC 5322 message (Message-ID, Date, one From, encoded UTF-8 subject and body) for
 * mail relaybox writes itself: MQTT alerts, `POST /api/send`, `send-test`. Returns CRLF bytes,
 * ready for the spool.
 */
export async function composeMessage(mail: ComposedMail): Promise<Buffer> {
  const composer = new MailComposer({
    from: mail.from,
    to: mail.to,
    subject: mail.subject,
    text: mail.text,
    messageId: `<${randomUUID()}@${mail.hostname}>`,
    date: mail.date ?? new Date(),
    ...(mail.headers && { headers: mail.headers }),
  });
  const built = await composer.compile().build();
  return Buffer.from(built.toString('binary').replace(/\r?\n/g, '\r\n'), 'binary');
}
