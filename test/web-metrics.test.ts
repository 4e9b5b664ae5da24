import { createRequire } from 'node:module';
import { describe, expect, it } from 'vitest';
import type { RelayApp } from '../src/app.js';
import { listMessages } from '../src/spool/log.js';
import { relayConfig, sendMail, startRelay, waitFor } from './helpers/relay.js';
import { TestUpstream } from './helpers/testUpstream.js';
import { tempDir } from './helpers/tmp.js';

interface Sample {
  value?: string;
  labels?: Record<string, string>;
  buckets?: Record<string, string>;
  count?: string;
  sum?: string;
}
interface Family {
  name: string;
  help: string;
  type: string;
  metrics: Sample[];
}

// An independent parser of the text format (not prom-client's own); it has no type declarations.
const parsePrometheus = createRequire(import.meta.url)('parse-prometheus-text-format') as (text: string) => Family[];

const TOKEN = 'metrics-token';
let lastText = '';

async function scrape(app: RelayApp): Promise<Map<string, Family>> {
  const res = await fetch(`http://127.0.0.1:${app.httpAddress!.port}/metrics`, { headers: { Authorization: `Bearer ${TOKEN}` } });
  expect(res.status).toBe(200);
  expect(res.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
  const text = await res.text();
  lastText = text;
  for (const line of text.split('\n')) {
    // Every line is a comment, empty, or `name{labels} value`. (prom-client writes an empty
    // event-loop histogram as `Nan`; Prometheus reads floats case-insensitively, as Go does.)
    expect(line).toMatch(/^(#.*|[a-zA-Z_:][a-zA-Z0-9_:]*(\{.*\})? (-?[0-9.e+-]+|NaN|Nan|[+-]Inf)|)$/);
  }
  return new Map(parsePrometheus(text).map((f) => [f.name, f]));
}

function value(families: Map<string, Family>, name: string, labels: Record<string, string> = {}): number | undefined {
  const sample = families.get(name)?.metrics.find((m) => Object.entries(labels).every(([k, v]) => m.labels?.[k] === v));
  return sample?.value === undefined ? undefined : Number(sample.value);
}

/**
 * The delivery thread commits a message's row before its event reaches the main thread's
 * counters: scrape again until `ready` holds (a busy machine takes a while), then assert as usual.
 */
async function scrapeUntil(app: RelayApp, ready: (families: Map<string, Family>) => boolean): Promise<Map<string, Family>> {
  let families = await scrape(app);
  for (const end = Date.now() + 10_000; !ready(families) && Date.now() < end; ) {
    await new Promise((r) => setTimeout(r, 25));
    families = await scrape(app);
  }
  return families;
}

describe('GET /metrics', () => {
  it('is Prometheus text that moves when mail flows', async () => {
    const up = await TestUpstream.start();
    const { app, port } = await startRelay(
      relayConfig(tempDir(), { http: { admin_token: TOKEN }, upstreams: [{ name: 'primary', type: 'smtp', host: '127.0.0.1', port: up.port, security: 'none' }] }),
    );
    const before = await scrape(app);
    expect(before.get('relaybox_messages')!.type).toBe('GAUGE');
    expect(before.get('relaybox_messages_delivered_total')!.type).toBe('COUNTER');
    expect(before.get('relaybox_delivery_duration_seconds')!.type).toBe('HISTOGRAM');
    expect(value(before, 'relaybox_messages_accepted_total')).toBe(0);
    expect(value(before, 'relaybox_messages', { state: 'queued' })).toBe(0);
    expect(value(before, 'relaybox_upstream_state', { upstream: 'primary', state: 'unknown' })).toBe(1);
    expect(value(before, 'relaybox_upstream_up', { upstream: 'primary' })).toBeUndefined();
    expect(before.get('relaybox_info')!.metrics[0]!.value).toBe('1');
    expect(value(before, 'relaybox_spool_size_bytes')).toBeGreaterThan(0);
    expect(before.has('process_resident_memory_bytes')).toBe(true);

    await sendMail(port, { to: ['a@example.com', 'b@example.com'] });
    await sendMail(port, { to: ['c@example.com'] });
    await up.waitForMessages(2);
    await waitFor(() => listMessages(app.spool.db, { status: 'delivered' }).length === 2);
    const flowing = await scrapeUntil(app, (m) => value(m, 'relaybox_messages_delivered_total', { upstream: 'primary' }) === 2);
    expect(value(flowing, 'relaybox_messages_accepted_total')).toBe(2);
    expect(value(flowing, 'relaybox_messages_delivered_total', { upstream: 'primary' })).toBe(2);
    expect(value(flowing, 'relaybox_upstream_up', { upstream: 'primary' })).toBe(1);
    // That parser folds labelled histograms into one sample, so their lines are read directly.
    const series = (suffix: string, le = '') =>
      Number(new RegExp(`^relaybox_delivery_duration_seconds_${suffix}\\{${le}upstream="primary",outcome="delivered"\\} (\\S+)$`, 'm').exec(lastText)?.[1]);
    expect(series('count')).toBe(2);
    expect(series('bucket', 'le="\\+Inf",')).toBe(2);
    expect(series('sum')).toBeGreaterThan(0);

    up.failConnect(421, '4.7.0 Try again later'); // the upstream itself is away
    up.dropConnections();
    await sendMail(port, { to: ['d@example.com'] });
    await waitFor(() => listMessages(app.spool.db, { status: 'deferred' }).length === 1);
    const waiting = await scrapeUntil(app, (m) => value(m, 'relaybox_upstream_up', { upstream: 'primary' }) === 0);
    const inFlight = ['queued', 'delivering', 'deferred'].map((state) => value(waiting, 'relaybox_messages', { state })!);
    expect(inFlight.reduce((a, b) => a + b)).toBe(1); // deferred, or already back in delivery
    expect(value(waiting, 'relaybox_messages_deferred_total', { upstream: 'primary' })).toBeGreaterThanOrEqual(1);
    expect(value(waiting, 'relaybox_upstream_up', { upstream: 'primary' })).toBe(0);
    expect(value(waiting, 'relaybox_upstream_state', { upstream: 'primary', state: 'down' })).toBe(1);

    up.failConnect(null);
    up.failData(550, '5.7.1 Rejected');
    await waitFor(() => listMessages(app.spool.db, { status: 'failed' }).length === 1, 10_000);
    const failed = await scrapeUntil(app, (m) => value(m, 'relaybox_messages_failed_total', { upstream: 'primary' }) === 1);
    expect(value(failed, 'relaybox_messages', { state: 'failed' })).toBe(1);
    expect(value(failed, 'relaybox_messages_failed_total', { upstream: 'primary' })).toBe(1);
    expect(value(failed, 'relaybox_oldest_queued_age_seconds')).toBe(0); // failed is not waiting

    const id = listMessages(app.spool.db, { status: 'failed' })[0]!.id;
    app.spool.drop(id);
    expect(value(await scrape(app), 'relaybox_messages_dropped_total')).toBe(1);
  });

  it('reports the oldest waiting message and needs the token', async () => {
    const up = await TestUpstream.start();
    up.failData(451, '4.3.0 Try again later');
    const { app, port } = await startRelay(
      relayConfig(tempDir(), {
        http: { admin_token: TOKEN },
        upstreams: [{ name: 'primary', type: 'smtp', host: '127.0.0.1', port: up.port, security: 'none' }],
        delivery: { retry: { first: '1h', max: '1h', give_up_after: '2h' } },
      }),
    );
    await sendMail(port, { to: ['a@example.com'] });
    await waitFor(() => listMessages(app.spool.db, { status: 'deferred' }).length === 1);
    app.spool.db.prepare('UPDATE messages SET received_at = received_at - 90000').run();
    const families = await scrape(app);
    expect(value(families, 'relaybox_messages', { state: 'deferred' })).toBe(1);
    expect(value(families, 'relaybox_oldest_queued_age_seconds')).toBeGreaterThanOrEqual(90);
    expect((await fetch(`http://127.0.0.1:${app.httpAddress!.port}/metrics`)).status).toBe(401);
  });
});
