import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import type { MessageEvent } from '../src/events.js';
import { getMessage, listMessages } from '../src/spool/log.js';
import { FakeOauth } from './helpers/fakeOauth.js';
import { Mosquitto, Watcher } from './helpers/mosquitto.js';
import { relayConfig, runCli, sendMail, startRelay, waitFor } from './helpers/relay.js';
import { TestUpstream } from './helpers/testUpstream.js';
import { tempDir } from './helpers/tmp.js';

const open: { close(): Promise<void> }[] = [];
afterEach(async () => {
  await Promise.all(open.splice(0).map((thing) => thing.close()));
});

const P = 'relaybox/relaybox_test_example';
const SMTP_AUTH_OFF = '5.7.139 Authentication unsuccessful, SmtpClientAuthentication is disabled for the Tenant. Visit https://aka.ms/smtp_auth_disabled for more information.';
const HINT =
  'Microsoft 365 has SMTP AUTH turned off for scanner@contoso.com: run `Set-CASMailbox -Identity scanner@contoso.com -SmtpClientAuthenticationDisabled $false` ' +
  '(and check `Get-TransportConfig` for the tenant), or use the microsoft365-graph upstream';

describe('replies that name the fix, through relaybox', () => {
  it("shows Microsoft 365's SMTP AUTH fix next to its reply in the API, queue show, queue list --json, MQTT and status", async () => {
    const fake = await FakeOauth.start({ clients: { 'app-id': 'app-secret' } });
    const server = await TestUpstream.start({ tls: true, requireTls: true, xoauth2: () => true, refuseLogins: { code: 535, text: SMTP_AUTH_OFF } });
    open.push(fake, server);
    const broker = await Mosquitto.start();
    const dir = tempDir();
    const ca = join(dir, 'upstream-ca.pem');
    writeFileSync(ca, server.cert!);
    const m365 = {
      name: 'm365',
      type: 'microsoft365-oauth2',
      user: 'scanner@contoso.com',
      tenant_id: '11111111-2222-3333-4444-555555555555',
      client_id: 'app-id',
      client_secret: 'app-secret',
      host: '127.0.0.1',
      port: server.port,
      tls: { ca },
      token_url: fake.tokenUrl,
    };
    const raw = relayConfig(dir, { upstreams: [m365], mqtt: { url: broker.url } });
    const { app, port } = await startRelay(raw);
    const watcher = await Watcher.connect(broker.url, [`${P}/#`]);
    await watcher.waitFor((w) => w.last(`${P}/availability`)?.text === 'online', 10_000, 'online');

    await sendMail(port, { to: ['office@contoso.com'] });
    const deferred = await waitFor(() => listMessages(app.spool.db).find((m) => m.state === 'deferred'), 15_000, 'a deferral');
    expect(deferred.lastReply).toMatch(/^535 5\.7\.139 Authentication unsuccessful, SmtpClientAuthentication is disabled/);

    const api = (path: string) => fetch(`http://127.0.0.1:${app.httpAddress!.port}${path}`).then((r) => r.json() as Promise<any>);
    const detail = await api(`/api/messages/${deferred.id}`);
    expect(detail.last_reply).toBe(deferred.lastReply); // the raw reply stays
    expect(detail.hint).toBe(HINT);
    expect(detail.history.find((h: any) => h.event === 'deferred').hint).toBe(HINT);
    expect((await api('/api/messages')).messages[0].hint).toBe(HINT);
    const upstreamStatus = (await api('/api/status')).upstreams.m365;
    expect(upstreamStatus).toMatchObject({ last_error: expect.stringMatching(/^535 5\.7\.139/), hint: HINT });

    const event = await watcher.waitFor(
      (w) => w.on(`${P}/events`).map((s) => JSON.parse(s.text)).find((e) => e.event === 'deferred'),
      10_000,
      'the deferral on MQTT',
    );
    expect(event).toMatchObject({ id: deferred.id, upstream: 'm365', reply: deferred.lastReply, hint: HINT });
    const status = await watcher.waitFor((w) => {
      const last = w.last(`${P}/status`);
      return last && JSON.parse(last.text).upstreams.m365.hint;
    }, 10_000, 'the hint in the status');
    expect(status).toBe(HINT);

    const file = join(dir, 'relaybox.yaml');
    writeFileSync(file, stringify(raw));
    const [show, list] = await Promise.all([runCli(['queue', 'show', String(deferred.id), '--config', file]), runCli(['queue', 'list', '--json', '--config', file])]);
    expect(show.stdout).toContain(`reply:     ${deferred.lastReply} (m365)\nhint:      ${HINT}\n`);
    expect(JSON.parse(list.stdout)[0]).toMatchObject({ id: deferred.id, last_reply: deferred.lastReply, hint: HINT });
  }, 90_000); // a broker, an OAuth endpoint and two CLI processes on a busy 2-core box

  it("keeps the primary's 451 when the fail-over upstream only refuses the connection", async () => {
    const primary = await TestUpstream.start();
    const backup = await TestUpstream.start();
    open.push(primary, backup);
    primary.failData(451, '4.3.0 Mail server temporarily rejected message');
    await backup.stop();
    const smtp = (name: string, port: number) => ({ name, type: 'smtp', host: '127.0.0.1', port, security: 'none' });
    const { app, port } = await startRelay(relayConfig(tempDir(), { upstreams: [smtp('primary', primary.port), smtp('backup', backup.port)] }));
    const deferrals: MessageEvent[] = [];
    app.events.on('message', (e) => void (e.event === 'deferred' && deferrals.push(e)));
    await sendMail(port, { to: ['a@example.com'] });
    const detail = await waitFor(() => {
      const m = listMessages(app.spool.db)[0];
      return m?.state === 'deferred' && getMessage(app.spool.db, m.id);
    }, 15_000, 'a deferral');
    expect(detail.lastReply).toBe('451 4.3.0 Mail server temporarily rejected message');
    expect(detail.upstream).toBe('primary');
    // The state event (MQTT `…/events`) says the same.
    // It comes over from the delivery thread: it may trail the spool row a little.
    expect(await waitFor(() => deferrals[0], 10_000, 'the deferral event')).toMatchObject({ upstream: 'primary', reply: '451 4.3.0 Mail server temporarily rejected message' });
    // The history still tells both attempts as they happened.
    expect(detail.history.filter((h) => h.event === 'deferred').map((h) => [h.upstream, h.reply])).toEqual([
      ['primary', '451 4.3.0 Mail server temporarily rejected message'],
      ['backup', expect.stringMatching(/^connection refused by 127\.0\.0\.1:\d+ — nothing listens there \(ECONNREFUSED\)$/)],
    ]);
  });
});
