import Database from 'better-sqlite3';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';

export type SpoolDb = Database.Database;

/**
 * Each entry moves the schema one version up; `PRAGMA user_version` records how far a file has
 * come. Never edit a released entry: append a new one.
 */
const MIGRATIONS: string[] = [
  `
  CREATE TABLE messages (
    id              INTEGER PRIMARY KEY,
    received_at     INTEGER NOT NULL,          -- ms since the epoch
    queued_at       INTEGER NOT NULL,          -- received, or last retried by a person: give_up_after counts from here
    mail_from       TEXT    NOT NULL,
    client          TEXT,                      -- address and HELO name of the device
    auth_user       TEXT,
    subject         TEXT,
    size            INTEGER NOT NULL,
    state           TEXT    NOT NULL,          -- receiving | queued | delivering | deferred | delivered | failed | dropped
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER,                   -- set while queued or deferred
    last_reply      TEXT,
    upstream        TEXT,                      -- the upstream of the last attempt
    only_upstream   TEXT,                      -- send-test --upstream: deliver through this one only
    log_from        INTEGER,                   -- the log row of its acceptance: its history starts there
    updated_at      INTEGER NOT NULL,
    body            BLOB                       -- the whole message when small; else body_chunks
  );
  CREATE INDEX messages_due ON messages (next_attempt_at) WHERE next_attempt_at IS NOT NULL;

  CREATE TABLE recipients (
    message_id INTEGER NOT NULL,
    rcpt       TEXT    NOT NULL,
    state      TEXT    NOT NULL,               -- pending | delivered | failed | dropped
    upstream   TEXT,
    reply      TEXT,
    PRIMARY KEY (message_id, rcpt)
  ) WITHOUT ROWID;

  CREATE TABLE body_chunks (
    message_id INTEGER NOT NULL,
    seq        INTEGER NOT NULL,
    data       BLOB    NOT NULL,
    PRIMARY KEY (message_id, seq)
  ) WITHOUT ROWID;

  -- Append-only: every state change and every delivery attempt of every message. No index on
  -- message_id: it would cost a page write per commit; messages.log_from says where to look.
  CREATE TABLE log (
    id          INTEGER PRIMARY KEY,
    at          INTEGER NOT NULL,
    message_id  INTEGER NOT NULL,
    event       TEXT    NOT NULL,              -- accepted | delivered | deferred | failed | dropped | retry
    upstream    TEXT,
    recipients  TEXT,                          -- newline-separated
    reply       TEXT,
    duration_ms INTEGER
  );
  `,
  `
  -- MQTT alerts held back by a rule's min_interval (storm guard), kept until their digest mail is
  -- spooled, so that a crash loses none. One window per rule and topic: alerts before hold_until wait.
  CREATE TABLE alert_windows (
    rule        TEXT    NOT NULL,              -- the rule's identity: its topic filter and recipients
    topic       TEXT    NOT NULL,
    hold_until  INTEGER NOT NULL,              -- ms since the epoch
    interval_ms INTEGER NOT NULL,
    mail_from   TEXT    NOT NULL,              -- the digest goes where the rule sent, even if it is gone since
    recipients  TEXT    NOT NULL,              -- newline-separated
    PRIMARY KEY (rule, topic)
  ) WITHOUT ROWID;

  CREATE TABLE alert_held (
    id      INTEGER PRIMARY KEY,
    rule    TEXT    NOT NULL,
    topic   TEXT    NOT NULL,
    at      INTEGER NOT NULL,
    payload BLOB    NOT NULL
  );
  CREATE INDEX alert_held_window ON alert_held (rule, topic);
  `,
  `
  -- What the message needs of an upstream's MAIL FROM, as bits (src/spool/rows.ts): 1 its bytes
  -- are not all 7-bit, 2 the device declared BODY=8BITMIME, 4 the device declared SMTPUTF8.
  -- Mail spooled before this reads 0; a new row pays one byte of record header for it (0 and 1
  -- are stored in the header alone).
  ALTER TABLE messages ADD COLUMN traits INTEGER NOT NULL DEFAULT 0;
  `,
  `
  -- What the status remembers across a restart (spool/statusMemory.ts): the delivered and failed
  -- totals as counted up to a log row, and each upstream's last known health. Written rarely.
  CREATE TABLE status_memory (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL                        -- JSON
  ) WITHOUT ROWID;
  `,
];

export const SCHEMA_VERSION = MIGRATIONS.length;

export function spoolPath(dataDir: string): string {
  return join(dataDir, 'spool.db');
}

/**
 * Opens (creating if needed) the spool and brings its schema up to date. WAL with
 * synchronous=FULL: a commit returns only after the WAL is fsynced, so `250` means on disk.
 */
export function openSpool(dataDir: string, options: { readonly?: boolean } = {}): SpoolDb {
  if (!options.readonly) mkdirSync(dataDir, { recursive: true, mode: 0o750 });
  const db = new Database(spoolPath(dataDir), { readonly: options.readonly ?? false, fileMustExist: options.readonly ?? false });
  db.pragma('busy_timeout = 5000');
  // better-sqlite3 builds SQLite with a 16 MiB page cache per connection; relaying a 30 MB scan
  // (written, read back, deleted) would fill one per thread. The hot pages of the spool fit in 2.
  db.pragma('cache_size = -2048');
  if (options.readonly) return db;
  // Small pages: a commit rewrites every page it touches, and one message touches a few rows in
  // several tables. 1 KiB pages write ~40% fewer bytes per message than 4 KiB (bench/) — an SD
  // card's wear. Only takes effect when the file is created.
  db.pragma('page_size = 1024');
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = FULL');
  db.pragma('foreign_keys = OFF');
  // Keep the WAL from staying large after a 30 MB scan passed through it (SD cards, small disks).
  db.pragma('journal_size_limit = 8388608');
  migrate(db);
  return db;
}

function migrate(db: SpoolDb): void {
  const current = db.pragma('user_version', { simple: true }) as number;
  if (current > MIGRATIONS.length) {
    throw new Error(`spool schema version ${current} is newer than this relaybox understands (${MIGRATIONS.length}); upgrade relaybox`);
  }
  for (let version = current; version < MIGRATIONS.length; version++) {
    db.transaction(() => {
      db.exec(MIGRATIONS[version]!);
      db.pragma(`user_version = ${version + 1}`);
    })();
  }
}

/** Runs `fn` with commits that skip the fsync; the next synced commit covers these WAL frames too. */
export function withoutSync<T>(db: SpoolDb, fn: () => T): T {
  db.pragma('synchronous = NORMAL');
  try {
    return fn();
  } finally {
    db.pragma('synchronous = FULL');
  }
}
