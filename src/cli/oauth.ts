import type { Command } from 'commander';
import { hostname, userInfo } from 'node:os';
import { parseDuration } from '../config/duration.js';
import type { Config } from '../config/schema.js';
import type { RefreshTokenUpstreamConfig } from '../config/upstreams.js';
import { AuthorizationError, exchangeCode, newState } from '../oauth/authorize.js';
import { assertClockSane } from '../oauth/clock.js';
import { pollDeviceToken, startDeviceAuthorization } from '../oauth/deviceFlow.js';
import { TokenError, reasonOf } from '../oauth/errors.js';
import { endpointsFor, type OAuthEndpoints, type OAuthProvider } from '../oauth/providers.js';
import { startAuthorization, storeSignIn } from '../oauth/signIn.js';
import { waitForAuthorizationCode } from '../oauth/waitForCode.js';
import { CliError, EXIT_USAGE, type ConfigFlag } from './common.js';
import { loadConfig } from './configFile.js';

interface OAuthFlags extends ConfigFlag {
  upstream?: string;
  port: string;
  device?: boolean;
  gmailApi?: boolean;
  timeout: string;
}

/** The upstream types each provider's sign-in is for; the first is the default. */
const TYPES_OF: Record<OAuthProvider, RefreshTokenUpstreamConfig['type'][]> = { google: ['gmail-oauth2', 'gmail-api'], microsoft: ['microsoft365-oauth2'] };

const out = (text = '') => process.stdout.write(`${text}\n`);

export function registerOAuthCommands(program: Command): void {
  program
    .command('oauth')
    .description('walk a person through getting a refresh token for a gmail-oauth2, gmail-api or microsoft365-oauth2 upstream, and store it')
    .argument('<provider>', 'google or microsoft')
    .option('--upstream <name>', 'the configured upstream to authorize (default: the first of that type)')
    .option('--port <port>', 'loopback port for the redirect (default: any free port)', '0')
    .option('--device', 'Microsoft only: sign in with a code on any device instead of a redirect')
    .option('--gmail-api', 'Google only: for a gmail-api upstream (asks for the gmail.send scope, not full mail access)')
    .option('--timeout <duration>', 'how long to wait for the sign-in', '10m')
    .option('--config <file>', 'configuration file')
    .action(async (provider: string, flags: OAuthFlags) => {
      if (provider !== 'google' && provider !== 'microsoft') throw new CliError(`expected "google" or "microsoft", got "${provider}"`, EXIT_USAGE);
      const port = Number(flags.port);
      if (!Number.isInteger(port) || port < 0 || port > 65535) throw new CliError(`--port: expected a port number, got "${flags.port}"`, EXIT_USAGE);
      const timeoutMs = parseDuration(flags.timeout);
      if (timeoutMs === undefined) throw new CliError(`--timeout: expected a duration like 10m, got "${flags.timeout}"`, EXIT_USAGE);
      const config = loadConfig(flags);
      if (flags.gmailApi && provider !== 'google') throw new CliError('--gmail-api is for relaybox oauth google', EXIT_USAGE);
      const upstream = pickUpstream(config, provider, flags.upstream, flags.gmailApi ? 'gmail-api' : undefined);
      const endpoints = endpointsFor(upstream);
      if (endpoints.grant !== 'refresh_token') {
        const how = endpoints.grant === 'service_account' ? 'a service account' : 'app-only access (client credentials)';
        throw new CliError(`upstream ${upstream.name} uses ${how}: it needs no refresh token and no sign-in`, EXIT_USAGE);
      }
      try {
        assertClockSane(Date.now());
        const refreshToken = flags.device
          ? await deviceFlow(provider, upstream, endpoints)
          : await redirectFlow(provider, upstream, endpoints, port, timeoutMs);
        await store(config, upstream, endpoints, refreshToken);
      } catch (err) {
        if (err instanceof TokenError || err instanceof AuthorizationError) throw new CliError(err.message);
        throw err;
      }
    });
}

function pickUpstream(config: Config, provider: OAuthProvider, name: string | undefined, only?: RefreshTokenUpstreamConfig['type']): RefreshTokenUpstreamConfig {
  const types: string[] = only ? [only] : TYPES_OF[provider];
  const fits = (u: Config['upstreams'][number]): u is RefreshTokenUpstreamConfig => types.includes(u.type);
  if (name) {
    const named = config.upstreams.find((u) => u.name === name);
    if (!named) throw new CliError(`no upstream named "${name}" (have: ${config.upstreams.map((u) => u.name).join(', ')})`, EXIT_USAGE);
    if (!fits(named)) throw new CliError(`upstream ${name} is of type ${named.type}; relaybox oauth ${provider}${only ? ` --${only}` : ''} is for type ${types.join(' or ')}`, EXIT_USAGE);
    return named;
  }
  const first = config.upstreams.filter(fits)[0];
  if (!first) throw new CliError(`no upstream of type ${types.join(' or ')} in the configuration: add one (see SPEC, "upstreams") and run this again`, EXIT_USAGE);
  return first;
}

