import { createPrivateKey } from 'node:crypto';
import { z } from 'zod';
import { secret } from './secret.js';

/**
 * The signing key is checked here, at load: nodemailer's signer leaves a message unsigned,
 * without an error, when the key cannot sign — a bad key must stop the service, not mail.
 */
const rsaPrivateKey = secret.transform((pem, ctx): string => {
  if (pem === '') return pem; // the secret itself already reported why it is empty
  try {
    const key = createPrivateKey(pem);
    if (key.asymmetricKeyType !== 'rsa') {
      ctx.addIssue({ code: 'custom', message: `expected an RSA private key (relaybox signs rsa-sha256), got ${key.asymmetricKeyType}` });
    } else if ((key.asymmetricKeyDetails?.modulusLength ?? 0) < 1024) {
      ctx.addIssue({ code: 'custom', message: 'the RSA key is shorter than 1024 bits; verifiers ignore such signatures (use 2048)' });
    }
  } catch {
    ctx.addIssue({ code: 'custom', message: 'expected a PEM private key (-----BEGIN PRIVATE KEY----- or -----BEGIN RSA PRIVATE KEY-----)' });
  }
  return pem;
});

export const dkimSection = z.strictObject({
  domain: z
    .string()
    .regex(/^[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$/, 'expected a domain name like example.com')
    .transform((d) => d.toLowerCase()),
  selector: z.string().regex(/^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$/, 'expected a selector like relaybox (the DNS label before ._domainkey)'),
  private_key: rsaPrivateKey,
});

export type DkimConfig = z.output<typeof dkimSection>;
