import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { relayConfig, runCli, sendMail, spawnRelay, waitFor } from './helpers/relay.js';
import { TestUpstream } from './helpers/testUpstream.js';
import { tempDir } from './helpers/tmp.js';

describe('the service process', () => {
  it('loses nothing it answered 250 to when killed with -9 while the upstream is down', async () => {
    const dir = tempDir();
    const up = await TestUpstream.start();
    await up.stop(); // the upstream is down while devices send
    const config = relayConfig(join(dir, 'data'), {
      upstreams: [{ name: 'primary', type: 'smtp', host: '127.0.0.1', port: up.port, security: 'none' }],
      delivery: { retry: { first: '100ms', max: '300ms', give_up_after: '1h' } },
    });
    const first = await spawnRelay(config, dir);
    const accepted: string[] = [];
    for (let i = 0; i < 20; i++) {
      const { response } = await sendMail(first.port, { to: ['office@example.com'], subject: `scan ${i}` });
      if (response.startsWith('250')) accepted.push(`scan ${i}`);
    }
    expect(accepted).toHaveLength(20);
    first.child.kill('SIGKILL');
    await first.exited;

    await up.restart();
    const second = await spawnRelay(config, dir);
    await up.waitForMessages(20, 20_000);
    await new Promise((r) => setTimeout(r, 500)); // anything delivered twice would arrive by now
    const subjects = up.messages.map((m) => /Subject: (.*)\r\n/.exec(m.raw!.toString())![1]);
    expect(subjects.sort()).toEqual(accepted.sort());
    second.child.kill('SIGTERM');
    expect(await second.exited).toBe(0);
  }, 60_000);

  it('stops cleanly on SIGTERM with exit 0 and refuses nothing it had accepted', async () => {
    const dir = tempDir();
    const up = await TestUpstream.start();
    const relay = await spawnRelay(
      relayConfig(join(dir, 'data'), { upstreams: [{ name: 'primary', type: 'smtp', host: '127.0.0.1', port: up.port, security: 'none' }] }),
      dir,
    );
    await sendMail(relay.port, { to: ['a@example.com'] });
    await up.waitForMessages(1);
    relay.child.kill('SIGTERM');
    expect(await relay.exited).toBe(0);
    expect(relay.lines.some((l) => l.includes('relaybox stopped'))).toBe(true);
  });

  it('logs one JSON line per accepted message and per attempt, without secrets', async () => {
    const dir = tempDir();
    const up = await TestUpstream.start({ auth: { user: 'relay-user', pass: 'hunter2-very-secret' } });
    const relay = await spawnRelay(
      relayConfig(join(dir, 'data'), {
        log: { level: 'info' },
        upstreams: [{ name: 'primary', type: 'smtp', host: '127.0.0.1', port: up.port, security: 'none', auth: { user: 'relay-user', pass: 'hunter2-very-secret' } }],
      }),
      dir,
    );
    await sendMail(relay.port, { to: ['a@example.com'] });
    await up.waitForMessages(1);
    const records = await waitFor(() => {
      const parsed = relay.lines.filter((l) => l.startsWith('{')).map((l) => JSON.parse(l));
      return parsed.some((r) => r.msg === 'delivery attempt') && parsed;
    });
    expect(records.find((r) => r.msg === 'accepted')).toMatchObject({ from: 'scanner@example.com', rcpts: 1 });
    expect(records.find((r) => r.msg === 'delivery attempt')).toMatchObject({ upstream: 'primary', reply: expect.stringMatching(/^250/) });
    expect(relay.lines.join('\n')).not.toContain('hunter2-very-secret');
  });

  it('exits 2 naming the key when the configuration is bad', { timeout: 120_000 }, async () => {
    const dir = tempDir();
    const file = join(dir, 'bad.yaml');
    writeFileSync(file, stringify({ data_dir: dir, smtp: { listen: ['2525x'] }, upstreams: [{ name: 'o', type: 'file', dir }] }));
    for (const command of ['serve', 'check-config']) {
      const result = await runCli([command, '--config', file]);
      expect(result.code).toBe(2);
      expect(result.stderr).toContain('smtp.listen[0]: expected host:port, got "2525x"');
      expect(result.stderr).not.toMatch(/at .*\.js:\d+/); // no stack trace
    }
    writeFileSync(file, stringify({ hostname: 'raspberrypi', data_dir: dir, upstreams: [{ name: 'google', type: 'gmail-relay' }] }));
    const relay = await runCli(['serve', '--config', file]);
    expect(relay.code).toBe(2);
    expect(relay.stderr).toMatch(/hostname: "raspberrypi" is not a fully qualified name/);
    expect((await runCli(['check-config', '--config', join(dir, 'missing.yaml')])).code).toBe(2);
  });

  it('check-config prints one line per upstream', async () => {
    const dir = tempDir();
    const file = join(dir, 'ok.yaml');
    writeFileSync(
      file,
      stringify({
        hostname: 'relaybox.example.com',
        data_dir: dir,
        upstreams: [
          { name: 'google', type: 'gmail-relay' },
          { name: 'outbox', type: 'file', dir: join(dir, 'out') },
        ],
      }),
    );
    const result = await runCli(['check-config', '--config', file]);
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/upstream 1 google \(gmail-relay\): smtp-relay\.gmail\.com:587/);
    expect(result.stdout).toMatch(/upstream 2 outbox \(file\)/);
  });
});
