import type { Context } from 'hono';
import { randomBytes } from 'node:crypto';
import { open, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import type { Logger } from 'pino';
import { BackupError } from '../backup/manifest.js';
import { writeBackupOffThread } from '../backup/offThread.js';
import type { Config } from '../config/schema.js';
import type { WebEnv } from './auth.js';

export interface BackupRouteDeps {
  config: Config;
  /** The file the service was started with; the archive carries it. */
  configPath: string | undefined;
  logger: Logger;
}

/**
 * GET /api/backup: the archive of `relaybox backup`, as a download. It holds every secret of the
 * box, so it is offered only behind http.admin_token (a bearer token or a console session), never
 * on an open loopback console, and never cached. Made on its own thread; one at a time.
 */
export function backupDownload(deps: BackupRouteDeps) {
  const { config, configPath, logger } = deps;
  let making = false;
  return async (c: Context<WebEnv>): Promise<Response> => {
    if (!config.http.admin_token) {
      return c.json({ error: 'the backup holds secrets: the console offers it only when http.admin_token is set (or run relaybox backup FILE on the box)' }, 403);
    }
    if (!configPath) return c.json({ error: 'relaybox was not started from a configuration file: run relaybox backup FILE' }, 409);
    if (making) return c.json({ error: 'a backup is being made; try again when it is done' }, 409);
    making = true;
    const out = join(config.data_dir, `.download-${randomBytes(6).toString('hex')}.tar.gz`);
    try {
      const { manifest, bytes } = await writeBackupOffThread({ configPath, dataDir: config.data_dir, tls: config.smtp.tls, out });
      // Open, then unlink: the download reads the open file, and nothing is left behind however it ends.
      const file = await open(out, 'r');
      await rm(out, { force: true });
      logger.info({ bytes, messages: manifest.spool.messages, undelivered: manifest.spool.undelivered, via: c.get('auth') }, 'backup downloaded from the console');
      const name = `relaybox-backup-${config.hostname.replace(/[^A-Za-z0-9.-]/g, '_')}-${manifest.created_at.slice(0, 19).replace(/[-:]/g, '').replace('T', '-')}.tar.gz`;
      return new Response(Readable.toWeb(file.createReadStream()) as ReadableStream, {
        headers: {
          'Content-Type': 'application/gzip',
          'Content-Length': String(bytes),
          'Content-Disposition': `attachment; filename="${name}"`,
          'Cache-Control': 'no-store',
        },
      });
    } catch (err) {
      await rm(out, { force: true });
      if (err instanceof BackupError) return c.json({ error: err.message }, 409);
      throw err;
    } finally {
      making = false;
    }
  };
}
