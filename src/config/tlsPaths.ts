import { join } from 'node:path';

/** Where `smtp.tls.cert: auto` keeps the self-signed pair it makes: `<data_dir>/tls/`. */
export function autoCertPaths(dataDir: string): { dir: string; cert: string; key: string } {
  const dir = join(dataDir, 'tls');
  return { dir, cert: join(dir, 'cert.pem'), key: join(dir, 'key.pem') };
}
