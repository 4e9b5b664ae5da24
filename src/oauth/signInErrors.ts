import { AuthorizationError } from './authorize.js';
import { TokenError } from './errors.js';
import type { OAuthProvider } from './providers.js';
import { spokenDuration, type SignInLang } from './signInWords.js';

/** What the words about a failed sign-in may name; never a secret. */
export interface SignInContext {
  provider: OAuthProvider;
  upstream: string;
  user: string;
  clientId?: string;
  lang?: SignInLang;
  /** `exchange`: the code from the redirect was being traded; `device`: the device code was being polled. */
  stage?: 'redirect' | 'exchange' | 'device';
  /** The loopback port asked for with --port. */
  port?: number;
  /** The device code's life, for "the code expired after 15 minutes". */
  deviceLifeMs?: number;
  /** Where the person starts again: the `relaybox oauth` command (default) or the console's Reconnect button. */
  from?: 'command' | 'console';
}

/** "Run the command again" as the console says it: the person there has a button, not a shell. */
const IN_CONSOLE: Array<[RegExp, string]> = [
  [/Run the command again/g, 'Press Reconnect again'],
  [/run the command again/g, 'press Reconnect again'],
  [/もう一度コマンドを実行して/g, 'もう一度「再接続」を押して'],
];

const ENTRA = { en: 'Entra admin center > App registrations > (your app)', ja: 'Entra 管理センター > アプリの登録 > (対象のアプリ)' } as const;
const CLIENTS = { en: 'Google Cloud console > Google Auth Platform > Clients', ja: 'Google Cloud コンソール > Google Auth Platform > クライアント' } as const;
const NOTHING = { en: 'Nothing was stored.', ja: '何も保存していません。' } as const;

/** The sign-in was stopped with Ctrl-C. */
export function stoppedWords(lang: SignInLang = 'en'): string {
  return lang === 'ja' ? '中断しました: 何も保存していません。' : 'Stopped: nothing was stored.';
}

/** A pasted address that is not this run's redirect: the wait goes on. */
export function explainPasteProblem(err: AuthorizationError, lang: SignInLang = 'en'): string {
  if (lang === 'en') return err.message;
  if (err.detail?.reason === 'state') return 'そのアドレスはこの実行のものではありません（古いタブ?）: 上に表示したアドレスをもう一度開いてください';
  if (err.detail?.reason === 'no-code') return 'リダイレクト後のアドレスではありません（code= がありません）: ブラウザーのアドレス欄からアドレス全体をコピーして貼り付けてください';
  return err.message;
}

/**
 * A failed sign-in (`relaybox oauth`, the console's reconnect) in words with the fix. Knows the
 * refusals people meet (Microsoft's AADSTS codes and Google's documented errors), a busy --port,
 * the waits that ran out; anything else keeps the provider's own text. `undefined` for an error
 * that is not about the sign-in (a bug): the caller lets it through.
 */
export function explainSignInError(err: unknown, ctx: SignInContext): string | undefined {
  const words = signInErrorWords(err, ctx);
  if (words === undefined || ctx.from !== 'console') return words;
  return IN_CONSOLE.reduce((text, [pattern, instead]) => text.replace(pattern, instead), words);
}

