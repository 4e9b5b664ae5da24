import type { z } from 'zod';
import { formatPath } from './issues.js';
import { knownKeys } from './schemaKeys.js';
import { closest } from './suggest.js';

/** One thing wrong in a config file, and where: `path` is the key path, for its YAML line. */
export interface ConfigProblem {
  path: PropertyKey[];
  text: string;
}

/**
 * A zod issue in the project's words for the mistakes people make in a YAML file: a string where
 * a list goes, a typo in a key or a value ("did you mean"), a value left empty. zod's own wording
 * is kept only where the schema wrote none of its own. Values are echoed only where they cannot
 * be secrets (list entries, enum words, numbers and switches).
 */
export function explainIssue(issue: z.core.$ZodIssue, context: { schema: z.ZodType; raw: unknown }): ConfigProblem[] {
  const at = (path: PropertyKey[], text: string): ConfigProblem => ({ path, text: path.length > 0 ? `${formatPath(path)}: ${text}` : text });
  const own = !/^(Invalid|Too (small|big)|Unrecognized)/.test(issue.message);
  switch (issue.code) {
    case 'unrecognized_keys': {
      const known = knownKeys(context.schema, issue.path, context.raw);
      return issue.keys.map((key) => at([...issue.path, key], `unknown key${didYouMean(key, known)}`));
    }
    case 'invalid_value': {
      const words = issue.values.map(String);
      const typed = typeof issue.input === 'string' ? issue.input : undefined;
      const text = own ? issue.message : `expected one of ${words.join(', ')}${typed !== undefined ? `, got "${typed}"` : ''}`;
      return [at(issue.path, `${text}${typed !== undefined ? didYouMean(typed, words) : ''}`)];
    }
    case 'invalid_union': {
      // A discriminated union (upstreams by `type`) lists the words it knows; its types do not say so.
      const { discriminator, options } = issue as { discriminator?: string; options?: unknown[] };
      const chosen = discriminator ? (issue.input as Record<string, unknown> | undefined)?.[discriminator] : undefined;
      const hint = typeof chosen === 'string' && options ? didYouMean(chosen, options.map(String)) : '';
      return [at(issue.path, `${issue.message}${hint}`)];
    }
    case 'invalid_type':
      return [at(issue.path, own ? issue.message : wrongType(issue.expected, issue.input))];
    case 'too_small':
    case 'too_big':
      return [at(issue.path, own ? issue.message : outOfRange(issue))];
    default:
      return [at(issue.path, issue.message)];
  }
}

function didYouMean(typed: string, known: readonly string[]): string {
  const guess = closest(typed, known);
  return guess ? ` — did you mean ${guess}?` : '';
}

function wrongType(expected: string, input: unknown): string {
  if (input === undefined) return 'is required';
  if (input === null) return 'has no value: give it one, or remove the line';
  if (expected === 'array' && typeof input === 'string') return `write it as a list: ${JSON.stringify([input])}`;
  const got = Array.isArray(input) ? 'a list' : typeof input === 'object' ? 'keys' : typeof input === 'string' ? 'text' : `a ${typeof input}`;
  switch (expected) {
    case 'object':
      return `expected keys under it (key: value), got ${got}`;
    case 'array':
      return `expected a list ([a, b] or "- a" lines), got ${got}`;
    case 'boolean':
      return `expected true or false, got ${typeof input === 'string' ? `"${input}"` : got}`;
    case 'number':
      return `expected a number, got ${typeof input === 'string' ? `"${input}"` : got}`;
    case 'string':
      return typeof input === 'number' || typeof input === 'boolean' ? `expected text, got a ${typeof input}: put it in quotes` : `expected text, got ${got}`;
    default:
      return `expected ${expected}, got ${got}`;
  }
}

function outOfRange(issue: z.core.$ZodIssueTooSmall | z.core.$ZodIssueTooBig): string {
  const bound = issue.code === 'too_small' ? issue.minimum : issue.maximum;
  const word = issue.code === 'too_small' ? 'at least' : 'at most';
  if (issue.origin === 'array') return `needs ${word} ${bound} ${bound === 1 ? 'entry' : 'entries'}`;
  if (issue.origin === 'string') return issue.code === 'too_small' && bound === 1 ? 'must not be empty' : `must be ${word} ${bound} characters long`;
  return `must be ${word} ${bound}${typeof issue.input === 'number' ? `, got ${issue.input}` : ''}`;
}
