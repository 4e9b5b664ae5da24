// DOM and formatting helpers. Everything a device wrote (subjects, names, addresses, replies)
// reaches the page only as text nodes: `h()` never parses markup.
import { lang, t } from './i18n.js';

export const $ = (selector) => document.querySelector(selector);

/** `h('td', { className: 'x', dataset: { label: 'To' } }, 'text', childNode)` */
export function h(tag, props = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value === undefined || value === null) continue;
    if (key === 'dataset') Object.assign(el.dataset, value);
    else if (key === 'className' || key === 'href' || key === 'title' || key === 'type') el[key] = value;
    else el.setAttribute(key, value);
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

export function clear(el) {
  el.replaceChildren();
  return el;
}

const dateTime = new Intl.DateTimeFormat(lang, { dateStyle: 'short', timeStyle: 'medium' });

export function time(iso) {
  return iso ? dateTime.format(new Date(iso)) : '';
}

export function bytes(n) {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KB`;
  return `${(n / 1024 / 1024).toFixed(1)} MB`;
}

const relative = new Intl.RelativeTimeFormat(lang, { numeric: 'auto' });

/** 95 → "2 minutes ago"-style, for ages in seconds. */
export function age(seconds) {
  if (!seconds) return t('queue.none');
  const units = [[86400, 'day'], [3600, 'hour'], [60, 'minute'], [1, 'second']];
  const [size, unit] = units.find(([s]) => seconds >= s) ?? units[3];
  return relative.format(-Math.floor(seconds / size), unit);
}

/**
 * An e-mail address that wraps only after `@` and dots, never at a hyphen (browsers break after
 * `-` by default: `scanner-` / `2f@…`). Each piece is kept whole; `<wbr>` between them is where a
 * line may end. Copying still gives the address as it is: `<wbr>` adds no character.
 */
export function address(text) {
  const pieces = String(text).split(/(?<=[@.])/);
  return h('span', { className: 'addr' }, pieces.flatMap((piece, i) => [i > 0 ? document.createElement('wbr') : null, h('span', {}, piece)]));
}

/** Several addresses, comma-separated, each wrapping as `address` does. */
export function addresses(list) {
  return list.flatMap((a, i) => [i > 0 ? ', ' : null, address(a)]);
}

/** A state as a coloured pill; the state name is data, its label is translated. */
export function pill(state, prefix = 'msg') {
  return h('span', { className: 'pill', dataset: { state } }, t(`${prefix}.${state}`));
}

/** A cell that shows its column name on a phone, where the table becomes a list of cards. */
export function cell(labelKey, ...children) {
  // An empty cell stays empty (no text node), so that a phone can leave its line out (td:empty).
  return h('td', { dataset: { label: t(labelKey) } }, ...children.filter((c) => c !== ''));
}

export class HttpError extends Error {
  /** `body`: the server's whole JSON answer (some carry a `reason` the page words itself). */
  constructor(status, message, body = {}) {
    super(message);
    this.status = status;
    this.body = body;
  }
}

let csrf = '';
export function setCsrf(token) {
  csrf = token;
}

/** JSON in and out; writes carry the session's CSRF token. Throws HttpError with the server's words. */
export async function api(path, { method = 'GET', body } = {}) {
  const headers = { Accept: 'application/json' };
  if (method !== 'GET') headers['X-Relaybox-CSRF'] = csrf;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), credentials: 'same-origin' });
  const data = await res.json().catch(() => ({}));
  if (!res.ok) {
    if (res.status === 401) document.dispatchEvent(new CustomEvent('relaybox:unauthorized'));
    throw new HttpError(res.status, data.error || res.statusText, data);
  }
  return data;
}
