import { execFileSync, spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { CLI } from './helpers/relay.js';
import { tempDir } from './helpers/tmp.js';

/**
 * deploy/first-boot.sh with real files in a temporary "card" and "/etc", checked by this tree's
 * own `relaybox check-config` (dist/cli.js: `make build` first). What a person sees is the point:
 * a file that does not validate is never taken, even in part, and relaybox-error.txt says why.
 */
const SCRIPT = join(import.meta.dirname, '../deploy/first-boot.sh');
const GROUP = execFileSync('id', ['-gn'], { encoding: 'utf8' }).trim();
const GID = Number(execFileSync('id', ['-g'], { encoding: 'utf8' }));
const BOM = '\uFEFF';

const good = (dir: string, hostname: string) =>
  `hostname: ${hostname}\r\nupstreams:\r\n  - { name: out, type: file, dir: ${dir}/outbox }\r\n`;

interface Box {
  dir: string;
  card: string; // /boot/firmware/relaybox.yaml
  error: string; // /boot/firmware/relaybox-error.txt
  etc: string;
  dest: string; // /etc/relaybox/relaybox.yaml
  run: (env?: Record<string, string>) => SpawnSyncReturns<string>;
}

/** A card with a boot partition and an /etc/relaybox that already holds a working configuration. */
function box(current: string | null = 'upstreams: [{ name: old, type: file, dir: /tmp/old }]\n'): Box {
  const dir = tempDir();
  const etc = join(dir, 'etc/relaybox');
  mkdirSync(join(dir, 'boot/firmware'), { recursive: true });
  mkdirSync(join(dir, 'run'));
  if (current !== null) {
    mkdirSync(etc, { recursive: true });
    writeFileSync(join(etc, 'relaybox.yaml'), current, { mode: 0o640 });
  }
  return {
    dir,
    card: join(dir, 'boot/firmware/relaybox.yaml'),
    error: join(dir, 'boot/firmware/relaybox-error.txt'),
    etc,
    dest: join(etc, 'relaybox.yaml'),
    run: (env = {}) =>
      spawnSync(SCRIPT, [], {
        encoding: 'utf8',
        env: {
          PATH: process.env.PATH!,
          RELAYBOX_BOOT_FILES: `${dir}/boot/firmware/relaybox.yaml ${dir}/boot/relaybox.yaml`,
          RELAYBOX_ETC_DIR: etc,
          RELAYBOX_GROUP: GROUP,
          RELAYBOX_CLI: `${process.execPath} ${CLI}`,
          RELAYBOX_RUN_DIR: join(dir, 'run'),
          ...env,
        },
      }),
  };
}

/** Nothing but the configuration (and what a person put there) in /etc/relaybox: no temp file left. */
const etcFiles = (b: Box) => readdirSync(b.etc).sort();

beforeAll(() => {
  if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run \`make build\` first`);
});

