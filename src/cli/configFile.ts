import { loadConfigFile } from '../config/load.js';
import type { Config } from '../config/schema.js';
import { openSpool, type SpoolDb } from '../spool/db.js';
import type { ConfigFlag } from './common.js';
import { configPath } from './configLookup.js';

/** The configuration of a short-lived command (`serve` loads its own off its thread). */
export function loadConfig(flags: ConfigFlag): Config {
  return loadConfigFile(configPath(flags.config));
}

export function openConfiguredSpool(flags: ConfigFlag): { config: Config; db: SpoolDb } {
  const config = loadConfig(flags);
  return { config, db: openSpool(config.data_dir) };
}