/** Authorization code with PKCE through the admin's browser; the redirect lands on loopback or is pasted. */
async function redirectFlow(provider: OAuthProvider, upstream: RefreshTokenUpstreamConfig, endpoints: OAuthEndpoints, port: number, timeoutMs: number): Promise<string> {
  const state = newState();
  const wait = await waitForAuthorizationCode({ port, state, input: process.stdin, tell: (line) => process.stderr.write(`${line}\n`), timeoutMs });
  try {
    // The same consent request as the console's Reconnect (src/oauth/signIn.ts).
    const { url, verifier } = startAuthorization({ upstream, endpoints, provider }, wait.redirectUri, state);
    out(`Authorize relaybox to send mail as ${upstream.user} (upstream "${upstream.name}", ${provider === 'google' ? 'Google' : 'Microsoft 365'}).`);
    out();
    out(`1. Open this address in a browser and sign in as ${upstream.user}:`);
    out();
    out(`   ${url}`);
    out();
    out(`2. The browser is then sent back to ${wait.redirectUri} on this box. If it runs on another computer,`);
    out('   either open a tunnel from that computer before opening the address:');
    out(`     ssh -L ${wait.port}:127.0.0.1:${wait.port} ${userInfo().username}@${hostname()}`);
    out('   or, when the browser says it cannot connect, copy the whole address from its address bar and paste it here.');
    out('   (--port fixes the port, so that the tunnel can be opened first.)');
    if (provider === 'microsoft') out('   (The app registration needs the redirect URI http://127.0.0.1 under "Mobile and desktop applications"; or use --device.)');
    out();
    out('Waiting for the browser, or paste the address here:');
    const { code, via } = await wait.code;
    out(`Got the authorization (${via === 'browser' ? 'from the browser' : 'pasted'}); asking for a refresh token…`);
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

/** RFC 8628 device authorization: the person types a short code at microsoft.com/devicelogin on any device. */
async function deviceFlow(provider: OAuthProvider, upstream: RefreshTokenUpstreamConfig, endpoints: OAuthEndpoints): Promise<string> {
  if (provider !== 'microsoft' || !endpoints.deviceUrl) {
    throw new CliError('Google does not allow Gmail scopes in the device flow: run without --device (a loopback redirect, or paste the address)', EXIT_USAGE);
  }
  const clientId = upstream.client_id ?? '';
  const device = await startDeviceAuthorization({ deviceUrl: endpoints.deviceUrl, clientId, scope: endpoints.scope });
  out(`Authorize relaybox to send mail as ${upstream.user} (upstream "${upstream.name}", Microsoft 365).`);
  out();
  out(device.message ?? `To sign in, open ${device.verificationUri} on any device and enter the code ${device.userCode}`);
  out(`(sign in as ${upstream.user}; the code is valid until ${new Date(device.expiresAt).toLocaleTimeString()})`);
  out();
  out('Waiting for the sign-in…');
  const answer = await pollDeviceToken({
    tokenUrl: endpoints.tokenUrl,
    clientId,
    device,
    onWait: (seconds) => out(`(the server asked to poll more slowly: every ${seconds} s)`),
  });
  if (!answer.refresh_token) throw new CliError('the token endpoint gave no refresh token: the scope must include offline_access');
  return answer.refresh_token;
}

async function store(config: Config, upstream: RefreshTokenUpstreamConfig, endpoints: OAuthEndpoints, refreshToken: string): Promise<void> {
  let path: string;
  try {
    // Stored as the console's Reconnect stores it; the cached access token is dropped.
    path = await storeSignIn({ dataDir: config.data_dir, target: { upstream, endpoints }, refreshToken });
  } catch (err) {
    throw new CliError(`cannot store the refresh token in ${config.data_dir}/oauth: ${reasonOf(err)} (run as the user relaybox runs as, or with sudo)`);
  }
  out();
  out(`Refresh token stored in ${path} (readable by its owner only).`);
  if (upstream.refresh_token !== undefined) out(`It replaces the refresh_token in the configuration of upstream ${upstream.name}; you may remove that one.`);
  out('relaybox serve uses it from its next delivery attempt; no restart needed. Try:');
  out(`  relaybox send-test --to ${upstream.user} --upstream ${upstream.name}`);
}
