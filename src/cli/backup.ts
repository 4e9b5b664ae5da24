import type { Command } from 'commander';
import { resolve } from 'node:path';
import { BackupError, type Manifest } from '../backup/manifest.js';
import { configPath } from './configLookup.js';
import { CliError, type ConfigFlag } from './common.js';
import { loadConfig } from './configFile.js';

interface RestoreFlags extends ConfigFlag {
  force?: boolean;
}

const out = (text = '') => process.stdout.write(`${text}\n`);

export function registerBackupCommands(program: Command): void {
  program
    .command('backup')
    .description('write one archive of the spool, OAuth tokens, TLS pair, keys and configuration; safe while relaybox runs')
    .argument('<file>', 'the archive to write (.tar.gz, mode 0600: it holds secrets); replaced if it exists')
    .option('--config <file>', 'configuration file')
    .action(async (file: string, flags: ConfigFlag) => {
      const config = loadConfig(flags);
      const { writeBackup } = await import('../backup/write.js');
      const target = resolve(file);
      const { manifest, bytes } = await refusalsAsCliErrors(() =>
        writeBackup({ configPath: resolve(configPath(flags.config)), dataDir: config.data_dir, tls: config.smtp.tls, out: target }),
      );
      out(`backup written to ${target} (${formatBytes(bytes)}, readable by its owner only: it holds secrets)`);
      out(`  spool: ${manifest.spool.messages} message(s), ${manifest.spool.undelivered} undelivered`);
      for (const f of manifest.files.filter((f) => f.entry !== 'data/spool.db')) out(`  ${f.what}: ${f.from}`);
      leftOut(manifest);
    });

  program
    .command('restore')
    .description('put an archive of relaybox backup onto this box; relaybox must be stopped')
    .argument('<file>', 'an archive written by relaybox backup or downloaded from the console')
    .option('--force', 'replace a spool that holds messages, and files that differ from the archived ones')
    .option('--config <file>', 'where this box reads its configuration: the archived one is written there')
    .action(async (file: string, flags: RestoreFlags) => {
      const { restoreBackup } = await import('../backup/restore.js');
      const path = resolve(configPath(flags.config));
      const summary = await refusalsAsCliErrors(() => restoreBackup({ archive: resolve(file), configPath: path, force: flags.force ?? false }));
      const { manifest, replaced } = summary;
      out(`restored the backup of ${manifest.hostname} made ${manifest.created_at} by relaybox ${manifest.relaybox_version}:`);
      out(`  spool: ${manifest.spool.messages} message(s), ${manifest.spool.undelivered} undelivered`);
      for (const f of summary.placed) out(`  ${f.what}: ${f.to}`);
      if (replaced.spool?.messages) out(`  replaced a spool of ${replaced.spool.messages} message(s)`);
      for (const f of replaced.files) out(`  replaced ${f}`);
      if (summary.keptConfig) out(`  the configuration that was there is kept as ${summary.keptConfig}`);
      leftOut(manifest);
      out('Start relaybox (systemctl start relaybox): undelivered mail goes out at once.');
    });
}

/** The files the configuration names that the archive does not carry. */
function leftOut(manifest: Manifest): void {
  for (const f of manifest.left_out) out(`  not in the archive: ${f.from} (${f.key}): ${f.why}`);
}

async function refusalsAsCliErrors<T>(run: () => Promise<T>): Promise<T> {
  try {
    return await run();
  } catch (err) {
    if (err instanceof BackupError) throw new CliError(err.message);
    throw err;
  }
}

function formatBytes(n: number): string {
  return n < 1024 * 1024 ? `${Math.ceil(n / 1024)} KiB` : `${(n / 1024 / 1024).toFixed(1)} MiB`;
}
