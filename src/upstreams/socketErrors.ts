/**
 * Node's socket and TLS errors in words a person acts on, the code kept at the end for searching:
 * `connect ECONNREFUSED 127.0.0.1:587` → `connection refused by 127.0.0.1:587 — nothing listens
 * there (ECONNREFUSED)`. Replies from a server are never reworded: they are the server's words.
 */

interface SocketError {
  code?: string;
  /** nodemailer's ESOCKET/ETLS wrappers keep Node's code here. */
  originalCode?: string;
  message?: string;
  address?: string;
  port?: number;
  hostname?: string;
  /** nodemailer's timeouts: CONNECT_TIMEOUT, GREETING_TIMEOUT, … */
  timeoutType?: string;
}

/** What each code means, given where it happened (`127.0.0.1:587`, or the host name). */
const WORDS: Record<string, (where: string) => string> = {
  ECONNREFUSED: (w) => `connection refused by ${w} — nothing listens there`,
  ETIMEDOUT: (w) => `no answer from ${w}: the connection timed out`,
  EHOSTUNREACH: (w) => `no route to ${w}: the host is unreachable from this network`,
  ENETUNREACH: (w) => `no route to ${w}: this box has no network that reaches it`,
  EADDRNOTAVAIL: (w) => `cannot connect to ${w}: the address is not available from this box`,
  ENOTFOUND: (w) => `${w} not found in DNS`,
  EAI_AGAIN: (w) => `${w} could not be looked up: the DNS server did not answer`,
  EAI_FAIL: (w) => `${w} could not be looked up: the DNS server failed`,
  ECONNRESET: (w) => `${w} closed the connection abruptly`,
  EPIPE: (w) => `${w} closed the connection while relaybox was writing`,
  CERT_HAS_EXPIRED: (w) => `the certificate of ${w} has expired (or this box's clock is wrong)`,
  CERT_NOT_YET_VALID: (w) => `the certificate of ${w} is not valid yet (or this box's clock is wrong)`,
  DEPTH_ZERO_SELF_SIGNED_CERT: (w) => `the certificate of ${w} is self-signed: not trusted`,
  SELF_SIGNED_CERT_IN_CHAIN: (w) => `the certificate of ${w} comes from a self-signed CA: not trusted`,
  UNABLE_TO_VERIFY_LEAF_SIGNATURE: (w) => `the certificate of ${w} cannot be checked: its issuer is unknown here (missing intermediate or private CA)`,
  UNABLE_TO_GET_ISSUER_CERT_LOCALLY: (w) => `the certificate of ${w} cannot be checked: its issuer is unknown here (private CA?)`,
  ERR_TLS_CERT_ALTNAME_INVALID: (w) => `the certificate of ${w} is made out to another name`,
  ERR_SSL_WRONG_VERSION_NUMBER: (w) => `TLS handshake with ${w} failed: the server speaks plain text there (a STARTTLS port used with security: tls?)`,
};

/** The words for a socket or TLS error, or null when it is none of the known ones. */
export function socketErrorWords(err: unknown): string | null {
  if (!err || typeof err !== 'object') return null;
  const e = err as SocketError;
  const message = e.message ?? '';
  // Connected, then silence: the classic sign of plain text spoken to an implicit-TLS port.
  if (e.timeoutType === 'GREETING_TIMEOUT') return `${message}: the server took the connection and said nothing (a TLS port like 465 used without security: tls?) (ETIMEDOUT)`;
  if (e.timeoutType) return `${message} (ETIMEDOUT)`;
  const code = [e.originalCode, e.code].find((c): c is string => typeof c === 'string' && c in WORDS) ?? codeInMessage(message);
  if (!code) return null;
  return `${WORDS[code]!(where(e, message))} (${code})`;
}

/** OpenSSL's own message carries no code property for some failures: `…:wrong version number:…`. */
function codeInMessage(message: string): string | null {
  if (/wrong version number/i.test(message)) return 'ERR_SSL_WRONG_VERSION_NUMBER';
  const m = /\b(ECONNREFUSED|ETIMEDOUT|EHOSTUNREACH|ENETUNREACH|EADDRNOTAVAIL|ENOTFOUND|EAI_AGAIN|EAI_FAIL|ECONNRESET|EPIPE)\b/.exec(message);
  return m ? m[1]! : null;
}

/** `127.0.0.1:587`, or the name DNS could not find, or "the server". */
function where(e: SocketError, message: string): string {
  if (e.address && e.port) return e.address.includes(':') ? `[${e.address}]:${e.port}` : `${e.address}:${e.port}`;
  if (e.hostname) return e.hostname;
  const m = /\b(?:connect|getaddrinfo|queryA+)\s+[A-Z_]+\s+(\S+)/.exec(message);
  return m ? m[1]! : 'the server';
}
