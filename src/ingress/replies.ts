import type { SMTPServerError } from 'smtp-server';

/** What devices hear from relaybox: enhanced status codes written into the text (smtp-server's own would guess them). */
export const REPLY = {
  notAllowed: (address: string) => `5.7.1 Client address ${address} is not allowed`,
  authRequired: '5.7.0 Authentication required',
  badCredentials: '5.7.8 Authentication credentials invalid',
  authUnavailable: '4.7.0 Temporary authentication failure',
  relayDenied: (domain: string) => `5.7.1 relaying to ${domain} denied`,
  senderNotAllowed: (address: string, user: string) => `5.7.1 <${address}>: not allowed for user ${user}`,
  headerTooBigToCheck: (user: string) => `5.7.1 header section too large to check its From for user ${user}`,
  tooBig: '5.3.4 Message size exceeds fixed maximum message size',
  tryAgain: '4.3.0 Temporary failure, try again',
  queued: (id: number) => `2.0.0 Ok: queued as ${id}`,
  shuttingDown: '4.3.2 Server shutting down',
  authLocked: (seconds: number) => `4.7.0 Too many failed logins from this address; try again in ${seconds} s`,
  tooManyConnections: '4.7.0 Too many connections, try again later',
  evicted: '4.4.2 Closing a silent connection to make room for another client',
  tooManyFromAddress: (address: string) => `4.7.0 Too many connections from ${address}, try again later`,
};

export function smtpError(code: number, message: string): SMTPServerError {
  return Object.assign(new Error(message), { responseCode: code });
}