describe('first-boot.sh takes a valid relaybox.yaml from the card', () => {
  it('moves it into /etc/relaybox as 0640 for the service group, keeps the previous one, removes a stale error note', () => {
    const b = box();
    const before = readFileSync(b.dest, 'utf8');
    writeFileSync(b.card, good(b.dir, 'pi.example.com'), { mode: 0o755 });
    writeFileSync(b.error, 'relaybox did NOT use relaybox.yaml from this card\r\n');
    writeFileSync(join(b.dir, 'run/relaybox-first-boot.refused'), 'an older refusal\n');
    const r = b.run();
    expect(r.status, r.stderr).toBe(0);
    expect(readFileSync(b.dest, 'utf8')).toBe(good(b.dir, 'pi.example.com'));
    expect(statSync(b.dest).mode & 0o777).toBe(0o640);
    expect(statSync(b.dest).gid).toBe(GID);
    expect(readFileSync(`${b.dest}.previous`, 'utf8')).toBe(before);
    expect(existsSync(b.card)).toBe(false);
    expect(existsSync(b.error)).toBe(false);
    expect(readdirSync(join(b.dir, 'run'))).toEqual([]);
    expect(etcFiles(b)).toEqual(['relaybox.yaml', 'relaybox.yaml.previous']);
    expect(r.stderr).toContain(`installed ${b.card} as ${b.dest} (the configuration it replaced is ${b.dest}.previous)`);

    // Once: the next start finds nothing and leaves the administrator's later edits alone.
    writeFileSync(b.dest, 'edited: true\n');
    expect(b.run().status).toBe(0);
    expect(readFileSync(b.dest, 'utf8')).toBe('edited: true\n');
  });

  it('checks the copy where and as the service reads it: in /etc/relaybox, 0640, from /', () => {
    const b = box();
    const seen = join(b.dir, 'seen');
    const stub = join(b.dir, 'relaybox');
    writeFileSync(stub, `#!/bin/sh\nstat -c '%n %a %g' "$3" > ${seen}; pwd >> ${seen}\nexec ${process.execPath} ${CLI} "$@"\n`, { mode: 0o755 });
    writeFileSync(b.card, good(b.dir, 'pi.example.com'));
    expect(b.run({ RELAYBOX_CLI: stub }).status).toBe(0);
    const [file, cwd] = readFileSync(seen, 'utf8').trim().split('\n');
    expect(file).toMatch(new RegExp(`^${b.etc}/\\.relaybox\\.yaml\\.\\w+ 640 ${GID}$`));
    expect(cwd).toBe('/');
    expect(readFileSync(b.dest, 'utf8')).toBe(good(b.dir, 'pi.example.com'));
  });

  it('does nothing without a file on the card', () => {
    const b = box(null);
    const r = b.run();
    expect(r.status).toBe(0);
    expect(r.stderr).toBe('');
    expect(existsSync(join(b.dir, 'etc'))).toBe(false);
  });

  it('takes /boot/relaybox.yaml on older Pi OS, makes /etc/relaybox when missing, and warns about a missing group', () => {
    const b = box(null);
    writeFileSync(join(b.dir, 'boot/relaybox.yaml'), good(b.dir, 'old.example.com'));
    const r = b.run({ RELAYBOX_GROUP: 'no-such-group-relaybox' });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stderr).toContain('group no-such-group-relaybox does not exist');
    expect(statSync(b.etc).mode & 0o777).toBe(0o750);
    expect(statSync(b.dest).mode & 0o777).toBe(0o640);
    expect(existsSync(join(b.dir, 'boot/relaybox.yaml'))).toBe(false);
  });
});

