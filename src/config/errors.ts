/**
 * What the CLI needs to name and report a configuration without loading one: yaml and zod stay
 * out of the service's memory (see offThread.ts).
 */

export const DEFAULT_CONFIG_PATH = '/etc/relaybox/relaybox.yaml';

/** A configuration the service must not start with; `problems` are `key.path: what is wrong`. */
export class ConfigError extends Error {
  constructor(
    readonly source: string,
    readonly problems: string[],
  ) {
    super(`${source}: ${problems.join('; ')}`);
  }
}

/** `--config FILE`, else `$RELAYBOX_CONFIG`, else /etc/relaybox/relaybox.yaml. */
export function configPath(flag?: string): string {
  return flag ?? process.env.RELAYBOX_CONFIG ?? DEFAULT_CONFIG_PATH;
}
