import { startThread } from '../threads.js';
import { BackupError } from './manifest.js';
import type { BackupOptions, BackupSummary } from './write.js';

export type BackupAnswer = { summary: BackupSummary } | { refusal: string } | { failure: string };

/**
 * writeBackup on a short-lived thread, for the console: copying a large spool in one step takes
 * seconds, and on the service's own thread SMTP would wait that long. The tar and YAML libraries
 * stay out of the service's memory too.
 */
export function writeBackupOffThread(options: BackupOptions): Promise<BackupSummary> {
  return new Promise((resolve, reject) => {
    const thread = startThread(import.meta.url, 'thread', options);
    thread.once('message', (answer: BackupAnswer) => {
      if ('summary' in answer) resolve(answer.summary);
      else if ('refusal' in answer) reject(new BackupError(answer.refusal));
      else reject(new Error(answer.failure));
    });
    thread.once('error', reject);
    // Settled already when it answered; otherwise it died without a word.
    thread.once('exit', (code) => reject(new Error(`the backup thread exited with code ${code}`)));
  });
}
