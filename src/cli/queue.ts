import type { Command } from 'commander';
import { getMessage, listMessages, messageHead, type MessageSummary } from '../spool/log.js';
import { SpoolStore } from '../spool/store.js';
import { recipientReasons } from '../spool/recipientReasons.js';
import { CliError, EXIT_USAGE, isoTime, parseId, type ConfigFlag } from './common.js';
import { openConfiguredSpool } from './configFile.js';
import { headerLines } from '../message/headers.js';
import { waitingSummary } from '../spool/queueSummary.js';
import { noMessagesLine, summaryLine } from './queueWords.js';
import { ReplyHints } from '../hints/hint.js';
import { detailJson, summaryJson } from '../web/messageJson.js';
import { registerRetryCommands } from './queueRetry.js';

const STATES = ['queued', 'delivering', 'deferred', 'delivered', 'failed', 'dropped'];

export function registerQueueCommands(program: Command): void {
  const queue = program.command('queue').description('watch and steer the messages in the spool');

  queue
    .command('list')
    .description('messages with status, attempts, next try and last reply (newest first)')
    .option('--status <state>', `only messages in this state (${STATES.join(', ')})`)
    .option('--limit <n>', 'at most this many', '100')
    .option('--json', 'JSON instead of a table')
    .option('--config <file>', 'configuration file')
    .action((flags: ConfigFlag & { status?: string; limit: string; json?: boolean }) => {
      if (flags.status && !STATES.includes(flags.status)) throw new CliError(`--status must be one of ${STATES.join(', ')}`, EXIT_USAGE);
      const { config, db } = openConfiguredSpool(flags);
      const rows = listMessages(db, { status: flags.status, limit: Number(flags.limit) || 100 });
      const waiting = waitingSummary(db);
      db.close();
      if (flags.json) {
        // The API's shape (snake_case, ISO 8601 times): one JSON for scripts, whichever they call.
        const hints = new ReplyHints(config);
        return void process.stdout.write(`${JSON.stringify(rows.map((m) => summaryJson(m, hints)), null, 2)}\n`);
      }
      if (rows.length === 0) return void process.stdout.write(`${noMessagesLine(flags.status)}${flags.status ? summaryLine(waiting) : ''}`);
      process.stdout.write(`${formatTable(rows)}${summaryLine(waiting)}`);
    });

  queue
    .command('show <id>')
    .description('one message: envelope, headers and every attempt')
    .option('--json', 'JSON instead of text')
    .option('--config <file>', 'configuration file')
    .action((idText: string, flags: ConfigFlag & { json?: boolean }) => {
      const { config, db } = openConfiguredSpool(flags);
      const id = parseId(idText);
      const message = getMessage(db, id);
      const head = message ? messageHead(db, id) : null;
      db.close();
      if (!message) throw new CliError(`no message ${id} in the spool`);
      const headers = head ? headerLines(head) : [];
      const hints = new ReplyHints(config);
      const hint = message.state === 'delivered' ? null : hints.for(message.upstream, message.lastReply);
      const reasons = recipientReasons(message);
      if (flags.json) return void process.stdout.write(`${JSON.stringify(detailJson(message, head, hints), null, 2)}\n`);
      const out = [
        `id:        ${message.id}`,
        `state:     ${message.state}`,
        `received:  ${isoTime(message.receivedAt)} from ${message.client ?? '?'}${message.authUser ? ` (user ${message.authUser})` : ''}`,
        `from:      <${message.from}>`,
        `size:      ${message.size} bytes`,
        `attempts:  ${message.attempts}${message.nextAttemptAt ? `, next at ${isoTime(message.nextAttemptAt)}` : ''}`,
        ...(message.lastReply ? [`reply:     ${message.lastReply}${message.upstream ? ` (${message.upstream})` : ''}`] : []),
        // A hint goes under the raw reply it explains, never instead of it.
        ...(hint ? [`hint:      ${hint}`] : []),
        'recipients:',
        ...message.recipients.flatMap((r, i) => {
          // A pending recipient says why it waits: the reply of its last deferral.
          const reason = reasons[i]!;
          const rcptHint = r.state === 'delivered' ? null : hints.for(reason.upstream, reason.reply);
          const line = `  ${r.rcpt}  ${r.state}${reason.upstream ? ` via ${reason.upstream}` : ''}${reason.reply ? `  ${reason.reply}` : ''}`;
          return [line, ...(rcptHint ? [`    hint: ${rcptHint}`] : [])];
        }),
        'headers:',
        ...(headers.length > 0 ? headers.map((h) => `  ${h}`) : ['  (body no longer kept)']),
        'history:',
        ...message.history.map(
          (h) => `  ${isoTime(h.at)}  ${h.event.padEnd(9)} ${h.upstream ?? '-'}  ${h.recipients.join(', ')}${h.reply ? `  ${h.reply}` : ''}${h.durationMs ? ` (${h.durationMs} ms)` : ''}`,
        ),
      ];
      process.stdout.write(`${out.join('\n')}\n`);
    });

  registerRetryCommands(queue);

  queue
    .command('drop <id>')
    .description('remove a message from the queue (the log keeps it as dropped)')
    .option('--config <file>', 'configuration file')
    .action((idText: string, flags: ConfigFlag) => {
      const { db } = openConfiguredSpool(flags);
      const store = new SpoolStore(db);
      const id = parseId(idText);
      const dropped = store.drop(id);
      store.close();
      if (!dropped) throw new CliError(`message ${id} cannot be dropped (unknown, or already delivered or dropped)`);
      process.stdout.write(`message ${id} dropped\n`);
    });
}

function formatTable(rows: MessageSummary[]): string {
  const header = ['ID', 'RECEIVED', 'STATE', 'TRIES', 'NEXT TRY', 'FROM', 'TO', 'LAST REPLY'];
  const lines = rows.map((m) => [
    String(m.id),
    isoTime(m.receivedAt),
    m.state,
    String(m.attempts),
    isoTime(m.nextAttemptAt) || '-',
    m.from || '<>',
    m.to.length > 1 ? `${m.to[0]} +${m.to.length - 1}` : (m.to[0] ?? ''),
    (m.lastReply ?? '').replace(/\s+/g, ' ').slice(0, 80),
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i]!.length)));
  const fmt = (cols: string[]) => cols.map((c, i) => (i === cols.length - 1 ? c : c.padEnd(widths[i]!))).join('  ').trimEnd();
  return `${[header, ...lines].map(fmt).join('\n')}\n`;
}
