import { chmod, mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { SecureVersion } from 'node:tls';
import type { Config } from '../config/schema.js';
import { autoCertPaths } from '../config/tlsPaths.js';

export interface TlsMaterial {
  key: Buffer;
  cert: Buffer;
}

/** What smtp-server passes to tls.createSecureContext. */
export interface TlsServerOptions extends TlsMaterial {
  minVersion: SecureVersion;
  ciphers?: string;
}

const CERT_YEARS = 10;

/**
 * The certificate and key for the SMTP listeners: the configured files, or with `cert: auto` a
 * self-signed pair made on first start and kept in `<data_dir>/tls/` so devices that pinned it
 * keep working across restarts.
 */
export async function loadTlsMaterial(config: Config): Promise<TlsMaterial> {
  const { cert, key } = config.smtp.tls;
  if (cert !== 'auto') {
    if (!key) throw new Error('smtp.tls.key: a key file is needed with a cert file');
    return { cert: await readFile(cert), key: await readFile(key) };
  }
  const paths = autoCertPaths(config.data_dir);
  const existing = await Promise.all([readFile(paths.cert).catch(() => null), readFile(paths.key).catch(() => null)]);
  if (existing[0] && existing[1]) return { cert: existing[0], key: existing[1] };
  return createSelfSigned(config.hostname, paths);
}

async function createSelfSigned(hostname: string, paths: ReturnType<typeof autoCertPaths>): Promise<TlsMaterial> {
  const notBeforeDate = new Date();
  const notAfterDate = new Date(notBeforeDate);
  notAfterDate.setFullYear(notAfterDate.getFullYear() + CERT_YEARS);
  const pems = await (await import('selfsigned')).generate([{ name: 'commonName', value: hostname }], {
    keyType: 'rsa',
    keySize: 2048,
    algorithm: 'sha256',
    notBeforeDate,
    notAfterDate,
  });
  await mkdir(paths.dir, { recursive: true, mode: 0o700 });
  await chmod(paths.dir, 0o700);
  // Written aside and renamed, so a crash never leaves a half-written pair to be reused.
  await writeFile(`${paths.key}.tmp`, pems.private, { mode: 0o600 });
  await chmod(`${paths.key}.tmp`, 0o600);
  await writeFile(`${paths.cert}.tmp`, pems.cert, { mode: 0o644 });
  await rename(`${paths.key}.tmp`, paths.key);
  await rename(`${paths.cert}.tmp`, paths.cert);
  return { cert: Buffer.from(pems.cert), key: Buffer.from(pems.private) };
}

/**
 * TLS options for the listeners. TLS 1.0/1.1 exist here only for old multifunction printers and
 * must be asked for; OpenSSL 3 refuses them at its default security level, hence SECLEVEL=0 then.
 */
export function tlsServerOptions(tls: Config['smtp']['tls'], material: TlsMaterial): TlsServerOptions {
  const options: TlsServerOptions = { ...material, minVersion: tls.min_version };
  if (tls.min_version === 'TLSv1' || tls.min_version === 'TLSv1.1') options.ciphers = 'DEFAULT@SECLEVEL=0';
  return options;
}
