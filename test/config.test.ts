import { chmodSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseDuration } from '../src/config/duration.js';
import { ConfigError, parseConfig } from '../src/config/load.js';
import { configProblems, FILE_UPSTREAM } from './helpers/config.js';
import { isFqdn, networkMatcher } from '../src/config/net.js';
import { tempDir } from './helpers/tmp.js';

const problems = configProblems;

describe('configuration', () => {
  it('fills SPEC defaults for a minimal file', () => {
    const config = parseConfig(FILE_UPSTREAM);
    expect(config.smtp.listen).toEqual([{ host: '127.0.0.1', port: 2525 }]);
    expect(config.smtp.max_message_bytes).toBe(36_700_160);
    expect(config.delivery.retry).toEqual({ first: 60_000, max: 3_600_000, give_up_after: 172_800_000 });
    expect(config.smtp.allow_networks).toContain('192.168.0.0/16');
    expect(config.upstreams[0]).toMatchObject({ type: 'file', dir: join(process.cwd(), 'out') });
  });

  it('names the key and the problem', () => {
    expect(problems(`smtp: { listen: ["2525x"] }\n${FILE_UPSTREAM}`)).toEqual(['smtp.listen[0]: expected host:port, got "2525x"']);
    expect(problems(`smtpp: {}\n${FILE_UPSTREAM}`)).toEqual(['smtpp: unknown key — did you mean smtp?']);
    expect(problems(`carrier_pigeon: {}\n${FILE_UPSTREAM}`)).toEqual(['carrier_pigeon: unknown key']); // no guess when nothing is close
    expect(problems('upstreams: [{ name: x, type: carrier-pigeon }]')).toEqual(['upstreams[0].type: type must be one of smtp, gmail-relay, gmail-oauth2, microsoft365-oauth2, microsoft365-graph, gmail-api, gmail-app-password, file']);
    expect(problems('upstreams: [{ name: x, type: smtp }]')).toEqual(['upstreams[0].host: is required']);
    expect(problems(`delivery: { retry: { first: soon } }\n${FILE_UPSTREAM}`)).toEqual([
      'delivery.retry.first: expected a duration like 30s, 10m, 48h or 7d, got "soon"',
    ]);
    expect(problems(`smtp: { allow_networks: ["10.0.0.0/33"] }\n${FILE_UPSTREAM}`)[0]).toMatch(/^smtp\.allow_networks\[0\]: expected an address or network/);
    expect(problems('upstreams: [{ name: a, type: file, dir: x }, { name: a, type: file, dir: y }]')).toEqual(['upstreams[1].name: duplicate upstream name "a"']);
    expect(problems('smtp: [')[0]).toMatch(/^YAML syntax at line 1/);
  });

  it('says what to write for the common mistakes, suggests the near miss and gives the line', () => {
    const yaml = [
      'smtp:',
      '  listen: "0.0.0.0:25"',
      '  max_mesage_bytes: 1000',
      '  tls: { mode: startls }',
      'delivery:',
      '  concurency: 3',
      'http:',
      '  enabled: yes',
      'upstreams:',
      '  - { name: a, type: gmail_relay }',
      '  - name: b',
      '    type: file',
      '    dri: ./out',
      'mqtt:',
    ].join('\n');
    const err = (() => {
      try {
        parseConfig(yaml);
      } catch (e) {
        return e as ConfigError;
      }
      throw new Error('expected a ConfigError');
    })();
    expect(err.located).toEqual([
      'smtp.listen: write it as a list: ["0.0.0.0:25"] (line 2)',
      'smtp.max_mesage_bytes: unknown key — did you mean max_message_bytes? (line 3)',
      'smtp.tls.mode: expected one of none, starttls, implicit, got "startls" — did you mean starttls? (line 4)',
      'delivery.concurency: unknown key — did you mean concurrency? (line 6)',
      'http.enabled: expected true or false, got "yes" (line 8)',
      'upstreams[0].type: type must be one of smtp, gmail-relay, gmail-oauth2, microsoft365-oauth2, microsoft365-graph, gmail-api, gmail-app-password, file — did you mean gmail-relay? (line 10)',
      'upstreams[1].dir: is required (line 11)',
      'upstreams[1].dri: unknown key — did you mean dir? (line 13)',
      'mqtt: has no value: give it one, or remove the line (line 14)',
    ]);
    expect(problems(`smtp: { listen: [] }\n${FILE_UPSTREAM}`)).toEqual(['smtp.listen: needs at least 1 entry']);
    expect(problems(`smtp: { max_connections: "lots" }\n${FILE_UPSTREAM}`)).toEqual(['smtp.max_connections: expected a number, got "lots"']);
    expect(problems('upstreams: [{ name: a, type: smtp, host: h, auth: { user: 0123, pass: x } }]')).toEqual(['upstreams[0].auth.user: expected text, got a number: put it in quotes']);
  });

  it("refuses Google's relay with a hostname that is not fully qualified", () => {
    const [problem] = problems('hostname: raspberrypi\nupstreams: [{ name: google, type: gmail-relay }]');
    expect(problem).toMatch(/^hostname: "raspberrypi" is not a fully qualified name/);
    expect(() => parseConfig('hostname: relaybox.example.com\nupstreams: [{ name: google, type: gmail-relay }]')).not.toThrow();
  });

  it('reads secrets from the environment and from files, and says which one is missing', () => {
    const dir = tempDir();
    const file = join(dir, 'pass');
    writeFileSync(file, 's3cret\n');
    chmodSync(file, 0o600);
    process.env.RELAYBOX_TEST_PASS = 'from-env';
    const config = parseConfig(
      `upstreams:\n  - { name: a, type: smtp, host: h, auth: { user: u, pass: { env: RELAYBOX_TEST_PASS } } }\n  - { name: b, type: smtp, host: h, auth: { user: u, pass: { file: ${file} } } }`,
    );
    const [a, b] = config.upstreams as Array<{ auth?: { pass: string } }>;
    expect(a!.auth!.pass).toBe('from-env');
    expect(b!.auth!.pass).toBe('s3cret');
    expect(problems('upstreams: [{ name: a, type: smtp, host: h, auth: { user: u, pass: { env: RELAYBOX_NOT_SET_ANYWHERE } } }]')).toEqual([
      'upstreams[0].auth.pass: environment variable RELAYBOX_NOT_SET_ANYWHERE is not set',
    ]);
  });

  it('parses durations, networks and names as users write them', () => {
    expect([parseDuration('500ms'), parseDuration('30s'), parseDuration('10m'), parseDuration('48h'), parseDuration('7d')]).toEqual([
      500, 30_000, 600_000, 172_800_000, 604_800_000,
    ]);
    expect(parseDuration('10 minutes')).toBeUndefined();
    const allowed = networkMatcher(['192.168.0.0/16', '::1/128']);
    expect([allowed('192.168.1.20'), allowed('::ffff:192.168.1.20'), allowed('::1'), allowed('8.8.8.8')]).toEqual([true, true, true, false]);
    expect([isFqdn('relaybox.example.com'), isFqdn('raspberrypi'), isFqdn('localhost'), isFqdn('a..b')]).toEqual([true, false, false, false]);
  });
});
