import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { constants, existsSync, statSync } from 'node:fs';
import { access, statfs, unlink, writeFile } from 'node:fs/promises';
import { userInfo } from 'node:os';
import { dirname, join } from 'node:path';
import { isFqdn } from '../config/net.js';
import type { Config } from '../config/schema.js';
import type { DnsClient } from './dns.js';
import { errorText, fail, formatBytes, ok, warn, type Finding } from './report.js';

export async function checkHostname(config: Config, configFile: string, dns: DnsClient, timeoutMs: number): Promise<Finding[]> {
  const name = config.hostname;
  const fix = `set "hostname: relaybox.example.com" (a name in your domain) in ${configFile}`;
  if (!isFqdn(name)) {
    // The config refuses this outright with gmail-relay; other upstreams mostly cope, but a dotless
    // EHLO is what spam filters and Google's relay like least.
    return [warn('hostname', `"${name}" is not fully qualified; relaybox says it in EHLO and Message-IDs.`, fix)];
  }
  try {
    const addresses = await dns.addresses(name, timeoutMs);
    if (addresses.length === 0) {
      return [warn('hostname', `${name} is fully qualified but does not resolve (${dns.describe}).`, `add an A record for ${name} (or an /etc/hosts line); receivers trust an EHLO name that resolves`)];
    }
    return [ok('hostname', `${name} is fully qualified and resolves to ${addresses.slice(0, 3).join(', ')}`)];
  } catch (err) {
    return [warn('hostname', `${name}: the lookup failed: ${errorText(err)}`, 'check the DNS servers in /etc/resolv.conf')];
  }
}

/** Nothing that runs this code can predate the release it belongs to; a Pi without RTC boots in 1970. */
const EARLIEST = Date.parse('2025-06-01T00:00:00Z');

function releaseTime(): number {
  // package.json's mtime is when this relaybox was built or installed (dpkg keeps it).
  try {
    return statSync(new URL('../../package.json', import.meta.url)).mtimeMs;
  } catch {
    return 0;
  }
}

export type NtpState = 'yes' | 'no' | 'unknown';

/** `timedatectl show -p NTPSynchronized --value`; unknown without systemd (containers, chroots). */
export function ntpSynchronized(): Promise<NtpState> {
  return new Promise((resolve) => {
    execFile('timedatectl', ['show', '-p', 'NTPSynchronized', '--value'], { timeout: 3_000 }, (err, stdout) => {
      const value = String(stdout).trim();
      resolve(err ? 'unknown' : value === 'yes' ? 'yes' : value === 'no' ? 'no' : 'unknown');
    });
  });
}

export async function checkClock(now: number, ntp: () => Promise<NtpState>): Promise<Finding[]> {
  const shown = new Date(now).toISOString().replace(/\.\d{3}Z$/, 'Z');
  const floor = Math.max(EARLIEST, releaseTime());
  if (now < floor) {
    return [
      fail(
        'clock',
        `the clock says ${shown}, before this relaybox was even built: TLS certificates and OAuth tokens will be refused.`,
        'let the box reach an NTP server (UDP port 123 out; `sudo timedatectl set-ntp true`), or set it: sudo date -s "YYYY-MM-DD hh:mm"',
      ),
    ];
  }
  const state = await ntp();
  if (state === 'yes') return [ok('clock', `${shown}, synchronised by NTP`)];
  if (state === 'no') {
    return [warn('clock', `${shown}, but not synchronised by NTP; a drifting clock breaks OAuth and TLS sooner or later.`, 'sudo timedatectl set-ntp true, and allow UDP port 123 out')];
  }
  return [ok('clock', `${shown} is plausible (NTP state unknown: no timedatectl or no systemd here)`)];
}

/** The spool directory must exist (or be creatable) and be writable by whoever runs the service. */
export async function checkSpool(config: Config): Promise<Finding[]> {
  const dir = config.data_dir;
  const who = safeUser();
  if (!existsSync(dir)) {
    const parent = nearestExisting(dir);
    if (await writable(parent)) return [warn('spool', `${dir} does not exist yet; relaybox makes it at start.`, `sudo install -d -o relaybox -g relaybox -m 0750 ${dir}`)];
    return [fail('spool', `${dir} does not exist and ${parent} is not writable by ${who}.`, `sudo install -d -o relaybox -g relaybox -m 0750 ${dir}`)];
  }
  if (!statSync(dir).isDirectory()) return [fail('spool', `data_dir ${dir} is not a directory.`, `point data_dir at a directory, e.g. /var/lib/relaybox`)];
  const probe = join(dir, `.doctor-${process.pid}-${randomBytes(4).toString('hex')}`);
  try {
    await writeFile(probe, 'relaybox doctor\n', { flag: 'wx' });
    await unlink(probe);
  } catch (err) {
    return [fail('spool', `${dir} is not writable by ${who}: ${errorText(err)}.`, `sudo chown -R relaybox:relaybox ${dir}`)];
  }
  const db = join(dir, 'spool.db');
  const size = existsSync(db) ? statSync(db).size + sizeOr0(`${db}-wal`) : undefined;
  const fs = await statfs(dir);
  const free = fs.bavail * fs.bsize;
  const what = `${dir} writable by ${who}; ${size === undefined ? 'no spool.db yet' : `spool.db ${formatBytes(size)}`}; ${formatBytes(free)} free`;
  // A device sends up to max_message_bytes at once, and a backlog during an outage needs room.
  const needed = Math.max(256 * 1024 * 1024, 4 * config.smtp.max_message_bytes);
  if (free < config.smtp.max_message_bytes * 2) return [fail('spool', `${what}: not enough for one large scan.`, 'free disk space (journalctl --vacuum-size=50M, apt clean)')];
  if (free < needed) return [warn('spool', `${what}: little room for a backlog while an upstream is down.`, 'free disk space or use a larger card')];
  return [ok('spool', what)];
}

function sizeOr0(path: string): number {
  try {
    return statSync(path).size;
  } catch {
    return 0;
  }
}

export function nearestExisting(path: string): string {
  let dir = dirname(path);
  while (!existsSync(dir) && dir !== dirname(dir)) dir = dirname(dir);
  return dir;
}

export async function writable(path: string): Promise<boolean> {
  try {
    await access(path, constants.W_OK);
    return true;
  } catch {
    return false;
  }
}

function safeUser(): string {
  try {
    return userInfo().username;
  } catch {
    return `uid ${process.getuid?.() ?? '?'}`;
  }
}
