import type { HintRow } from './row.js';

/**
 * Socket and TLS failures (worded by src/upstreams/socketErrors.ts, which keeps Node's code in
 * the reply) and replies that mean the same at any provider. Last in the table: a provider's own
 * row says more.
 */
export const NETWORK_ROWS: readonly HintRow[] = [
  {
    id: 'refused',
    reply: /\bECONNREFUSED\b/,
    hint: (t) => `Nothing takes connections at ${t.host} on that port: check host and port of upstream ${t.name} (587 for STARTTLS, 465 for TLS) and that the server is running`,
  },
  {
    id: 'no-greeting',
    reply: /Greeting never received/i,
    hint: (t) => `${t.host} took the connection but never greeted: on port 465 set security: tls on upstream ${t.name}; otherwise the server is overloaded or something in between holds the connection`,
  },
  {
    id: 'timed-out',
    reply: /\bETIMEDOUT\b|connection timed out|Connection timeout/i,
    hint: (t) => `${t.host} did not answer: a firewall or the ISP may block outgoing mail ports (25 often, sometimes 587/465); try the other port or check the network`,
  },
  {
    id: 'unreachable',
    reply: /\bE(HOST|NET)UNREACH\b/,
    hint: (t) => `This box has no route to ${t.host}: check its network, gateway and IPv6 settings`,
  },
  {
    id: 'dns',
    reply: /\b(ENOTFOUND|EAI_AGAIN|EAI_FAIL)\b/,
    hint: (t) => `${t.host} does not resolve: check the spelling of upstream ${t.name}'s host and this box's DNS server`,
  },
  {
    id: 'tls-wrong-port',
    reply: /wrong version number|WRONG_VERSION_NUMBER/i,
    hint: (t) => `TLS and plain text are mixed up: port 465 wants security: tls, port 587 wants security: starttls (upstream ${t.name})`,
  },
  {
    id: 'tls-expired',
    reply: /CERT_HAS_EXPIRED|CERT_NOT_YET_VALID/,
    hint: (t) => `${t.host}'s certificate looks expired or not yet valid: check this box's clock first (\`timedatectl\`), then the server's certificate`,
  },
  {
    id: 'tls-name',
    reply: /ERR_TLS_CERT_ALTNAME_INVALID/,
    hint: (t) => `The certificate is not made out to ${t.host}: use the host name the certificate names in upstream ${t.name}`,
  },
  {
    id: 'tls-untrusted',
    reply: /SELF_SIGNED|UNABLE_TO_VERIFY_LEAF_SIGNATURE|UNABLE_TO_GET_ISSUER_CERT/,
    hint: (t) => `relaybox does not trust ${t.host}'s certificate: give the CA that signed it in upstream ${t.name}'s tls.ca (tls.verify: false only for a server you control)`,
  },
  {
    id: 'reset',
    reply: /\bECONNRESET\b|\bEPIPE\b/,
    hint: (t) => `${t.host} hung up mid-conversation: often TLS set up wrong (security: tls vs starttls), or the server refusing this IP`,
  },
  {
    id: 'starttls-required',
    reply: /530[ -]5\.7\.0\b.*STARTTLS/is,
    hint: (t) => `${t.host} requires TLS: set security: starttls (port 587) on upstream ${t.name}`,
  },
  {
    id: 'relay-denied',
    reply: /relay(ing)? (access )?(denied|not permitted)|5\.7\.1\b.*relay/i,
    hint: (t) => `${t.host} does not relay for this box: give upstream ${t.name} a login (auth), or allow this box's IP on that server`,
  },
  {
    id: 'login-refused',
    reply: /^\s*535\b/,
    hint: (t) => `${t.host} refused the login of ${t.user}: check auth.user and auth.pass of upstream ${t.name}`,
  },
  {
    id: 'too-big',
    reply: /^\s*552\b|5\.3\.4\b/,
    hint: (t) => `The message is bigger than ${t.host} takes: scan at a lower resolution or split it`,
  },
];
