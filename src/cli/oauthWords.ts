import { hostname, userInfo } from 'node:os';
import type { SignInLang } from '../oauth/signInWords.js';
import { lanAddress } from '../status/consoleUrl.js';

/** POSIX order: LC_ALL, then LC_MESSAGES, then LANG; Japanese when the one that is set starts with `ja`. */
export function cliLang(env: NodeJS.ProcessEnv = process.env): SignInLang {
  const locale = env.LC_ALL || env.LC_MESSAGES || env.LANG || '';
  return locale.toLowerCase().startsWith('ja') ? 'ja' : 'en';
}

/**
 * The `ssh -L` line a person types on their own computer: the account they logged in with
 * (`sudo` runs this command as root or as the relaybox system user, which has no login) at the
 * box's LAN address (a hostname like raspberrypi rarely resolves from an office PC).
 */
export function tunnelCommand(port: number, env: NodeJS.ProcessEnv = process.env): string {
  const self = safeUsername();
  const candidates = [env.SUDO_USER, self, env.LOGNAME, env.USER].filter((n): n is string => !!n && n !== 'relaybox');
  const user = candidates[0] ?? 'you';
  return `ssh -L ${port}:127.0.0.1:${port} ${user}@${lanAddress() ?? hostname()}`;
}

function safeUsername(): string | undefined {
  try {
    return userInfo().username;
  } catch {
    return undefined; // a uid without a passwd entry (a container)
  }
}

export interface OAuthWords {
  intro(user: string, upstream: string, provider: string): string;
  openAddress(user: string): string;
  afterAllow(redirectUri: string): string;
  tunnelIntro: string;
  portNote(port: number): string;
  microsoftRedirect: string;
  waiting(duration: string): string;
  got(via: 'browser' | 'terminal'): string;
  browser: { got: string; already: string };
  device(uri: string, code: string): string;
  deviceSignInAs(user: string, life: string): string;
  deviceWaiting(duration: string): string;
  slowDown(seconds: number): string;
  noRefreshToken: string;
  stored(path: string): string;
  replaces(upstream: string): string;
  serveUses: string;
  cannotStore(dir: string, reason: string): string;
  noSuchUpstream(name: string, have: string): string;
  wrongType(name: string, type: string, command: string, types: string): string;
  noneOfType(types: string): string;
  noSignInNeeded(name: string, grant: 'service_account' | 'client_credentials'): string;
  googleDevice: string;
  /** Joins alternatives: `gmail-oauth2 or gmail-api`. */
  or: string;
}

const EN: OAuthWords = {
  intro: (user, upstream, provider) => `Authorize relaybox to send mail as ${user} (upstream "${upstream}", ${provider}).`,
  openAddress: (user) => `1. Open this address in a browser (on any computer or phone) and sign in as ${user}:`,
  afterAllow: (redirectUri) =>
    `2. After you allow access, the browser is sent to ${redirectUri}. On another computer it then says it cannot connect: that is expected.\n` +
    '   Copy the whole address from its address bar, paste it here and press Enter.',
  tunnelIntro: '   Or, instead of pasting: before step 1, open a tunnel from that computer (a second SSH session):',
  portNote: (port) => `   (--port ${port} keeps the same port on every run, so the tunnel can be opened first.)`,
  microsoftRedirect: '   (The app registration needs the redirect URI http://127.0.0.1 under "Mobile and desktop applications"; or use --device.)',
  waiting: (duration) => `Waiting up to ${duration} for the browser, or paste the address here:`,
  got: (via) => `Got the authorization (${via === 'browser' ? 'from the browser' : 'pasted'}); asking for a refresh token…`,
  browser: {
    got: 'relaybox got the authorization. You can close this window and go back to the terminal.',
    already: 'relaybox already has an answer; you can close this window.',
  },
  device: (uri, code) => `To sign in, open ${uri} on any device (a phone will do) and enter the code ${code}`,
  deviceSignInAs: (user, life) => `Sign in as ${user}. The code is valid for ${life}.`,
  deviceWaiting: (duration) => `Waiting up to ${duration} for the sign-in…`,
  slowDown: (seconds) => `(the server asked to poll more slowly: every ${seconds} s)`,
  noRefreshToken: 'the token endpoint gave no refresh token: the scope must include offline_access. Nothing was stored.',
  stored: (path) => `Refresh token stored in ${path} (readable by its owner only).`,
  replaces: (upstream) => `It replaces the refresh_token in the configuration of upstream ${upstream}; you may remove that one.`,
  serveUses: 'relaybox serve uses it from its next delivery attempt; no restart needed. Try:',
  cannotStore: (dir, reason) => `cannot store the refresh token in ${dir}/oauth: ${reason} (run as the user relaybox runs as, or with sudo)`,
  noSuchUpstream: (name, have) => `no upstream named "${name}" (have: ${have})`,
  wrongType: (name, type, command, types) => `upstream ${name} is of type ${type}; ${command} is for type ${types}`,
  noneOfType: (types) => `no upstream of type ${types} in the configuration: add one (see SPEC, "upstreams") and run this again`,
  noSignInNeeded: (name, grant) =>
    `upstream ${name} uses ${grant === 'service_account' ? 'a service account' : 'app-only access (client credentials)'}: it needs no refresh token and no sign-in`,
  or: ' or ',
  googleDevice: 'Google does not allow Gmail scopes in the device flow: run without --device (a loopback redirect, or paste the address)',
};

