import type { Command } from 'commander';
import { failedIds, retryAll, type RetryScope } from '../spool/bulk.js';
import { getMessage } from '../spool/log.js';
import { refusedPermanently } from '../spool/recipientReasons.js';
import { SpoolStore } from '../spool/store.js';
import type { SpoolDb } from '../spool/db.js';
import { CliError, EXIT_USAGE, parseId, type ConfigFlag } from './common.js';
import { openConfiguredSpool } from './configFile.js';

const SCOPE_WORDS: Record<RetryScope, string> = { deferred: 'deferred message', failed: 'failed message', all: 'deferred or failed message' };

type RetryFlags = ConfigFlag & { allFailed?: boolean; allDeferred?: boolean; all?: boolean; force?: boolean };

/**
 * `queue retry ID | --all-deferred | --all-failed | --all` and `queue flush` (= --all-deferred,
 * as Postfix's `postqueue -f`). A running service notices the change at its next spool scan.
 * Never a prompt (a script must not hang): a message an upstream refused for good needs --force.
 */
export function registerRetryCommands(queue: Command): void {
  queue
    .command('retry [id]')
    .description('make a failed or deferred message due now; or every deferred (--all-deferred), failed (--all-failed) or both (--all)')
    .option('--all-deferred', 'every deferred message (the same as: queue flush)')
    .option('--all-failed', 'every failed message')
    .option('--all', 'every deferred and failed message')
    .option('--force', 'retry even a recipient the upstream refused permanently (5xx)')
    .option('--config <file>', 'configuration file')
    .action((idText: string | undefined, flags: RetryFlags) => {
      const picked = [idText !== undefined, flags.allDeferred, flags.allFailed, flags.all].filter(Boolean).length;
      if (picked !== 1) throw new CliError('give one of: a message id, --all-deferred, --all-failed, --all', EXIT_USAGE);
      if (idText !== undefined) return retryOne(parseId(idText), flags);
      retryScope(flags.allDeferred ? 'deferred' : flags.allFailed ? 'failed' : 'all', flags);
    });

  queue
    .command('flush')
    .description('make every deferred message due now (as postqueue -f; the same as: queue retry --all-deferred)')
    .option('--config <file>', 'configuration file')
    .action((flags: ConfigFlag) => retryScope('deferred', flags));
}

function withStore(flags: ConfigFlag, work: (store: SpoolStore) => void): void {
  const { db } = openConfiguredSpool(flags);
  const store = new SpoolStore(db);
  try {
    work(store);
  } finally {
    store.close();
  }
}

function retryOne(id: number, flags: RetryFlags): void {
  withStore(flags, (store) => {
    const message = getMessage(store.db, id);
    const refused = message && message.state === 'failed' ? refusedPermanently(message) : [];
    if (refused.length > 0 && !flags.force) {
      const replies = message!.recipients.filter((r) => refused.includes(r.rcpt)).map((r) => `${r.rcpt}: ${r.reply}`);
      throw new CliError(
        `message ${id}: the upstream refused this recipient permanently; retrying will most likely fail again.\n  ${replies.join('\n  ')}\n` +
          `To retry anyway: relaybox queue retry ${id} --force`,
      );
    }
    if (!store.retry(id)) throw new CliError(`message ${id} is not waiting or failed (see: relaybox queue show ${id})`);
    process.stdout.write(`message ${id} queued again\n`);
  });
}

function retryScope(scope: RetryScope, flags: ConfigFlag): void {
  withStore(flags, (store) => {
    warnPermanent(store.db, failedIds(store.db, scope));
    report(retryAll(store, scope), SCOPE_WORDS[scope]);
  });
}

/** Bulk retries go ahead (the person asked for all of them), but say which will likely fail again. */
function warnPermanent(db: SpoolDb, failedIds: number[]): void {
  const refused = failedIds.filter((id) => {
    const m = getMessage(db, id);
    return m !== null && refusedPermanently(m).length > 0;
  });
  if (refused.length === 0) return;
  process.stderr.write(`relaybox: note: the upstream refused ${refused.length} of them permanently (5xx); they will most likely fail again: ${refused.join(', ')}\n`);
}

function report(ids: number[], what: string): void {
  process.stdout.write(`${ids.length} ${what}(s) queued again${ids.length ? `: ${ids.join(', ')}` : ''}\n`);
}
