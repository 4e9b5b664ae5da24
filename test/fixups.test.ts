import { describe, expect, it } from 'vitest';
import { addressOf, findHeaderSection, fixHeaders, formatMailbox, rfc5322Date, type FixupContext } from '../src/message/fixups.js';
import { LongLineBreaker } from '../src/message/fixupsStream.js';

const ctx: FixupContext = {
  hostname: 'relaybox.example.com',
  messageId: 'lq2x.7.relaybox@relaybox.example.com',
  date: new Date(Date.UTC(2024, 0, 2, 15, 4, 5)),
  envelopeFrom: 'scanner@example.com',
  headerFrom: '',
};

/** The whole message after fixHeaders, as the stream would send it. */
function fixed(text: string, over: Partial<FixupContext> = {}): { text: string; changed: string[] } {
  const input = Buffer.from(text, 'latin1');
  const r = fixHeaders(input, { ...ctx, ...over });
  return { text: Buffer.concat([r.headers, input.subarray(r.bodyStart)]).toString('latin1'), changed: r.changed };
}

/** A valid RFC 5322 date, left as it is. */
const DATE = 'Mon, 01 Jan 2024 09:00:00 +0100';
const lines = (text: string) => text.split('\r\n');

describe('fixHeaders', () => {
  it('returns the very same bytes for a message that needs nothing', () => {
    const input = Buffer.from('From: a@example.com\r\nDate: Tue, 02 Jan 2024 15:04:05 +0000\r\nMessage-ID: <x@y>\r\n\r\nbody\r\n');
    const r = fixHeaders(input, ctx);
    expect(r.changed).toEqual([]);
    expect(r.headers.buffer).toBe(input.buffer); // not even copied
    expect(r.bodyStart).toBe(input.indexOf('body'));
  });

  it('adds Message-ID in angle brackets and Date in UTC', () => {
    const r = fixed('From: a@example.com\r\nSubject: hi\r\n\r\nbody\r\n');
    expect(r.text).toBe(
      'From: a@example.com\r\nSubject: hi\r\nMessage-ID: <lq2x.7.relaybox@relaybox.example.com>\r\nDate: Tue, 02 Jan 2024 15:04:05 +0000\r\n\r\nbody\r\n',
    );
    expect(r.changed).toEqual(['added Message-ID', 'added Date']);
  });

  it('adds a From from the envelope sender, or relaybox@hostname for an empty one', () => {
    expect(lines(fixed('Subject: x\r\n\r\n').text)).toContain('From: scanner@example.com');
    expect(lines(fixed('Subject: x\r\n\r\n', { envelopeFrom: '' }).text)).toContain('From: relaybox@relaybox.example.com');
  });

  it('keeps the first of repeated single-instance fields and every other field', () => {
    const r = fixed(`From: a@x.com\r\nTO: t@x.com\r\nSubject: one\r\nFrom: b@x.com\r\nReceived: r1\r\nSubject: two\r\nReceived: r2\r\nto: u@x.com\r\nMessage-ID: <m@x>\r\nDate: ${DATE}\r\n\r\n`);
    expect(r.text).toBe(`From: a@x.com\r\nTO: t@x.com\r\nSubject: one\r\nReceived: r1\r\nReceived: r2\r\nMessage-ID: <m@x>\r\nDate: ${DATE}\r\n\r\n`);
    expect(r.changed).toEqual(['dropped repeated From', 'dropped repeated Subject', 'dropped repeated to']);
  });

  it('keeps a folded field whole when it drops or keeps it', () => {
    const r = fixed(`Subject: one\r\n two\r\nSubject: three\r\n\tfour\r\nFrom: a@x\r\nDate: ${DATE}\r\nMessage-ID: <m@x>\r\n\r\n`);
    expect(r.text).toBe(`Subject: one\r\n two\r\nFrom: a@x\r\nDate: ${DATE}\r\nMessage-ID: <m@x>\r\n\r\n`);
  });

  it('puts a bare Message-ID in brackets and replaces one that is no id at all', () => {
    expect(lines(fixed(`From: a@x\r\nDate: ${DATE}\r\nMessage-ID: 123@scanner\r\n\r\n`).text)).toContain('Message-ID: <123@scanner>');
    const bad = fixed(`From: a@x\r\nDate: ${DATE}\r\nMessage-ID: <>\r\n\r\n`);
    expect(lines(bad.text)).toContain('Message-ID: <lq2x.7.relaybox@relaybox.example.com>');
    expect(bad.changed).toEqual(['replaced an invalid Message-ID']);
  });

  it('rewrites From to header_from and keeps the device From in Reply-To', () => {
    const r = fixed(`From: =?utf-8?Q?Scanner_2F?= <scan@lan>\r\nDate: ${DATE}\r\nMessage-ID: <m@x>\r\n\r\nb`, { headerFrom: 'Office Scanner <scanner@example.com>' });
    expect(r.text).toBe(`From: Office Scanner <scanner@example.com>\r\nReply-To: =?utf-8?Q?Scanner_2F?= <scan@lan>\r\nDate: ${DATE}\r\nMessage-ID: <m@x>\r\n\r\nb`);
    expect(r.changed).toEqual(['From rewritten (header_from), the device From kept in Reply-To']);
  });

  it('leaves an existing Reply-To alone and a From that already is header_from', () => {
    const r = fixed(`From: scan@lan\r\nReply-To: boss@example.com\r\nDate: ${DATE}\r\nMessage-ID: <m@x>\r\n\r\n`, { headerFrom: 'scanner@example.com' });
    expect(r.text).toBe(`From: scanner@example.com\r\nReply-To: boss@example.com\r\nDate: ${DATE}\r\nMessage-ID: <m@x>\r\n\r\n`);
    const same = fixed(`From: "Scanner" <Scanner@Example.com>\r\nDate: ${DATE}\r\nMessage-ID: <m@x>\r\n\r\n`, { headerFrom: 'scanner@example.com' });
    expect(same.changed).toEqual([]);
  });

  it('adds header_from when there is no From, and encodes a non-ASCII display name', () => {
    const r = fixed(`Date: ${DATE}\r\nMessage-ID: <m@x>\r\n\r\n`, { headerFrom: 'Drucker Büro <druck@example.com>' });
    expect(lines(r.text)).toContain('From: Drucker =?UTF-8?Q?B=C3=BCro?= <druck@example.com>');
    expect(r.text).not.toMatch(/Reply-To/);
  });

  it('makes header line endings CRLF', () => {
    const r = fixed(`From: a@x\nDate: ${DATE}\nMessage-ID: <m@x>\n\nbody\n`);
    expect(r.text).toBe(`From: a@x\r\nDate: ${DATE}\r\nMessage-ID: <m@x>\r\n\r\nbody\n`);
    expect(r.changed).toEqual(['CRLF line endings in the header']);
  });

  it('folds a long header line at whitespace, so unfolding gives the same value', () => {
    const subject = Array.from({ length: 300 }, (_, i) => `word${i}`).join(' ');
    const r = fixed(`Subject: ${subject}\r\nFrom: a@x\r\nDate: ${DATE}\r\nMessage-ID: <m@x>\r\n\r\n`);
    expect(lines(r.text).every((l) => l.length <= 998)).toBe(true);
    expect(r.text.replace(/\r\n(?=[ \t])/g, '')).toBe(`Subject: ${subject}\r\nFrom: a@x\r\nDate: ${DATE}\r\nMessage-ID: <m@x>\r\n\r\n`);
    expect(r.changed).toEqual(['folded header lines over 998 octets']);
  });

  it('splits a long structured header line without whitespace with CRLF SP, never inside a UTF-8 character', () => {
    const token = 'é'.repeat(1500); // 3000 octets of 2-byte characters
    const input = Buffer.from(`Keywords: ${token}\r\nFrom: a@x\r\nDate: ${DATE}\r\nMessage-ID: <m@x>\r\n\r\n`, 'utf8');
    const r = fixHeaders(input, ctx);
    const out = r.headers.toString('latin1').split('\r\n');
    expect(out.every((l) => l.length <= 998)).toBe(true);
    expect(r.headers.toString('utf8')).not.toContain('\ufffd');
    expect(r.headers.toString('utf8').replace(/\r\n /g, '')).toBe(`Keywords: ${token}\r\nFrom: a@x\r\nDate: ${DATE}\r\nMessage-ID: <m@x>\r\n\r\n`);
  });

  it('treats a message without header as all body, and inserts the missing blank line', () => {
    const none = fixed('Motion detected\r\nat 02:14\r\n');
    expect(none.text).toMatch(/^From: scanner@example\.com\r\nMessage-ID: <[^>]+>\r\nDate: [^\r]+\r\n\r\nMotion detected\r\nat 02:14\r\n$/);
    const glued = fixed(`From: a@x\r\nDate: ${DATE}\r\nMessage-ID: <m@x>\r\nthis line is body\r\n`);
    expect(glued.text).toBe(`From: a@x\r\nDate: ${DATE}\r\nMessage-ID: <m@x>\r\n\r\nthis line is body\r\n`);
    expect(glued.changed).toEqual(['blank line inserted between header and body']);
  });

  it('handles a headers-only message without a final line break', () => {
    expect(fixed('Subject: hi').text).toBe(
      'Subject: hi\r\nFrom: scanner@example.com\r\nMessage-ID: <lq2x.7.relaybox@relaybox.example.com>\r\nDate: Tue, 02 Jan 2024 15:04:05 +0000\r\n',
    );
    expect(fixed(`From: a@x\r\nDate: ${DATE}\r\nMessage-ID: <m@x>`).changed).toEqual([]);
  });

  it('keeps 8-bit header bytes as they are', () => {
    const input = Buffer.concat([Buffer.from('Subject: Temp\xe9rature\r\nSubject: x\r\n', 'latin1'), Buffer.from(`From: a@x\r\nDate: ${DATE}\r\nMessage-ID: <m@x>\r\n\r\n`)]);
    expect(fixHeaders(input, ctx).headers.subarray(0, 22)).toEqual(Buffer.from('Subject: Temp\xe9rature\r\n', 'latin1'));
  });
});