function signInErrorWords(err: unknown, ctx: SignInContext): string | undefined {
  const lang = ctx.lang ?? 'en';
  const ja = lang === 'ja';
  const errno = (err as NodeJS.ErrnoException | undefined)?.code;
  if (errno === 'EADDRINUSE' && ctx.port !== undefined) {
    return ja
      ? `本機のポート ${ctx.port} は使用中です: --port で別のポートを指定するか、--port を省略して空いているポートを使ってください`
      : `port ${ctx.port} is busy on this machine: choose another with --port, or leave --port out for any free port`;
  }
  if (errno === 'EACCES' && ctx.port !== undefined) {
    return ja ? `ポート ${ctx.port} を開く権限がありません: 1024 以上のポートを --port で指定してください` : `port ${ctx.port} needs more rights than this command has: choose one above 1024 with --port`;
  }
  let code: string;
  let text: string;
  if (err instanceof AuthorizationError) {
    if (err.detail?.reason === 'timeout') {
      const waited = spokenDuration(err.detail.waitedMs ?? 0, lang);
      return ja
        ? `サインインが完了しませんでした（${waited}待ちました）。もう一度コマンドを実行してください。${NOTHING.ja}`
        : `No sign-in arrived: waited ${waited}. Run the command again. ${NOTHING.en}`;
    }
    if (err.detail?.reason !== 'refused') return explainPasteProblem(err, lang);
    code = err.detail.oauthError ?? '';
    text = err.detail.description ?? '';
  } else if (err instanceof TokenError) {
    code = err.oauthError ?? '';
    text = err.message;
  } else return undefined;
  const words = refusalWords(code, text, ctx);
  if (words) return words;
  const provider = ctx.provider === 'google' ? 'Google' : 'Microsoft';
  const raw = (err instanceof AuthorizationError ? `${code}${text ? `: ${text}` : ''}` : text).replace(/[.。]\s*$/, '');
  if (err instanceof TokenError && err.failure !== 'refused') return `${raw}${ja ? '。' : '. '}${NOTHING[lang]}`;
  return ja ? `${provider} がサインインを拒否しました: ${raw}。${NOTHING.ja}` : `${provider} refused the sign-in: ${raw}. ${NOTHING.en}`;
}

