import { chownSync, existsSync, mkdirSync, readFileSync, renameSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pino } from 'pino';
import { create as createTar, list as listTar } from 'tar';
import { describe, expect, it, onTestFinished } from 'vitest';
import { stringify } from 'yaml';
import { RelayApp } from '../src/app.js';
import { loadConfigFile } from '../src/config/load.js';
import { listMessages } from '../src/spool/log.js';
import { relayConfig, runCli, sendMail, waitFor } from './helpers/relay.js';
import { useBrowser } from './helpers/browser.js';
import { TestUpstream } from './helpers/testUpstream.js';
import { tempDir } from './helpers/tmp.js';

const TOKEN = 'backup-admin-token-0123456789';
/** How long an event may take on a busy 2-core box: a window, not a pace. */
const WINDOW = 60_000;

/** relaybox in this process, started from a configuration file as `serve --config FILE` is. */
async function startFromFile(file: string): Promise<RelayApp> {
  const app = await RelayApp.start(loadConfigFile(file), pino({ level: 'silent' }), { configPath: file });
  onTestFinished(() => app.stop());
  return app;
}

/** A box whose only upstream is the test upstream `up`, with its configuration in dir/etc. */
function writeBox(dir: string, up: TestUpstream, overrides: Record<string, unknown> = {}): { file: string; dataDir: string } {
  const dataDir = join(dir, 'data');
  mkdirSync(join(dir, 'etc'), { recursive: true });
  const file = join(dir, 'etc', 'relaybox.yaml');
  const raw = relayConfig(dataDir, {
    upstreams: [{ name: 'office', type: 'smtp', host: '127.0.0.1', port: up.port, security: 'none' }],
    delivery: { retry: { first: '100ms', max: '500ms', give_up_after: '1h' }, shutdown_grace: '2s' },
    ...overrides,
  });
  writeFileSync(file, stringify(raw));
  return { file, dataDir };
}

function subjectOf(raw: Buffer | null): string {
  return /^Subject: (.*)\r?$/m.exec(raw?.toString('utf8') ?? '')?.[1] ?? '';
}

/** Sends one message after another until stopped; the subjects that got their 250. */
function keepSending(port: number, prefix: string): { stop: () => Promise<string[]> } {
  const accepted: string[] = [];
  let running = true;
  const loop = (async () => {
    for (let i = 0; running; i++) {
      await sendMail(port, { to: ['desk@example.com'], subject: `${prefix}-${i}` });
      accepted.push(`${prefix}-${i}`);
    }
  })();
  return {
    stop: async () => {
      running = false;
      await loop;
      return accepted;
    },
  };
}

