import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { FakeDns } from './helpers/fakeDns.js';
import { CLI, relayConfig } from './helpers/relay.js';
import { TestUpstream } from './helpers/testUpstream.js';
import { tempDir } from './helpers/tmp.js';

const closers: { close(): Promise<void> }[] = [];
afterEach(async () => {
  await Promise.all(closers.splice(0).map((c) => c.close()));
});

function doctor(args: string[], env: Record<string, string> = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [CLI, 'doctor', ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('exit', (code) => resolve({ code, stdout, stderr }));
  });
}

function writeConfig(dir: string, overrides: Record<string, unknown>): string {
  const file = join(dir, 'relaybox.yaml');
  writeFileSync(file, stringify(relayConfig(dir, overrides)));
  return file;
}

describe('relaybox doctor (the command)', () => {
  it('prints one OK/WARN/FAIL line per check and exits 0 without a FAIL, 1 with one', async () => {
    const dir = tempDir();
    const dns = await FakeDns.start({ 'relaybox.test.example': { A: ['192.0.2.10'] } });
    closers.push(dns);
    const up = await TestUpstream.start({});
    closers.push(up);
    const file = writeConfig(dir, { upstreams: [{ name: 'lan', type: 'smtp', host: '127.0.0.1', port: up.port, security: 'none' }] });

    const good = await doctor(['--config', file, '--dns-server', dns.server, '--timeout', '3']);
    expect(good.stderr).toBe('');
    expect(good.code).toBe(0);
    const out = good.stdout.trimEnd().split('\n');
    expect(out.at(-1)).toMatch(/^relaybox doctor: 0 failed, \d+ warnings?, \d+ ok$/);
    for (const line of out.slice(0, -1)) expect(line).toMatch(/^(OK  |WARN|FAIL) [a-z]+( [^:]+)?: /);
    expect(good.stdout).toContain('OK   hostname: relaybox.test.example is fully qualified and resolves to 192.0.2.10');
    expect(good.stdout).toMatch(/OK {3}upstream lan: greeting: 220 /);

    await up.stop();
    const down = await doctor(['--config', file, '--timeout', '3'], { RELAYBOX_DNS_SERVER: dns.server });
    expect(down.code).toBe(1);
    expect(down.stdout).toMatch(/^FAIL upstream lan: TCP: cannot connect to 127\.0\.0\.1:\d+: .* Fix: Nothing takes connections at 127\.0\.0\.1 on that port: check host and port of upstream lan .*$/m);
    expect(dns.queries).toContain('relaybox.test.example A'); // the env variable chose the resolver
  });

  it('exits 2 on a configuration that does not load, and speaks JSON when asked', async () => {
    const dir = tempDir();
    const bad = await doctor(['--config', writeConfig(dir, { upstreams: [] }), '--offline']);
    expect(bad.code).toBe(2);
    expect(bad.stdout).toMatch(/^FAIL config: .*relaybox\.yaml: upstreams: at least one upstream is needed\. Fix: edit /m);

    const json = await doctor(['--config', writeConfig(dir, {}), '--offline', '--json']);
    expect(json.code).toBe(0);
    const report = JSON.parse(json.stdout) as { findings: { level: string; topic: string }[] };
    expect(report.findings.map((f) => f.topic)).toEqual(['config', 'clock', 'spool', 'upstream outbox']);

    const usage = await doctor(['--config', writeConfig(dir, {}), '--dns-server', 'not a server']);
    expect(usage.code).toBe(2);
    expect(usage.stderr).toContain('--dns-server: expected host:port like 127.0.0.1:5353');
  });
});
