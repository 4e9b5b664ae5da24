// smtp-server answers 501 to an envelope address without angle brackets (`MAIL FROM:scanner@corp.example`)
// and to a bare name (`MAIL FROM:<root>`, `RCPT TO:admin`). Postfix takes both and qualifies the name
// with its own domain; older NAS and UPS firmware sends exactly these. This rewrites such a command
// into the bracketed, qualified form before smtp-server parses it, so that everything smtp-server and
// addresses.ts check (and the relay rules) applies to the address that is spooled and goes upstream.
// Only servers that ask for it (`relayboxEnvelope` in their options) are affected: the test upstream,
// built on smtp-server too, stays strict. Should a later smtp-server rename the parser, the patch
// steps aside and those commands hear 501 as before.
import * as connectionModule from 'smtp-server/lib/smtp-connection.js';

export interface LooseEnvelopeOptions {
  /** The domain a bare name is qualified with (smtp.default_domain, else the hostname); none: 501 as before. */
  relayboxEnvelope?: { defaultDomain: string | undefined };
}

// RFC 5322 atext (plus UTF-8 for SMTPUTF8 local parts) and dots; where the dots go is checked later.
const LOCAL = "[A-Za-z0-9!#$%&'*+/=?^_`{|}~\\u0080-\\uFFFF.-]+";
// A bracket-less address: a local part, and maybe a domain or address literal. Neither quotes nor
// source routes (`@relay:`), which RFC 5321 only has inside brackets.
const BARE_ADDRESS = new RegExp(`^${LOCAL}(?:@[^\\s<>@"]+)?$`);
const BRACKETED_NAME = new RegExp(`^<${LOCAL}>$`);
// `MAIL FROM:` / `RCPT TO:`, then the address up to the first space, then the parameters.
const COMMAND = /^([^:]*:[ \t]*)(\S*)(.*)$/s;

/**
 * The command as smtp-server wants it: a bracket-less address put in brackets, a bare name
 * qualified with `defaultDomain`. Anything else (the null sender `<>` included) is left for
 * smtp-server to take or refuse as before.
 */
export function bracketedCommand(command: string, defaultDomain: string | undefined): string {
  const match = COMMAND.exec(command);
  if (!match) return command;
  const [, head, address, params] = match as unknown as [string, string, string, string];
  let bracketed = address;
  if (BARE_ADDRESS.test(address)) bracketed = `<${address}>`;
  else if (!BRACKETED_NAME.test(address)) return command;
  if (!bracketed.includes('@')) {
    if (!defaultDomain) return command;
    bracketed = `${bracketed.slice(0, -1)}@${defaultDomain}>`;
  }
  return `${head}${bracketed}${params}`;
}

interface ConnectionInternals {
  _server: { options: LooseEnvelopeOptions };
}
type Parse = (this: ConnectionInternals, name: string, command: Buffer | string) => unknown;

export function acceptLooseEnvelopes(): boolean {
  const { SMTPConnection } = connectionModule as unknown as {
    SMTPConnection?: { prototype: { _parseAddressCommand?: Parse; __relayboxLoose?: true } };
  };
  const proto = SMTPConnection?.prototype;
  if (proto?.__relayboxLoose) return true;
  const parse = proto?._parseAddressCommand;
  if (!proto || typeof parse !== 'function' || parse.length !== 2) return false;
  proto.__relayboxLoose = true;
  proto._parseAddressCommand = function parseAddressCommand(this: ConnectionInternals, name, command) {
    const loose = this._server.options.relayboxEnvelope;
    return parse.call(this, name, loose ? bracketedCommand(String(command ?? ''), loose.defaultDomain) : command);
  };
  return true;
}
