import type { Command } from 'commander';
import { hostname as osHostname } from 'node:os';
import { composeMessage } from '../message/compose.js';
import { pino } from 'pino';
import { DeliveryScheduler } from '../delivery/scheduler.js';
import { getMessage } from '../spool/log.js';
import { SpoolStore } from '../spool/store.js';
import { createUpstreams } from '../upstreams/registry.js';
import { CliError, EXIT_USAGE, type ConfigFlag } from './common.js';
import { openConfiguredSpool } from './configFile.js';

/** A small, well-formed message that passes Gmail's checks (Message-ID, Date, one From). */
export function testMessage(opts: { from: string; to: string; hostname: string; upstream?: string }): Promise<Buffer> {
  const now = new Date();
  return composeMessage({
    from: `relaybox <${opts.from}>`,
    to: [opts.to],
    subject: `relaybox test message from ${opts.hostname}`,
    hostname: opts.hostname,
    date: now,
    text:
      `This is a test message from relaybox on ${opts.hostname}${opts.upstream ? `, sent through upstream "${opts.upstream}"` : ''}.\n` +
      `Sent at ${now.toISOString()}. If you can read this, mail from your devices will get through too.\n`,
  });
}

export function registerSendTest(program: Command): void {
  program
    .command('send-test')
    .description('build a test message, spool and deliver it, print the outcome')
    .requiredOption('--to <address>', 'recipient')
    .option('--from <address>', 'envelope and header sender (default: relaybox@<hostname>)')
    .option('--upstream <name>', 'deliver through this upstream only')
    .option('--config <file>', 'configuration file')
    .action(async (flags: ConfigFlag & { to: string; from?: string; upstream?: string }) => {
      const { config, db } = openConfiguredSpool(flags);
      if (flags.upstream && !config.upstreams.some((u) => u.name === flags.upstream)) {
        db.close();
        throw new CliError(`no upstream named "${flags.upstream}" (have: ${config.upstreams.map((u) => u.name).join(', ')})`, EXIT_USAGE);
      }
      const hostname = config.hostname || osHostname();
      const from = flags.from ?? `relaybox@${hostname}`;
      const store = new SpoolStore(db);
      const upstreams = createUpstreams(config.upstreams, { hostname, concurrency: 1, timeouts: config.delivery.timeouts, logger: pino({ level: 'silent' }), dataDir: config.data_dir });
      try {
        const body = store.receive();
        body.write(await testMessage({ from, to: flags.to, hostname, upstream: flags.upstream }));
        const id = await store.accept(body, { mailFrom: from, recipients: [flags.to], client: 'relaybox send-test', subject: 'relaybox test message', onlyUpstream: flags.upstream });
        process.stdout.write(`message ${id} spooled; delivering…\n`);
        const claimed = store.claim(id);
        if (claimed) {
          const scheduler = new DeliveryScheduler({
            spool: store,
            upstreams,
            delivery: config.delivery,
            logger: pino({ level: 'silent' }),
            hostname,
            rewrite: config.smtp.rewrite,
            routes: config.routes,
            dkim: config.dkim,
            dataDir: config.data_dir,
          });
          await scheduler.deliverClaimed(claimed);
        } else {
          await waitWhileDelivering(db, id); // the running service took it first
        }
        const outcome = getMessage(db, id)!;
        for (const r of outcome.recipients) process.stdout.write(`${r.rcpt}: ${r.state}${r.upstream ? ` via ${r.upstream}` : ''}${r.reply ? ` — ${r.reply}` : ''}\n`);
        const last = outcome.history.at(-1);
        if (outcome.state === 'deferred') process.stdout.write(`deferred — ${outcome.lastReply ?? ''}; relaybox serve will retry it (queue show ${id})\n`);
        if (outcome.state !== 'delivered') throw new CliError(`test message ${id} was not delivered: ${last?.reply ?? outcome.state}`);
      } finally {
        await Promise.allSettled(upstreams.map((u) => u.close()));
        store.close();
      }
    });
}

async function waitWhileDelivering(db: ReturnType<typeof openConfiguredSpool>['db'], id: number): Promise<void> {
  for (let i = 0; i < 600; i++) {
    const state = getMessage(db, id)?.state;
    if (state !== 'queued' && state !== 'delivering') return;
    await new Promise((r) => setTimeout(r, 100));
  }
}