function refusalWords(code: string, text: string, ctx: SignInContext): string | undefined {
  const lang = ctx.lang ?? 'en';
  const ja = lang === 'ja';
  const aadsts = /AADSTS(\d+)/.exec(text)?.[1];
  const entra = ENTRA[lang];
  const end = NOTHING[lang];
  if (aadsts === '7000218') {
    // In the browser flow a redirect URI registered under "Web" makes Entra want a secret too.
    const web =
      ctx.stage === 'exchange'
        ? ja
          ? '（ブラウザーでのサインインでは、リダイレクト URI http://127.0.0.1 を「Web」ではなく「モバイル アプリケーションとデスクトップ アプリケーション」に登録してください。）'
          : ' (For the browser sign-in, the redirect URI http://127.0.0.1 must be under "Mobile and desktop applications", not "Web".)'
        : '';
    return ja
      ? `Microsoft がサインインを拒否しました: アプリの登録でパブリック クライアント フローが許可されていません。${entra} > 認証 > 詳細設定 で「パブリック クライアント フローを許可する」を「はい」にしてから、もう一度コマンドを実行してください。${web}${end}`
      : `Microsoft refused the sign-in: the app registration does not allow public client flows. ${entra} > Authentication > Advanced settings: set "Allow public client flows" to Yes, then run the command again.${web} ${end}`;
  }
  if (aadsts === '700025') {
    return ja
      ? `Microsoft がサインインを拒否しました: このアプリはパブリック クライアントなので client_secret を受け付けません。配送先 ${ctx.upstream} から client_secret を削除して、もう一度コマンドを実行してください。${end}`
      : `Microsoft refused the sign-in: the app is a public client, which takes no client_secret. Remove client_secret from upstream ${ctx.upstream}, then run the command again. ${end}`;
  }
  if (aadsts === '50011') {
    return ja
      ? `Microsoft がサインインを拒否しました: リダイレクト URI http://127.0.0.1 がアプリに登録されていません。${entra} > 認証 > プラットフォームを追加 > モバイル アプリケーションとデスクトップ アプリケーション で http://127.0.0.1 を追加するか、--device を使ってください。${end}`
      : `Microsoft refused the sign-in: the redirect URI http://127.0.0.1 is not registered for the app. ${entra} > Authentication > Add a platform > Mobile and desktop applications: add http://127.0.0.1, or use --device. ${end}`;
  }
  if (aadsts === '65001' || code === 'consent_required') {
    return ja
      ? `Microsoft がサインインを拒否しました: アプリのアクセス許可（SMTP.Send、offline_access）に ${ctx.user} の同意がありません。${entra} > API のアクセス許可 で追加して「管理者の同意を与えます」を押すか、サインイン時に ${ctx.user} が承諾してください。${end}`
      : `Microsoft refused the sign-in: nobody has consented to the app's permissions (SMTP.Send, offline_access) for ${ctx.user}. ${entra} > API permissions: add them and click "Grant admin consent", or let ${ctx.user} accept them when signing in. ${end}`;
  }
  if (aadsts === '700016') {
    const id = ctx.clientId ?? '';
    return ja
      ? `Microsoft にアプリが見つかりません: client_id ${id} はこのテナントに登録されていません（AADSTS700016）。配送先 ${ctx.upstream} の client_id と tenant_id を、${entra} > 概要 の「アプリケーション (クライアント) ID」「ディレクトリ (テナント) ID」と比べてください。${end}`
      : `Microsoft does not know the app: client_id ${id} is not registered in this tenant (AADSTS700016). Compare client_id and tenant_id of upstream ${ctx.upstream} with ${entra} > Overview (Application (client) ID, Directory (tenant) ID). ${end}`;
  }
  if (code === 'redirect_uri_mismatch') {
    return ja
      ? `Google がリダイレクト先を拒否しました（redirect_uri_mismatch）: OAuth クライアントの種類が「デスクトップ アプリ」ではありません。${CLIENTS.ja} で種類「デスクトップ アプリ」のクライアントを作成し、その client_id と client_secret を配送先 ${ctx.upstream} に設定してください。${end}`
      : `Google refused the redirect address (redirect_uri_mismatch): the OAuth client is not of type Desktop app. ${CLIENTS.en}: create a client of type "Desktop app" and put its client_id and client_secret into upstream ${ctx.upstream}. ${end}`;
  }
  if (code === 'access_denied' || code === 'authorization_declined') {
    if (ctx.provider === 'google') {
      return ja
        ? `サインインがキャンセルまたは拒否されました（access_denied）。「キャンセル」を押した場合は、もう一度コマンドを実行して「続行」を押してください。アプリの公開ステータスが「テスト」の場合は、${ctx.user} をテストユーザーに追加してください（Google Cloud コンソール > Google Auth Platform > 対象 > テストユーザー）。${end}`
        : `The sign-in was cancelled or refused (access_denied). If Cancel was clicked, run the command again and click Continue. If the app's publishing status is "Testing", add ${ctx.user} as a test user (Google Cloud console > Google Auth Platform > Audience > Test users). ${end}`;
    }
    return ja
      ? `サインインがキャンセルまたは拒否されました（${code}）: 「キャンセル」が押されたか、アクセス許可が承諾されませんでした。もう一度コマンドを実行し、${ctx.user} として承諾してください。${end}`
      : `The sign-in was cancelled or refused (${code}): Cancel was clicked, or the permissions were declined. Run the command again and accept them as ${ctx.user}. ${end}`;
  }
  if (code === 'invalid_client') {
    if (ctx.provider === 'google') {
      return ja
        ? `Google が OAuth クライアントを拒否しました（invalid_client）: 配送先 ${ctx.upstream} の client_secret が違うか、クライアントの種類が「デスクトップ アプリ」ではありません。${CLIENTS.ja} で種類とシークレットを確認してください。${end}`
        : `Google refused the OAuth client (invalid_client): the client_secret of upstream ${ctx.upstream} is wrong, or the client is not of type Desktop app. ${CLIENTS.en}: check the client's type and secret. ${end}`;
    }
    return ja
      ? `Microsoft がアプリの資格情報を拒否しました（invalid_client）: 配送先 ${ctx.upstream} の client_secret が違うか期限切れです（${entra} > 証明書とシークレット）。パブリック クライアントに client_secret は不要です: 削除して「パブリック クライアント フローを許可する」を「はい」にしてください。${end}`
      : `Microsoft refused the app's credential (invalid_client): the client_secret of upstream ${ctx.upstream} is wrong or expired (${entra} > Certificates & secrets). A public client needs none: remove client_secret and set "Allow public client flows" to Yes. ${end}`;
  }
  if (code === 'expired_token') {
    const life = spokenDuration(ctx.deviceLifeMs ?? 900_000, lang);
    return ja ? `コードの有効期限（${life}）が切れました: もう一度コマンドを実行してください。${end}` : `the code expired after ${life}: run the command again. ${end}`;
  }
  if (code === 'invalid_grant' && ctx.stage !== 'device') {
    return ja
      ? `サインインのコードが期限切れか、すでに使用済みです（コードの有効期間は数分で、使えるのは 1 回だけです）。もう一度コマンドを実行してください。${end}`
      : `The sign-in code expired or was already used (codes last a few minutes and work once). Run the command again. ${end}`;
  }
  return undefined;
}
