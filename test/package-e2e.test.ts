import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildTestDeb, freshDebianRoot, rootUnavailable, serveInRoot } from './helpers/debianRoot.js';
import { sendMail, waitFor } from './helpers/relay.js';

/**
 * The .deb on a stock Debian 12 (a debootstrap minbase root, plus adduser as every real install
 * has): install, check-config, serve as the relaybox user, mail over SMTP on loopback, first boot,
 * upgrade in place, purge. RELAYBOX_PACKAGE_E2E=0 turns it off (it takes ~30 s once the root is
 * cached, ~2 minutes more the first time).
 */
const off = process.env.RELAYBOX_PACKAGE_E2E === '0' ? 'RELAYBOX_PACKAGE_E2E=0' : rootUnavailable();
const title = off ? `the .deb in a fresh Debian 12 root: SKIPPED, ${off}` : 'the .deb in a fresh Debian 12 root';

describe.skipIf(off !== undefined)(title, { timeout: 120_000 }, () => {
  let root = '';
  let cleanup = () => {};
  let out = '';
  let skip = '';

  const chroot = (...args: string[]): SpawnSyncReturns<string> =>
    spawnSync('chroot', [root, ...args], { encoding: 'utf8', env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin', LANG: 'C.UTF-8' }, timeout: 120_000 });
  const ok = (r: SpawnSyncReturns<string>) => {
    expect(r.status, `${r.stdout}\n${r.stderr}`).toBe(0);
    return r.stdout;
  };
  const stat = (path: string) => ok(chroot('stat', '-c', '%a %U:%G', path)).trim();

  beforeAll(() => {
    const made = freshDebianRoot();
    if ('skip' in made) {
      skip = made.skip;
      return;
    }
    ({ dir: root, cleanup } = made);
    out = mkdtempSync(join(tmpdir(), 'relaybox-deb-'));
    copyFileSync(buildTestDeb(out), join(root, 'tmp/relaybox.deb'));
  }, 600_000);
  afterAll(() => {
    cleanup();
    if (out) rmSync(out, { recursive: true, force: true });
  });

  it('installs with dpkg alone: user, spool, config permissions, a working check-config', (ctx) => {
    if (skip) return ctx.skip(skip);
    const install = chroot('dpkg', '-i', '/tmp/relaybox.deb');
    ok(install);
    expect(install.stderr).not.toMatch(/error|warning/i);
    expect(ok(chroot('getent', 'passwd', 'relaybox'))).toMatch(/^relaybox:x:\d+:\d+::\/var\/lib\/relaybox:\/usr\/sbin\/nologin$/m);
    expect(stat('/etc/relaybox')).toBe('750 root:relaybox');
    expect(stat('/etc/relaybox/relaybox.yaml')).toBe('640 root:relaybox');
    expect(stat('/var/lib/relaybox')).toBe('750 relaybox:relaybox');
    // Run by root, the wrapper acts as relaybox, which can read the 0640 config through its group.
    const check = chroot('relaybox', 'check-config');
    expect(ok(check)).toContain('configuration ok');
    expect(check.stdout).toContain('smtp: listening on 0.0.0.0:25, 0.0.0.0:587');
    expect(chroot('relaybox', 'doctor', '--offline').stdout).toMatch(/^OK {3}spool: \/var\/lib\/relaybox writable by relaybox;/m);
  });

  it('serves as the relaybox user: a message over SMTP lands in the outbox; SIGTERM stops it cleanly', async (ctx) => {
    if (skip) return ctx.skip(skip);
    const served = await serveInRoot(root, 20_000);
    try {
      const reply = await sendMail(served.port, { to: ['someone@example.com'], subject: 'from a scanner' });
      expect(reply.response).toMatch(/^250 /);
      const outbox = join(root, 'var/lib/relaybox/outbox');
      const file = await waitFor(() => existsSync(outbox) && readdirSync(outbox).find((f) => f.endsWith('.eml')), 15_000, 'the .eml');
      expect(readFileSync(join(outbox, file), 'utf8')).toContain('Subject: from a scanner');
      expect(stat(`/var/lib/relaybox/outbox/${file}`)).toMatch(/ relaybox:relaybox$/);
      expect(stat('/var/lib/relaybox/spool.db')).toMatch(/relaybox:relaybox$/);
    } finally {
      expect(await served.stop(), served.lines.join('\n')).toBe(0);
    }
  });

  it('first boot moves /boot/firmware/relaybox.yaml into /etc/relaybox with safe permissions, and refuses one that does not validate', (ctx) => {
    if (skip) return ctx.skip(skip);
    const before = readFileSync(join(root, 'etc/relaybox/relaybox.yaml'), 'utf8');
    mkdirSync(join(root, 'boot/firmware'), { recursive: true });
    writeFileSync(join(root, 'boot/firmware/relaybox.yaml'), before.replace('# hostname: relaybox.example.com', 'hostname: pi.example.com'));
    ok(chroot('/usr/lib/relaybox/first-boot.sh'));
    expect(existsSync(join(root, 'boot/firmware/relaybox.yaml'))).toBe(false);
    expect(stat('/etc/relaybox/relaybox.yaml')).toBe('640 root:relaybox');
    expect(ok(chroot('relaybox', 'check-config'))).toContain('hostname pi.example.com');
    expect(readFileSync(join(root, 'etc/relaybox/relaybox.yaml.previous'), 'utf8')).toBe(before);

    // A file that does not validate is not taken. It is checked as the service would read it: by
    // the relaybox user, who cannot read a root-only secret.
    const taken = readFileSync(join(root, 'etc/relaybox/relaybox.yaml'), 'utf8');
    writeFileSync(join(root, 'etc/relaybox/token'), 'a-long-admin-token\n', { mode: 0o600 });
    const broken = taken
      .replace('listen: ["0.0.0.0:25", "0.0.0.0:587"]', 'listen: ["0.0.0.0:25x"]')
      .replace('listen: "127.0.0.1:8025"', 'listen: "0.0.0.0:8025"\n  admin_token: { file: /etc/relaybox/token }');
    writeFileSync(join(root, 'boot/firmware/relaybox.yaml'), broken);
    ok(chroot('/usr/lib/relaybox/first-boot.sh'));
    expect(readFileSync(join(root, 'etc/relaybox/relaybox.yaml'), 'utf8')).toBe(taken);
    expect(readFileSync(join(root, 'boot/firmware/relaybox.yaml'), 'utf8')).toBe(broken);
    const note = readFileSync(join(root, 'boot/firmware/relaybox-error.txt'), 'utf8');
    expect(note).toContain('  smtp.listen[0]: expected host:port, got "0.0.0.0:25x"');
    expect(note).toContain('  http.admin_token: cannot read /etc/relaybox/token: EACCES');
    for (const f of ['boot/firmware/relaybox.yaml', 'boot/firmware/relaybox-error.txt', 'etc/relaybox/token']) rmSync(join(root, f));
  });

  it('upgrades in place keeping the spool and the edited config, and purge removes everything', (ctx) => {
    if (skip) return ctx.skip(skip);
    const edited = readFileSync(join(root, 'etc/relaybox/relaybox.yaml'), 'utf8');
    ok(chroot('dpkg', '-i', '/tmp/relaybox.deb'));
    expect(readFileSync(join(root, 'etc/relaybox/relaybox.yaml'), 'utf8')).toBe(edited);
    expect(existsSync(join(root, 'var/lib/relaybox/spool.db'))).toBe(true);
    expect(ok(chroot('relaybox', 'queue', 'list', '--config', '/etc/relaybox/test.yaml'))).toMatch(/delivered/);

    ok(chroot('dpkg', '--purge', 'relaybox'));
    for (const gone of ['usr/lib/relaybox', 'usr/bin/relaybox', 'etc/relaybox', 'var/lib/relaybox', 'lib/systemd/system/relaybox.service']) {
      expect(existsSync(join(root, gone)), gone).toBe(false);
    }
    expect(chroot('dpkg', '-s', 'relaybox').status).not.toBe(0); // not even config-files left
    // The system user stays, as Debian keeps system users (see deploy/debian/postrm).
    expect(chroot('getent', 'passwd', 'relaybox').status).toBe(0);
  });
});
