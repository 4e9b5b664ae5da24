import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { FakeOauth } from './fakeOauth.js';
import { CLI, relayConfig } from './relay.js';
import { tempDir } from './tmp.js';

/** What each test started; the test file runs them in afterEach. */
export const cleanup: Array<() => Promise<void> | void> = [];

export async function runCleanup(): Promise<void> {
  for (const done of cleanup.splice(0)) await done();
}

/** A config whose OAuth upstreams talk to a local stand-in of the provider. */
export async function setup(upstreams: Array<Record<string, unknown>>, fakeOptions: Parameters<typeof FakeOauth.start>[0]) {
  const fake = await FakeOauth.start(fakeOptions);
  cleanup.push(() => fake.close());
  const dir = tempDir();
  const file = join(dir, 'relaybox.yaml');
  const withEndpoints = upstreams.map((u) => (String(u.type).endsWith('oauth2') ? { ...u, token_url: fake.tokenUrl, auth_url: fake.authUrl } : u));
  writeFileSync(file, stringify(relayConfig(dir, { upstreams: withEndpoints })));
  return { fake, dir, file };
}

export interface Running {
  child: ChildProcessWithoutNullStreams;
  stdout: () => string;
  stderr: () => string;
  exited: Promise<number | null>;
  /** Resolves with the first printed line (stdout) that matches. */
  line(pattern: RegExp): Promise<RegExpExecArray>;
}

/** The CLI as a person runs it in a terminal: we read what it prints and may type into it. */
export function start(args: string[], env: Record<string, string | undefined> = {}): Running {
  // A test's words do not depend on the machine's locale unless the test sets one.
  const base = { ...process.env, LANG: 'C.UTF-8', LC_ALL: '', LC_MESSAGES: '' };
  const child = spawn(process.execPath, [CLI, ...args], { stdio: ['pipe', 'pipe', 'pipe'], env: { ...base, ...env } });
  cleanup.push(() => void (child.exitCode === null && child.signalCode === null && child.kill('SIGKILL')));
  let stdout = '';
  let stderr = '';
  const waiters: Array<() => void> = [];
  child.stdout.on('data', (d) => {
    stdout += d;
    for (const w of waiters) w();
  });
  child.stderr.on('data', (d) => (stderr += d));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  const line = (pattern: RegExp) =>
    new Promise<RegExpExecArray>((resolve, reject) => {
      const check = () => {
        const m = pattern.exec(stdout);
        if (m) resolve(m);
      };
      waiters.push(check);
      check();
      void exited.then(() => reject(new Error(`exited before printing ${pattern}:\n${stdout}\n${stderr}`)));
    });
  return { child, stdout: () => stdout, stderr: () => stderr, exited, line };
}

export const GOOGLE_CLIENT = 'desktop.apps.googleusercontent.com';
export const gmail = { name: 'gmail', type: 'gmail-oauth2', user: 'scanner@example.com', client_id: GOOGLE_CLIENT, client_secret: 'desktop-secret' };
export const m365 = { name: 'm365', type: 'microsoft365-oauth2', user: 'scanner@contoso.com', client_id: 'public-app' };
export const AUTH_URL_LINE = /^ {3}(http:\/\/127\.0\.0\.1:\d+\/authorize\?\S+)$/m;
