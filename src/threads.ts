import { extname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';

/**
 * Starts the module `name` beside `from` (an `import.meta.url`) on a new thread: `name.js` when
 * built, `name.ts` through tsx when the tests run the TypeScript sources.
 */
export function startThread(from: string, name: string, workerData: unknown): Worker {
  const url = new URL(`./${name}${extname(fileURLToPath(from))}`, from);
  if (!url.pathname.endsWith('.ts')) return new Worker(url, { workerData });
  const bootstrap = `import('tsx/esm/api').then(({ register }) => { register(); return import(${JSON.stringify(url.href)}); })`;
  return new Worker(bootstrap, { eval: true, workerData });
}
