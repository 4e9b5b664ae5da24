import { describe, expect, it } from 'vitest';
import { getMessage, listMessages } from '../src/spool/log.js';
import { relayConfig, sendMail, startRelay, waitFor } from './helpers/relay.js';
import { TestUpstream } from './helpers/testUpstream.js';
import { tempDir } from './helpers/tmp.js';

const smtp = (name: string, port: number) => ({ name, type: 'smtp', host: '127.0.0.1', port, security: 'none' });

describe('quota and problem upstreams', () => {
  it("holds an upstream at Google's daily limit: mail fails over and the upstream is left alone", async () => {
    const limited = await TestUpstream.start();
    limited.failData(550, '5.4.5 Daily SMTP relay limit exceeded for user, for more information see …');
    const backup = await TestUpstream.start();
    const { app, port } = await startRelay(relayConfig(tempDir(), { upstreams: [smtp('google', limited.port), smtp('backup', backup.port)] }));
    const states: string[] = [];
    app.events.on('upstream', (e) => e.upstream === 'google' && states.push(e.problem ?? 'ok'));

    await sendMail(port, { to: ['a@example.com'], subject: 'first' });
    await backup.waitForMessages(1);
    const connectionsAfterFirst = limited.connections;
    await sendMail(port, { to: ['b@example.com'], subject: 'second' });
    await backup.waitForMessages(2);
    await waitFor(() => listMessages(app.spool.db).every((m) => m.state === 'delivered'));

    expect(states).toEqual(['quota']);
    expect(limited.connections).toBe(connectionsAfterFirst); // not asked again while held
    expect(app.status.snapshot().upstreams.google).toMatchObject({ state: 'quota', last_error: expect.stringMatching(/^550 5\.4\.5 Daily SMTP relay limit/) });
  });

  it("holds Microsoft 365 at its daily recipient limit instead of failing the mail", async () => {
    const m365 = await TestUpstream.start();
    m365.failData(554, '5.2.0 STOREDRV.Submission.Exception:SubmissionQuotaExceededException; Failed to process message due to a permanent exception');
    const backup = await TestUpstream.start();
    const { app, port } = await startRelay(relayConfig(tempDir(), { upstreams: [smtp('m365', m365.port), smtp('backup', backup.port)] }));
    await sendMail(port, { to: ['a@example.com'] });
    await backup.waitForMessages(1);
    await waitFor(() => listMessages(app.spool.db).every((m) => m.state === 'delivered'));
    expect(app.status.snapshot().upstreams.m365).toMatchObject({ state: 'quota', last_error: expect.stringMatching(/SubmissionQuotaExceededException/) });
  });

  it('keeps mail for a lone upstream at its quota until the hold ends, instead of failing it', async () => {
    const limited = await TestUpstream.start();
    limited.failData(550, '5.7.1 Daily SMTP relay limit exceeded for customer');
    const { app, port } = await startRelay(relayConfig(tempDir(), { upstreams: [smtp('google', limited.port)], delivery: { quota_hold: '2h' } }));
    const before = Date.now();
    await sendMail(port, { to: ['a@example.com'] });
    const waiting = await waitFor(() => listMessages(app.spool.db, { status: 'deferred' })[0]);
    expect(waiting.nextAttemptAt).toBeGreaterThanOrEqual(before + 2 * 3_600_000);
    expect(getMessage(app.spool.db, waiting.id)!.lastReply).toMatch(/Daily SMTP relay limit/);
  });

  it('reports a 421 at EHLO as a hostname or allowlist problem, and keeps the mail', async () => {
    const strict = await TestUpstream.start();
    strict.failConnect(421, '4.7.0 Try again later, closing connection. (EHLO)');
    const { app, port } = await startRelay(relayConfig(tempDir(), { upstreams: [smtp('google', strict.port)] }));
    await sendMail(port, { to: ['a@example.com'] });
    await waitFor(() => listMessages(app.spool.db, { status: 'deferred' })[0]);
    expect(app.status.snapshot().upstreams.google!.state).toBe('ehlo_rejected');
  });
});
