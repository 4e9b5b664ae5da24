import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sendMail } from '../helpers/relay.js';
import { freePort } from '../helpers/mosquitto.js';
import { Guest } from './guest.js';

/**
 * `make image-test`: the card image as a person uses it, booted under QEMU. A relaybox.yaml is put
 * on the boot partition from the host as from a PC, with an `ssh` file and a userconf.txt; then,
 * from the host: relaybox runs under real systemd with its hardening in force, takes mail on the
 * forwarded SMTP port and delivers it (read back through the console API), sits idle with little
 * memory and almost no writes to the card, loses nothing answered 250 when the power is cut, and on
 * the next boot refuses a broken relaybox.yaml on the card with relaybox-error.txt beside it.
 * Under TCG emulation a boot takes minutes: every wait is for an event, with room to spare.
 */
const repo = join(import.meta.dirname, '../..');
const version = JSON.parse(readFileSync(join(repo, 'package.json'), 'utf8')).version as string;
const IMAGE = process.env.RELAYBOX_IMAGE ?? join(repo, `var/image/relaybox-${version}-arm64.img.xz`);
const IDLE_SECONDS = Number(process.env.RELAYBOX_IMAGE_IDLE_S ?? 600);
const BOOT_MS = 15 * 60_000;
const TOKEN = 'image-test-token-5d1e8a';
const USER = 'admin';
const PASSWORD = 'image-test-password';
const UNIT = join(repo, 'systemd/relaybox.service');

const configA = `# put on the card by the image test
hostname: relaybox.test.example
data_dir: /var/lib/relaybox
smtp:
  listen: ["0.0.0.0:25"]
  allow_networks: ["127.0.0.0/8", "::1/128", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"]
  tls: { mode: starttls, cert: auto }
upstreams:
  - name: outbox
    type: file
    dir: /var/lib/relaybox/outbox
http:
  listen: "0.0.0.0:8025"
  admin_token: "${TOKEN}"
`;
const brokenConfig = configA.replace('listen: ["0.0.0.0:25"]', 'listen: ["0.0.0.0:25x"]');

const results: Record<string, string> = {};
function report(name: string, value: string): void {
  results[name] = value;
  console.log(`image-test: ${name}: ${value}`);
}

function missing(): string | undefined {
  const tools: [string, string][] = [['qemu-system-aarch64', 'qemu-system-arm'], ['mcopy', 'mtools'], ['sshpass', 'sshpass'], ['ssh', 'openssh-client'], ['openssl', 'openssl'], ['xz', 'xz-utils']];
  for (const [tool, pkg] of tools) if (spawnSync('sh', ['-c', `command -v ${tool}`]).status !== 0) return `${tool} is missing (apt-get install ${pkg})`;
  if (!existsSync(IMAGE)) return `no image at ${IMAGE} (make image)`;
  return undefined;
}

async function api(port: number, path: string, token: string | null = TOKEN): Promise<{ status: number; body: any }> {
  const res = await fetch(`http://127.0.0.1:${port}${path}`, { headers: token ? { authorization: `Bearer ${token}` } : {} });
  const text = await res.text();
  let body: unknown = text;
  try {
    body = JSON.parse(text);
  } catch {}
  return { status: res.status, body };
}

