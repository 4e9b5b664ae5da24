import type { Command } from 'commander';
import { resolve } from 'node:path';
import { RelayApp } from '../app.js';
import { formatDuration } from '../config/duration.js';
import { formatHostPort } from '../config/net.js';
import { loadConfigOffThread } from '../config/offThread.js';
import { RATE_WINDOWS, rateLimitsOf, type RateWindow } from '../config/rate.js';
import type { Config } from '../config/schema.js';
import { formatMegabytes, sizeLimitOf } from '../config/sizeLimits.js';
import { hashPassword } from '../ingress/passwords.js';
import { createLogger } from '../logger.js';
import { pino } from 'pino';
import { CliError, EXIT_USAGE, reportAndExit, type ConfigFlag } from './common.js';
import { configPath } from './configLookup.js';
import { explainGrant, isOAuthUpstream } from '../oauth/grantChoice.js';
import { startLine } from './startLine.js';

export function registerServiceCommands(program: Command): void {
  program
    .command('serve')
    .description('run the service in the foreground; logs JSON lines to stdout, one line for people to stderr')
    .option('--config <file>', 'configuration file')
    .action(async (flags: ConfigFlag) => {
      const path = configPath(flags.config);
      const config = await loadConfigOffThread(path);
      const logger = createLogger(config.log.level);
      const app = await RelayApp.start(config, logger, { configPath: resolve(path) });
      // For a person at a terminal or in journalctl; stdout carries the JSON log for machines.
      process.stderr.write(startLine(app));
      let signals = 0;
      const shutdown = (signal: string) => {
        if (++signals > 1) process.exit(1); // a second Ctrl-C: stop waiting
        logger.info({ signal }, 'stopping: no new mail is accepted, deliveries in flight may finish');
        app.stop().then(
          () => logger.flush(() => process.exit(0)),
          (err) => reportAndExit(err),
        );
      };
      process.on('SIGTERM', () => shutdown('SIGTERM'));
      process.on('SIGINT', () => shutdown('SIGINT'));
    });

  program
    .command('check-config')
    .description('validate the configuration and print one line per upstream (exit 0 ok, 2 bad)')
    .option('--config <file>', 'configuration file')
    .action(async (flags: ConfigFlag) => {
      const config = await loadConfigOffThread(configPath(flags.config)); // exactly as serve reads it
      // Not imported at the top: `serve` shares this file and never needs the adapters on its thread.
      const { createUpstreams } = await import('../upstreams/registry.js');
      const upstreams = createUpstreams(config.upstreams, { hostname: config.hostname, concurrency: 1, timeouts: config.delivery.timeouts, logger: pino({ level: 'silent' }), dataDir: config.data_dir });
      const out = [
        `configuration ok: hostname ${config.hostname}, spool in ${config.data_dir}`,
        `smtp: listening on ${config.smtp.listen.map(formatHostPort).join(', ')}, tls ${config.smtp.tls.mode}, auth ${config.smtp.auth.required ? 'required' : config.smtp.auth.users.length ? 'optional' : 'off'}, allowed ${config.smtp.allow_networks.join(' ')}`,
        ...upstreams.map((u, i) => `upstream ${i + 1} ${u.name} (${u.type}): ${u.describe()}${sizeNote(config.upstreams[i]!)}${rateNote(config.upstreams[i]!)}`),
        ...config.upstreams.filter(isOAuthUpstream).map((u) => `oauth ${explainGrant(u)}`),
        ...sectionLines(config),
      ];
      await Promise.allSettled(upstreams.map((u) => u.close()));
      process.stdout.write(`${out.join('\n')}\n`);
    });

  program
    .command('hash-password')
    .description('read a password on stdin, print a hash for smtp.auth.users')
    .action(async () => {
      const password = (await readStdin()).replace(/\r?\n$/, '');
      if (!password) throw new CliError('no password on stdin (try: relaybox hash-password <<< "secret")', EXIT_USAGE);
      process.stdout.write(`${await hashPassword(password)}\n`);
    });
}

/** `; messages up to 25 MB` (max_message_bytes or the preset's); nothing when the upstream sets no limit. */
function sizeNote(upstream: Config['upstreams'][number]): string {
  const { bytes } = sizeLimitOf(upstream);
  return bytes ? `; messages up to ${formatMegabytes(bytes)}` : '';
}

const RATE_WORDS: Record<RateWindow, string> = { per_minute: 'messages a minute', per_hour: 'messages an hour', per_day: 'messages a day', recipients_per_day: 'recipients a day' };

/** `; at most 30 messages a minute, 10,000 recipients a day`: the pacing the upstream runs under. */
function rateNote(upstream: Config['upstreams'][number]): string {
  const limits = rateLimitsOf(upstream);
  const parts = RATE_WINDOWS.filter((w) => limits[w] > 0).map((w) => `${limits[w].toLocaleString('en-US')} ${RATE_WORDS[w]}`);
  return parts.length ? `; at most ${parts.join(', ')}` : '';
}

async function readStdin(): Promise<string> {
  if (process.stdin.isTTY) process.stderr.write('password: ');
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) {
    chunks.push(chunk as Buffer);
    // A person typing at a terminal ends with Enter, not Ctrl-D.
    if (process.stdin.isTTY && String(chunk).includes('\n')) break;
  }
  return Buffer.concat(chunks).toString('utf8');
}

/** One line for each optional part that is on; never a secret (a broker URL loses its password). */
function sectionLines(config: Config): string[] {
  const lines: string[] = [];
  const { http, mqtt, routes, dkim, notify } = config;
  if (http.enabled) lines.push(`http: console and API on ${formatHostPort(http.listen)}, ${http.admin_token ? 'token required' : 'no token (loopback only)'}`);
  if (mqtt) {
    const url = new URL(mqtt.url);
    const alerts = mqtt.alerts.length ? `, ${mqtt.alerts.length} alert rule(s)` : '';
    lines.push(`mqtt: ${url.protocol}//${url.host} as ${mqtt.topic_prefix}${mqtt.home_assistant.enabled ? ', Home Assistant discovery' : ''}${alerts}`);
  }
  if (routes?.length) lines.push(`routes: ${routes.length} rule(s); messages no rule matches go to every upstream in order`);
  if (dkim) lines.push(`dkim: signing as ${dkim.selector}._domainkey.${dkim.domain}`);
  if (notify) lines.push(`notify: ${notify.to.join(', ')} told of ${notify.events.join(', ')}; digest every ${formatDuration(notify.digest)}${notify.bounce_to_sender ? '; DSN to senders' : ''}`);
  return lines;
}