describe('findHeaderSection', () => {
  it('waits for more data until the header section is complete', () => {
    expect(findHeaderSection(Buffer.from('From: a@x\r\nSubj'), false)).toBeNull();
    expect(findHeaderSection(Buffer.from('From: a@x\r\n'), false)).toBeNull();
    expect(findHeaderSection(Buffer.from('From: a@x\r\n\r\nbo'), false)).toEqual({ fieldsEnd: 11, bodyStart: 13 });
    expect(findHeaderSection(Buffer.from('\r\nbody'), false)).toEqual({ fieldsEnd: 0, bodyStart: 2 });
    expect(findHeaderSection(Buffer.from('From: a@x\r\n'), true)).toEqual({ fieldsEnd: 11, bodyStart: 11 });
  });
});

describe('helpers', () => {
  it('formats dates and compares addresses', () => {
    expect(rfc5322Date(new Date(Date.UTC(2024, 1, 9, 1, 2, 3)))).toBe('Fri, 09 Feb 2024 01:02:03 +0000');
    expect(addressOf('"Doe, J" <J.Doe@Example.com>')).toBe('j.doe@example.com');
    expect(addressOf('j@x.com (Johnny)')).toBe('j@x.com');
    expect(formatMailbox('scanner@example.com')).toBe('scanner@example.com');
  });
});

