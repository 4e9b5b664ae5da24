// Reconnect: sign in again for an OAuth upstream whose refresh token stopped working, without a
// terminal. Microsoft shows a code to type at its page; Google shows a link, and the person pastes
// back the address the browser ends on. The server does the OAuth; this page only shows and asks.
import { $, api, clear, h, HttpError, time } from './dom.js';
import { t } from './i18n.js';

const POLL_MS = 2000;

/** name → { provider, flow, has_token, state } from GET /api/reconnect. */
let reconnectable = new Map();
let current = null; // the upstream whose sign-in the panel shows
let pollTimer;
let onConnected = () => undefined;

export function initReconnect(options) {
  onConnected = options.onConnected;
  $('#rc-cancel').addEventListener('click', () => cancel());
  $('#rc-close').addEventListener('click', () => closePanel());
  $('#rc-paste-form').addEventListener('submit', (event) => {
    event.preventDefault();
    complete();
  });
}

/** Reads which upstreams take a sign-in; reopens the panel of one still waiting (a reloaded page). */
export async function loadReconnect() {
  try {
    const { upstreams } = await api('/api/reconnect');
    reconnectable = new Map(upstreams.map((u) => [u.upstream, u]));
  } catch {
    return;
  }
  if (current === null) {
    const waiting = [...reconnectable.values()].find((u) => u.state === 'waiting');
    if (waiting) showFlow(waiting.upstream);
  }
}

/** The Reconnect button for an upstream card: when its login is refused or it has no token yet. */
export function reconnectButton(name, state) {
  const info = reconnectable.get(name);
  if (!info || (state !== 'auth_failed' && info.has_token)) return null;
  const button = h('button', { type: 'button', className: 'reconnect-button secondary', dataset: { upstream: name } }, t('reconnect.button'));
  button.addEventListener('click', () => start(name));
  return button;
}

async function start(name) {
  openPanel(name);
  setStatus(t('reconnect.starting'));
  try {
    render(await api(`/api/upstreams/${encodeURIComponent(name)}/reconnect`, { method: 'POST' }));
  } catch (err) {
    // One is under way already (another tab): show that one.
    if (err instanceof HttpError && err.status === 409) return showFlow(name);
    setStatus(t('reconnect.failed', { words: err.message }), 'error');
  }
}

async function showFlow(name) {
  openPanel(name);
  try {
    render(await api(`/api/upstreams/${encodeURIComponent(name)}/reconnect`));
  } catch (err) {
    setStatus(t('reconnect.failed', { words: err.message }), 'error');
  }
}

function openPanel(name) {
  clearTimeout(pollTimer);
  current = name;
  $('#rc-title').textContent = t('reconnect.title', { name });
  $('#rc-device').hidden = true;
  $('#rc-paste').hidden = true;
  $('#rc-cancel').hidden = true;
  $('#rc-url').value = '';
  $('#reconnect').hidden = false;
  $('#reconnect').scrollIntoView({ block: 'nearest' });
}

function closePanel() {
  clearTimeout(pollTimer);
  current = null;
  $('#reconnect').hidden = true;
}

function render(view) {
  if (view.upstream !== current) return;
  const waiting = view.state === 'waiting';
  $('#rc-cancel').hidden = !waiting;
  $('#rc-device').hidden = !(waiting && view.flow === 'device');
  $('#rc-paste').hidden = !(waiting && view.flow === 'paste');
  if (waiting && view.flow === 'device') {
    $('#rc-device-intro').textContent = t('reconnect.deviceIntro', { user: view.user });
    clear($('#rc-device-link')).append(link(view.verification_uri, view.verification_uri));
    $('#rc-code').textContent = view.user_code;
    $('#rc-expires').textContent = t('reconnect.expires', { minutes: Math.max(1, Math.round(view.expires_in_s / 60)), time: time(view.expires_at) });
    setStatus(t('reconnect.waiting'));
  } else if (waiting) {
    $('#rc-paste-intro').textContent = t('reconnect.pasteStep1', { user: view.user });
    clear($('#rc-paste-link')).append(link(view.authorize_url, t('reconnect.pasteLink')));
    if ($('#rc-status').dataset.kind !== 'error') setStatus(t('reconnect.pasteWaiting', { time: time(view.expires_at) }));
  } else if (view.state === 'done') {
    setStatus(t('reconnect.done'), 'ok');
    onConnected();
  } else {
    setStatus(t('reconnect.failed', { words: view.words }), 'error');
  }
  // The device flow ends on its own (the person signs in elsewhere): ask how it goes.
  if (waiting && view.flow === 'device') pollTimer = setTimeout(() => poll(view.upstream), POLL_MS);
}

async function poll(name) {
  if (current !== name) return;
  try {
    render(await api(`/api/upstreams/${encodeURIComponent(name)}/reconnect`));
  } catch (err) {
    if (err instanceof HttpError) return setStatus(t('reconnect.failed', { words: err.message }), 'error');
    pollTimer = setTimeout(() => poll(name), POLL_MS); // relaybox did not answer: ask again
  }
}

async function complete() {
  const name = current;
  const redirect = $('#rc-url').value.trim();
  if (!name || !redirect) return;
  setStatus(t('reconnect.finishing'));
  try {
    render(await api(`/api/upstreams/${encodeURIComponent(name)}/reconnect/complete`, { method: 'POST', body: { redirect_url: redirect } }));
  } catch (err) {
    // A wrong paste leaves the sign-in waiting: say why and let the person paste again.
    const reason = err instanceof HttpError ? err.body.reason : undefined;
    setStatus(reason ? t(`reconnect.${reason}`) : err.message, 'error');
    showFlowQuietly(name);
  }
}

/** After a refused paste: the panel follows the sign-in's state but keeps the refusal's words. */
async function showFlowQuietly(name) {
  try {
    const view = await api(`/api/upstreams/${encodeURIComponent(name)}/reconnect`);
    if (view.state !== 'waiting') render(view);
  } catch {
    // the words already shown say enough
  }
}

async function cancel() {
  if (!current) return;
  const name = current;
  try {
    await api(`/api/upstreams/${encodeURIComponent(name)}/reconnect`, { method: 'DELETE' });
  } catch {
    // it ended meanwhile
  }
  closePanel();
}

function link(href, text) {
  const a = h('a', { href, target: '_blank', rel: 'noopener noreferrer' }, text);
  return a;
}

function setStatus(text, kind = '') {
  const status = $('#rc-status');
  status.textContent = text;
  status.dataset.kind = kind;
}
