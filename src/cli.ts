#!/usr/bin/env node
import { Command, CommanderError } from 'commander';
import { VERSION as version } from './version.js';
import { EXIT_OK, EXIT_USAGE, reportAndExit } from './cli/common.js';
import { addHelpTexts } from './cli/help.js';

/**
 * Each command group is loaded when it is needed: `serve` runs for years on a small box, and
 * the modules of `oauth`, `doctor` or `log export` would only sit in its memory.
 */
const COMMANDS: Array<() => Promise<(program: Command) => void>> = [
  async () => (await import('./cli/service.js')).registerServiceCommands,
  async () => (await import('./cli/queue.js')).registerQueueCommands,
  async () => (await import('./cli/sendTest.js')).registerSendTest,
  async () => (await import('./cli/logExport.js')).registerLogCommands,
  async () => (await import('./cli/oauth.js')).registerOAuthCommands,
  async () => (await import('./cli/doctor.js')).registerDoctor,
  async () => (await import('./cli/backup.js')).registerBackupCommands,
];

const program = new Command('relaybox')
  .description('store-and-forward mail relay for scanners, printers, NAS units and sensors')
  .version(version)
  .showHelpAfterError()
  .exitOverride();

for (const load of process.argv[2] === 'serve' ? COMMANDS.slice(0, 1) : COMMANDS) (await load())(program);
addHelpTexts(program);

// `relaybox log export | head`: the reader has all it wants; that is the end, not a failure.
process.stdout.on('error', (err: NodeJS.ErrnoException) => (err.code === 'EPIPE' ? process.exit(EXIT_OK) : reportAndExit(err)));

try {
  await program.parseAsync(process.argv);
} catch (err) {
  if (err instanceof CommanderError) {
    // Help and --version are not errors; anything else commander refuses is a usage error.
    process.exit(err.exitCode === 0 ? 0 : EXIT_USAGE);
  }
  reportAndExit(err);
}
