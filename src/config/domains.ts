import { domainToASCII } from 'node:url';

/** RFC 1035 labels (letters, digits, hyphens inside), at most 253 characters: `xn--` labels included. */
const ASCII_DOMAIN = /^(?=.{1,253}$)[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*$/;

/**
 * A domain in the one form relaybox compares: lower case, ASCII (`bücher.example` and
 * `xn--bcher-kva.example` are the same name), without the root's trailing dot (`example.com.`
 * is `example.com`). Undefined for what is not a domain name.
 */
export function canonicalDomain(text: string): string | undefined {
  const name = text.trim().replace(/\.$/, '');
  if (name === '') return undefined;
  const ascii = domainToASCII(name).toLowerCase();
  return ASCII_DOMAIN.test(ascii) ? ascii : undefined;
}

