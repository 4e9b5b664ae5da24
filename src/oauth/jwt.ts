import { createSign } from 'node:crypto';

const base64url = (data: string | Buffer): string => Buffer.from(data).toString('base64url');

/**
 * A compact JWS with RS256 (RFC 7515/7518) — all a service-account or client assertion needs.
 * `header` adds fields such as Microsoft's `x5t` (which certificate signed it).
 */
export function signJwtRs256(claims: Record<string, unknown>, privateKeyPem: string, header: Record<string, string> = {}): string {
  const signingInput = `${base64url(JSON.stringify({ alg: 'RS256', typ: 'JWT', ...header }))}.${base64url(JSON.stringify(claims))}`;
  const signature = createSign('RSA-SHA256').update(signingInput).sign(privateKeyPem);
  return `${signingInput}.${base64url(signature)}`;
}