describe('relaybox backup and restore', () => {
  it('a backup taken while mail flows, restored into an empty data_dir, delivers every message queued at the time', { timeout: 180_000 }, async () => {
    const dir = tempDir();
    const up = await TestUpstream.start();
    onTestFinished(() => up.close());
    await up.stop(); // the upstream is down: mail stays queued
    const { file, dataDir } = writeBox(dir, up);
    const app = await startFromFile(file);
    const port = app.smtpAddresses[0]!.port;

    // Queued before the backup, a few with scan-sized bodies so that the copy is not instant.
    const before: string[] = [];
    for (let i = 0; i < 30; i++) {
      const text = i % 5 === 0 ? 'scan '.repeat(100_000) : 'hello';
      await sendMail(port, { to: ['desk@example.com'], subject: `before-${i}`, text });
      before.push(`before-${i}`);
    }
    const load = keepSending(port, 'during');
    const archive = join(dir, 'box.tar.gz');
    const backup = await runCli(['backup', archive, '--config', file]);
    const during = await load.stop();
    expect(backup.stderr).toBe('');
    expect(backup.code).toBe(0);
    expect(during.length).toBeGreaterThan(0); // mail really flowed while the backup ran
    expect(statSync(archive).mode & 0o777).toBe(0o600);
    await app.stop();

    // A new SD card: the old data_dir is gone, the configuration is read from another place.
    renameSync(dataDir, `${dataDir}.old`);
    const newConfig = join(dir, 'new-etc', 'relaybox.yaml');
    const restore = await runCli(['restore', archive, '--config', newConfig]);
    expect(restore.stderr).toBe('');
    expect(restore.code).toBe(0);
    expect(readFileSync(newConfig, 'utf8')).toBe(readFileSync(file, 'utf8'));
    const manifest = JSON.parse(await manifestOf(archive)); // what the snapshot holds

    await up.restart();
    const restored = await startFromFile(newConfig);
    const queued = manifest.spool.undelivered as number;
    await up.waitForMessages(queued, WINDOW);
    await waitFor(() => listMessages(restored.spool.db, { status: 'delivered', limit: 1000 }).length === queued, WINDOW, 'every restored message delivered');
    const subjects = up.messages.map((m) => subjectOf(m.raw));
    expect(new Set(subjects).size).toBe(subjects.length); // each once
    expect(subjects).toEqual(expect.arrayContaining(before));
    // Whatever the snapshot caught of the mail arriving during the backup, and nothing else.
    expect(subjects.every((s) => before.includes(s) || during.includes(s))).toBe(true);
  });

  it('restore refuses a running box, a spool with messages unless --force, and an archive from a newer relaybox', { timeout: 120_000 }, async () => {
    const dir = tempDir();
    const up = await TestUpstream.start();
    onTestFinished(() => up.close());
    await up.stop();
    const { file, dataDir } = writeBox(dir, up);
    const app = await startFromFile(file);
    await sendMail(app.smtpAddresses[0]!.port, { to: ['desk@example.com'], subject: 'waiting' });
    // What a backup killed by a power cut two days ago left behind: a copy of the spool.
    mkdirSync(join(dataDir, 'oauth'), { mode: 0o700 });
    writeFileSync(join(dataDir, 'oauth', 'office.refresh.json'), '{"refresh_token":"1//secret"}\n', { mode: 0o600 });
    const stale = join(dataDir, '.backup-x1y2z3');
    mkdirSync(stale);
    const twoDaysAgo = new Date(Date.now() - 2 * 86_400_000);
    utimesSync(stale, twoDaysAgo, twoDaysAgo);
    const archive = join(dir, 'box.tar.gz');
    expect((await runCli(['backup', archive, '--config', file])).code).toBe(0);
    expect(existsSync(stale)).toBe(false);

    const running = await runCli(['restore', archive, '--config', file]);
    expect(running.code).toBe(1);
    expect(running.stderr).toMatch(/relaybox is running on .*data \(its spool is open\): stop it first/);
    await app.stop();

    const full = await runCli(['restore', archive, '--config', file]);
    expect(full.code).toBe(1);
    expect(full.stderr).toMatch(/spool\.db holds 1 message\(s\), 1 of them undelivered: restore --force replaces them/);
    // As root, restored files go to data_dir's owner (the service's user), tokens 0600 in 0700.
    const asRoot = process.getuid?.() === 0;
    if (asRoot) chownSync(dataDir, 65534, 65534);
    const forced = await runCli(['restore', archive, '--config', file, '--force']);
    expect(forced.stderr).toBe('');
    expect(forced.code).toBe(0);
    const token = statSync(join(dataDir, 'oauth', 'office.refresh.json'));
    expect(token.mode & 0o777).toBe(0o600);
    expect(statSync(join(dataDir, 'oauth')).mode & 0o777).toBe(0o700);
    if (asRoot) expect([token.uid, statSync(join(dataDir, 'spool.db')).uid]).toEqual([65534, 65534]);

    // The same archive, its manifest saying it was written in a later format.
    const newer = join(dir, 'newer');
    mkdirSync(newer);
    const manifest = JSON.parse(await manifestOf(archive));
    writeFileSync(join(newer, 'manifest.json'), JSON.stringify({ ...manifest, format: 99, relaybox_version: '9.0.0' }));
    await createTar({ cwd: newer, gzip: true, file: join(dir, 'newer.tar.gz') }, ['manifest.json']);
    const refused = await runCli(['restore', join(dir, 'newer.tar.gz'), '--config', file, '--force']);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/made by relaybox 9\.0\.0 in backup format 99; relaybox \S+ reads format 1 at most: upgrade relaybox/);

    writeFileSync(join(dir, 'photo.jpg'), 'not an archive');
    const junk = await runCli(['restore', join(dir, 'photo.jpg'), '--config', file]);
    expect(junk.code).toBe(1);
    expect(junk.stderr).toMatch(/is not a relaybox backup/);
  });

  it('the console offers the backup as a download behind the admin token, never cached', { timeout: 120_000 }, async () => {
    const dir = tempDir();
    const up = await TestUpstream.start();
    onTestFinished(() => up.close());
    const { file } = writeBox(dir, up, { http: { listen: '127.0.0.1:0', admin_token: TOKEN } });
    const app = await startFromFile(file);
    const url = `http://127.0.0.1:${app.httpAddress!.port}/api/backup`;

    expect((await fetch(url)).status).toBe(401);
    expect((await fetch(url, { headers: { Authorization: 'Bearer wrong-token' } })).status).toBe(401);
    const res = await fetch(url, { headers: { Authorization: `Bearer ${TOKEN}` } });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-disposition')).toMatch(/^attachment; filename="relaybox-backup-relaybox\.test\.example-\d{8}-\d{6}\.tar\.gz"$/);
    expect(res.headers.get('cache-control')).toBe('no-store');
    // The console's session cookie is as good as the token; a GET needs no CSRF header.
    const login = await fetch(`http://127.0.0.1:${app.httpAddress!.port}/api/login`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ token: TOKEN }) });
    const cookie = login.headers.get('set-cookie')!.split(';')[0]!;
    const bySession = await fetch(url, { headers: { Cookie: cookie } });
    expect(bySession.status).toBe(200);
    await bySession.arrayBuffer();
    const downloaded = join(dir, 'download.tar.gz');
    writeFileSync(downloaded, Buffer.from(await res.arrayBuffer()));
    expect(JSON.parse(await manifestOf(downloaded)).config_file).toBe(file);

    // A console without a token is served on loopback to anyone there: no secrets from it.
    const open = await startFromFile(writeBox(join(dir, 'open'), up).file);
    const refused = await fetch(`http://127.0.0.1:${open.httpAddress!.port}/api/backup`);
    expect(refused.status).toBe(403);
    expect(((await refused.json()) as { error: string }).error).toMatch(/only when http\.admin_token is set/);
  });
});

