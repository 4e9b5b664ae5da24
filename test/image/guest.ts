import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createWriteStream, readFileSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';

/**
 * A relaybox card image booted under qemu-system-aarch64 (machine `virt`, TCG: there is no KVM
 * here) with the image's own kernel, initrd and kernel command line. The guest reaches nothing:
 * user networking with restrict=on, and only host ports on 127.0.0.1 forwarded into it.
 */

/** Where the FAT boot partition starts in the image (deploy/image/assemble.sh). */
const BOOT_OFFSET = 4 * 1024 * 1024;

function run(cmd: string, args: string[], input?: string): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8', input, maxBuffer: 64 * 1024 * 1024 });
  if (r.error) throw new Error(`${cmd}: ${r.error.message}`);
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} exited ${r.status}: ${r.stderr.trim()}`);
  return r.stdout;
}

/** Files on the card's boot partition, read and written from the host as a PC would (mtools). */
export class BootPartition {
  constructor(private readonly disk: string) {}
  private get image(): string {
    return `${this.disk}@@${BOOT_OFFSET}`;
  }
  list(): string[] {
    return run('mdir', ['-b', '-i', this.image, '::/']).split('\n').map((l) => l.replace(/^::\//, '').trim()).filter(Boolean);
  }
  read(name: string): string | undefined {
    const r = spawnSync('mtype', ['-i', this.image, `::/${name}`], { encoding: 'utf8' });
    return r.status === 0 ? r.stdout : undefined;
  }
  write(name: string, text: string, scratch: string): void {
    const file = join(scratch, `boot-${name}`);
    writeFileSync(file, text);
    run('mcopy', ['-o', '-i', this.image, file, `::/${name}`]);
  }
  copyOut(name: string, dest: string): void {
    run('mcopy', ['-o', '-i', this.image, `::/${name}`, dest]);
  }
}

/** Resolves with the SMTP greeting when one arrives on the port within `ms`, else undefined. */
function greeting(port: number, ms: number): Promise<string | undefined> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    let data = '';
    const done = (value: string | undefined) => {
      clearTimeout(timer);
      socket.destroy();
      resolve(value);
    };
    const timer = setTimeout(() => done(undefined), ms);
    socket.on('data', (chunk) => {
      data += chunk.toString();
      if (data.includes('\n')) done(data.startsWith('220') ? data.trim() : undefined);
    });
    socket.on('error', () => done(undefined));
    socket.on('close', () => done(undefined));
  });
}

export interface Ports {
  smtp: number;
  http: number;
  ssh: number;
}

export interface GuestOptions {
  disk: string;
  /** Holds vmlinuz, initrd.img and the console log. */
  scratch: string;
  ports: Ports;
  user: string;
  password: string;
}

export class Guest {
  private qemu: ChildProcess | undefined;
  private exit: Promise<void> | undefined;
  private startedAt = 0;
  readonly boot: BootPartition;
  constructor(private readonly options: GuestOptions) {
    this.boot = new BootPartition(options.disk);
  }

  /** The kernel, initrd and command line the firmware of a Pi would use, taken off the card. */
  private kernel(): { kernel: string; initrd: string; append: string } {
    const names = this.boot.list();
    const pick = (prefix: string) => {
      const found = names.filter((n) => n.startsWith(prefix)).sort().at(-1);
      if (!found) throw new Error(`no ${prefix}* on the boot partition: ${names.join(' ')}`);
      return found;
    };
    const kernel = join(this.options.scratch, 'vmlinuz');
    const initrd = join(this.options.scratch, 'initrd.img');
    this.boot.copyOut(pick('vmlinuz'), kernel);
    this.boot.copyOut(pick('initrd.img'), initrd);
    // QEMU's virt machine has a PL011 UART (ttyAMA0) where a Pi has ttyS1.
    const cmdline = (this.boot.read('cmdline.txt') ?? '').trim().split(/\s+/).filter((w) => !w.startsWith('console='));
    return { kernel, initrd, append: ['console=ttyAMA0', ...cmdline].join(' ') };
  }

  get consoleLog(): string {
    return join(this.options.scratch, 'console.log');
  }

  start(): void {
    const { kernel, initrd, append } = this.kernel();
    const { ports, disk } = this.options;
    const forwards = [`hostfwd=tcp:127.0.0.1:${ports.smtp}-:25`, `hostfwd=tcp:127.0.0.1:${ports.http}-:8025`, `hostfwd=tcp:127.0.0.1:${ports.ssh}-:22`];
    const args = [
      '-M', 'virt', '-cpu', 'cortex-a72', '-smp', '2', '-m', '1024',
      '-kernel', kernel, '-initrd', initrd, '-append', append,
      // The card: writes reach the image file when the guest flushes, as they reach the SD card.
      '-drive', `file=${disk},format=raw,if=none,id=card,cache=writeback`, '-device', 'virtio-blk-pci,drive=card',
      // romfile= : no PXE option ROM (ipxe-qemu) is needed to boot from the kernel directly.
      '-netdev', `user,id=lan,restrict=on,${forwards.join(',')}`, '-device', 'virtio-net-pci,netdev=lan,romfile=',
      '-display', 'none', '-monitor', 'none', '-serial', 'stdio', '-no-reboot',
    ];
    const log = createWriteStream(this.consoleLog, { flags: 'a' });
    this.qemu = spawn('qemu-system-aarch64', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    this.qemu.stdout!.pipe(log);
    this.qemu.stderr!.pipe(log);
    this.exit = new Promise((resolve) => this.qemu!.once('exit', () => resolve()));
    this.startedAt = Date.now();
  }

  /** Seconds from power-on to relaybox's SMTP greeting on the forwarded port. */
  async waitForBanner(timeoutMs: number): Promise<{ seconds: number; banner: string }> {
    const end = this.startedAt + timeoutMs;
    while (Date.now() < end) {
      if (this.qemu?.exitCode !== null) throw new Error(`QEMU exited (${this.qemu?.exitCode}); console:\n${this.tail()}`);
      const banner = await greeting(this.options.ports.smtp, 5_000);
      if (banner) return { seconds: (Date.now() - this.startedAt) / 1000, banner };
      await new Promise((r) => setTimeout(r, 2_000));
    }
    throw new Error(`no SMTP greeting within ${timeoutMs / 1000} s of power-on; console:\n${this.tail()}`);
  }

  tail(lines = 60): string {
    try {
      return readFileSync(this.consoleLog, 'utf8').split('\n').slice(-lines).join('\n');
    } catch {
      return '(no console output)';
    }
  }

  /** A command in the guest over SSH as the user made by userconf.txt; `sudo` runs it as root. */
  ssh(command: string, options: { sudo?: boolean; timeoutMs?: number } = {}): { code: number | null; out: string; err: string } {
    const { user, password, ports } = this.options;
    const remote = options.sudo ? `sudo -S -p '' sh -c '${command.replace(/'/g, `'\\''`)}'` : command;
    const r = spawnSync(
      'sshpass',
      ['-e', 'ssh', '-p', String(ports.ssh), '-o', 'StrictHostKeyChecking=no', '-o', 'UserKnownHostsFile=/dev/null',
        '-o', 'LogLevel=ERROR', '-o', 'ConnectTimeout=30', '-o', 'PubkeyAuthentication=no', `${user}@127.0.0.1`, remote],
      { encoding: 'utf8', env: { ...process.env, SSHPASS: password }, input: options.sudo ? `${password}\n` : '', timeout: options.timeoutMs ?? 120_000 },
    );
    return { code: r.status, out: r.stdout ?? '', err: (r.stderr ?? '') + (r.error ? String(r.error) : '') };
  }

  /** As ssh(), failing with the guest's words unless the command succeeds. */
  must(command: string, options: { sudo?: boolean; timeoutMs?: number } = {}): string {
    const r = this.ssh(command, options);
    if (r.code !== 0) throw new Error(`in the guest: ${command} → exit ${r.code}\n${r.out}\n${r.err}`);
    return r.out;
  }

  /** Pulls the plug: QEMU is killed, nothing the guest had not flushed reaches the card. */
  async powerCut(): Promise<void> {
    this.qemu?.kill('SIGKILL');
    await this.exit;
  }

  /** A clean shutdown through systemd; pulls the plug if it takes longer than `timeoutMs`. */
  async powerOff(timeoutMs = 180_000): Promise<void> {
    if (!this.qemu || this.qemu.exitCode !== null) return;
    this.ssh('systemctl poweroff', { sudo: true, timeoutMs: 30_000 });
    const timer = setTimeout(() => this.qemu?.kill('SIGKILL'), timeoutMs);
    await this.exit;
    clearTimeout(timer);
  }
}
