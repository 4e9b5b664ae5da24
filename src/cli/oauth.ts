import type { Command } from 'commander';
import { parseDuration } from '../config/duration.js';
import type { Config } from '../config/schema.js';
import type { RefreshTokenUpstreamConfig } from '../config/upstreams.js';
import { assertClockSane } from '../oauth/clock.js';
import { reasonOf } from '../oauth/errors.js';
import { endpointsFor, type OAuthEndpoints, type OAuthProvider } from '../oauth/providers.js';
import { storeSignIn } from '../oauth/signIn.js';
import { explainSignInError, stoppedWords, type SignInContext } from '../oauth/signInErrors.js';
import { CliError, EXIT_USAGE, type ConfigFlag } from './common.js';
import { loadConfig } from './configFile.js';
import { deviceFlow, redirectFlow, type FlowOptions } from './oauthFlows.js';
import { cliLang, oauthWords, type OAuthWords } from './oauthWords.js';

interface OAuthFlags extends ConfigFlag {
  upstream?: string;
  port: string;
  device?: boolean;
  gmailApi?: boolean;
  timeout: string;
}

/** The upstream types each provider's sign-in is for; the first is the default. */
const TYPES_OF: Record<OAuthProvider, RefreshTokenUpstreamConfig['type'][]> = { google: ['gmail-oauth2', 'gmail-api'], microsoft: ['microsoft365-oauth2'] };

/** What a shell reports for a command ended by Ctrl-C (128 + SIGINT). */
const EXIT_INTERRUPTED = 130;

const out = (text = '') => process.stdout.write(`${text}\n`);

export function registerOAuthCommands(program: Command): void {
  program
    .command('oauth')
    .description('walk a person through getting a refresh token for a gmail-oauth2, gmail-api or microsoft365-oauth2 upstream, and store it')
    .argument('<provider>', 'google or microsoft')
    .option('--upstream <name>', 'the configured upstream to authorize (default: the first of that type)')
    .option('--port <port>', 'loopback port for the redirect, so an ssh -L tunnel can be opened first (default: any free port)', '0')
    .option('--device', 'Microsoft only: sign in with a code on any device instead of a redirect')
    .option('--gmail-api', 'Google only: for a gmail-api upstream (asks for the gmail.send scope, not full mail access)')
    .option('--timeout <duration>', 'how long to wait for the sign-in, in every flow (with --device: at most the code\'s life)', '10m')
    .option('--config <file>', 'configuration file')
    .action(async (provider: string, flags: OAuthFlags) => {
      if (provider !== 'google' && provider !== 'microsoft') throw new CliError(`expected "google" or "microsoft", got "${provider}"`, EXIT_USAGE);
      const port = Number(flags.port);
      if (!Number.isInteger(port) || port < 0 || port > 65535) throw new CliError(`--port: expected a port number, got "${flags.port}"`, EXIT_USAGE);
      const timeoutMs = parseDuration(flags.timeout);
      if (timeoutMs === undefined || timeoutMs <= 0) throw new CliError(`--timeout: expected a duration like 10m, got "${flags.timeout}"`, EXIT_USAGE);
      const config = loadConfig(flags);
      if (flags.gmailApi && provider !== 'google') throw new CliError('--gmail-api is for relaybox oauth google', EXIT_USAGE);
      const lang = cliLang();
      const words = oauthWords(lang);
      const upstream = pickUpstream({ config, provider, name: flags.upstream, words, ...(flags.gmailApi ? { only: 'gmail-api' as const } : {}) });
      const endpoints = endpointsFor(upstream);
      if (endpoints.grant !== 'refresh_token') throw new CliError(words.noSignInNeeded(upstream.name, endpoints.grant), EXIT_USAGE);
      const ctx: SignInContext = { provider, upstream: upstream.name, user: upstream.user, lang, stage: 'redirect', ...(upstream.client_id ? { clientId: upstream.client_id } : {}), ...(port ? { port } : {}) };
      // Until the token is stored, Ctrl-C leaves nothing behind: say so, the way a shell expects.
      const interrupted = () => {
        process.stderr.write(`\nrelaybox: ${stoppedWords(lang)}\n`);
        process.exit(EXIT_INTERRUPTED);
      };
      process.on('SIGINT', interrupted);
      let refreshToken: string;
      try {
        assertClockSane(Date.now());
        const flow: FlowOptions = {
          provider: ctx.provider,
          upstream,
          endpoints,
          port,
          timeoutMs,
          lang,
          words,
          onStage: (stage, extra) => void Object.assign(ctx, { stage }, extra),
        };
        refreshToken = flags.device ? await deviceFlow(flow) : await redirectFlow(flow);
      } catch (err) {
        const words = explainSignInError(err, ctx);
        if (words !== undefined) throw new CliError(words);
        throw err;
      } finally {
        process.off('SIGINT', interrupted);
      }
      await store(config, upstream, endpoints, refreshToken, words);
    });
}

function pickUpstream(options: { config: Config; provider: OAuthProvider; name: string | undefined; only?: RefreshTokenUpstreamConfig['type']; words: OAuthWords }): RefreshTokenUpstreamConfig {
  const { config, provider, name, only, words } = options;
  const types: string[] = only ? [only] : TYPES_OF[provider];
  const fits = (u: Config['upstreams'][number]): u is RefreshTokenUpstreamConfig => types.includes(u.type);
  if (name) {
    const named = config.upstreams.find((u) => u.name === name);
    if (!named) throw new CliError(words.noSuchUpstream(name, config.upstreams.map((u) => u.name).join(', ')), EXIT_USAGE);
    if (!fits(named)) throw new CliError(words.wrongType(name, named.type, `relaybox oauth ${provider}${only ? ` --${only}` : ''}`, types.join(words.or)), EXIT_USAGE);
    return named;
  }
  const first = config.upstreams.filter(fits)[0];
  if (!first) throw new CliError(words.noneOfType(types.join(words.or)), EXIT_USAGE);
  return first;
}

async function store(config: Config, upstream: RefreshTokenUpstreamConfig, endpoints: OAuthEndpoints, refreshToken: string, words: OAuthWords): Promise<void> {
  let path: string;
  try {
    // Stored as the console's Reconnect stores it; the cached access token is dropped.
    path = await storeSignIn({ dataDir: config.data_dir, target: { upstream, endpoints }, refreshToken });
  } catch (err) {
    throw new CliError(words.cannotStore(config.data_dir, reasonOf(err)));
  }
  out();
  out(words.stored(path));
  if (upstream.refresh_token !== undefined) out(words.replaces(upstream.name));
  out(words.serveUses);
  out(`  relaybox send-test --to ${upstream.user} --upstream ${upstream.name}`);
}
