import type { z } from 'zod';

/**
 * A zod issue as a person reads it, shared by the config file and the API's request bodies (its
 * own module so that a request check does not load the YAML parser and the whole config schema).
 */
/** `smtp.listen[0]: expected host:port, got "2525x"` */
export function describeIssue(issue: z.core.$ZodIssue): string {
  const key = formatPath(issue.path);
  if (issue.code === 'unrecognized_keys') {
    return issue.keys.map((k) => `${formatPath([...issue.path, k])}: unknown key`).join('; ');
  }
  let message = issue.message;
  if (issue.code === 'invalid_type' && /received undefined/.test(message)) message = 'is required';
  return key ? `${key}: ${message}` : message;
}

/** `['smtp', 'listen', 0]` → `smtp.listen[0]` */
export function formatPath(path: readonly PropertyKey[]): string {
  return path.reduce<string>((out, part) => (typeof part === 'number' ? `${out}[${part}]` : out ? `${out}.${String(part)}` : String(part)), '');
}
