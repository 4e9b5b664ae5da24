#!/usr/bin/env node
import { setFlagsFromString } from 'node:v8';
import { Command, CommanderError } from 'commander';
import { VERSION as version } from './version.js';
import { registerLogCommands } from './cli/logExport.js';
import { registerOAuthCommands } from './cli/oauth.js';
import { registerQueueCommands } from './cli/queue.js';
import { registerSendTest } from './cli/sendTest.js';
import { registerServiceCommands } from './cli/service.js';
import { EXIT_USAGE, reportAndExit } from './cli/common.js';


// A small young generation: a Pi has little memory to spare and relaybox allocates little.
// Worth ~8 MB of resident memory at idle; set before anything is allocated in earnest.
setFlagsFromString('--max-semi-space-size=1');

const program = new Command('relaybox')
  .description('store-and-forward mail relay for scanners, printers, NAS units and sensors')
  .version(version)
  .showHelpAfterError()
  .exitOverride();

registerServiceCommands(program);
registerQueueCommands(program);
registerSendTest(program);
registerLogCommands(program);
registerOAuthCommands(program);

try {
  await program.parseAsync(process.argv);
} catch (err) {
  if (err instanceof CommanderError) {
    // Help and --version are not errors; anything else commander refuses is a usage error.
    process.exit(err.exitCode === 0 ? 0 : EXIT_USAGE);
  }
  reportAndExit(err);
}
