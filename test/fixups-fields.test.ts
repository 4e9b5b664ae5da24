import addrs from 'email-addresses';
import PostalMime from 'postal-mime';
import { describe, expect, it } from 'vitest';
import { isRfc5322Date } from '../src/message/date.js';
import { fixHeaders, type FixupContext } from '../src/message/fixups.js';
import { foldField } from '../src/message/fold.js';
import { displayName, isAddrSpec, mailboxCount } from '../src/message/mailbox.js';

const ctx: FixupContext = {
  hostname: 'relaybox.example.com',
  messageId: 'lq2x.7.relaybox@relaybox.example.com',
  date: new Date(Date.UTC(2024, 0, 2, 15, 4, 5)),
  envelopeFrom: 'scanner@corp.example',
  headerFrom: '',
};
const DATE = 'Mon, 01 Jan 2024 09:00:00 +0100';

/** The header lines fixHeaders gives for `fields` (a Date and Message-ID are added when absent). */
function fixedLines(fields: string, over: Partial<FixupContext> = {}): { lines: string[]; changed: string[] } {
  const r = fixHeaders(Buffer.from(`${fields}\r\n`, 'latin1'), { ...ctx, ...over });
  return { lines: r.headers.toString('latin1').split('\r\n').filter(Boolean), changed: r.changed };
}
const fromOf = (fields: string, over: Partial<FixupContext> = {}) => fixedLines(fields, over).lines.find((l) => l.startsWith('From: '));

describe('From', () => {
  // Each of these is one valid mailbox by email-addresses' strict RFC 5322 grammar too.
  it.each([
    'scanner@corp.example',
    '<scanner@corp.example>',
    'Scanner 2F <scanner@corp.example>',
    '"Scanner, 2F" <scanner@corp.example>',
    'scanner@corp.example (Scanner, 2F)',
    '=?utf-8?Q?Scanner_2F?= <scanner@corp.example>',
    '"a\\"b" <"odd local"@[192.0.2.1]>',
  ])('leaves the valid %s as it is', (from) => {
    expect(addrs.parseOneAddress({ input: from, rfc6532: true })).not.toBeNull();
    expect(mailboxCount(from)).toBe(1);
    expect(fixedLines(`From: ${from}\r\nDate: ${DATE}\r\nMessage-ID: <m@x>`).changed).toEqual([]);
  });

  it.each([
    ['MFP-3F', '"MFP-3F" <scanner@corp.example>'],
    ['"MFP 3F"', '"MFP 3F" <scanner@corp.example>'],
    ['<scanner>', '"<scanner>" <scanner@corp.example>'],
    ['Scanner, 2F <a@b.example>', '"Scanner, 2F" <a@b.example>'],
    ['Scanner: 2F <a@b.example>', '"Scanner: 2F" <a@b.example>'],
    ['Scanner@2F <a@b.example>', '"Scanner@2F" <a@b.example>'],
    ['"Scanner" a@b.example', '"Scanner" <a@b.example>'],
    ['a@b.example, c@d.example', 'a@b.example'],
    ['', 'scanner@corp.example'],
    ['Büro 2F', '=?UTF-8?Q?B=C3=BCro_2F?= <scanner@corp.example>'],
  ])('makes %j the valid %s', (from, wanted) => {
    const out = fromOf(Buffer.from(`From: ${from}\r\nDate: ${DATE}\r\nMessage-ID: <m@x>`).toString('latin1'));
    expect(out).toBe(`From: ${wanted}`);
    expect(addrs.parseOneAddress({ input: wanted, rfc6532: true, strict: true })?.type).toBe('mailbox');
  });

  it('keeps the device value in X-Original-From, and uses relaybox@hostname without envelope sender', () => {
    const { lines } = fixedLines(`From: MFP-3F\r\nDate: ${DATE}\r\nMessage-ID: <m@x>`, { envelopeFrom: '' });
    expect(lines.slice(0, 2)).toEqual(['From: "MFP-3F" <relaybox@relaybox.example.com>', 'X-Original-From: MFP-3F']);
  });

  it('leaves several authors alone when a Sender names the one who sent it', () => {
    expect(fixedLines(`From: a@b.example, c@d.example\r\nSender: a@b.example\r\nDate: ${DATE}\r\nMessage-ID: <m@x>`).changed).toEqual([]);
  });

  it('with header_from, keeps an invalid device From in Reply-To only where it had an address', () => {
    const headerFrom = 'Office <office@corp.example>';
    const named = fixedLines(`From: Scanner, 2F <a@b.example>\r\nDate: ${DATE}\r\nMessage-ID: <m@x>`, { headerFrom });
    expect(named.lines.slice(0, 2)).toEqual(['From: Office <office@corp.example>', 'Reply-To: "Scanner, 2F" <a@b.example>']);
    const bare = fixedLines(`From: MFP-3F\r\nDate: ${DATE}\r\nMessage-ID: <m@x>`, { headerFrom });
    expect(bare.lines.filter((l) => /^(From|Reply-To):/.test(l))).toEqual(['From: Office <office@corp.example>']);
    expect(bare.changed).toEqual(['From rewritten (header_from)']);
  });

  it('reads addresses strictly', () => {
    expect(isAddrSpec('a@b.example')).toBe(true);
    for (const bad of ['a', 'a@', '@b', 'a..b@c', '.a@b', 'a@b.', 'a b@c', 'a@b@c', ' a@b']) expect(isAddrSpec(bad), bad).toBe(false);
    expect(mailboxCount('Scanner (2F <a@b.example>')).toBeNull(); // an open comment
    expect(mailboxCount('Undisclosed: ;')).toBeNull(); // a group is no mailbox
    expect(displayName('=?utf-8?Q?Scanner_2F?=')).toBe('=?utf-8?Q?Scanner_2F?=');
    expect(displayName('Say "hi"')).toBe('"Say \\"hi\\""');
  });
});

