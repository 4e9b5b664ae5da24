import { readFileSync } from 'node:fs';
import { isAbsolute, resolve } from 'node:path';
import { parse as parseYaml, YAMLParseError } from 'yaml';
import { isFqdn } from './net.js';
import { ConfigError } from './errors.js';
import { describeIssue } from './issues.js';
import { configSchema, type Config } from './schema.js';
import { readFailure } from './unreadable.js';

export { ConfigError, configPath, DEFAULT_CONFIG_PATH } from './errors.js';

export function loadConfigFile(path: string): Config {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigError(path, [`cannot read the file: ${readFailure(err, path)}`]);
  }
  return parseConfig(text, path);
}

export function parseConfig(text: string, source = 'config'): Config {
  let raw: unknown;
  try {
    raw = parseYaml(text, { prettyErrors: true });
  } catch (err) {
    if (err instanceof YAMLParseError) {
      const at = err.linePos?.[0];
      throw new ConfigError(source, [`YAML syntax${at ? ` at line ${at.line}, column ${at.col}` : ''}: ${err.message.split('\n')[0]}`]);
    }
    throw err;
  }
  if (raw === null || raw === undefined) raw = {};
  if (typeof raw !== 'object' || Array.isArray(raw)) throw new ConfigError(source, ['the file must be a YAML mapping of keys']);
  return validateConfig(raw, source);
}

export function validateConfig(raw: unknown, source = 'config'): Config {
  const result = configSchema.safeParse(raw);
  if (!result.success) throw new ConfigError(source, result.error.issues.map(describeIssue));
  const config = result.data;
  const problems = semanticProblems(config);
  if (problems.length > 0) throw new ConfigError(source, problems);
  config.data_dir = absolute(config.data_dir);
  for (const u of config.upstreams) if (u.type === 'file') u.dir = absolute(u.dir);
  return config;
}

function semanticProblems(config: Config): string[] {
  const problems: string[] = [];
  const relay = config.upstreams.find((u) => u.type === 'gmail-relay');
  if (relay && !isFqdn(config.hostname)) {
    problems.push(
      `hostname: "${config.hostname}" is not a fully qualified name; Google's SMTP relay (upstream "${relay.name}") ` +
        'answers 421 to such an EHLO. Set hostname to a name in your domain, e.g. relaybox.example.com',
    );
  }
  return problems;
}

function absolute(path: string): string {
  return isAbsolute(path) ? path : resolve(process.cwd(), path);
}