describe('LongLineBreaker', () => {
  const feed = (chunks: string[]) => {
    const breaker = new LongLineBreaker();
    return Buffer.concat(chunks.map((c) => breaker.process(Buffer.from(c, 'latin1')))).toString('latin1');
  };

  it('passes short lines through as the same Buffer', () => {
    const chunk = Buffer.from('a'.repeat(998) + '\r\n' + 'b'.repeat(500));
    expect(new LongLineBreaker().process(chunk)).toBe(chunk);
  });

  it('breaks before a space where there is one, else inserts CRLF SP', () => {
    const words = `${'x'.repeat(990)} ${'y'.repeat(20)}\r\n`;
    expect(feed([words])).toBe(`${'x'.repeat(990)}\r\n ${'y'.repeat(20)}\r\n`);
    expect(feed(['z'.repeat(2100) + '\r\n'])).toBe(`${'z'.repeat(998)}\r\n ${'z'.repeat(997)}\r\n ${'z'.repeat(105)}\r\n`);
  });

  it('counts a line across chunk boundaries and allows exactly 998 octets plus CRLF', () => {
    expect(feed(['a'.repeat(600), 'a'.repeat(398), '\r', '\nnext\r\n'])).toBe(`${'a'.repeat(998)}\r\nnext\r\n`);
    const out = feed(['a'.repeat(600), 'a'.repeat(600), '\r\n']);
    expect(out).toBe(`${'a'.repeat(998)}\r\n ${'a'.repeat(202)}\r\n`);
  });
});
