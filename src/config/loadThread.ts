import { parentPort, workerData } from 'node:worker_threads';
import { ConfigError } from './errors.js';
import { loadConfigFile } from './load.js';
import type { ConfigLoaded } from './offThread.js';

/** The thread of offThread.ts: reads and validates one file, answers once, and ends. */
let answer: ConfigLoaded;
try {
  answer = { config: loadConfigFile(workerData as string) };
} catch (err) {
  answer = err instanceof ConfigError ? { source: err.source, problems: err.problems, lines: err.lines } : { failure: (err as Error)?.message ?? String(err) };
}
parentPort!.postMessage(answer);
