/**
 * What the CLI needs to name and report a configuration without loading one: yaml and zod stay
 * out of the service's memory (see offThread.ts).
 */

export const DEFAULT_CONFIG_PATH = '/etc/relaybox/relaybox.yaml';

/**
 * A configuration the service must not start with; `problems` are `key.path: what is wrong`, and
 * `lines[i]`, when known, is the line of the file where `problems[i]` is.
 */
export class ConfigError extends Error {
  constructor(
    readonly source: string,
    readonly problems: string[],
    readonly lines: Array<number | undefined> = [],
  ) {
    super(`${source}: ${problems.join('; ')}`);
  }

  /** Each problem as the CLI prints it: `smtp.listen: write it as a list: ["0.0.0.0:25"] (line 4)`. */
  get located(): string[] {
    return this.problems.map((problem, i) => (this.lines[i] ? `${problem} (line ${this.lines[i]})` : problem));
  }
}
