// English and Japanese; the browser's preferred languages choose (navigator.languages, which
// follows Accept-Language). `?lang=ja` or `?lang=en` overrides, for a shared office PC.

const en = {
  'app.title': 'relaybox',
  'state.ok': 'OK',
  'state.degraded': 'Degraded',
  'state.down': 'Down',
  'state.unknown': '…',
  'login.title': 'Log in',
  'login.token': 'Admin token (http.admin_token)',
  'login.submit': 'Log in',
  'login.wrong': 'Wrong token.',
  'login.throttled': 'Too many failed attempts. Wait a few minutes.',
  logout: 'Log out',
  'queue.queued': 'Waiting',
  'queue.deferred': 'Deferred',
  'queue.failed': 'Failed',
  'queue.oldest': 'Oldest waiting',
  'queue.delivered': 'Delivered since start',
  'queue.none': 'none',
  'upstreams.title': 'Upstreams',
  'upstreams.lastOk': 'Last success',
  'upstreams.lastError': 'Last error',
  'upstreams.never': 'never',
  'lockout.line': 'Locked out after failed logins: {client} ({service}) until {until}',
  'upstream.unknown': 'not tried yet',
  'upstream.ok': 'working',
  'upstream.down': 'failing',
  'upstream.auth_failed': 'login refused',
  'upstream.quota': 'over quota',
  'upstream.ehlo_rejected': 'hostname refused',
  'messages.title': 'Messages',
  'filter.state': 'State',
  'filter.all': 'All states',
  'filter.text': 'Search sender, recipient, subject',
  'col.time': 'Time',
  'col.from': 'From',
  'col.to': 'To',
  'col.subject': 'Subject',
  'col.size': 'Size',
  'col.state': 'State',
  'col.upstream': 'Upstream',
  'col.reply': 'Last reply',
  'col.event': 'Event',
  'col.recipients': 'Recipients',
  'col.duration': 'Duration',
  'col.recipient': 'Recipient',
  'messages.empty': 'No messages.',
  'messages.more': 'Older messages',
  'messages.noSubject': '(no subject)',
  'msg.queued': 'queued',
  'msg.delivering': 'delivering',
  'msg.delivered': 'delivered',
  'msg.deferred': 'deferred',
  'msg.failed': 'failed',
  'msg.dropped': 'dropped',
  'msg.pending': 'pending',
  'ev.accepted': 'accepted',
  'ev.retry': 'retry requested',
  'export.title': 'Download the log (CSV)',
  'export.since': 'From',
  'export.until': 'Until',
  'export.submit': 'Download CSV',
  'detail.back': '← Messages',
  'detail.retry': 'Retry',
  'detail.drop': 'Drop',
  'detail.confirmDrop': 'Drop message {id}? It will not be delivered.',
  'detail.retried': 'Queued again; delivering…',
  'detail.dropped': 'Dropped.',
  'detail.envelope': 'Envelope',
  'detail.client': 'Client',
  'detail.authUser': 'SMTP user',
  'detail.attempts': 'Attempts',
  'detail.nextAttempt': 'Next attempt',
  'detail.recipients': 'Recipients',
  'detail.history': 'Every attempt',
  'detail.headers': 'Headers',
  'detail.noHeaders': 'The message body is not kept after delivery or drop; only the envelope and the log remain.',
  'error.generic': 'Something went wrong: {message}',
  'error.offline': 'relaybox does not answer. Retrying…',
};

