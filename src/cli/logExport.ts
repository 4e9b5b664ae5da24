import { stringify } from 'csv-stringify';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { Command } from 'commander';
import { parseDuration } from '../config/duration.js';
import { CSV_COLUMNS, csvRecord, exportLog, logRecord } from '../spool/log.js';
import { localTimeFormatter } from '../spool/logTime.js';
import { defuseFormulas } from '../spool/logCells.js';
import { CliError, EXIT_USAGE, parseSince, type ConfigFlag } from './common.js';
import { openConfiguredSpool } from './configFile.js';

export function registerLogCommands(program: Command): void {
  program
    .command('log')
    .description('the delivery log')
    .command('export')
    .description('every accepted, delivered, deferred, failed and dropped event, oldest first')
    .option('--since <time>', 'from this date/time, or this long ago (24h, 7d)')
    .option('--format <format>', 'csv (local times, for spreadsheets) or json (one object per line, UTC ISO 8601 times)', 'csv')
    .option('--tz <zone>', 'CSV times in this time zone (Asia/Tokyo, UTC; default: the system zone)')
    .option('--config <file>', 'configuration file')
    .action(async (flags: ConfigFlag & { since?: string; format: string; tz?: string }) => {
      if (!['csv', 'json'].includes(flags.format)) throw new CliError('--format must be csv or json', EXIT_USAGE);
      let local: ReturnType<typeof localTimeFormatter>;
      try {
        local = localTimeFormatter(flags.tz);
      } catch (err) {
        throw new CliError(`--tz: ${(err as Error).message}`, EXIT_USAGE);
      }
      const since = flags.since ? parseSince(flags.since, parseDuration) : undefined;
      const { db } = openConfiguredSpool(flags);
      const records = Readable.from((function* () {
        // JSON keeps the values as they are; CSV is for spreadsheets, which run formulas.
        for (const row of exportLog(db, { since })) yield flags.format === 'csv' ? defuseFormulas(csvRecord(row, local)) : logRecord(row);
      })());
      try {
        if (flags.format === 'json') {
          for await (const record of records) process.stdout.write(`${JSON.stringify(record)}\n`);
        } else {
          await pipeline(records, stringify({ header: true, columns: [...CSV_COLUMNS] }), process.stdout, { end: false });
        }
      } finally {
        db.close();
      }
    });
}
