import type { Logger } from 'pino';
import { tokenSourceFor, type UpstreamTokenSource } from '../oauth/sources.js';
import { HttpsClient, type HttpsRequest, type HttpsResponse, type HttpsTls } from './https.js';
import { tokenFailureVerdict } from './oauthSmtp.js';
import { dataDirOf } from './oauthPresets.js';
import { DEFAULT_TIMEOUTS } from './smtpSession.js';
import type { UpstreamContext } from './types.js';
import { UpstreamError, type SendOptions } from './types.js';


/**
 * An HTTPS API as one upstream: a kept-alive client and the upstream's OAuth token source (the
 * same cache and grants as the XOAUTH2 upstreams). A `401` means the token was refused: it is
 * refreshed once and the request repeated; a second `401` is the caller's to word.
 */
/** The session of an HTTPS upstream, its tokens kept in `<data_dir>/oauth` like the XOAUTH2 upstreams'. */
export function apiSessionFor(config: Parameters<typeof tokenSourceFor>[0] & { tls: HttpsTls }, context: UpstreamContext): ApiSession {
  const tokens = tokenSourceFor(config, dataDirOf(context, config.name), { logger: context.logger.child({ upstream: config.name }) });
  return new ApiSession(config.name, tokens, { tls: config.tls, context });
}

export class ApiSession {
  readonly client: HttpsClient;
  private readonly logger: Logger;

  constructor(
    readonly upstream: string,
    readonly tokens: UpstreamTokenSource,
    options: { tls: HttpsTls; context: UpstreamContext },
  ) {
    const timeouts = options.context.timeouts ?? DEFAULT_TIMEOUTS;
    this.logger = options.context.logger.child({ upstream });
    this.client = new HttpsClient({ upstream, tls: options.tls, maxSockets: options.context.concurrency, connectMs: timeouts.connect, responseMs: timeouts.greeting });
  }

  /** A bearer token, or the token endpoint's refusal as the upstream's error (auth_failed, clock…). */
  async token(): Promise<string> {
    try {
      return (await this.tokens.source.getToken()).accessToken;
    } catch (err) {
      throw tokenFailureVerdict(err);
    }
  }

  /**
   * One API call with a bearer token. `build` is called again for the repeat after a `401`, so a
   * streamed body must be made fresh in it.
   */
  async call(build: (token: string) => HttpsRequest): Promise<HttpsResponse> {
    const first = await this.client.request(withBearer(build, await this.token()));
    if (first.status !== 401) return first;
    this.logger.info('the API refused the access token; refreshing it once');
    this.tokens.source.invalidate();
    return this.client.request(withBearer(build, await this.token()));
  }

  /** Before anything is sent: given up when delivery found the upstream down meanwhile. */
  checkStillWanted(options: SendOptions | undefined): void {
    if (options?.signal?.aborted) throw new UpstreamError(`given up: ${String((options.signal.reason as Error | undefined)?.message ?? 'upstream down')}`, null, 'connect');
  }

  close(): void {
    this.client.close();
  }
}

function withBearer(build: (token: string) => HttpsRequest, token: string): HttpsRequest {
  const req = build(token);
  return { ...req, headers: { ...req.headers, authorization: `Bearer ${token}` } };
}
