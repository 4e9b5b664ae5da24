import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import Database from 'better-sqlite3';
import nodemailer from 'nodemailer';
import { stringify } from 'yaml';
import { CLI } from '../helpers/relay.js';

export const HAS_GCC = spawnSync('sh', ['-c', 'command -v gcc']).status === 0;

/** Compiles shim.c into dir; the path of the .so. */
export function buildShim(dir: string): string {
  const so = join(dir, 'powercut.so');
  const gcc = spawnSync('gcc', ['-shared', '-fPIC', '-O2', '-Wall', '-o', so, join(import.meta.dirname, 'shim.c'), '-ldl', '-lpthread'], { encoding: 'utf8' });
  if (gcc.status !== 0) throw new Error(`gcc failed:\n${gcc.stderr}`);
  return so;
}

/** A loopback port nothing listens on: the upstream is away, so every message stays spooled. */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

export interface Box {
  dir: string;
  dataDir: string;
  shadow: string;
  log: string;
  child: ChildProcess;
  port: number;
  exited: Promise<void>;
}

/** `node dist/cli.js serve` with the shim preloaded, on a fresh data_dir. */
export async function startUnderShim(options: { dir: string; shim: string; env?: Record<string, string> }): Promise<Box> {
  const { dir } = options;
  const dataDir = join(dir, 'data');
  const shadow = join(dir, 'shadow');
  const log = join(dir, 'shim.log');
  mkdirSync(dataDir, { recursive: true });
  mkdirSync(shadow, { recursive: true });
  const config = join(dir, 'relaybox.yaml');
  writeFileSync(
    config,
    stringify({
      hostname: 'relaybox.test.example',
      data_dir: dataDir,
      smtp: { listen: ['127.0.0.1:0'], tls: { mode: 'none' } },
      upstreams: [{ name: 'away', type: 'smtp', host: '127.0.0.1', port: await closedPort(), security: 'none' }],
      // Quick retries: the delivery thread writes to the spool while devices send, as it would.
      delivery: { retry: { first: '300ms', max: '1s', give_up_after: '1h' } },
      log: { level: 'info' },
    }),
  );
  const env = { ...process.env, LD_PRELOAD: options.shim, POWERCUT_DIR: dataDir, POWERCUT_SHADOW: shadow, POWERCUT_LOG: log, ...options.env };
  const child = spawn(process.execPath, [CLI, 'serve', '--config', config], { stdio: ['ignore', 'pipe', 'pipe'], env });
  const exited = new Promise<void>((resolve) => child.on('exit', () => resolve()));
  const lines: string[] = [];
  const port = await new Promise<number>((resolve, reject) => {
    createInterface({ input: child.stderr! }).on('line', (l) => lines.push(l));
    createInterface({ input: child.stdout! }).on('line', (line) => {
      lines.push(line);
      const smtp = /"smtp":\["[^"]*:(\d+)"/.exec(line);
      if (smtp) resolve(Number(smtp[1]));
    });
    child.on('exit', (code) => reject(new Error(`relaybox exited with ${code}:\n${lines.join('\n')}`)));
  });
  return { dir, dataDir, shadow, log, child, port, exited };
}

export interface Acked {
  id: number;
  token: string;
  recipients: string[];
}

/**
 * `clients` devices, each sending one message after another until the relay goes away; every
 * `250 ... queued as N` is recorded with what was sent. One message in eight is 300 KB (stored
 * in chunks, and the WAL grows past a checkpoint now and then).
 */
export function sendUntilCut(port: number, clients: number, onAck: (acked: Acked) => void): Promise<void> {
  const device = async (client: number) => {
    const transport = nodemailer.createTransport({ host: '127.0.0.1', port, secure: false, ignoreTLS: true, pool: false });
    try {
      for (let seq = 0; ; seq++) {
        const token = `powercut-${client}-${seq}-${randomBytes(6).toString('hex')}`;
        const recipients = [`c${client}-${seq}@example.com`, 'office@example.com'];
        const padding = randomBytes(seq % 8 === 7 ? 225_000 : 1_500).toString('base64').replace(/.{76}/g, '$&\r\n');
        const raw = `From: dev${client}@example.com\r\nTo: ${recipients.join(', ')}\r\nSubject: ${token}\r\n\r\n${token}\r\n${padding}\r\n`;
        let response: string;
        try {
          ({ response } = await transport.sendMail({ envelope: { from: `dev${client}@example.com`, to: recipients }, raw }));
        } catch {
          return; // the power went (or went during this message: no 250, so no promise)
        }
        const id = /queued as (\d+)/.exec(response);
        if (id) onAck({ id: Number(id[1]), token, recipients });
      }
    } finally {
      transport.close();
    }
  };
  return Promise.all(Array.from({ length: clients }, (_, i) => device(i))).then(() => undefined);
}

