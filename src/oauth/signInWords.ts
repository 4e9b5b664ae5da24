/** The languages the sign-in words exist in: the console's two (en, ja). */
export type SignInLang = 'en' | 'ja';

const UNITS = {
  en: { h: ['hour', 'hours'], m: ['minute', 'minutes'], s: ['second', 'seconds'] },
  ja: { h: '時間', m: '分', s: '秒' },
} as const;

/**
 * A duration as a person says it: `10 minutes`, `20 seconds`, `1 minute 30 seconds`; `10分`,
 * `20秒`. Never `0 minutes`: anything under a minute is said in seconds, and at least 1 second.
 */
export function spokenDuration(ms: number, lang: SignInLang = 'en'): string {
  let seconds = Math.max(1, Math.round(ms / 1000));
  const parts: Array<[number, 'h' | 'm' | 's']> = [];
  for (const [unit, size] of [['h', 3600], ['m', 60], ['s', 1]] as const) {
    const n = Math.floor(seconds / size);
    seconds -= n * size;
    if (n > 0) parts.push([n, unit]);
  }
  if (lang === 'ja') return parts.map(([n, unit]) => `${n}${UNITS.ja[unit]}`).join('');
  return parts.map(([n, unit]) => `${n} ${UNITS.en[unit][n === 1 ? 0 : 1]}`).join(' ');
}
