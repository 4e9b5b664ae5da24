import type { Logger } from 'pino';
import { formatHostPort, isLoopbackHost } from '../config/net.js';
import type { Config } from '../config/schema.js';
import type { NotifyConfig } from '../config/notify.js';
import { ReplyHints } from '../hints/hint.js';
import { composeMessage } from '../message/compose.js';
import { NOTICE_CLIENT } from '../spool/noticeMemory.js';
import type { SpoolStore } from '../spool/store.js';
import type { RenderContext, NoticeText } from './render.js';
import { wordsFor } from './words.js';

/** The console's address as an admin elsewhere on the network opens it; none while it listens on loopback only. */
export function consoleUrl(config: Config): string | undefined {
  const { enabled, listen } = config.http;
  if (!enabled || isLoopbackHost(listen.host)) return undefined;
  const host = listen.host === '' || listen.host === '0.0.0.0' || listen.host === '::' ? config.hostname : listen.host;
  return `http://${formatHostPort({ host, port: listen.port })}/`;
}

/**
 * Puts notices and DSNs into the spool like any mail, marked as notices (the client column and
 * `Auto-Submitted`), so that their own failure is never noticed about in turn.
 */
export class NoticeSender {
  readonly render: RenderContext;
  private readonly notify: NotifyConfig;
  private readonly from: string;

  constructor(private readonly options: { config: Config; spool: SpoolStore; logger: Logger }) {
    const { config } = options;
    this.notify = config.notify!;
    this.from = `relaybox@${config.hostname}`;
    const hints = new ReplyHints(config);
    this.render = {
      words: wordsFor(this.notify.language),
      hostname: config.hostname,
      consoleUrl: consoleUrl(config),
      hint: (upstream, reply) => hints.for(upstream, reply),
    };
  }

  /** Spools a notice to `notify.to`, through `onlyUpstream` when one is given. */
  async notice(notice: NoticeText, onlyUpstream: string | null): Promise<number> {
    const bytes = await composeMessage({
      from: this.from,
      to: this.notify.to,
      subject: notice.subject,
      text: notice.text,
      hostname: this.options.config.hostname,
      headers: { 'Auto-Submitted': 'auto-generated' },
    });
    const id = await this.spoolBytes(bytes, { mailFrom: this.from, recipients: this.notify.to, subject: notice.subject, onlyUpstream });
    this.options.logger.info({ id, subject: notice.subject, upstream: onlyUpstream }, 'notice spooled');
    return id;
  }

  /** Spools a DSN with the empty envelope sender. */
  async dsn(bytes: Buffer, to: string): Promise<number> {
    const id = await this.spoolBytes(bytes, { mailFrom: '', recipients: [to], subject: this.render.words.dsnSubject, onlyUpstream: null });
    this.options.logger.info({ id, to }, 'delivery status notification spooled');
    return id;
  }

  private async spoolBytes(bytes: Buffer, message: { mailFrom: string; recipients: string[]; subject: string; onlyUpstream: string | null }): Promise<number> {
    const { spool } = this.options;
    const body = spool.receive();
    try {
      body.write(bytes);
      return await spool.accept(body, { ...message, client: NOTICE_CLIENT });
    } catch (err) {
      spool.discard(body);
      throw err;
    }
  }
}
