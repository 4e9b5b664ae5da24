import { readFileSync } from 'node:fs';
import { isAbsolute, resolve } from 'node:path';
import { LineCounter, parseDocument } from 'yaml';
import { isFqdn } from './net.js';
import { ConfigError } from './errors.js';
import { explainIssue, type ConfigProblem } from './explain.js';
import { configSchema, type Config } from './schema.js';
import { readFailure } from './unreadable.js';
import { lineOf } from './yamlLines.js';

export { ConfigError, DEFAULT_CONFIG_PATH } from './errors.js';

export function loadConfigFile(path: string): Config {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    const why = (err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file (point at the right one with --config FILE or RELAYBOX_CONFIG=FILE)' : readFailure(err, path);
    throw new ConfigError(path, [`cannot read the file: ${why}`]);
  }
  return parseConfig(text, path);
}

export function parseConfig(text: string, source = 'config'): Config {
  const lines = new LineCounter();
  const doc = parseDocument(text, { prettyErrors: true, lineCounter: lines });
  const [syntax] = doc.errors;
  if (syntax) {
    const at = syntax.linePos?.[0];
    throw new ConfigError(source, [`YAML syntax${at ? ` at line ${at.line}, column ${at.col}` : ''}: ${syntax.message.split('\n')[0]}`]);
  }
  let raw: unknown = doc.toJS();
  if (raw === null || raw === undefined) raw = {};
  if (typeof raw !== 'object' || Array.isArray(raw)) throw new ConfigError(source, ['the file must be a YAML mapping of keys']);
  const checked = checkConfig(raw);
  if ('config' in checked) return checked.config;
  // Each problem with the line a person has to go to, top of the file first.
  const located = checked.problems.map((p) => ({ text: p.text, line: lineOf(doc, lines, p.path) }));
  located.sort((a, b) => (a.line ?? Infinity) - (b.line ?? Infinity));
  throw new ConfigError(source, located.map((p) => p.text), located.map((p) => p.line));
}

export function validateConfig(raw: unknown, source = 'config'): Config {
  const checked = checkConfig(raw);
  if ('problems' in checked) throw new ConfigError(source, checked.problems.map((p) => p.text));
  return checked.config;
}

function checkConfig(raw: unknown): { config: Config } | { problems: ConfigProblem[] } {
  const result = configSchema.safeParse(raw, { reportInput: true });
  if (!result.success) return { problems: result.error.issues.flatMap((issue) => explainIssue(issue, { schema: configSchema, raw })) };
  const config = result.data;
  const problems = semanticProblems(config);
  if (problems.length > 0) return { problems };
  config.data_dir = absolute(config.data_dir);
  for (const u of config.upstreams) if (u.type === 'file') u.dir = absolute(u.dir);
  return { config };
}

function semanticProblems(config: Config): ConfigProblem[] {
  const problems: ConfigProblem[] = [];
  const relay = config.upstreams.find((u) => u.type === 'gmail-relay');
  if (relay && !isFqdn(config.hostname)) {
    problems.push({
      path: ['hostname'],
      text:
        `hostname: "${config.hostname}" is not a fully qualified name; Google's SMTP relay (upstream "${relay.name}") ` +
        'answers 421 to such an EHLO. Set hostname to a name in your domain, e.g. relaybox.example.com',
    });
  }
  return problems;
}

function absolute(path: string): string {
  return isAbsolute(path) ? path : resolve(process.cwd(), path);
}
