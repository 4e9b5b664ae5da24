import { spawn, type ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import nodemailer from 'nodemailer';
import { pino } from 'pino';
import { stringify } from 'yaml';
import { onTestFinished } from 'vitest';
import { RelayApp } from '../../src/app.js';
import { validateConfig } from '../../src/config/load.js';

export const CLI = join(import.meta.dirname, '../../dist/cli.js');

/** A config object with test defaults: loopback on a free port, no TLS, fast retries. */
export function relayConfig(dataDir: string, overrides: Record<string, unknown> = {}): Record<string, any> {
  const base: Record<string, any> = {
    hostname: 'relaybox.test.example',
    data_dir: dataDir,
    smtp: { listen: ['127.0.0.1:0'], tls: { mode: 'none' } },
    http: { listen: '127.0.0.1:0' },
    upstreams: [{ name: 'outbox', type: 'file', dir: join(dataDir, 'outbox') }],
    delivery: { retry: { first: '200ms', max: '1s', give_up_after: '1h' }, shutdown_grace: '2s' },
    log: { level: 'warn' },
  };
  for (const [key, value] of Object.entries(overrides)) {
    base[key] = value && typeof value === 'object' && !Array.isArray(value) && base[key] ? { ...base[key], ...value } : value;
  }
  return base;
}

/** relaybox in this process: quick, and its spool and events can be looked at directly. */
export async function startRelay(raw: Record<string, unknown>): Promise<{ app: RelayApp; port: number }> {
  const app = await RelayApp.start(validateConfig(raw), pino({ level: 'silent' }));
  onTestFinished(() => app.stop());
  return { app, port: app.smtpAddresses[0]!.port };
}

export interface RelayProcess {
  child: ChildProcess;
  port: number;
  lines: string[];
  exited: Promise<number | null>;
}

/**
 * relaybox as users run it: `node dist/cli.js serve --config FILE`, ready once it logs its ports.
 * `wrap` runs it under another command (a sandbox) that ends by executing the rest of its arguments.
 */
export async function spawnRelay(raw: Record<string, unknown>, dir: string, options: { wrap?: string[] } = {}): Promise<RelayProcess> {
  const file = join(dir, `relaybox-${Date.now()}.yaml`);
  // The ports are read off the 'relaybox started' info line.
  writeFileSync(file, stringify({ ...raw, log: { level: 'info' } }));
  const [command, ...args] = [...(options.wrap ?? []), process.execPath, CLI, 'serve', '--config', file];
  const child = spawn(command!, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  const lines: string[] = [];
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  onTestFinished(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`relaybox did not start:\n${lines.join('\n')}`)), 15_000);
    createInterface({ input: child.stderr! }).on('line', (l) => lines.push(l));
    createInterface({ input: child.stdout! }).on('line', (line) => {
      lines.push(line);
      const smtp = /"smtp":\["[^"]*:(\d+)"/.exec(line);
      if (smtp) {
        clearTimeout(timer);
        resolve(Number(smtp[1]));
      }
    });
    child.on('exit', (code) => reject(new Error(`relaybox exited with ${code}:\n${lines.join('\n')}`)));
  });
  return { child, port, lines, exited };
}

/** Runs the CLI to completion. */
export function runCli(args: string[], input?: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [CLI, ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('exit', (code) => resolve({ code, stdout, stderr }));
    child.stdin.end(input ?? '');
  });
}

/** A device sending one message the way a scanner would. */
export async function sendMail(
  port: number,
  message: { from?: string; to: string[]; raw?: string | Buffer; subject?: string; text?: string; auth?: { user: string; pass: string } },
): Promise<{ response: string }> {
  const transport = nodemailer.createTransport({ host: '127.0.0.1', port, secure: false, ignoreTLS: true, auth: message.auth });
  try {
    const from = message.from ?? 'scanner@example.com';
    const raw = message.raw ?? `From: ${from}\r\nTo: ${message.to.join(', ')}\r\nSubject: ${message.subject ?? 'scan'}\r\n\r\n${message.text ?? 'hello'}\r\n`;
    const info = await transport.sendMail({ envelope: { from, to: message.to }, raw });
    return { response: info.response };
  } finally {
    transport.close();
  }
}

export async function waitFor<T>(probe: () => T | undefined | null | false, timeoutMs = 10_000, what = 'condition'): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const value = probe();
    if (value) return value;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}
