import type { SpoolDb } from './db.js';
import type { SpoolStore } from './store.js';

/** What a bulk retry takes: `deferred` (Postfix's `postqueue -f`), `failed`, or `all` = both. */
export type RetryScope = 'deferred' | 'failed' | 'all';

export const RETRY_SCOPES: readonly RetryScope[] = ['deferred', 'failed', 'all'];

const STATES: Record<RetryScope, string> = {
  deferred: `'deferred'`,
  failed: `'failed'`,
  all: `'deferred', 'failed'`,
};

/** The failed messages of `scope`, by id: those a bulk retry should warn about may be among them. */
export function failedIds(db: SpoolDb, scope: RetryScope): number[] {
  if (scope === 'deferred') return [];
  return db.prepare(`SELECT id FROM messages WHERE state = 'failed' ORDER BY id`).pluck().all() as number[];
}

/**
 * Makes every message of `scope` due now, oldest first, in one transaction; returns their ids.
 * This process's delivery hears of it (the 'due' event); a running service notices a CLI's bulk
 * retry at its next spool scan (a few seconds, dueQueue.ts).
 */
export function retryAll(store: SpoolStore, scope: RetryScope): number[] {
  const ids = store.db.prepare(`SELECT id FROM messages WHERE state IN (${STATES[scope]}) ORDER BY id`).pluck().all() as number[];
  return store.retryMany(ids);
}
