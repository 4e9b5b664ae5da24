import type { HintRow } from './row.js';

/**
 * relaybox's own refusal at delivery (delivery/sizeFit.ts): the message was taken under a larger
 * limit, and the config now allows less. First in the table: a provider's generic 5.3.4 row
 * would blame the provider, which never saw the message.
 */
export const SIZE_ROWS: readonly HintRow[] = [
  {
    id: 'relaybox-too-big',
    reply: /Message too large for .+: [\d.]+ MB max \(this one [\d.]+ MB\)/,
    hint: (t) =>
      `relaybox did not send it: no upstream of its route takes a message this large (max_message_bytes; ${t.name} takes the most). Scan at a lower resolution or split it, raise max_message_bytes of ${t.name} if its provider takes more, or route large mail to an upstream that does`,
  },
];
