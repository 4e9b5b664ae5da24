import { existsSync, realpathSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DEFAULT_CONFIG_PATH } from '../config/errors.js';
import { CliError, EXIT_USAGE } from './common.js';

/** The source tree this CLI runs from; a git clone has `.git` at its top, the package does not. */
const TREE = resolve(fileURLToPath(new URL('../..', import.meta.url)));
const CLONE_CONFIG = join(TREE, 'config', 'relaybox.example.yaml');

/** The lookup order as --help shows it. */
export const CONFIG_LOOKUP = [
  'Configuration file: the first of',
  '  --config FILE',
  '  $RELAYBOX_CONFIG',
  `  ${DEFAULT_CONFIG_PATH}`,
  '  config/relaybox.example.yaml   in a git clone, run from its top directory (the file make run uses)',
].join('\n');

/**
 * The configuration file of a command: `--config FILE`, else `$RELAYBOX_CONFIG`, else
 * /etc/relaybox/relaybox.yaml, else — in a git clone without that file — the clone's
 * config/relaybox.example.yaml, the file `make run` uses. That last one only from the clone's top
 * directory, as `make run` runs: its paths (./var) are relative, and from anywhere else they would
 * name a different, empty spool.
 */
export function configPath(flag?: string): string {
  if (flag) return flag;
  if (process.env.RELAYBOX_CONFIG) return process.env.RELAYBOX_CONFIG;
  if (existsSync(DEFAULT_CONFIG_PATH)) return DEFAULT_CONFIG_PATH;
  const clone = existsSync(join(TREE, '.git')) && existsSync(CLONE_CONFIG);
  if (clone && sameDir(process.cwd(), TREE)) return CLONE_CONFIG;
  const looked = [
    ['--config FILE', 'not given'],
    ['$RELAYBOX_CONFIG', 'not set'],
    [DEFAULT_CONFIG_PATH, 'no such file'],
    ...(clone ? [[CLONE_CONFIG, `this clone's, used only from ${TREE} (as make run does): its paths are relative`]] : []),
  ];
  const width = Math.max(...looked.map(([what]) => what!.length));
  throw new CliError(
    `no configuration file. Looked for:\n${looked.map(([what, why]) => `  ${what!.padEnd(width)}  ${why}\n`).join('')}` +
      'Point at one with --config FILE or RELAYBOX_CONFIG=FILE' + (clone ? `, or run from ${TREE}` : ''),
    EXIT_USAGE,
  );
}

function sameDir(a: string, b: string): boolean {
  try {
    return realpathSync(a) === realpathSync(b);
  } catch {
    return false;
  }
}
