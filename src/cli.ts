#!/usr/bin/env node
import { Command, CommanderError } from 'commander';
import { VERSION as version } from './version.js';
import { registerLogCommands } from './cli/logExport.js';
import { registerQueueCommands } from './cli/queue.js';
import { registerSendTest } from './cli/sendTest.js';
import { registerServiceCommands } from './cli/service.js';
import { EXIT_USAGE, reportAndExit } from './cli/common.js';


const program = new Command('relaybox')
  .description('store-and-forward mail relay for scanners, printers, NAS units and sensors')
  .version(version)
  .showHelpAfterError()
  .exitOverride();

registerServiceCommands(program);
registerQueueCommands(program);
registerSendTest(program);
registerLogCommands(program);

try {
  await program.parseAsync(process.argv);
} catch (err) {
  if (err instanceof CommanderError) {
    // Help and --version are not errors; anything else commander refuses is a usage error.
    process.exit(err.exitCode === 0 ? 0 : EXIT_USAGE);
  }
  reportAndExit(err);
}
