import type { WaitingSummary } from '../spool/queueSummary.js';

/** What `queue list` says when no message matches: the spool may well hold others. */
export function noMessagesLine(status: string | undefined): string {
  return status ? `no message is ${status}\n` : 'the spool is empty\n';
}

/** The last line of `queue list`, as mailq ends: `-- 3 messages waiting (1 deferred), 12 KiB`. */
export function summaryLine(waiting: WaitingSummary): string {
  if (waiting.messages === 0) return '-- no message waiting\n';
  const deferred = waiting.deferred > 0 ? ` (${waiting.deferred} deferred)` : '';
  return `-- ${waiting.messages} message${waiting.messages === 1 ? '' : 's'} waiting${deferred}, ${binaryBytes(waiting.bytes)}\n`;
}

function binaryBytes(bytes: number): string {
  if (bytes < 1024 * 1024) return `${Math.max(1, Math.round(bytes / 1024))} KiB`;
  return `${(bytes / (1024 * 1024)).toFixed(1)} MiB`;
}
