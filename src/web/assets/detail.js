// A message's page: envelope, recipients, every attempt, headers; Retry and Drop.
import { $, address, addresses, api, bytes, clear, h, HttpError, pill, time } from './dom.js';
import { t } from './i18n.js';

const POLL_MS = 1500;
const SETTLED = new Set(['delivered', 'failed', 'dropped']);

let current = null;
/** Recipients of the message shown that an upstream refused for good (5xx): Retry asks first. */
let refused = [];
let timer;
let onChange = () => undefined;

/** Shows message `id` and keeps it fresh while it is still on its way. */
export function showDetail(id, changed) {
  onChange = changed;
  if (current !== id) {
    current = id;
    $('#d-notice').textContent = '';
    for (const sel of ['#d-subject', '#d-envelope', '#d-headers', '#d-recipients tbody', '#d-history tbody']) clear($(sel));
  }
  refresh();
}

export function stopDetail() {
  current = null;
  clearTimeout(timer);
}

async function refresh() {
  clearTimeout(timer);
  const id = current;
  if (id === null) return;
  let m;
  try {
    m = await api(`/api/messages/${id}`);
  } catch (err) {
    if (id === current && err instanceof HttpError && err.status !== 401) $('#d-notice').textContent = t('error.generic', { message: err.message });
    return;
  }
  if (id !== current) return;
  render(m);
  if (!SETTLED.has(m.state)) timer = setTimeout(refresh, POLL_MS);
}

function render(m) {
  $('#d-subject').textContent = m.subject || t('messages.noSubject');
  refused = m.refused_permanently ?? [];
  clear($('#d-state')).append(pill(m.state));
  $('#d-state').dataset.state = m.state;
  $('#d-retry').hidden = !['failed', 'deferred', 'queued'].includes(m.state);
  $('#d-drop').hidden = m.state === 'delivered' || m.state === 'dropped';

  const fields = [
    ['ID', String(m.id)],
    [t('col.time'), time(m.received_at)],
    [t('col.from'), m.from ? address(m.from) : ''],
    [t('col.to'), addresses(m.to)],
    [t('col.size'), bytes(m.size)],
    [t('detail.client'), m.client || ''],
    [t('detail.authUser'), m.auth_user || ''],
    [t('detail.attempts'), String(m.attempts)],
    [t('detail.nextAttempt'), m.next_attempt_at ? time(m.next_attempt_at) : ''],
    [t('col.upstream'), m.upstream || ''],
    [t('col.reply'), m.last_reply || ''],
    [t('hint.label'), m.hint || ''],
  ];
  clear($('#d-envelope')).append(...fields.filter(([, v]) => v !== '').flatMap(([k, v]) => [h('dt', {}, k), h('dd', {}, v)]));

  const rcptHead = h('tr', {}, ...['col.recipient', 'col.state', 'col.upstream', 'col.reply'].map((k) => h('th', {}, t(k))));
  clear($('#d-recipients tbody')).append(
    rcptHead,
    ...m.recipients.map((r) =>
      h('tr', { dataset: { state: r.state } }, h('td', {}, address(r.rcpt)), h('td', {}, pill(r.state)), h('td', {}, r.upstream || ''), replyCell(r.reply, r.hint)),
    ),
  );

  const head = h('tr', {}, ...['col.time', 'col.event', 'col.upstream', 'col.recipients', 'col.reply', 'col.duration'].map((k) => h('th', {}, t(k))));
  // A run of retries with the same reply gets its hint once, on the first of them.
  const fresh = m.history.map((e, i) => (e.hint && e.hint !== m.history[i - 1]?.hint ? e.hint : null));
  clear($('#d-history tbody')).append(
    head,
    ...m.history.map((e, i) =>
      h(
        'tr',
        { dataset: { event: e.event } },
        h('td', {}, time(e.at)),
        h('td', {}, ['accepted', 'retry'].includes(e.event) ? t(`ev.${e.event}`) : pill(e.event)),
        h('td', {}, e.upstream || ''),
        h('td', {}, addresses(e.recipients)),
        replyCell(e.reply, fresh[i]),
        h('td', {}, e.duration_ms === null ? '' : `${e.duration_ms} ms`),
      ),
    ),
  );
  const headers = $('#d-headers');
  headers.textContent = m.headers ? m.headers.join('\n') : t('detail.noHeaders');
  headers.classList.toggle('muted', !m.headers);
}

/** The raw reply, and under it what to do about it when the reply is a known one. */
function replyCell(reply, hint) {
  return h('td', { className: 'reply' }, reply || '', hint ? h('div', { className: 'hint' }, `${t('hint.label')}: ${hint}`) : null);
}

async function act(method, path, doneKey) {
  const id = current;
  try {
    await api(path, { method });
    $('#d-notice').textContent = t(doneKey);
  } catch (err) {
    $('#d-notice').textContent = t('error.generic', { message: err.message });
  }
  if (id === current) refresh();
  onChange();
}

$('#d-retry').addEventListener('click', () => {
  // A 5xx will most likely come again: say so first, as `queue retry` needs --force.
  if (refused.length > 0 && !confirm(t('detail.confirmPermanent', { rcpts: refused.join(', ') }))) return;
  act('POST', `/api/messages/${current}/retry`, 'detail.retried');
});
$('#d-drop').addEventListener('click', () => {
  if (confirm(t('detail.confirmDrop', { id: current }))) act('DELETE', `/api/messages/${current}`, 'detail.dropped');
});