async function until<T>(what: string, ms: number, probe: () => Promise<T | undefined>): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const value = await probe().catch(() => undefined);
    if (value !== undefined) return value;
    if (Date.now() > end) throw new Error(`timed out after ${ms / 1000} s waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 1000));
  }
}

function sectorsWritten(diskstats: string): number {
  const line = diskstats.split('\n').find((l) => l.trim().split(/\s+/)[2] === 'vda');
  if (!line) throw new Error(`no vda in /proc/diskstats:\n${diskstats}`);
  return Number(line.trim().split(/\s+/)[9]);
}

describe('the card image, booted under QEMU', { timeout: BOOT_MS }, () => {
  let scratch = '';
  let guest: Guest;
  let ports = { smtp: 0, http: 0, ssh: 0 };
  const cutIds: number[] = [];

  beforeAll(async () => {
    const why = missing();
    if (why) throw new Error(`image test cannot run: ${why}`);
    scratch = mkdtempSync(join(process.env.RELAYBOX_IMAGE_SCRATCH ?? tmpdir(), 'relaybox-image-test-'));
    const disk = join(scratch, 'card.img');
    expect(spawnSync('sh', ['-c', `xz -dc '${IMAGE}' > '${disk}'`]).status).toBe(0);
    // A 4 GB card: the root file system must grow to it on the first boot.
    expect(spawnSync('truncate', ['-s', '4G', disk]).status).toBe(0);
    ports = { smtp: await freePort(), http: await freePort(), ssh: await freePort() };
    guest = new Guest({ disk, scratch, ports, user: USER, password: PASSWORD });
    const hash = spawnSync('openssl', ['passwd', '-6', PASSWORD], { encoding: 'utf8' }).stdout.trim();
    guest.boot.write('relaybox.yaml', configA, scratch);
    guest.boot.write('ssh', '', scratch);
    guest.boot.write('userconf.txt', `${USER}:${hash}\n`, scratch);
  }, 300_000);

  afterAll(async () => {
    await guest?.powerCut();
    writeFileSync(join(repo, 'var/image/image-test.txt'), Object.entries(results).map(([k, v]) => `${k}: ${v}\n`).join(''));
    if (scratch && !process.env.RELAYBOX_IMAGE_KEEP) rmSync(scratch, { recursive: true, force: true });
  }, 300_000);

  it('boots to relaybox\'s SMTP greeting on the forwarded port', async () => {
    const size = statSync(IMAGE).size;
    report('image size (xz)', `${(size / 1e6).toFixed(0)} MB`);
    expect(size).toBeLessThanOrEqual(350e6);
    guest.start();
    const { seconds, banner } = await guest.waitForBanner(BOOT_MS - 60_000);
    expect(banner).toMatch(/^220 relaybox\.test\.example /);
    report('first boot, power-on to SMTP banner (TCG emulation, no KVM)', `${seconds.toFixed(0)} s`);
    // SSH was asked for from the boot partition; it may come up a moment after relaybox.
    await until('SSH', 120_000, async () => (guest.ssh('true').code === 0 ? true : undefined));
  });

  it('runs relaybox under systemd with every hardening directive of the unit in force', () => {
    expect(guest.must('systemctl is-active relaybox').trim()).toBe('active');
    const live = guest.must('systemd-analyze security --no-pager relaybox.service', { sudo: true });
    const exposure = /Overall exposure level for relaybox\.service: ([\d.]+)/.exec(live);
    expect(exposure, live).not.toBeNull();
    expect(Number(exposure![1])).toBeLessThanOrEqual(2.0);
    report('systemd-analyze security relaybox (in the guest)', exposure![0].replace(/^.*: /, ''));
    // What the unit file promises (analysed offline on the host) is what the running service has.
    const offline = spawnSync('systemd-analyze', ['security', '--offline=yes', '--no-pager', UNIT], { encoding: 'utf8' }).stdout;
    const passed = (text: string) => new Set(text.split('\n').filter((l) => l.startsWith('✓')).map((l) => l.replace(/\s+/g, ' ').trim()));
    const missingInGuest = [...passed(offline)].filter((line) => !passed(live).has(line));
    expect(missingInGuest, live).toEqual([]);
    const pid = guest.must('systemctl show -p MainPID --value relaybox').trim();
    const status = guest.must(`cat /proc/${pid}/status`, { sudo: true });
    expect(status).toMatch(/^NoNewPrivs:\s+1$/m);
    expect(status).toMatch(/^Seccomp:\s+2$/m);
    expect(guest.must(`ps -o user= -p ${pid}`).trim()).toBe('relaybox');
  });

  it('is the appliance the README promises: config taken, card grown, hostname, clock, mDNS, SD-card care', () => {
    expect(guest.boot.read('relaybox.yaml')).toBeUndefined(); // moved off the card (it may hold secrets)
    expect(guest.must('cat /etc/relaybox/relaybox.yaml', { sudo: true })).toBe(configA);
    expect(guest.must('stat -c "%a %U:%G" /etc/relaybox/relaybox.yaml').trim()).toBe('640 root:relaybox');
    expect(guest.must('hostname').trim()).toBe('relaybox');
    const size = Number(guest.must('df -B1 --output=size /').trim().split('\n').at(-1));
    expect(size).toBeGreaterThan(3.5e9);
    for (const unit of ['systemd-timesyncd', 'avahi-daemon', 'systemd-networkd', 'ssh']) expect(guest.must(`systemctl is-active ${unit}`).trim(), unit).toBe('active');
    expect(guest.must('findmnt -n -o OPTIONS /')).toMatch(/noatime/);
    expect(guest.must('cat /proc/swaps').trim().split('\n')).toHaveLength(1); // the header: no swap
    expect(guest.must('journalctl --header | grep "^File path"', { sudo: true })).toMatch(/\/run\/log\/journal/);
    // Nobody logs in without a password of their own: root is locked, the only password is userconf.txt's.
    const shadow = guest.must('cat /etc/shadow', { sudo: true });
    expect(shadow).toMatch(/^root:[!*]/m);
    expect(shadow.split('\n').filter((l) => /^[^:]+:\$/.test(l)).map((l) => l.split(':')[0])).toEqual([USER]);
    expect(guest.must('ls /etc/ssh').split('\n').filter((f) => f.startsWith('ssh_host_')).length).toBeGreaterThan(0);
  });

  it('takes a message on the forwarded SMTP port and delivers it; the console API needs the token', async () => {
    const reply = await sendMail(ports.smtp, { from: 'scanner@corp.example', to: ['someone@example.com'], subject: 'scan from the image test' });
    const id = Number(/queued as (\d+)/.exec(reply.response)?.[1]);
    expect(reply.response).toMatch(/^250 /);
    expect((await api(ports.http, `/api/messages/${id}`, null)).status).toBe(401);
    const message = await until('delivery', 120_000, async () => {
      const { body } = await api(ports.http, `/api/messages/${id}`);
      return body?.state === 'delivered' ? body : undefined;
    });
    expect(JSON.stringify(message)).toContain('someone@example.com');
    expect(guest.must('ls /var/lib/relaybox/outbox', { sudo: true })).toMatch(new RegExp(`-${id}\\.eml`));
  });

  it(`is quiet when idle: memory and bytes written to the card per hour (${IDLE_SECONDS} s measured)`, () => {
    // One SSH session for the whole window: its own login writes settle in the first 40 s.
    const out = guest.must(`sleep 40; cat /proc/diskstats; echo ===; sleep ${IDLE_SECONDS}; cat /proc/diskstats`, { timeoutMs: (IDLE_SECONDS + 120) * 1000 });
    const [before, after] = out.split('===');
    const bytes = (sectorsWritten(after!) - sectorsWritten(before!)) * 512;
    const perHour = (bytes * 3600) / IDLE_SECONDS;
    const pid = guest.must('systemctl show -p MainPID --value relaybox').trim();
    const rss = Number(/VmRSS:\s+(\d+)/.exec(guest.must(`cat /proc/${pid}/status`, { sudo: true }))?.[1]) * 1024;
    report('idle RSS of relaybox in the guest', `${(rss / 2 ** 20).toFixed(1)} MiB`);
    report('written to the card while idle', `${(perHour / 1e6).toFixed(3)} MB/hour (${bytes} bytes in ${IDLE_SECONDS} s)`);
    expect(perHour).toBeLessThanOrEqual(1e6);
  });

  it('loses nothing answered 250 when the power is cut right after', async () => {
    for (let i = 0; i < 20; i++) {
      const reply = await sendMail(ports.smtp, { to: [`cut-${i}@example.com`], subject: `before the power cut ${i}` });
      expect(reply.response).toMatch(/^250 /);
      cutIds.push(Number(/queued as (\d+)/.exec(reply.response)?.[1]));
    }
    await guest.powerCut();
  });

  it('on the next boot, a broken relaybox.yaml on the card is not taken: the old one runs, relaybox-error.txt says why', async () => {
    guest.boot.write('relaybox.yaml', brokenConfig, scratch);
    guest.start();
    const { seconds } = await guest.waitForBanner(BOOT_MS - 60_000);
    report('boot after a power cut, power-on to SMTP banner', `${seconds.toFixed(0)} s`);
    await until('SSH', 120_000, async () => (guest.ssh('true').code === 0 ? true : undefined));
    expect(guest.must('systemctl is-active relaybox').trim()).toBe('active');
    expect(guest.must('cat /etc/relaybox/relaybox.yaml', { sudo: true })).toBe(configA);
    const error = guest.must('cat /boot/firmware/relaybox-error.txt', { sudo: true });
    expect(error).toContain('smtp.listen[0]');
    expect(error).toContain('25x');
    expect((await api(ports.http, '/api/messages?limit=1')).status).toBe(200); // still config A's token
  });

  it('delivers every message that was answered 250 before the power cut', async () => {
    for (const id of cutIds) {
      await until(`message ${id} delivered`, 120_000, async () => {
        const { body } = await api(ports.http, `/api/messages/${id}`);
        return body?.state === 'delivered' ? true : undefined;
      });
    }
    const outbox = guest.must('ls /var/lib/relaybox/outbox', { sudo: true });
    for (const id of cutIds) expect(outbox).toMatch(new RegExp(`-${id}\\.eml`));
    report('messages answered 250 just before the power cut, delivered after it', `${cutIds.length} of ${cutIds.length}`);
    await guest.powerOff();
  });
});
