import { execFileSync, spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { createHash } from 'node:crypto';
import { join, relative } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildTestDeb, FOREIGN, HOST_ARCH } from './helpers/debianRoot.js';
import { tempDir } from './helpers/tmp.js';

const REPO = join(import.meta.dirname, '..');
const UNIT = join(REPO, 'systemd/relaybox.service');
const has = (cmd: string) => spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;
const SYSTEMD_ANALYZE = has('systemd-analyze');
const DPKG = has('dpkg-deb') && has('dpkg');

// A skipped group says why in its name, so that the reason shows in the test report.
describe.skipIf(!SYSTEMD_ANALYZE)(SYSTEMD_ANALYZE ? 'systemd unit (systemd-analyze)' : 'systemd unit: SKIPPED, systemd-analyze is not installed (apt-get install systemd)', () => {
  it('passes systemd-analyze verify', () => {
    // verify checks that ExecStart binaries exist and that the targets it names are known: a root
    // with the host's units, stand-ins for relaybox's two commands, and the unit.
    const root = tempDir();
    mkdirSync(join(root, 'usr/bin'), { recursive: true });
    mkdirSync(join(root, 'usr/lib/relaybox'), { recursive: true });
    for (const f of ['usr/bin/relaybox', 'usr/lib/relaybox/first-boot.sh']) writeFileSync(join(root, f), '#!/bin/sh\n', { mode: 0o755 });
    cpSync('/lib/systemd/system', join(root, 'lib/systemd/system'), { recursive: true, verbatimSymlinks: true });
    cpSync(UNIT, join(root, 'lib/systemd/system/relaybox.service'));
    const run = spawnSync('systemd-analyze', ['verify', '--man=no', `--root=${root}`, 'relaybox.service'], { encoding: 'utf8' });
    expect(run.stderr.trim()).toBe('');
    expect(run.status).toBe(0);
  });

  it('rates "OK" or better in systemd-analyze security', () => {
    const run = spawnSync('systemd-analyze', ['security', '--offline=yes', '--no-pager', UNIT], { encoding: 'utf8' });
    const m = /Overall exposure level for relaybox\.service: (\d+\.\d) (\w+)/.exec(run.stdout);
    expect(m, run.stdout + run.stderr).not.toBeNull();
    expect(['OK', 'SAFE', 'PERFECT']).toContain(m![2]);
    expect(Number(m![1])).toBeLessThan(2.0); // 1.6 when written; a regression shows here
  });
});

describe('systemd unit (as text)', () => {
  const unit = readFileSync(UNIT, 'utf8');
  it('runs the packaged binary as relaybox with one capability, drains on SIGTERM and keeps JIT memory executable', () => {
    expect(unit).toMatch(/^ExecStart=\/usr\/bin\/relaybox serve --config \/etc\/relaybox\/relaybox\.yaml$/m);
    expect(unit).toMatch(/^ExecStartPre=\+\/usr\/lib\/relaybox\/first-boot\.sh$/m);
    expect(unit).toMatch(/^User=relaybox$/m);
    expect(unit).toMatch(/^StateDirectory=relaybox$/m);
    expect(unit).toMatch(/^CapabilityBoundingSet=CAP_NET_BIND_SERVICE$/m);
    expect(unit).toMatch(/^Restart=on-failure$/m);
    // Above delivery.shutdown_grace's default (10s) so that a drain is never cut short.
    expect(Number(/^TimeoutStopSec=(\d+)$/m.exec(unit)![1])).toBeGreaterThan(10);
    expect(unit).toMatch(/^MemoryDenyWriteExecute=no$/m);
  });
});

