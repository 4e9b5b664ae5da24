// The message list: state filter (the select, or a summary card), text search, keyset paging with
// a short page on a phone, and the bulk retries. Plain ES module, like the rest.
import { $, address, addresses, api, bytes, cell, clear, h, HttpError, pill, time } from './dom.js';
import { t } from './i18n.js';

/** A phone shows 10 at a time (50 would be a page thousands of pixels long), a desk 50. */
const phone = matchMedia('(max-width: 720px)');
const pageSize = () => (phone.matches ? 10 : 50);

const list = { state: '', text: '', nextBefore: null, paged: false, seq: 0 };
/** The last counts from /api/status: what the bulk buttons and their questions say. */
let counts = { deferred: 0, failed: 0 };
let report = () => undefined;

/** `onError(text)`: where the list's failures are shown (the page's banner). */
export function initList(onError) {
  report = onError;
}

/** The first page follows new mail by itself; once a person pages back, it stays put. */
export function refreshList() {
  if (!list.paged) loadMessages(false);
}

export function reloadList() {
  loadMessages(false);
}

/** The bulk buttons, each shown only when there is mail for it; their questions name the counts. */
export function showCounts(queue) {
  counts = queue;
  $('#retry-deferred').hidden = queue.deferred === 0;
  $('#retry-all').hidden = queue.failed === 0;
}

function setState(state) {
  list.state = state;
  $('#f-state').value = state;
  for (const card of document.querySelectorAll('.card[data-filter]')) card.setAttribute('aria-pressed', String(card.dataset.filter === state));
  loadMessages(false);
}

let typing;
$('#filter').addEventListener('submit', (event) => event.preventDefault());
$('#f-state').addEventListener('change', () => setState($('#f-state').value));
$('#f-text').addEventListener('input', () => {
  clearTimeout(typing);
  typing = setTimeout(() => {
    list.text = $('#f-text').value.trim();
    loadMessages(false);
  }, 250);
});
$('#more').addEventListener('click', () => loadMessages(true));
// A card filters the list to its state; the same card again shows every state.
for (const card of document.querySelectorAll('.card[data-filter]')) {
  card.addEventListener('click', () => setState(list.state === card.dataset.filter ? '' : card.dataset.filter));
}
phone.addEventListener('change', () => loadMessages(false));

async function bulkRetry(which, question) {
  if (!confirm(question)) return;
  try {
    const res = await api('/api/messages/retry', { method: 'POST', body: { which } });
    $('#bulk-notice').textContent = t('bulk.done', { n: res.ids.length });
  } catch (err) {
    $('#bulk-notice').textContent = t('error.generic', { message: err.message });
  }
  loadMessages(false);
}

$('#retry-deferred').addEventListener('click', () => bulkRetry('deferred', t('bulk.confirmDeferred', { n: counts.deferred })));
$('#retry-all').addEventListener('click', () => bulkRetry('all', t('bulk.confirmAll', { n: counts.deferred + counts.failed, failed: counts.failed })));

/** `more`: the next page after the last row shown (keyset paging by id); else the first page again. */
async function loadMessages(more) {
  if (more && list.nextBefore === null) return;
  const seq = ++list.seq; // a newer request wins over an older one still in flight
  const params = new URLSearchParams({ limit: String(pageSize()) });
  if (list.state) params.set('status', list.state);
  if (list.text) params.set('q', list.text);
  if (more) params.set('before', String(list.nextBefore));
  let page;
  try {
    page = await api(`/api/messages?${params}`);
  } catch (err) {
    if (err instanceof HttpError && err.status !== 401) report(t('error.generic', { message: err.message }));
    return;
  }
  if (seq !== list.seq) return;
  const body = $('#messages tbody');
  if (!more) clear(body);
  list.paged = more;
  list.nextBefore = page.next_before;
  body.append(...page.messages.map(row));
  $('#empty').hidden = body.children.length > 0;
  $('#messages').hidden = body.children.length === 0;
  $('#more').hidden = page.next_before === null;
}

function row(m) {
  const link = h('a', { href: `#/messages/${m.id}` }, m.subject || t('messages.noSubject'));
  const tr = h(
    'tr',
    { dataset: { id: String(m.id), state: m.state } },
    cell('col.time', time(m.received_at)),
    cell('col.from', m.from ? address(m.from) : ''),
    cell('col.to', addresses(m.to)),
    cell('col.subject', link),
    cell('col.size', bytes(m.size)),
    cell('col.state', pill(m.state)),
    cell('col.upstream', m.upstream || ''),
    // No room for the whole hint in the table: a mark, the hint on hover, in full in the detail.
    cell('col.reply', m.last_reply || '', m.hint ? h('span', { className: 'hint-mark', title: m.hint }, t('hint.mark')) : null),
  );
  tr.addEventListener('click', (event) => {
    if (event.target !== link) location.hash = `#/messages/${m.id}`;
  });
  return tr;
}
