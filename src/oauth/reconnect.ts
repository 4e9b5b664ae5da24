import type { Logger } from 'pino';
import { AuthorizationError, codeFromRedirect, exchangeCode } from './authorize.js';
import { pollDeviceToken, startDeviceAuthorization } from './deviceFlow.js';
import { TokenError, reasonOf } from './errors.js';
import { startAuthorization, storeSignIn, unusedLoopbackRedirect, type SignInFlow, type SignInTarget } from './signIn.js';
import { explainSignInError, type SignInContext } from './signInErrors.js';

/** How long a pasted address is waited for: as long as `relaybox oauth` waits by default. */
export const PASTE_LIMIT_MS = 10 * 60_000;

export type ReconnectState = 'waiting' | 'done' | 'failed';

/** A sign-in as the console and the API show it: never a token, a verifier or a device code. */
export interface ReconnectView {
  upstream: string;
  /** The mailbox to sign in as (the upstream's `user`). */
  user: string;
  flow: SignInFlow;
  state: ReconnectState;
  /** What happened, in a sentence (English; the console adds its own headline in the page's language). */
  words: string;
  expires_at: string;
  /** Device flow, while waiting: what the person types, and where. */
  user_code?: string;
  verification_uri?: string;
  expires_in_s?: number;
  /** Paste flow, while waiting: the consent page to open. */
  authorize_url?: string;
}

/** A request the flow cannot take; `status` is the HTTP status that says why. */
export class ReconnectRefusal extends Error {
  constructor(
    message: string,
    readonly status: 400 | 404 | 409 | 502,
    /** A paste to correct, for the console's own words: the address has no code, or another sign-in's state. */
    readonly reason?: 'no_code' | 'state_mismatch',
  ) {
    super(message);
  }
}

interface Flow {
  target: SignInTarget;
  state: ReconnectState;
  words: string;
  expiresAt: number;
  /** Why it failed when its time ran out. */
  expiryWords: string;
  timer: NodeJS.Timeout;
  stop: AbortController;
  device?: { userCode: string; verificationUri: string };
  paste?: { url: string; state: string; verifier: string; redirectUri: string; exchanging: boolean };
}

export interface ReconnectFlowsOptions {
  dataDir: string;
  logger?: Logger;
  /** The new refresh token is stored: the upstream may be tried at once. */
  onConnected: (upstream: string) => void;
  pasteLimitMs?: number;
}

/**
 * The console's Reconnect: a person signs in again for an upstream whose refresh token stopped
 * working, without a terminal. Microsoft: a device code the person types at Microsoft's page
 * while relaybox polls. Google (no device flow for Gmail scopes): the consent page returns to a
 * loopback address nothing listens on, and the person pastes the address the browser ended on.
 * One sign-in per upstream at a time; each ends after a time limit.
 */
export class ReconnectFlows {
  private readonly flows = new Map<string, Flow>();

  constructor(private readonly options: ReconnectFlowsOptions) {}

  view(upstream: string): ReconnectView | null {
    const flow = this.flows.get(upstream);
    return flow ? viewOf(flow) : null;
  }

  async start(target: SignInTarget): Promise<ReconnectView> {
    const name = target.upstream.name;
    const running = this.flows.get(name);
    if (running?.state === 'waiting') throw new ReconnectRefusal(`a sign-in for ${name} is already under way: finish it, or cancel it first`, 409);
    if (running) this.flows.delete(name);
    const flow = target.flow === 'device' ? await this.startDevice(target) : await this.startPaste(target);
    if (this.flows.get(name)?.state === 'waiting') {
      // Two starts raced: the first one stands.
      this.end(flow, 'failed', 'superseded');
      throw new ReconnectRefusal(`a sign-in for ${name} is already under way: finish it, or cancel it first`, 409);
    }
    this.flows.set(name, flow);
    this.options.logger?.info({ upstream: name, flow: target.flow, expires_at: new Date(flow.expiresAt).toISOString() }, 'reconnect: sign-in started from the console');
    return viewOf(flow);
  }