/** path → mode, size, mtime and content hash of every file under dir: a run that changes nothing keeps it. */
function snapshot(dir: string): Map<string, string> {
  const out = new Map<string, string>();
  const walk = (d: string) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      const s = statSync(p);
      const hash = e.isFile() ? createHash('sha1').update(readFileSync(p)).digest('hex') : '';
      out.set(relative(dir, p), `${s.mode.toString(8)} ${s.size} ${s.mtimeMs} ${hash}`);
      if (e.isDirectory()) walk(p);
    }
  };
  walk(dir);
  return out;
}

describe.skipIf(!DPKG)(DPKG ? 'install.sh and the .deb' : 'install.sh and the .deb: SKIPPED, dpkg is not installed (not a Debian machine)', () => {
  it('install.sh lays out the tree, changes nothing when run twice and keeps an edited config', () => {
    const dest = tempDir();
    const install = () => execFileSync(join(REPO, 'deploy/install.sh'), [], { env: { ...process.env, DESTDIR: dest }, encoding: 'utf8', timeout: 120_000 });
    const first = install();
    expect(first).toContain(`installed the example configuration ${dest}/etc/relaybox/relaybox.yaml`);
    const conf = join(dest, 'etc/relaybox/relaybox.yaml');
    writeFileSync(conf, `${readFileSync(conf, 'utf8')}# edited\n`);
    const before = snapshot(dest);
    const second = install();
    expect(second).toContain('is up to date');
    expect(second).toContain('nothing changed');
    expect(snapshot(dest)).toEqual(before);
    // As root on a machine where the package was ever installed, the wrapper would become the
    // relaybox user, who cannot enter this test's private directory; the switch has its own test.
    const env = { ...process.env, RELAYBOX_HOME: join(dest, 'usr/lib/relaybox'), RELAYBOX_AS_ROOT: '1' };
    const version = spawnSync(join(dest, 'usr/bin/relaybox'), ['--version'], { env, encoding: 'utf8' });
    expect(version.stderr).toBe('');
    expect(version.stdout.trim()).toBe(JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8')).version);
    expect(existsSync(join(dest, 'usr/lib/relaybox/node_modules/vitest'))).toBe(false);
  }, 240_000);

  it('build-deb.sh refuses an unknown architecture, and names the Debian package of a missing cross compiler, in one line', () => {
    const build = (args: string[], env: Record<string, string> = {}) =>
      spawnSync(join(REPO, 'deploy/build-deb.sh'), [...args, tempDir()], { encoding: 'utf8', env: { ...process.env, ...env } });
    const mips = build(['--arch', 'mips']);
    expect(mips.status).toBe(1);
    expect(mips.stderr).toBe('build-deb: no Node.js build on the npm registry for mips\n');
    // A PATH with only what the script runs before its check: no cross g++ on it.
    const bin = tempDir();
    for (const tool of ['bash', 'dpkg', 'dirname', 'realpath']) symlinkSync(execFileSync('sh', ['-c', `command -v ${tool}`], { encoding: 'utf8' }).trim(), join(bin, tool));
    const arch = HOST_ARCH === 'arm64' ? 'armhf' : 'arm64';
    const triplet = FOREIGN[arch]!.triplet;
    const arm = build([`--arch=${arch}`], { PATH: bin });
    expect(arm.status).toBe(1);
    expect(arm.stderr).toBe(`build-deb: ${arch} needs ${triplet}-g++: apt-get install g++-${triplet}\n`);
  });

  describe('make deb', () => {
    let deb = '';
    let info = '';
    let contents = '';
    let out = '';
    afterAll(() => rmSync(out, { recursive: true, force: true }));
    beforeAll(() => {
      out = mkdtempSync(join(tmpdir(), 'relaybox-deb-'));
      deb = buildTestDeb(out);
      info = execFileSync('dpkg-deb', ['-I', deb], { encoding: 'utf8' });
      contents = execFileSync('dpkg-deb', ['-c', deb], { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
    }, 240_000);

    it('is for this architecture, depends on nothing but base libraries and adduser, and keeps the config as a conffile', () => {
      const arch = execFileSync('dpkg', ['--print-architecture'], { encoding: 'utf8' }).trim();
      expect(deb).toMatch(new RegExp(`relaybox_\\d+\\.\\d+\\.\\d+-1_${arch}\\.deb$`));
      expect(info).toMatch(new RegExp(`^ Architecture: ${arch}$`, 'm'));
      const depends = /^ Depends: (.*)$/m.exec(info)![1]!.split(', ').map((d) => d.split(' ')[0]);
      expect(depends.sort()).toEqual(['adduser', 'libc6', 'libgcc-s1', 'libstdc++6']);
      const conffiles = execFileSync('sh', ['-c', `dpkg-deb --ctrl-tarfile '${deb}' | tar -xO ./conffiles`], { encoding: 'utf8' });
      expect(conffiles.trim()).toBe('/etc/relaybox/relaybox.yaml');
    });

    it('holds the wrapper, the unit, the runtime, production modules only and a 0640 example config', () => {
      const entry = (path: string) => contents.split('\n').find((l) => l.endsWith(` ./${path}`)) ?? '';
      expect(entry('usr/bin/relaybox')).toMatch(/^-rwxr-xr-x root\/root/);
      expect(entry('lib/systemd/system/relaybox.service')).toMatch(/^-rw-r--r-- root\/root/);
      expect(entry('usr/lib/relaybox/node/bin/node')).toMatch(/^-rwxr-xr-x root\/root/);
      expect(entry('usr/lib/relaybox/first-boot.sh')).toMatch(/^-rwxr-xr-x/);
      expect(entry('usr/lib/relaybox/dist/cli.js')).not.toBe('');
      expect(entry('usr/lib/relaybox/node_modules/better-sqlite3/build/Release/better_sqlite3.node')).not.toBe('');
      expect(entry('etc/relaybox/relaybox.yaml')).toMatch(/^-rw-r----- root\/root/);
      expect(entry('usr/share/doc/relaybox/copyright')).not.toBe('');
      for (const dev of ['vitest', 'typescript', 'playwright-core', 'tsx']) expect(contents).not.toContain(`/node_modules/${dev}/`);
      // Nothing only an install needs (better-sqlite3's prebuild-install and its tree), no tool markers or caches.
      for (const buildOnly of ['prebuild-install', 'node-abi', 'tar-fs', 'simple-get', '.vite', '.vite-temp', '.installed']) {
        expect(contents, buildOnly).not.toMatch(new RegExp(`/node_modules/${buildOnly.replace('.', '\\.')}(/|$)`, 'm'));
      }
      for (const runtime of ['mqtt', 'nodemailer', 'tar', 'smtp-server']) expect(contents, runtime).toContain(`/node_modules/${runtime}/package.json`);
    });

    it('carries a runtime for this machine with the Node version the addon was built for', () => {
      const dir = tempDir();
      execFileSync('dpkg-deb', ['-x', deb, dir]);
      const node = join(dir, 'usr/lib/relaybox/node/bin/node');
      const elf = readFileSync(node).subarray(0, 20);
      expect(elf.subarray(0, 4).toString('latin1')).toBe('\x7fELF');
      const machine = elf.readUInt16LE(18);
      expect({ x64: 0x3e, arm64: 0xb7, arm: 0x28 }[process.arch as string]).toBe(machine);
      expect(execFileSync(node, ['-p', 'process.version'], { encoding: 'utf8' }).trim()).toBe(process.version);
      const run = spawnSync(join(dir, 'usr/bin/relaybox'), ['check-config', '--config', join(REPO, 'deploy/relaybox.yaml')], {
        env: { ...process.env, RELAYBOX_HOME: join(dir, 'usr/lib/relaybox'), RELAYBOX_AS_ROOT: '1' },
        encoding: 'utf8',
      });
      expect(run.stderr).toBe('');
      expect(run.stdout).toContain('upstream 1 outbox (file): file → /var/lib/relaybox/outbox');
    }, 60_000);
  });
});