describe('first-boot.sh refuses a relaybox.yaml that does not validate', () => {
  const cases = [
    { what: 'YAML that does not parse', text: 'upstreams:\r\n\t- { name: out, type: file, dir: /tmp/x }\r\n', says: 'YAML syntax at line 2, column 1' },
    { what: 'an unknown key and a bad value', text: 'upstreams: [{ name: out, type: file, dir: /tmp/x }]\r\nsmtp: { listen: ["2525x"] }\r\nsmpt: {}\r\n', says: 'smtp.listen[0]: expected host:port, got "2525x"', also: 'smpt: unknown key' },
    { what: 'the console beyond loopback without admin_token', text: 'upstreams: [{ name: out, type: file, dir: /tmp/x }]\r\nhttp: { listen: "0.0.0.0:8025" }\r\n', says: 'http.admin_token: required when http.listen (0.0.0.0:8025) is beyond loopback' },
  ];
  it.each(cases)('$what: /etc untouched, the file stays on the card, relaybox-error.txt says why', ({ text, says, also }) => {
    const b = box();
    const before = readFileSync(b.dest);
    writeFileSync(b.card, text);
    const r = b.run();
    expect(r.status, r.stderr).toBe(0); // relaybox starts, on its previous configuration
    expect(readFileSync(b.dest).equals(before)).toBe(true);
    expect(etcFiles(b)).toEqual(['relaybox.yaml']); // no .previous, no temp file
    expect(readFileSync(b.card, 'utf8')).toBe(text);
    expect(r.stderr).toContain(`NOT using ${b.card}`);
    expect(r.stderr).toContain(says);

    const note = readFileSync(b.error, 'utf8');
    expect(note.startsWith(`${BOM}relaybox did NOT use relaybox.yaml from this card\r\n`)).toBe(true);
    expect(note.replace(/\r\n/g, '')).not.toContain('\n'); // CRLF only, for Notepad
    expect(note).toMatch(/Checked: \d{4}-\d\d-\d\d \d\d:\d\d /);
    expect(note).toContain(`  ${says}`);
    if (also) expect(note).toContain(`  ${also}`);
    expect(note).not.toContain('.relaybox.yaml.'); // the temporary copy means nothing to a person
    expect(note).toContain('relaybox is still running, with its previous settings');
    expect(note).toContain('It checks relaybox.yaml on every start');
  });

  it('takes the fixed file on the next start and deletes the note; an unchanged refused file is not checked again', () => {
    const b = box();
    writeFileSync(b.card, 'upstreams: [{ name: out, type: file, dir: /tmp/x }]\nsmtp: { listen: ["2525x"] }\n');
    expect(b.run().status).toBe(0);
    const note = readFileSync(b.error, 'utf8');

    // A restart in the same boot: the same file, its note still there. A checker that cannot run
    // proves that none ran: it would have replaced the note.
    const again = b.run({ RELAYBOX_CLI: '/nonexistent/relaybox' });
    expect(again.status).toBe(0);
    expect(again.stderr).toContain('unchanged since it was refused');
    expect(readFileSync(b.error, 'utf8')).toBe(note);

    // The note deleted on the PC but the file not fixed: checked again, and the note is back.
    rmSync(b.error);
    expect(b.run().status).toBe(0);
    expect(readFileSync(b.error, 'utf8')).toContain('smtp.listen[0]: expected host:port, got "2525x"');

    writeFileSync(b.card, good(b.dir, 'fixed.example.com'));
    const fixed = b.run();
    expect(fixed.status, fixed.stderr).toBe(0);
    expect(readFileSync(b.dest, 'utf8')).toBe(good(b.dir, 'fixed.example.com'));
    expect(existsSync(b.card)).toBe(false);
    expect(existsSync(b.error)).toBe(false);
  });

  it('checks an unchanged file again once a secret it names appears in /etc/relaybox', () => {
    const b = box();
    const text = `${good(b.dir, 'pi.example.com')}http: { listen: "0.0.0.0:8025", admin_token: { file: ${b.etc}/token } }\r\n`;
    writeFileSync(b.card, text);
    expect(b.run().status).toBe(0);
    expect(readFileSync(b.error, 'utf8')).toContain(`  http.admin_token: cannot read ${b.etc}/token: ENOENT`);
    writeFileSync(join(b.etc, 'token'), 'a-long-admin-token\n', { mode: 0o640 }); // put there over ssh
    const r = b.run();
    expect(r.status, r.stderr).toBe(0);
    expect(readFileSync(b.dest, 'utf8')).toBe(text);
    expect(existsSync(b.error)).toBe(false);
  });

  it('puts the note beside /boot/relaybox.yaml, and says so when there is no configuration to fall back on', () => {
    const b = box(null);
    const card = join(b.dir, 'boot/relaybox.yaml');
    writeFileSync(card, 'upstreams: []\n');
    expect(b.run().status).toBe(0);
    const note = readFileSync(join(b.dir, 'boot/relaybox-error.txt'), 'utf8');
    expect(note).toContain('  upstreams: at least one upstream is needed');
    expect(note).toContain('relaybox has no settings yet, so it cannot run until this file is fixed');
    expect(existsSync(b.error)).toBe(false);
    expect(existsSync(card)).toBe(true);
    expect(existsSync(b.dest)).toBe(false);
  });

  it('without a verdict (the checker cannot run) takes nothing either, and tries again at the next start', () => {
    const b = box();
    const before = readFileSync(b.dest);
    writeFileSync(b.card, good(b.dir, 'pi.example.com'));
    const r = b.run({ RELAYBOX_CLI: '/nonexistent/relaybox' });
    expect(r.status).toBe(0);
    expect(r.stderr).toContain('gave no verdict (exit 127)');
    expect(readFileSync(b.dest).equals(before)).toBe(true);
    expect(existsSync(b.card)).toBe(true);
    expect(readFileSync(b.error, 'utf8')).toContain('relaybox could not check it');
    expect(readdirSync(join(b.dir, 'run'))).toEqual([]); // not remembered as refused

    expect(b.run().status).toBe(0);
    expect(readFileSync(b.dest, 'utf8')).toBe(good(b.dir, 'pi.example.com'));
    expect(existsSync(b.error)).toBe(false);
  });
});