  /** Paste flow: the address the browser ended on after the consent page. */
  async complete(upstream: string, redirectUrl: string): Promise<ReconnectView> {
    const flow = this.flows.get(upstream);
    if (!flow || flow.state !== 'waiting') throw new ReconnectRefusal(`no sign-in for ${upstream} is waiting${flow ? ` (it ended: ${flow.words})` : ''}: press Reconnect to start one`, 409);
    const paste = flow.paste;
    if (!paste) throw new ReconnectRefusal(`the sign-in for ${upstream} uses a code typed at Microsoft's page: there is no address to paste`, 409);
    if (paste.exchanging) throw new ReconnectRefusal(`relaybox is already finishing the sign-in for ${upstream}`, 409);
    const params = redirectParams(redirectUrl);
    if (!params.has('error')) {
      if (!params.get('code')) throw new ReconnectRefusal('that is not the address the browser ended on: it has no code= in it. Copy the whole address from the address bar of the page that says it cannot be reached', 400, 'no_code');
      if (params.get('state') !== paste.state) {
        throw new ReconnectRefusal('that address belongs to another sign-in (its state does not match this one, an old tab?): open the link shown here again, sign in, and paste the address the browser ends on', 400, 'state_mismatch');
      }
    }
    let code: string;
    try {
      code = codeFromRedirect(redirectUrl, paste.state);
    } catch (err) {
      const words =
        explainSignInError(err, signInContext(flow.target, 'redirect')) ??
        (err instanceof AuthorizationError && err.final ? `the sign-in was refused on the consent page: ${reasonOf(err).replace(/^the authorization was refused: /, '')}` : reasonOf(err));
      this.end(flow, 'failed', words);
      throw new ReconnectRefusal(words, 400);
    }
    paste.exchanging = true;
    try {
      const answer = await exchangeCode({
        tokenUrl: flow.target.endpoints.tokenUrl,
        clientId: flow.target.upstream.client_id ?? '',
        clientSecret: flow.target.upstream.client_secret,
        code,
        redirectUri: paste.redirectUri,
        verifier: paste.verifier,
        ...(flow.target.provider === 'microsoft' ? { scope: flow.target.endpoints.scope } : {}),
      });
      if (flow.state !== 'waiting') throw new ReconnectRefusal(`the sign-in for ${upstream} ended meanwhile: ${flow.words}`, 409);
      await this.connected(flow, answer.refresh_token);
    } catch (err) {
      if (err instanceof ReconnectRefusal) throw err;
      this.end(flow, 'failed', explainSignInError(err, signInContext(flow.target, 'exchange')) ?? `${providerName(flow)} did not give a token for that code: ${reasonOf(err)}`);
      throw new ReconnectRefusal(flow.words, err instanceof TokenError && err.failure === 'unavailable' ? 502 : 400);
    }
    // Storing can fail (a full disk, a read-only data_dir): the flow says so.
    if ((flow.state as ReconnectState) === 'failed') throw new ReconnectRefusal(flow.words, 502);
    return viewOf(flow);
  }

  /** Ends a waiting sign-in; false when none was waiting. */
  cancel(upstream: string): boolean {
    const flow = this.flows.get(upstream);
    if (!flow || flow.state !== 'waiting') return false;
    this.end(flow, 'failed', 'cancelled by a person');
    return true;
  }

  /** Ends every sign-in (the console stops). */
  close(): void {
    for (const flow of this.flows.values()) if (flow.state === 'waiting') this.end(flow, 'failed', 'relaybox stopped');
  }

  private async startDevice(target: SignInTarget): Promise<Flow> {
    const clientId = target.upstream.client_id ?? '';
    let device;
    try {
      device = await startDeviceAuthorization({ deviceUrl: target.endpoints.deviceUrl!, clientId, scope: target.endpoints.scope });
    } catch (err) {
      throw new ReconnectRefusal(`Microsoft did not start the sign-in: ${reasonOf(err)}`, 502);
    }
    const flow = this.newFlow(target, device.expiresAt, `the code was not used within ${spoken(device.expiresAt - Date.now())}: press Reconnect for a new one`);
    flow.device = { userCode: device.userCode, verificationUri: device.verificationUri };
    flow.words = `waiting for the sign-in: open ${device.verificationUri}, enter the code ${device.userCode} and sign in as ${target.upstream.user}`;
    const signal = flow.stop.signal;
    pollDeviceToken({ tokenUrl: target.endpoints.tokenUrl, clientId, device, sleep: (ms) => sleepUnless(ms, signal) }).then(
      async (answer) => {
        if (flow.state !== 'waiting') return;
        if (!answer.refresh_token) return this.end(flow, 'failed', 'Microsoft gave no refresh token: the scope must include offline_access');
        await this.connected(flow, answer.refresh_token);
      },
      (err: unknown) => {
        if (flow.state !== 'waiting') return;
        const expired = err instanceof TokenError && err.oauthError === 'expired_token';
        this.end(flow, 'failed', expired ? flow.expiryWords : (explainSignInError(err, signInContext(target, 'device')) ?? `Microsoft refused the sign-in: ${reasonOf(err)}`));
      },
    );
    return flow;
  }