/**
 * After the cut: the data directory as the disk holds it. A name not in the last synced
 * directory listing is gone; a file never synced is empty; every other file has the content of
 * its last sync. The -shm file is shared memory (SQLite rebuilds it from the WAL): gone too.
 */
export function restoreDurable(box: Box): { files: Record<string, number | 'gone'> } {
  const entriesFile = join(box.shadow, '.entries');
  const entries = new Set(existsSync(entriesFile) ? readFileSync(entriesFile, 'utf8').split('\n').filter(Boolean) : []);
  const files: Record<string, number | 'gone'> = {};
  for (const name of readdirSync(box.dataDir)) {
    const path = join(box.dataDir, name);
    if (!statSync(path).isFile()) continue;
    if (!entries.has(name) || name.endsWith('-shm')) {
      rmSync(path);
      files[name] = 'gone';
    } else if (existsSync(join(box.shadow, name))) {
      copyFileSync(join(box.shadow, name), path);
      files[name] = statSync(path).size;
    } else {
      truncateSync(path, 0);
      files[name] = 0;
    }
  }
  return { files };
}

export interface SpoolCheck {
  integrity: string;
  missing: Acked[];
  wrong: string[];
  messages: number;
}

/** Opens the restored spool the way relaybox would (WAL recovery) and looks for every acked message. */
export function checkSpool(dataDir: string, acked: Acked[]): SpoolCheck {
  const db = new Database(join(dataDir, 'spool.db'));
  try {
    const integrity = (db.pragma('integrity_check') as { integrity_check: string }[]).map((r) => r.integrity_check).join('; ');
    const message = db.prepare('SELECT id, body FROM messages WHERE id = ?');
    const chunks = db.prepare('SELECT data FROM body_chunks WHERE message_id = ? ORDER BY seq').pluck();
    const rcpts = db.prepare('SELECT rcpt FROM recipients WHERE message_id = ? ORDER BY rcpt').pluck();
    const missing: Acked[] = [];
    const wrong: string[] = [];
    for (const a of acked) {
      const row = message.get(a.id) as { id: number; body: Buffer | null } | undefined;
      if (!row) {
        missing.push(a);
        continue;
      }
      const body = row.body ?? Buffer.concat(chunks.all(a.id) as Buffer[]);
      if (!body.includes(a.token)) wrong.push(`${a.id}: the body lacks ${a.token}`);
      const got = (rcpts.all(a.id) as string[]).join(' ');
      if (got !== [...a.recipients].sort().join(' ')) wrong.push(`${a.id}: recipients ${got}`);
    }
    const messages = db.prepare('SELECT count(*) FROM messages').pluck().get() as number;
    return { integrity, missing, wrong, messages };
  } finally {
    db.close();
  }
}

/** What the shim saw: syncs per file and the replies it let through. */
export function shimLog(box: Box): { syncs: Record<string, number>; replies: number; repliedIds: number[]; cutByShim: boolean; dropped: number } {
  const lines = existsSync(box.log) ? readFileSync(box.log, 'utf8').split('\n') : [];
  const syncs: Record<string, number> = {};
  for (const line of lines) {
    const m = /^(fsync|fdatasync) (\S+)/.exec(line);
    if (m && m[2] !== 'dropped' && m[2] !== 'after') syncs[`${m[1]} ${m[2]}`] = (syncs[`${m[1]} ${m[2]}`] ?? 0) + 1;
  }
  return {
    syncs,
    replies: lines.filter((l) => l.startsWith('replied ')).length,
    repliedIds: lines.flatMap((l) => /^replied .*queued as (\d+)/.exec(l)?.[1] ?? []).map(Number),
    cutByShim: lines.includes('cut'),
    dropped: lines.filter((l) => / dropped /.test(l)).length,
  };
}
