// The relaybox console: status at a glance, the message list (list.js), a message's page
// (detail.js), the CSV export. Plain ES modules, no build step, no third-party code.
import { $, age, api, bytes, clear, h, HttpError, pill, setCsrf, time } from './dom.js';
import { showDetail, stopDetail } from './detail.js';
import { lang, t, translatePage } from './i18n.js';
import { initList, refreshList, reloadList, showCounts } from './list.js';
import { initReconnect, loadReconnect, reconnectButton } from './reconnect.js';

const STATUS_EVERY_MS = 5000;

let statusTimer;
let authRequired = false;

translatePage();
initList((text) => showBanner(text));
// Connected: the deferred mail is due now, so the list changes too.
initReconnect({ onConnected: () => tick() });
boot();

async function boot() {
  try {
    const session = await api('/api/session');
    setCsrf(session.csrf);
    authRequired = session.required;
    if (session.authenticated) startConsole();
    else showLogin();
  } catch (err) {
    showBanner(err instanceof HttpError ? t('error.generic', { message: err.message }) : t('error.offline'));
    setTimeout(boot, STATUS_EVERY_MS);
  }
}

function showLogin() {
  clearInterval(statusTimer);
  $('#console').hidden = true;
  $('#logout').hidden = true;
  $('#state').hidden = true;
  $('#login').hidden = false;
  $('#token').focus();
}

document.addEventListener('relaybox:unauthorized', () => showLogin());

$('#login-form').addEventListener('submit', async (event) => {
  event.preventDefault();
  const error = $('#login-error');
  error.textContent = '';
  try {
    const res = await api('/api/login', { method: 'POST', body: { token: $('#token').value } });
    setCsrf(res.csrf);
    $('#token').value = '';
    startConsole();
  } catch (err) {
    error.textContent = err instanceof HttpError && err.status === 429 ? t('login.throttled') : t('login.wrong');
  }
});

$('#logout').addEventListener('click', async () => {
  await api('/api/logout', { method: 'POST' }).catch(() => undefined);
  location.hash = '#/';
  showLogin();
});

function startConsole() {
  $('#login').hidden = true;
  $('#console').hidden = false;
  $('#state').hidden = false;
  $('#logout').hidden = !authRequired;
  clearInterval(statusTimer);
  statusTimer = setInterval(tick, STATUS_EVERY_MS);
  refreshStatus();
  route();
}

function tick() {
  refreshStatus();
  if (!$('#list-view').hidden) refreshList();
}

window.addEventListener('hashchange', () => route());

function route() {
  const m = /^#\/messages\/(\d+)$/.exec(location.hash);
  $('#list-view').hidden = Boolean(m);
  $('#detail-view').hidden = !m;
  $('#overview').hidden = Boolean(m); // a message's page is about that message
  if (m) {
    showDetail(Number(m[1]), () => refreshStatus());
  } else {
    stopDetail();
    reloadList();
  }
}

function showBanner(text) {
  const banner = $('#banner');
  banner.textContent = text || '';
  banner.hidden = !text;
}

async function refreshStatus() {
  let s;
  try {
    [s] = await Promise.all([api('/api/status'), loadReconnect()]);
    showBanner('');
  } catch (err) {
    if (!(err instanceof HttpError)) showBanner(t('error.offline'));
    return;
  }
  const badge = $('#state');
  badge.dataset.state = s.state;
  badge.textContent = t(`state.${s.state}`);
  $('#version').textContent = `v${s.version}`;
  $('#q-queued').textContent = String(s.queue.queued);
  $('#q-deferred').textContent = String(s.queue.deferred);
  $('#q-failed').textContent = String(s.queue.failed);
  $('#q-oldest').textContent = s.queue.oldest_age_s ? age(s.queue.oldest_age_s) : t('queue.none');
  $('#q-delivered').textContent = String(s.delivered_total);
  showCounts(s.queue);
  const full = s.disk && !s.disk.accepting;
  $('#disk').hidden = !full;
  $('#disk').textContent = full ? t('disk.full', { free: bytes(s.disk.free_bytes), min: bytes(s.disk.min_free_bytes) }) : '';
  for (const [key, value] of [['failed', s.queue.failed], ['deferred', s.queue.deferred]]) {
    $(`#q-${key}`).closest('.card').classList.toggle('alert', value > 0);
  }
  const items = Object.entries(s.upstreams).map(([name, u]) =>
    h(
      'li',
      { className: 'upstream', dataset: { state: u.state } },
      h('span', { className: 'name' }, name),
      pill(u.state, 'upstream'),
      h('span', { className: 'when' }, `${t('upstreams.lastOk')}: ${u.last_ok ? time(u.last_ok) : t('upstreams.never')}`),
      u.last_error ? h('span', { className: 'error-text' }, `${t('upstreams.lastError')}: ${time(u.last_error_at)} — ${u.last_error}`) : null,
      u.last_error && u.hint ? h('span', { className: 'hint' }, `${t('hint.label')}: ${u.hint}`) : null,
      u.next_probe_at ? h('span', { className: 'next-probe' }, `${t('upstreams.skipped')} ${time(u.next_probe_at)}`) : null,
      budgetLine(u.rate),
      reconnectButton(name, u.state),
    ),
  );
  clear($('#upstreams')).append(...items);
  const lockouts = (s.auth_lockouts ?? []).map((l) => h('li', { className: 'lockout' }, t('lockout.line', { client: l.client, service: l.service === 'smtp' ? 'SMTP AUTH' : 'admin token', until: time(l.until) })));
  clear($('#lockouts')).append(...lockouts);
}

const count = new Intl.NumberFormat(lang);

/** "Budget: 18 of 30 this minute · 9,412 of 10,000 recipients today": only windows with a limit. */
function budgetLine(rate) {
  const windows = ['per_minute', 'per_hour', 'per_day', 'recipients_per_day'].filter((w) => rate?.[w]);
  if (windows.length === 0) return null;
  const parts = windows.map((w) => t(`budget.${w}`, { remaining: count.format(rate[w].remaining), limit: count.format(rate[w].limit) }));
  return h('span', { className: 'budget' }, `${t('budget.label')}: ${parts.join(t('budget.separator'))}`);
}

// --- CSV export -------------------------------------------------------------------------------

$('#export').addEventListener('submit', (event) => {
  event.preventDefault();
  const params = new URLSearchParams();
  // datetime-local is the browser's local time; the server gets an unambiguous instant.
  for (const [name, input] of [['since', '#x-since'], ['until', '#x-until']]) {
    const value = $(input).value;
    if (value) params.set(name, new Date(value).toISOString());
  }
  const a = h('a', { href: `/api/log.csv?${params}` });
  a.setAttribute('download', '');
  document.body.append(a);
  a.click();
  a.remove();
});
