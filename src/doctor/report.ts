/** One line of `relaybox doctor`: what was checked, what was found and, when it is not OK, the fix. */
export interface Finding {
  level: 'OK' | 'WARN' | 'FAIL';
  /** What the line is about: `config`, `clock`, `upstream google`, `sender example.com`. */
  topic: string;
  message: string;
  fix?: string;
}

export const ok = (topic: string, message: string): Finding => ({ level: 'OK', topic, message });
export const warn = (topic: string, message: string, fix?: string): Finding => ({ level: 'WARN', topic, message, ...(fix ? { fix } : {}) });
export const fail = (topic: string, message: string, fix?: string): Finding => ({ level: 'FAIL', topic, message, ...(fix ? { fix } : {}) });

/** `WARN clock: not synchronised by NTP. Fix: sudo timedatectl set-ntp true` — one line each. */
export function formatFinding(f: Finding): string {
  const fix = f.fix ? `${/[.!?]$/.test(f.message) ? '' : '.'} Fix: ${f.fix}` : '';
  return `${f.level.padEnd(4)} ${f.topic}: ${f.message}${fix}`;
}

export function summary(findings: readonly Finding[]): string {
  const count = (level: Finding['level']) => findings.filter((f) => f.level === level).length;
  const fails = count('FAIL');
  const warns = count('WARN');
  return `${fails} failed, ${warns} warning${warns === 1 ? '' : 's'}, ${count('OK')} ok`;
}

/** Bytes for people: `1.2 MB`, `15.3 GB`. */
export function formatBytes(bytes: number): string {
  const units = ['bytes', 'kB', 'MB', 'GB', 'TB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1000 && unit < units.length - 1) {
    value /= 1000;
    unit += 1;
  }
  return unit === 0 ? `${value} bytes` : `${value.toFixed(1)} ${units[unit]}`;
}

/** The message of an error as a person reads it: the code when Node gives one. */
export function errorText(err: unknown): string {
  const e = err as NodeJS.ErrnoException;
  if (e?.code && e.message && !e.message.includes(e.code)) return `${e.message} (${e.code})`;
  return e?.message ?? String(err);
}