const ja = {
  'state.ok': '正常',
  'state.degraded': '一部異常',
  'state.down': '停止',
  'login.title': 'ログイン',
  'login.token': '管理トークン (http.admin_token)',
  'login.submit': 'ログイン',
  'login.wrong': 'トークンが違います。',
  'login.throttled': '失敗が多すぎます。数分待ってください。',
  logout: 'ログアウト',
  'queue.queued': '送信待ち',
  'queue.deferred': '再送待ち',
  'queue.failed': '失敗',
  'queue.oldest': '最も古い送信待ち',
  'queue.delivered': '起動後の配送数',
  'queue.none': 'なし',
  'upstreams.title': '配送先',
  'upstreams.lastOk': '最終成功',
  'upstreams.lastError': '最終エラー',
  'upstreams.never': 'なし',
  'lockout.line': 'ログイン失敗によりロック中: {client}（{service}）{until} まで',
  'upstream.unknown': '未使用',
  'upstream.ok': '正常',
  'upstream.down': '異常',
  'upstream.auth_failed': '認証失敗',
  'upstream.quota': '送信上限',
  'upstream.ehlo_rejected': 'ホスト名拒否',
  'messages.title': 'メール',
  'filter.state': '状態',
  'filter.all': 'すべての状態',
  'filter.text': '送信者・宛先・件名で検索',
  'col.time': '日時',
  'col.from': '送信者',
  'col.to': '宛先',
  'col.subject': '件名',
  'col.size': 'サイズ',
  'col.state': '状態',
  'col.upstream': '配送先',
  'col.reply': '最後の応答',
  'col.event': 'イベント',
  'col.recipients': '宛先',
  'col.duration': '所要時間',
  'col.recipient': '宛先',
  'messages.empty': 'メールはありません。',
  'messages.more': 'さらに古いメール',
  'messages.noSubject': '(件名なし)',
  'msg.queued': '送信待ち',
  'msg.delivering': '配送中',
  'msg.delivered': '配送済み',
  'msg.deferred': '再送待ち',
  'msg.failed': '失敗',
  'msg.dropped': '破棄',
  'msg.pending': '未配送',
  'ev.accepted': '受付',
  'ev.retry': '再送要求',
  'export.title': 'ログのダウンロード (CSV)',
  'export.since': '開始',
  'export.until': '終了',
  'export.submit': 'CSV をダウンロード',
  'detail.back': '← メール一覧',
  'detail.retry': '再送',
  'detail.drop': '破棄',
  'detail.confirmDrop': 'メール {id} を破棄しますか? 配送されなくなります。',
  'detail.retried': '再送待ちにしました。配送中…',
  'detail.dropped': '破棄しました。',
  'detail.envelope': 'エンベロープ',
  'detail.client': '送信元機器',
  'detail.authUser': 'SMTP ユーザー',
  'detail.attempts': '試行回数',
  'detail.nextAttempt': '次の試行',
  'detail.recipients': '宛先',
  'detail.history': 'すべての試行',
  'detail.headers': 'ヘッダー',
  'detail.noHeaders': '本文は配送または破棄の後に削除されます。エンベロープとログのみ残ります。',
  'error.generic': 'エラーが発生しました: {message}',
  'error.offline': 'relaybox が応答しません。再試行中…',
};

const dictionaries = { en, ja };

function pickLanguage() {
  const forced = new URLSearchParams(location.search).get('lang');
  if (forced && forced in dictionaries) return forced;
  const preferred = navigator.languages && navigator.languages.length ? navigator.languages : [navigator.language || 'en'];
  for (const tag of preferred) {
    const base = String(tag).toLowerCase().split('-')[0];
    if (base in dictionaries) return base;
  }
  return 'en';
}

export const lang = pickLanguage();

/** The text for `key`, with `{name}` filled from `vars`; English when Japanese lacks it; the key as a last resort. */
export function t(key, vars = {}) {
  const text = dictionaries[lang][key] ?? en[key] ?? key;
  return text.replace(/\{(\w+)\}/g, (_, name) => String(vars[name] ?? ''));
}

/** Fills every `data-i18n` element's text and every `data-i18n-placeholder` / `-label` attribute. */
export function translatePage(root = document) {
  document.documentElement.lang = lang;
  for (const el of root.querySelectorAll('[data-i18n]')) el.textContent = t(el.dataset.i18n);
  for (const el of root.querySelectorAll('[data-i18n-placeholder]')) el.placeholder = t(el.dataset.i18nPlaceholder);
  for (const el of root.querySelectorAll('[data-i18n-label]')) el.setAttribute('aria-label', t(el.dataset.i18nLabel));
}
