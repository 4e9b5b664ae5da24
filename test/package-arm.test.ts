import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { copyFileSync, existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildTestDeb, FOREIGN, freshDebianRoot, rootUnavailable, serveInRoot } from './helpers/debianRoot.js';
import { sendMail, waitFor } from './helpers/relay.js';
import { tempDir } from './helpers/tmp.js';

/**
 * The .deb for a Pi, cross-built on this amd64 machine (`make deb ARCH=arm64`), installed into a
 * Debian 12 arm64 root and run there: every arm64 program (dpkg, the shell, Node.js) executes
 * under qemu-user through binfmt_misc. 1 to 2 minutes warm; cold add ~4 minutes for the root
 * (cached in /var/cache/relaybox) and ~2 for the addon's cross compile (cached).
 * RELAYBOX_PACKAGE_ARM=arm64,armhf adds the armhf package (another ~7 minutes cold: see
 * deploy/README.md); RELAYBOX_PACKAGE_ARM=0 turns it off. Under CI a missing prerequisite fails.
 */
const ARCHES = (process.env.RELAYBOX_PACKAGE_ARM ?? 'arm64').split(',').map((a) => a.trim()).filter((a) => a && a !== '0');
const CI = Boolean(process.env.CI);
const has = (cmd: string) => spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;
// Emulated Node.js starts in seconds rather than milliseconds; on a busy machine much more.
const SLOW = 5 * 60_000;

// What minbase lacks of each package's Depends, as `apt install ./relaybox_*.deb` would add it.
const EXTRA: Record<string, string[]> = { armhf: ['libatomic1'] };

for (const arch of ARCHES) {
  const missing = rootUnavailable(arch, EXTRA[arch]);
  const title = `the ${arch} .deb, cross-built, in a Debian 12 ${arch} root under qemu-user`;
  // Outside CI a missing tool skips, with the reason in the name; under CI it fails with it (as a
  // failed test, not a hook error, so that the closing line counts it).
  if (missing && CI) {
    describe(title, () => it('has its prerequisites', () => expect.fail(`missing prerequisite under CI: ${missing}`)));
    continue;
  }
  describe.skipIf(missing !== undefined)(missing ? `${title}: SKIPPED, ${missing}` : title, { timeout: SLOW }, () => {
    const foreign = FOREIGN[arch]!;
    let root = '';
    let cleanup = () => {};
    let out = '';
    let deb = '';
    let skip = '';
    let setupError: unknown;
    /** Each test first: the setup's error fails it; a root that could not be made skips it (fails it under CI). */
    const ready = (ctx: { skip: (why: string) => void }) => {
      if (setupError) throw setupError;
      if (skip && CI) expect.fail(skip);
      if (skip) ctx.skip(skip);
    };

    const chroot = (...args: string[]): SpawnSyncReturns<string> =>
      spawnSync('chroot', [root, ...args], { encoding: 'utf8', env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin', LANG: 'C.UTF-8' }, timeout: SLOW });
    const ok = (r: SpawnSyncReturns<string>) => {
      expect(r.status, `${r.error ?? ''}\n${r.stdout}\n${r.stderr}`).toBe(0);
      return r.stdout;
    };

    beforeAll(() => {
      try {
        out = mkdtempSync(join(tmpdir(), `relaybox-deb-${arch}-`));
        deb = buildTestDeb(out, arch);
        const made = freshDebianRoot(arch, EXTRA[arch]);
        if ('skip' in made) {
          skip = made.skip;
          return;
        }
        ({ dir: root, cleanup } = made);
        copyFileSync(deb, join(root, 'tmp/relaybox.deb'));
      } catch (e) {
        setupError = e;
      }
    }, 30 * 60_000);
    afterAll(() => {
      cleanup();
      if (out) rmSync(out, { recursive: true, force: true });
    }, 5 * 60_000); // removing a Debian root takes a while on a busy machine

    it(`is for ${arch}: the runtime and the addon are ${foreign.qemu} ELF files`, () => {
      if (setupError) throw setupError;
      const info = spawnSync('dpkg-deb', ['-I', deb], { encoding: 'utf8' }).stdout;
      expect(deb).toMatch(new RegExp(`relaybox_\\d+\\.\\d+\\.\\d+-1_${arch}\\.deb$`));
      expect(info).toMatch(new RegExp(`^ Architecture: ${arch}$`, 'm'));
      const depends = /^ Depends: (.*)$/m.exec(info)![1]!.split(', ');
      expect(depends.map((d) => d.split(' ')[0])).toEqual(foreign.depends);
      expect(depends.slice(1).every((d) => / \(>= [\d.]+\)$/.test(d)), depends.join(', ')).toBe(true);
      const dir = tempDir();
      ok(spawnSync('dpkg-deb', ['-x', deb, dir], { encoding: 'utf8' }));
      const lib = join(dir, 'usr/lib/relaybox');
      for (const bin of ['node/bin/node', 'node_modules/better-sqlite3/build/Release/better_sqlite3.node']) {
        const head = readFileSync(join(lib, bin)).subarray(0, 20);
        expect(head.subarray(0, 4).toString('latin1'), bin).toBe('\x7fELF');
        expect(head.readUInt16LE(18), bin).toBe(foreign.machine);
        if (has('file')) expect(spawnSync('file', ['-b', join(lib, bin)], { encoding: 'utf8' }).stdout, bin).toMatch(foreign.file);
      }
    });

    it('installs with dpkg in the emulated root; check-config runs on the bundled runtime', (ctx) => {
      ready(ctx);
      const install = chroot('dpkg', '-i', '/tmp/relaybox.deb');
      ok(install);
      expect(install.stderr).not.toMatch(/error|warning/i);
      expect(ok(chroot('getent', 'passwd', 'relaybox'))).toMatch(/^relaybox:x:\d+:\d+::\/var\/lib\/relaybox:\/usr\/sbin\/nologin$/m);
      // process.arch proves the code really ran as arm under qemu, not on the host's Node.js.
      expect(ok(chroot('/usr/lib/relaybox/node/bin/node', '-p', 'process.arch')).trim()).toBe(arch === 'armhf' ? 'arm' : arch);
      const check = chroot('relaybox', 'check-config');
      expect(ok(check)).toContain('configuration ok');
      expect(check.stdout).toContain('upstream 1 outbox (file): file → /var/lib/relaybox/outbox');
    });

    it('serves: a message over SMTP from the host lands in the outbox; SIGTERM exits 0', async (ctx) => {
      ready(ctx);
      const served = await serveInRoot(root, SLOW - 60_000);
      try {
        const reply = await sendMail(served.port, { to: ['someone@example.com'], subject: `from a scanner, via ${arch}` });
        expect(reply.response).toMatch(/^250 /);
        const outbox = join(root, 'var/lib/relaybox/outbox');
        const file = await waitFor(() => existsSync(outbox) && readdirSync(outbox).find((f) => f.endsWith('.eml')), 120_000, 'the .eml');
        expect(readFileSync(join(outbox, file), 'utf8')).toContain(`Subject: from a scanner, via ${arch}`);
      } finally {
        expect(await served.stop(), served.lines.join('\n')).toBe(0);
      }
    });
  });
}