describe('Date', () => {
  it.each([
    DATE,
    'Tue, 2 Jan 2024 10:00:00 -0000',
    '2 Jan 2024 10:00 +0100',
    'Tue, 02 Jan 2024 10:00:00 +0100 (CET)',
    'tue, 02 JAN 2024 10:00:00 +0100',
    'Tue, 2 Jan 24 10:00:00 GMT',
    'Tue, 02 Jan 2024 10:00:00 EST',
    'Tue, 02 Jan 2024 10 : 00 : 00 Z',
    'Thu, 29 Feb 2024 23:59:60 +0000',
  ])('keeps %j, valid RFC 5322 (obsolete forms included)', (date) => {
    expect(isRfc5322Date(date)).toBe(true);
    expect(fixedLines(`From: a@b.example\r\nDate: ${date}\r\nMessage-ID: <m@x>`).changed).toEqual([]);
  });

  it.each(['2024/01/02 10:00', 'Tue, 02 Jan 2024 10:00:00', 'Tue Jan  2 10:00:00 2024', '2024-01-02T10:00:00Z', 'Thu, 29 Feb 2023 10:00:00 +0000', 'Tue, 02 Jan 2024 24:00:00 +0000', 'Tue, 02 Jan 2024 10:00:00 +0160', 'Tue, 02 Jan 1899 10:00:00 +0000'])(
    'replaces the malformed %j, keeping it in X-Original-Date',
    (date) => {
      expect(isRfc5322Date(date)).toBe(false);
      const { lines } = fixedLines(`From: a@b.example\r\nDate: ${date}\r\nMessage-ID: <m@x>`);
      expect(lines.slice(1, 3)).toEqual(['Date: Tue, 02 Jan 2024 15:04:05 +0000', `X-Original-Date: ${date}`]);
    },
  );

  it('replaces an empty Date without an empty X-Original-Date', () => {
    const { lines, changed } = fixedLines(`From: a@b.example\r\nDate:\r\nMessage-ID: <m@x>`);
    expect(lines).toEqual(['From: a@b.example', 'Date: Tue, 02 Jan 2024 15:04:05 +0000', 'Message-ID: <m@x>']);
    expect(changed).toEqual(['replaced an empty Date']);
  });
});

describe('folding', () => {
  const unfold = (text: string) => text.replace(/\r\n(?=[ \t])/g, '');
  const linesOf = (text: string) => text.split('\r\n');

  it('folds a To without spaces after commas, never inside a quoted name or an address', () => {
    const to = Array.from({ length: 120 }, (_, i) => (i === 50 ? `"Doe,${'x'.repeat(20)}" <doe@example.com>` : `user${i}@example.com`)).join(',');
    const folded = foldField(`To: ${to}\r\n`, 'to')!;
    expect(linesOf(folded.text).every((l) => l.length <= 998)).toBe(true);
    expect(linesOf(folded.text).slice(1, -1).every((l) => /^ (user\d+@example\.com|"Doe,x+" <doe@example\.com>)(,|$)/.test(l))).toBe(true);
    expect(unfold(folded.text).replace(/, /g, ',')).toBe(`To: ${to}\r\n`);
    expect(folded.encoded).toBe(false);
    // A comma inside a quoted name is no place to fold, even when it is the last one in reach.
    const quoted = `"${'x'.repeat(900)},${'y'.repeat(80)}"<a@b.example>`;
    expect(linesOf(foldField(`To: u1@example.com,${quoted},u2@example.com\r\n`, 'to')!.text)).toEqual(['To: u1@example.com,', ` ${quoted},`, ' u2@example.com', '']);
  });

  it('encodes a Subject word too long for any line, so a reader decodes the same text', async () => {
    const word = `${'ab=?_'.repeat(300)}é`;
    const subject = `Alarm ${word} end`;
    const folded = foldField(Buffer.from(`Subject: ${subject}\r\n`, 'utf8').toString('latin1'), 'subject')!;
    expect(folded.encoded).toBe(true);
    expect(linesOf(folded.text).every((l) => l.length <= 998)).toBe(true);
    const value = unfold(folded.text).slice('Subject: '.length).trim();
    expect(value.startsWith('Alarm =?UTF-8?Q?')).toBe(true);
    // postal-mime joins adjacent encoded words (RFC 2047 §6.2), as mail readers do.
    const email = await PostalMime.parse(Buffer.from(`${folded.text}From: a@b.example\r\n\r\nbody\r\n`, 'latin1'));
    expect(email.subject).toBe(subject);
  });

  it('splits a References token over 998 octets with CRLF SP, losing no byte', () => {
    const token = `<${'r'.repeat(1500)}@example.com>`;
    const folded = foldField(`References: <a@example.com> ${token}\r\n`, 'references')!;
    expect(linesOf(folded.text).every((l) => l.length <= 998)).toBe(true);
    expect(unfold(folded.text).replace(/(r) (r)/, '$1$2')).toBe(`References: <a@example.com> ${token}\r\n`);
  });

  it('leaves a field within 998 octets alone, and replaces a Message-ID too long for a line', () => {
    expect(foldField(`To: ${'a'.repeat(990)}\r\n`, 'to')).toBeNull();
    const { lines, changed } = fixedLines(`From: a@b.example\r\nDate: ${DATE}\r\nMessage-ID: <${'m'.repeat(1000)}@x>`);
    expect(lines).toContain('Message-ID: <lq2x.7.relaybox@relaybox.example.com>');
    expect(changed).toEqual(['replaced an invalid Message-ID']);
  });
});
