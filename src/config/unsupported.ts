import type { Config } from './schema.js';

/** SPEC sections this version reads but does not act on yet (none today); said out loud, never silently ignored. */
const NOT_YET: readonly (keyof Config)[] = [];

export function unsupportedSections(config: Config): string[] {
  return NOT_YET.filter((key) => config[key] !== undefined);
}