describe('the console in headless Chromium', () => {
  const getBrowser = useBrowser();

  it('a logged-in console downloads the backup from "Back up this box"', { timeout: 120_000 }, async () => {
    const dir = tempDir();
    const up = await TestUpstream.start();
    onTestFinished(() => up.close());
    const { file } = writeBox(dir, up, { http: { listen: '127.0.0.1:0', admin_token: TOKEN } });
    const app = await startFromFile(file);
    const context = await getBrowser().newContext({ acceptDownloads: true, locale: 'en-US' });
    onTestFinished(() => context.close());
    const page = await context.newPage();
    await page.goto(`http://127.0.0.1:${app.httpAddress!.port}/`);
    await page.locator('#token').fill(TOKEN);
    await page.locator('#login-form button').click();
    await page.locator('#console').waitFor({ state: 'visible' });
    await page.getByText('Back up this box').click();
    await page.screenshot({ path: '/tmp/relaybox-console-backup.png', fullPage: true });
    const [download] = await Promise.all([page.waitForEvent('download'), page.getByText('Download a backup').click()]);
    expect(download.suggestedFilename()).toMatch(/^relaybox-backup-relaybox\.test\.example-\d{8}-\d{6}\.tar\.gz$/);
    const saved = join(dir, 'from-browser.tar.gz');
    await download.saveAs(saved);
    expect(JSON.parse(await manifestOf(saved)).files.map((f: { what: string }) => f.what)).toContain('configuration');
  });
});

async function manifestOf(archive: string): Promise<string> {
  const read: Array<Promise<Buffer>> = [];
  await listTar({ file: archive, filter: (p) => p === 'manifest.json', onReadEntry: (e) => void read.push(e.concat()) });
  return (await Promise.all(read)).map(String).join('');
}
