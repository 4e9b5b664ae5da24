// When AUTH must wait for TLS, smtp-server still lists it in EHLO before STARTTLS and then refuses
// it with `538 Must issue a STARTTLS command first` (its enhanced code guessed as 5.7.0). A device
// set to "SSL off, authentication on" sees AUTH offered, tries it and gives up. This lists AUTH
// only once TLS is up and answers an early AUTH the way RFC 4954 words it (538 5.7.11).
// Only servers that ask for it (`relayboxAuthNeedsTls`) are affected; smtp-server's own refusal
// (allowInsecureAuth false) stays underneath, so should a later smtp-server rename these handlers
// the patch steps aside and credentials still never cross in clear.
import * as connectionModule from 'smtp-server/lib/smtp-connection.js';
import type { Config } from '../config/schema.js';

export interface AuthOfferOptions {
  /** AUTH only over TLS: not listed in EHLO before it, 538 5.7.11 if tried. */
  relayboxAuthNeedsTls?: boolean;
}

export const ENCRYPTION_REQUIRED = '5.7.11 Encryption required for requested authentication mechanism';

/**
 * Whether AUTH waits for TLS: only when there are users whose passwords it would carry, TLS to
 * wait for, and smtp.auth.allow_cleartext is not true. Without users the credentials are ignored
 * (auth.ts), so AUTH is taken in clear too: an "SSL off, authentication on" device must work where
 * no login is needed. With tls.mode none, TLS never comes; the schema refuses allow_cleartext:
 * false there, and unset keeps configs from before the key working (with a warning at start).
 */
export function authNeedsTls(smtp: Config['smtp']): boolean {
  return smtp.auth.users.length > 0 && smtp.tls.mode !== 'none' && smtp.auth.allow_cleartext !== true;
}

/** What to warn about at start: passwords that will cross the network in clear, though nobody said so. */
export function cleartextAuthWarning(smtp: Config['smtp']): string | null {
  if (smtp.auth.users.length === 0 || smtp.tls.mode !== 'none' || smtp.auth.allow_cleartext === true) return null;
  return 'smtp AUTH passwords cross the network in clear: smtp.tls.mode is none (set it to starttls, or smtp.auth.allow_cleartext: true to say this is meant)';
}

type Handler = (this: ConnectionInternals, command: Buffer | string, callback: () => void) => void;
type Send = (code: number, data?: string | string[], ...rest: unknown[]) => void;

interface ConnectionInternals {
  _server: { options: AuthOfferOptions };
  secure: boolean;
  send: Send;
}

interface ConnectionPrototype {
  handler_EHLO?: Handler;
  handler_AUTH?: Handler;
  __relayboxAuthOffer?: true;
}

export function offerAuthOverTlsOnly(): boolean {
  const { SMTPConnection } = connectionModule as unknown as { SMTPConnection?: { prototype: ConnectionPrototype } };
  const proto = SMTPConnection?.prototype;
  if (proto?.__relayboxAuthOffer) return true;
  const ehlo = proto?.handler_EHLO;
  const auth = proto?.handler_AUTH;
  if (!proto || typeof ehlo !== 'function' || typeof auth !== 'function' || !String(ehlo).includes("['AUTH']") || !String(auth).includes('538')) return false;
  proto.__relayboxAuthOffer = true;
  const waitsForTls = (connection: ConnectionInternals) => !connection.secure && connection._server.options.relayboxAuthNeedsTls === true;

  proto.handler_EHLO = function handlerEhlo(command, callback) {
    if (!waitsForTls(this)) return ehlo.call(this, command, callback);
    // The EHLO reply is sent synchronously, with the extensions as an array of lines.
    const send = this.send;
    this.send = (code, data, ...rest) => send.call(this, code, Array.isArray(data) ? data.filter((line) => !/^AUTH\b/i.test(line)) : data, ...rest);
    try {
      ehlo.call(this, command, callback);
    } finally {
      this.send = send;
    }
  };

  proto.handler_AUTH = function handlerAuth(command, callback) {
    if (!waitsForTls(this)) return auth.call(this, command, callback);
    this.send(538, ENCRYPTION_REQUIRED);
    callback();
  };
  return true;
}
