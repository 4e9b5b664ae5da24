import type { RefreshTokenUpstreamConfig } from '../config/upstreams.js';
import { AuthorizationError, exchangeCode, newState } from '../oauth/authorize.js';
import { startAuthorization } from '../oauth/signIn.js';
import { pollDeviceToken, startDeviceAuthorization } from '../oauth/deviceFlow.js';
import { TokenError } from '../oauth/errors.js';
import type { OAuthEndpoints, OAuthProvider } from '../oauth/providers.js';
import { explainPasteProblem } from '../oauth/signInErrors.js';
import { spokenDuration, type SignInLang } from '../oauth/signInWords.js';
import { waitForAuthorizationCode } from '../oauth/waitForCode.js';
import { CliError, EXIT_USAGE } from './common.js';
import { tunnelCommand, type OAuthWords } from './oauthWords.js';

export interface FlowOptions {
  provider: OAuthProvider;
  upstream: RefreshTokenUpstreamConfig;
  endpoints: OAuthEndpoints;
  /** 0: any free port. */
  port: number;
  timeoutMs: number;
  lang: SignInLang;
  words: OAuthWords;
  /** Tells which step failed, for the words of a refusal (exchange vs. redirect). */
  onStage?: (stage: 'redirect' | 'exchange' | 'device', extra?: { deviceLifeMs?: number }) => void;
}

const out = (text = '') => process.stdout.write(`${text}\n`);
const providerName = (provider: OAuthProvider) => (provider === 'google' ? 'Google' : 'Microsoft 365');

/**
 * Authorization code with PKCE through the admin's browser. The redirect lands on loopback or is
 * pasted: pasting comes first in the words because it needs no second SSH session.
 */
export async function redirectFlow(options: FlowOptions): Promise<string> {
  const { provider, upstream, endpoints, words } = options;
  const state = newState();
  const wait = await waitForAuthorizationCode({
    port: options.port,
    state,
    input: process.stdin,
    tell: (line, err) => process.stderr.write(`${err ? `relaybox: ${explainPasteProblem(err, options.lang)}` : line}\n`),
    timeoutMs: options.timeoutMs,
    browserWords: words.browser,
  });
  try {
    // The same consent request as the console's Reconnect (src/oauth/signIn.ts).
    const { url, verifier } = startAuthorization({ upstream, endpoints, provider }, wait.redirectUri, state);
    out(words.intro(upstream.user, upstream.name, providerName(provider)));
    out();
    out(words.openAddress(upstream.user));
    out();
    out(`   ${url}`);
    out();
    out(words.afterAllow(wait.redirectUri));
    out();
    out(words.tunnelIntro);
    out(`     ${tunnelCommand(wait.port)}`);
    out(words.portNote(options.port || 8400));
    if (provider === 'microsoft') out(words.microsoftRedirect);
    out();
    out(words.waiting(spokenDuration(options.timeoutMs, options.lang)));
    const { code, via } = await wait.code;
    out(words.got(via));
    options.onStage?.('exchange');
    const answer = await exchangeCode({
      tokenUrl: endpoints.tokenUrl,
      clientId: upstream.client_id ?? '',
      clientSecret: upstream.client_secret,
      code,
      redirectUri: wait.redirectUri,
      verifier,
      ...(provider === 'microsoft' ? { scope: endpoints.scope } : {}),
    });
    return answer.refresh_token;
  } finally {
    await wait.close();
    // Nobody will paste any more: let the process end although stdin is still open.
    process.stdin.destroy();
  }
}

/**
 * RFC 8628 device authorization: the person types a short code at microsoft.com/devicelogin on
 * any device. The wait is the shorter of --timeout and the code's own life.
 */
export async function deviceFlow(options: FlowOptions): Promise<string> {
  const { provider, upstream, endpoints, words, lang } = options;
  if (provider !== 'microsoft' || !endpoints.deviceUrl) {
    throw new CliError(words.googleDevice, EXIT_USAGE);
  }
  const clientId = upstream.client_id ?? '';
  options.onStage?.('device');
  const device = await startDeviceAuthorization({ deviceUrl: endpoints.deviceUrl, clientId, scope: endpoints.scope });
  const lifeMs = device.lifetimeMs ?? device.expiresAt - Date.now();
  options.onStage?.('device', { deviceLifeMs: lifeMs });
  const cutShort = options.timeoutMs < lifeMs;
  const waitMs = Math.min(options.timeoutMs, lifeMs);
  out(words.intro(upstream.user, upstream.name, providerName(provider)));
  out();
  out(words.device(device.verificationUri, device.userCode));
  out(words.deviceSignInAs(upstream.user, spokenDuration(lifeMs, lang)));
  out();
  out(words.deviceWaiting(spokenDuration(waitMs, lang)));
  try {
    const answer = await pollDeviceToken({
      tokenUrl: endpoints.tokenUrl,
      clientId,
      device: cutShort ? { ...device, expiresAt: Date.now() + options.timeoutMs } : device,
      onWait: (seconds) => out(words.slowDown(seconds)),
    });
    if (!answer.refresh_token) throw new CliError(words.noRefreshToken);
    return answer.refresh_token;
  } catch (err) {
    // Our own --timeout ran out, not the code: say so in the words of every other wait.
    if (cutShort && err instanceof TokenError && err.oauthError === 'expired_token' && err.message.startsWith('the code expired after')) {
      throw new AuthorizationError(`no sign-in arrived: waited ${spokenDuration(options.timeoutMs)}`, true, { reason: 'timeout', waitedMs: options.timeoutMs });
    }
    throw err;
  }
}
