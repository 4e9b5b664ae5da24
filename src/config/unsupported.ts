import type { Config } from './schema.js';

/** Sections of SPEC that this version reads but does not act on yet; said out loud, never silently ignored. */
export function unsupportedSections(config: Config): string[] {
  return (['routes', 'dkim', 'mqtt', 'http'] as const).filter((key) => config[key] !== undefined);
}