  private async startPaste(target: SignInTarget): Promise<Flow> {
    const redirectUri = await unusedLoopbackRedirect();
    const { url, state, verifier } = startAuthorization(target, redirectUri);
    const limitMs = this.options.pasteLimitMs ?? PASTE_LIMIT_MS;
    const flow = this.newFlow(target, Date.now() + limitMs, `no address was pasted within ${spoken(limitMs)}: press Reconnect to start again`);
    flow.paste = { url, state, verifier, redirectUri, exchanging: false };
    flow.words = `waiting for the address the browser ends on after signing in as ${target.upstream.user}`;
    return flow;
  }

  private newFlow(target: SignInTarget, expiresAt: number, expiryWords: string): Flow {
    const flow: Flow = {
      target,
      state: 'waiting',
      words: '',
      expiresAt,
      expiryWords,
      stop: new AbortController(),
      timer: setTimeout(() => flow.state === 'waiting' && this.end(flow, 'failed', expiryWords), Math.max(0, expiresAt - Date.now())),
    };
    flow.timer.unref();
    return flow;
  }

  private async connected(flow: Flow, refreshToken: string): Promise<void> {
    const name = flow.target.upstream.name;
    try {
      await storeSignIn({ dataDir: this.options.dataDir, target: flow.target, refreshToken });
    } catch (err) {
      return this.end(flow, 'failed', `cannot store the refresh token in data_dir/oauth: ${reasonOf(err)}`);
    }
    this.end(flow, 'done', `connected: the new sign-in for ${flow.target.upstream.user} is stored, and mail waiting for ${name} is sent now`);
    this.options.onConnected(name);
  }

  private end(flow: Flow, state: 'done' | 'failed', words: string): void {
    flow.state = state;
    flow.words = words;
    clearTimeout(flow.timer);
    flow.stop.abort();
    const log = { upstream: flow.target.upstream.name, flow: flow.target.flow, state, words };
    if (state === 'done') this.options.logger?.info(log, 'reconnect: new sign-in stored');
    else this.options.logger?.warn(log, 'reconnect: sign-in ended without a token');
  }
}

function viewOf(flow: Flow): ReconnectView {
  const waiting = flow.state === 'waiting';
  return {
    upstream: flow.target.upstream.name,
    user: flow.target.upstream.user,
    flow: flow.target.flow,
    state: flow.state,
    words: flow.words,
    expires_at: new Date(flow.expiresAt).toISOString(),
    ...(waiting && flow.device
      ? { user_code: flow.device.userCode, verification_uri: flow.device.verificationUri, expires_in_s: Math.max(0, Math.round((flow.expiresAt - Date.now()) / 1000)) }
      : {}),
    ...(waiting && flow.paste ? { authorize_url: flow.paste.url } : {}),
  };
}

/** 900 000 → "15 minutes"; under a minute and a half, in seconds. */
function spoken(ms: number): string {
  const [n, unit] = ms >= 90_000 ? [Math.round(ms / 60_000), 'minute'] : [Math.max(1, Math.round(ms / 1000)), 'second'];
  return `${n} ${unit}${n === 1 ? '' : 's'}`;
}

function providerName(flow: Flow): string {
  return flow.target.provider === 'google' ? 'Google' : 'Microsoft';
}

/** The query of a pasted address (or of just its query part). */
function redirectParams(text: string): URLSearchParams {
  const trimmed = text.trim();
  const query = trimmed.includes('?') ? trimmed.slice(trimmed.indexOf('?') + 1) : trimmed;
  return new URLSearchParams(query.split('#')[0]);
}

class Cancelled extends Error {}

function sleepUnless(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(new Cancelled());
    const timer = setTimeout(resolve, ms);
    signal.addEventListener('abort', () => {
      clearTimeout(timer);
      reject(new Cancelled());
    }, { once: true });
  });
}

/** What the shared sign-in words (signInErrors.ts) may name, said for the console. */
function signInContext(target: SignInTarget, stage: 'redirect' | 'exchange' | 'device'): SignInContext {
  return { provider: target.provider, upstream: target.upstream.name, user: target.upstream.user, clientId: target.upstream.client_id ?? '', stage, from: 'console' };
}
