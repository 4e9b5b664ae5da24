import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';

const SRC = join(import.meta.dirname, '../src');

function sources(dir = SRC): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? sources(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : []));
}

/** Which rooms a file imports from: `../spool/store.js` from src/web → "spool". */
function importedRooms(file: string): string[] {
  const text = readFileSync(file, 'utf8');
  const rooms = new Set<string>();
  for (const m of text.matchAll(/from '(\.{1,2}\/[^']+)'/g)) {
    const target = relative(SRC, join(file, '..', m[1]!));
    rooms.add(target.includes('/') ? target.split('/')[0]! : target.replace(/\.js$/, ''));
  }
  return [...rooms];
}

/** ARCHITECTURE.md's "never" list: each would tie two jobs together. */
const FORBIDDEN: Record<string, string[]> = {
  spool: ['ingress', 'delivery', 'web', 'status', 'upstreams', 'cli', 'app'],
  upstreams: ['spool', 'delivery', 'ingress', 'web', 'status', 'cli', 'app'],
  ingress: ['delivery', 'upstreams', 'web', 'cli', 'app'],
  status: ['delivery', 'upstreams', 'web', 'cli', 'app'],
  backup: ['ingress', 'delivery', 'upstreams', 'web', 'status', 'cli', 'app'],
  health: ['ingress', 'delivery', 'upstreams', 'web', 'status', 'cli', 'app'],
  web: ['delivery', 'upstreams', 'cli', 'app'],
  message: ['spool', 'delivery', 'ingress', 'upstreams', 'web', 'status', 'cli', 'app'],
  config: ['spool', 'delivery', 'ingress', 'upstreams', 'web', 'status', 'cli', 'app'],
  oauth: ['spool', 'delivery', 'ingress', 'web', 'status', 'cli', 'app'],
  notify: ['ingress', 'delivery', 'upstreams', 'web', 'status', 'cli', 'app'],
  hints: ['spool', 'delivery', 'ingress', 'upstreams', 'web', 'status', 'cli', 'app', 'message', 'oauth'],
};

describe('the shape of the code', () => {
  it('keeps data flowing one way: no room imports what ARCHITECTURE.md forbids', () => {
    const violations: string[] = [];
    for (const file of sources()) {
      const room = relative(SRC, file).split('/')[0]!;
      for (const target of importedRooms(file)) {
        if (FORBIDDEN[room]?.includes(target)) violations.push(`${relative(SRC, file)} imports ${target}/`);
      }
    }
    expect(violations).toEqual([]);
  });

  it('keeps the delivery thread light: it starts on demand after a quiet spell, so what it loads delays the next message', () => {
    // Static imports only (`import type` is erased); the schema library belongs to the main thread.
    const loaded = new Set<string>();
    const packages = new Set<string>();
    const walk = (file: string): void => {
      if (loaded.has(file)) return;
      loaded.add(file);
      for (const m of readFileSync(file, 'utf8').matchAll(/^(?:import|export)(?!\s+type\b)[^;]*?from '([^']+)'/gm)) {
        if (m[1]!.startsWith('.')) walk(join(file, '..', m[1]!.replace(/\.js$/, '.ts')));
        else packages.add(m[1]!.split('/')[0]!);
      }
    };
    walk(join(SRC, 'delivery/worker.ts'));
    expect(packages.has('zod'), [...loaded].map((f) => relative(SRC, f)).join(' ')).toBe(false);
  });

  it('keeps every source file under ~300 lines', () => {
    const long = sources()
      .map((f) => [relative(SRC, f), readFileSync(f, 'utf8').split('\n').length] as const)
      .filter(([, lines]) => lines > 320);
    expect(long).toEqual([]);
  });
});
