import { parentPort, workerData } from 'node:worker_threads';
import { BackupError } from './manifest.js';
import type { BackupAnswer } from './offThread.js';
import { writeBackup, type BackupOptions } from './write.js';

/** The thread of offThread.ts: writes one archive, answers once, and ends. */
let answer: BackupAnswer;
try {
  answer = { summary: await writeBackup(workerData as BackupOptions) };
} catch (err) {
  answer = err instanceof BackupError ? { refusal: err.message } : { failure: (err as Error)?.message ?? String(err) };
}
parentPort!.postMessage(answer);
