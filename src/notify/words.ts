/** The words of notices and DSNs, in English and Japanese (`notify.language`). */

export type Language = 'en' | 'ja';

export interface Words {
  authFailedSubject(upstream: string): string;
  authFailed(upstream: string): string;
  authFailedTodo: string;
  diskSubject: string;
  disk(free: string, min: string): string;
  diskTodo: string;
  digestSubject(parts: string[]): string;
  failedCount(n: number): string;
  failedHead: string;
  failedTodo: string;
  stuckCount(n: number): string;
  stuckHead(after: string): string;
  stuckTodo: string;
  upstreamCount(n: number): string;
  upstreamHead: string;
  upstreamDown(upstream: string, since: string): string;
  quota(upstream: string, since: string): string;
  upstreamTodo: string;
  more(n: number): string;
  from: string;
  to: string;
  subject: string;
  received: string;
  noSubject: string;
  reply(upstream: string | null): string;
  hint: string;
  console: string;
  todo: string;
  footer(hostname: string): string;
  dsnSubject: string;
  dsn(hostname: string): string;
}

const en: Words = {
  authFailedSubject: (u) => `[relaybox] upstream ${u} refuses its login`,
  authFailed: (u) => `The upstream "${u}" refused relaybox's login. Mail for it waits in the queue (or goes through another upstream) until this is fixed.`,
  authFailedTodo: 'Check the password or app password, or sign in again for an OAuth upstream (console: Reconnect, or `relaybox oauth`).',
  diskSubject: '[relaybox] disk full: new mail is refused',
  disk: (free, min) => `The disk of relaybox's spool is nearly full (${free} free, below ${min}). Devices hear "452 try again later" until there is room; mail already queued is still delivered.`,
  diskTodo: 'Free space on the disk (old files, logs), or lower delivery.keep_log so that delivered mail is pruned sooner.',
  digestSubject: (parts) => `[relaybox] ${parts.join(', ')}`,
  failedCount: (n) => (n === 1 ? '1 message failed' : `${n} messages failed`),
  failedHead: 'Failed messages — relaybox gave up on these; they were NOT delivered:',
  failedTodo: 'For a failed message, read the reply and hint below; fix the address or the upstream, then retry it from the console or with `relaybox queue retry ID`, or tell the sender.',
  stuckCount: (n) => (n === 1 ? '1 message stuck' : `${n} messages stuck`),
  stuckHead: (after) => `Stuck in the queue — still not delivered after ${after}:`,
  stuckTodo: 'For a stuck message, look at its last reply: relaybox keeps trying until delivery.retry.give_up_after.',
  upstreamCount: (n) => (n === 1 ? '1 upstream in trouble' : `${n} upstreams in trouble`),
  upstreamHead: 'Upstreams in trouble:',
  upstreamDown: (u, since) => `"${u}" is down (not reachable or refusing) since ${since}`,
  quota: (u, since) => `"${u}" is over its sending quota since ${since}; relaybox waits (delivery.quota_hold) before it tries again`,
  upstreamTodo: 'For an upstream in trouble, check its network and account; mail waits in the queue and goes out when it answers again.',
  more: (n) => `… and ${n} more (see the console).`,
  from: 'From',
  to: 'To',
  subject: 'Subject',
  received: 'Received',
  noSubject: '(no subject)',
  reply: (u) => (u ? `Reply from ${u}` : 'Reason'),
  hint: 'Hint',
  console: 'Console',
  todo: 'What to do',
  footer: (h) => `— relaybox on ${h}. This notice is sent by notify: in relaybox's configuration.`,
  dsnSubject: 'Undelivered Mail Returned to Sender',
  dsn: (h) => `This is relaybox on ${h}. Your message could not be delivered to the recipients below; relaybox has given up. The technical report and your message's header follow.`,
};

const ja: Words = {
  authFailedSubject: (u) => `[relaybox] 送信先サーバー ${u} がログインを拒否しています`,
  authFailed: (u) => `送信先サーバー「${u}」が relaybox のログインを拒否しました。解決するまで、このサーバー宛てのメールはキューで待機します（または別のサーバーから送られます）。`,
  authFailedTodo: 'パスワードまたはアプリパスワードを確認してください。OAuth の場合はサインインし直してください（コンソールの「再接続」、または `relaybox oauth`）。',
  diskSubject: '[relaybox] ディスクの空きがありません：新しいメールを受け付けていません',
  disk: (free, min) => `relaybox のスプールのディスクがほぼいっぱいです（空き ${free}、下限 ${min}）。空きができるまで機器には「452 後で再試行」と応答します。キュー内のメールの配信は続きます。`,
  diskTodo: 'ディスクの空きを増やしてください（古いファイルやログの削除）。delivery.keep_log を短くすると配信済みメールが早く削除されます。',
  digestSubject: (parts) => `[relaybox] ${parts.join('、')}`,
  failedCount: (n) => `配信失敗 ${n} 件`,
  failedHead: '配信に失敗したメール — relaybox は配信をあきらめました。これらは届いていません：',
  failedTodo: '配信に失敗したメールは、下の応答とヒントを確認し、宛先か送信先サーバーを直してから、コンソールまたは `relaybox queue retry ID` で再送するか、送信者に知らせてください。',
  stuckCount: (n) => `滞留 ${n} 件`,
  stuckHead: (after) => `キューに滞留しているメール — ${after} たっても配信されていません：`,
  stuckTodo: '滞留しているメールは最後の応答を確認してください。relaybox は delivery.retry.give_up_after まで再試行を続けます。',
  upstreamCount: (n) => `送信先サーバーの問題 ${n} 件`,
  upstreamHead: '問題のある送信先サーバー：',
  upstreamDown: (u, since) => `「${u}」が ${since} から停止しています（接続できないか拒否しています）`,
  quota: (u, since) => `「${u}」が ${since} から送信上限に達しています。relaybox は待機してから再試行します（delivery.quota_hold）`,
  upstreamTodo: '問題のある送信先サーバーは、ネットワークとアカウントを確認してください。メールはキューで待機し、応答が戻れば送信されます。',
  more: (n) => `…ほか ${n} 件（コンソールを参照してください）。`,
  from: '差出人',
  to: '宛先',
  subject: '件名',
  received: '受信日時',
  noSubject: '（件名なし）',
  reply: (u) => (u ? `${u} の応答` : '理由'),
  hint: 'ヒント',
  console: 'コンソール',
  todo: '対処方法',
  footer: (h) => `— ${h} の relaybox より。この通知は relaybox の設定の notify: により送信されています。`,
  dsnSubject: '配信不能のお知らせ (Undelivered Mail Returned to Sender)',
  dsn: (h) => `${h} の relaybox です。あなたのメールを下記の宛先に配信できませんでした。relaybox は配信をあきらめました。技術的な報告とメールのヘッダーを添付します。`,
};

export function wordsFor(language: Language): Words {
  return language === 'ja' ? ja : en;
}