const JA: OAuthWords = {
  intro: (user, upstream, provider) => `relaybox が ${user} としてメールを送信できるように許可します（配送先「${upstream}」、${provider}）。`,
  openAddress: (user) => `1. 次のアドレスをブラウザー（どのパソコンやスマートフォンでも可）で開き、${user} でサインインしてください:`,
  afterAllow: (redirectUri) =>
    `2. アクセスを許可すると、ブラウザーは ${redirectUri} に移動します。別のパソコンでは「接続できません」と表示されますが、それで正常です。\n` +
    '   アドレス欄のアドレスを全部コピーしてここに貼り付け、Enter を押してください。',
  tunnelIntro: '   貼り付けの代わりに、手順 1 の前にそのパソコンからトンネルを開く方法もあります（SSH セッションがもう 1 つ必要です）:',
  portNote: (port) => `   （--port ${port} を付けるとポート番号が毎回同じになり、先にトンネルを開いておけます。）`,
  microsoftRedirect: '   （アプリの登録に、リダイレクト URI http://127.0.0.1 を「モバイル アプリケーションとデスクトップ アプリケーション」として追加しておく必要があります。または --device を使ってください。）',
  waiting: (duration) => `ブラウザーからの応答を最大 ${duration} 待っています。ここにアドレスを貼り付けることもできます:`,
  got: (via) => `認可を受け取りました（${via === 'browser' ? 'ブラウザーから' : '貼り付け'}）。リフレッシュ トークンを取得しています…`,
  browser: {
    got: 'relaybox が認可を受け取りました。このウィンドウを閉じて、ターミナルに戻ってください。',
    already: 'relaybox はすでに応答を受け取っています。このウィンドウは閉じてかまいません。',
  },
  device: (uri, code) => `サインインするには、任意の端末（スマートフォンでも可）で ${uri} を開き、コード ${code} を入力してください`,
  deviceSignInAs: (user, life) => `${user} でサインインしてください。コードの有効期間は ${life} です。`,
  deviceWaiting: (duration) => `サインインを最大 ${duration} 待っています…`,
  slowDown: (seconds) => `（サーバーの要求により、確認の間隔を ${seconds} 秒にします）`,
  noRefreshToken: 'トークン エンドポイントがリフレッシュ トークンを返しませんでした: スコープに offline_access が必要です。何も保存していません。',
  stored: (path) => `リフレッシュ トークンを ${path} に保存しました（所有者だけが読めます）。`,
  replaces: (upstream) => `設定ファイルにある配送先 ${upstream} の refresh_token の代わりにこれを使います。設定の方は削除してかまいません。`,
  serveUses: 'relaybox serve は次の配送からこれを使います。再起動は不要です。試すには:',
  cannotStore: (dir, reason) => `リフレッシュ トークンを ${dir}/oauth に保存できません: ${reason}（relaybox を実行するユーザーで、または sudo で実行してください）`,
  noSuchUpstream: (name, have) => `「${name}」という配送先はありません（設定にあるのは: ${have}）`,
  wrongType: (name, type, command, types) => `配送先 ${name} の種類は ${type} です。${command} は種類 ${types} の配送先用です`,
  noneOfType: (types) => `設定に種類 ${types} の配送先がありません: 追加してから（SPEC の「upstreams」を参照）もう一度実行してください`,
  noSignInNeeded: (name, grant) =>
    `配送先 ${name} は${grant === 'service_account' ? 'サービス アカウント' : 'アプリのみのアクセス（クライアント資格情報）'}を使うため、リフレッシュ トークンもサインインも不要です`,
  or: ' または ',
  googleDevice: 'Google はデバイス コード フローで Gmail のスコープを許可していません: --device を付けずに実行してください（ブラウザーからのリダイレクト、またはアドレスの貼り付け）',
};

export function oauthWords(lang: SignInLang): OAuthWords {
  return lang === 'ja' ? JA : EN;
}
