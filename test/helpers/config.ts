import { ConfigError, parseConfig } from '../../src/config/load.js';

/** A minimal upstreams section, for configs whose point is elsewhere. */
export const FILE_UPSTREAM = 'upstreams: [{ name: out, type: file, dir: ./out }]';

/** What relaybox says is wrong with a YAML config (the test fails if it says nothing). */
export function configProblems(yaml: string): string[] {
  try {
    parseConfig(yaml);
  } catch (err) {
    if (err instanceof ConfigError) return err.problems;
    throw err;
  }
  throw new Error('expected a ConfigError');
}
