import { existsSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { refreshTokenPath } from '../src/oauth/files.js';
import { GOOGLE_ERRORS, MICROSOFT_ERRORS } from './helpers/fakeOauth.js';
import { AUTH_URL_LINE, GOOGLE_CLIENT, cleanup, gmail, m365, runCleanup, setup, start } from './helpers/oauthCli.js';

afterEach(runCleanup);

const google = { clients: { [GOOGLE_CLIENT]: 'desktop-secret' } };
const microsoft = { clients: { 'public-app': null } };

/** Runs the command to its end; what a person sees is stdout and stderr together. */
async function finished(args: string[], env: Record<string, string> = {}) {
  const cli = start(args, env);
  const code = await cli.exited;
  return { code, out: cli.stdout(), err: cli.stderr() };
}

/** The browser's part of a redirect flow: it follows the consent page back to the address it was given. */
async function consent(url: string): Promise<string> {
  const answer = await fetch(url, { redirect: 'manual' });
  return answer.headers.get('location')!;
}

describe('relaybox oauth: the errors a person meets, in words with the fix', () => {
  it('microsoft --device with public client flows off (AADSTS7000218): names the switch; nothing stored', async () => {
    const { dir, file } = await setup([m365], { ...microsoft, tokenErrors: { device_code: MICROSOFT_ERRORS.publicClientOff } });
    const { code, err } = await finished(['oauth', 'microsoft', '--device', '--config', file]);
    expect(code).toBe(1);
    expect(err).toBe(
      'relaybox: Microsoft refused the sign-in: the app registration does not allow public client flows. Entra admin center > App registrations > (your app) > Authentication > Advanced settings: set "Allow public client flows" to Yes, then run the command again. Nothing was stored.\n',
    );
    expect(existsSync(refreshTokenPath(dir, 'm365'))).toBe(false);
  });

  it('microsoft --device: an app not in the tenant (AADSTS700016) and consent missing (AADSTS65001)', async () => {
    const notFound = await setup([m365], { ...microsoft, deviceCodeError: MICROSOFT_ERRORS.appNotFound });
    const a = await finished(['oauth', 'microsoft', '--device', '--config', notFound.file]);
    expect(a.err).toContain('Microsoft does not know the app: client_id public-app is not registered in this tenant (AADSTS700016). Compare client_id and tenant_id of upstream m365');
    const consentless = await setup([m365], { ...microsoft, tokenErrors: { device_code: MICROSOFT_ERRORS.consentMissing } });
    const b = await finished(['oauth', 'microsoft', '--device', '--config', consentless.file]);
    expect(b.err).toContain("nobody has consented to the app's permissions (SMTP.Send, offline_access) for scanner@contoso.com");
    expect(b.err).toContain('"Grant admin consent"');
  });

  it('google: a code that expired or was used already (invalid_grant at the exchange), pasted', async () => {
    const { dir, file } = await setup([gmail], { ...google, tokenErrors: { authorization_code: GOOGLE_ERRORS.codeUsed } });
    const cli = start(['oauth', 'google', '--config', file]);
    const url = (await cli.line(AUTH_URL_LINE))[1]!;
    cli.child.stdin.write(`${await consent(url)}\n`);
    expect(await cli.exited).toBe(1);
    expect(cli.stderr()).toContain('The sign-in code expired or was already used (codes last a few minutes and work once). Run the command again. Nothing was stored.');
    expect(existsSync(refreshTokenPath(dir, 'gmail'))).toBe(false);
  });

  it('google: a wrong client secret or client type, and a redirect_uri_mismatch, name the Desktop app client', async () => {
    for (const [reply, words] of [
      [GOOGLE_ERRORS.wrongSecret, 'Google refused the OAuth client (invalid_client): the client_secret of upstream gmail is wrong, or the client is not of type Desktop app.'],
      [GOOGLE_ERRORS.redirectMismatch, 'Google refused the redirect address (redirect_uri_mismatch): the OAuth client is not of type Desktop app.'],
    ] as const) {
      const { file } = await setup([gmail], { ...google, tokenErrors: { authorization_code: reply } });
      const cli = start(['oauth', 'google', '--config', file]);
      await fetch((await cli.line(AUTH_URL_LINE))[1]!); // the browser comes back by itself
      expect(await cli.exited).toBe(1);
      expect(cli.stderr()).toContain(words);
      expect(cli.stderr()).toContain('Google Auth Platform > Clients');
    }
  });

  it('google and microsoft: Cancel on the consent page (access_denied) ends the wait with the way forward', async () => {
    const g = await setup([gmail], { ...google, authorizeError: { error: 'access_denied' } });
    const cli = start(['oauth', 'google', '--config', g.file]);
    await fetch((await cli.line(AUTH_URL_LINE))[1]!);
    expect(await cli.exited).toBe(1);
    expect(cli.stderr()).toContain('The sign-in was cancelled or refused (access_denied). If Cancel was clicked, run the command again and click Continue.');
    expect(cli.stderr()).toContain('add scanner@example.com as a test user (Google Cloud console > Google Auth Platform > Audience > Test users)');

    const m = await setup([m365], { ...microsoft, authorizeError: { error: 'access_denied', error_description: 'AADSTS65004: User declined to consent to access the app.' } });
    const ms = start(['oauth', 'microsoft', '--config', m.file]);
    ms.child.stdin.write(`${await consent((await ms.line(AUTH_URL_LINE))[1]!)}\n`);
    expect(await ms.exited).toBe(1);
    expect(ms.stderr()).toContain('The sign-in was cancelled or refused (access_denied): Cancel was clicked, or the permissions were declined. Run the command again and accept them as scanner@contoso.com. Nothing was stored.');
  });

  it('a busy --port is named as such, never blamed on smtp.listen', async () => {
    const { file } = await setup([gmail], google);
    const squatter: Server = createServer();
    await new Promise<void>((resolve) => squatter.listen(0, '127.0.0.1', () => resolve()));
    cleanup.push(() => new Promise<void>((resolve) => squatter.close(() => resolve())));
    const port = (squatter.address() as AddressInfo).port;
    const { code, err } = await finished(['oauth', 'google', '--port', String(port), '--config', file]);
    expect(code).toBe(1);
    expect(err).toBe(`relaybox: port ${port} is busy on this machine: choose another with --port, or leave --port out for any free port\n`);
  });

  it('--timeout holds for --device too (the shorter of it and the code), said as a duration', async () => {
    const { dir, file } = await setup([m365], { ...microsoft, devicePendingForever: true });
    const { code, out, err } = await finished(['oauth', 'microsoft', '--device', '--timeout', '3s', '--config', file]);
    expect(out).toContain('The code is valid for 10 minutes.');
    expect(out).toContain('Waiting up to 3 seconds for the sign-in');
    expect(code).toBe(1);
    expect(err).toBe('relaybox: No sign-in arrived: waited 3 seconds. Run the command again. Nothing was stored.\n');
    expect(existsSync(refreshTokenPath(dir, 'm365'))).toBe(false);
  });

  it('the device code running out is said as a duration, with what to do', async () => {
    const { file } = await setup([m365], { ...microsoft, devicePendingForever: true, deviceExpiresIn: 2 });
    const { code, out, err } = await finished(['oauth', 'microsoft', '--device', '--config', file]);
    expect(out).toContain('The code is valid for 2 seconds.');
    expect(code).toBe(1);
    expect(err).toBe('relaybox: the code expired after 2 seconds: run the command again. Nothing was stored.\n');
  });

  it('--timeout on the redirect flow: "waited 2 seconds", never "0 minutes"', async () => {
    const { file } = await setup([gmail], google);
    const { code, out, err } = await finished(['oauth', 'google', '--timeout', '2s', '--config', file]);
    expect(out).toContain('Waiting up to 2 seconds for the browser');
    expect(code).toBe(1);
    expect(err).toBe('relaybox: No sign-in arrived: waited 2 seconds. Run the command again. Nothing was stored.\n');
  });

  it('Ctrl-C during the wait: "Stopped: nothing was stored." and exit 130', async () => {
    const { dir, file } = await setup([gmail], google);
    const cli = start(['oauth', 'google', '--config', file]);
    await cli.line(/Waiting up to/);
    cli.child.kill('SIGINT');
    expect(await cli.exited).toBe(130);
    expect(cli.stderr()).toContain('relaybox: Stopped: nothing was stored.');
    expect(existsSync(refreshTokenPath(dir, 'gmail'))).toBe(false);

    const device = await setup([m365], { ...microsoft, devicePendingForever: true });
    const waiting = start(['oauth', 'microsoft', '--device', '--config', device.file]);
    await waiting.line(/Waiting up to/);
    waiting.child.kill('SIGINT');
    expect(await waiting.exited).toBe(130);
    expect(waiting.stderr()).toContain('Stopped: nothing was stored.');
  });

  it('the tunnel hint names the person who ran sudo, after the paste, with --port', async () => {
    const { file } = await setup([gmail], google);
    const cli = start(['oauth', 'google', '--config', file], { SUDO_USER: 'pi' });
    const url = new URL((await cli.line(AUTH_URL_LINE))[1]!);
    await cli.line(/Waiting up to/);
    const port = new URL(url.searchParams.get('redirect_uri')!).port;
    const text = cli.stdout();
    expect(text).toMatch(new RegExp(`ssh -L ${port}:127\\.0\\.0\\.1:${port} pi@\\S+\\n`));
    expect(text).not.toContain(' relaybox@');
    expect(text.indexOf('paste it here and press Enter')).toBeLessThan(text.indexOf('ssh -L'));
    expect(text).toContain('(--port 8400 keeps the same port on every run, so the tunnel can be opened first.)');
  });

  it('speaks Japanese under LANG=ja_JP.UTF-8, in the console\'s words', async () => {
    const { file } = await setup([gmail], google);
    const cli = start(['oauth', 'google', '--timeout', '2s', '--config', file], { LANG: 'ja_JP.UTF-8' });
    expect(await cli.exited).toBe(1);
    expect(cli.stdout()).toContain('relaybox が scanner@example.com としてメールを送信できるように許可します（配送先「gmail」、Google）。');
    expect(cli.stdout()).toContain('アドレス欄のアドレスを全部コピーしてここに貼り付け、Enter を押してください。');
    expect(cli.stdout()).toContain('ブラウザーからの応答を最大 2秒 待っています。');
    expect(cli.stderr()).toBe('relaybox: サインインが完了しませんでした（2秒待ちました）。もう一度コマンドを実行してください。何も保存していません。\n');

    const ms = await setup([m365], { ...microsoft, tokenErrors: { device_code: MICROSOFT_ERRORS.publicClientOff } });
    const { err, out } = await finished(['oauth', 'microsoft', '--device', '--config', ms.file], { LC_ALL: 'ja_JP.UTF-8' });
    expect(out).toContain('scanner@contoso.com でサインインしてください。コードの有効期間は 10分 です。');
    expect(err).toContain('「パブリック クライアント フローを許可する」を「はい」にしてから、もう一度コマンドを実行してください。何も保存していません。');
    const noGoogle = await finished(['oauth', 'google', '--device', '--config', ms.file], { LANG: 'ja_JP.UTF-8' });
    expect(noGoogle.err).toBe('relaybox: 設定に種類 gmail-oauth2 または gmail-api の配送先がありません: 追加してから（SPEC の「upstreams」を参照）もう一度実行してください\n');
    expect(noGoogle.code).toBe(2);
  });
});
