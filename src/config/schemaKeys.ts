import type { z } from 'zod';

/**
 * The keys a config section may have, read off the zod schema itself so that "did you mean" can
 * never offer a key that does not exist. Wrappers (default, optional, transform …) are looked
 * through; of a union by `type`, the member the file chose.
 */
interface Def {
  type: string;
  shape?: Record<string, z.ZodType>;
  innerType?: z.ZodType;
  in?: z.ZodType;
  element?: z.ZodType;
  options?: z.ZodType[];
  discriminator?: string;
  values?: unknown[];
}

const WRAPPERS = new Set(['default', 'prefault', 'optional', 'nullable', 'readonly', 'catch', 'nonoptional']);

export function knownKeys(schema: z.ZodType, path: readonly PropertyKey[], raw: unknown): string[] {
  let nodes = [schema];
  let value = raw;
  for (const part of path) {
    nodes = nodes.flatMap((node) => members(node, value)).flatMap((node) => child(def(node), part));
    value = (value as Record<PropertyKey, unknown> | undefined)?.[part];
  }
  const keys = nodes.flatMap((node) => members(node, value)).flatMap((node) => Object.keys(def(node).shape ?? {}));
  return [...new Set(keys)];
}

/** The schemas a value is checked against once wrappers and unions are looked through. */
function members(node: z.ZodType, value: unknown): z.ZodType[] {
  const d = def(node);
  if (WRAPPERS.has(d.type)) return members(d.innerType!, value);
  if (d.type === 'pipe') return members(d.in!, value);
  if (d.type !== 'union') return [node];
  const chosen = d.discriminator ? (value as Record<string, unknown> | undefined)?.[d.discriminator] : undefined;
  const options = d.options!.filter((o) => chosen === undefined || (def(o).shape?.[d.discriminator!] && def(def(o).shape![d.discriminator!]!).values?.includes(chosen)));
  return (options.length > 0 ? options : d.options!).flatMap((o) => members(o, value));
}

function child(d: Def, part: PropertyKey): z.ZodType[] {
  if (d.type === 'object' && typeof part === 'string' && d.shape?.[part]) return [d.shape[part]];
  if (d.type === 'array' && typeof part === 'number') return [d.element!];
  return [];
}

function def(node: z.ZodType): Def {
  return (node as unknown as { _zod: { def: Def } })._zod.def;
}
