import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { CrlfNormalizer } from '../src/message/crlf.js';
import { decodeEncodedWords, headerLines, MAX_SUBJECT_CHARS, parseHeaderBlock, subjectOf } from '../src/message/headers.js';

async function normalize(chunks: string[]): Promise<string> {
  const out: Buffer[] = [];
  for await (const chunk of Readable.from(chunks.map((c) => Buffer.from(c, 'latin1'))).pipe(new CrlfNormalizer())) out.push(chunk as Buffer);
  return Buffer.concat(out).toString('latin1');
}

describe('CrlfNormalizer', () => {
  it('turns bare LF into CRLF', async () => {
    expect(await normalize(['a\nb\n\nc'])).toBe('a\r\nb\r\n\r\nc');
    expect(await normalize(['\n', '\n'])).toBe('\r\n\r\n');
  });

  it('passes CRLF through unchanged, also when CR and LF arrive in different chunks', async () => {
    expect(await normalize(['line1\r', '\nline2\r\n'])).toBe('line1\r\nline2\r\n');
    expect(await normalize(['x\r', '\n', '\r', '\ny\n'])).toBe('x\r\n\r\ny\r\n');
    // A CR that ended an earlier chunk does not excuse a later bare LF.
    expect(await normalize(['x\r', 'y\n'])).toBe('x\ry\r\n');
  });

  it('leaves a bare CR alone and 8-bit bytes intact', async () => {
    expect(await normalize(['a\rb\xff\xfe\n'])).toBe('a\rb\xff\xfe\r\n');
  });

  it('hands on a chunk without bare LF as it is', async () => {
    const normalizer = new CrlfNormalizer();
    const input = Buffer.from('no bare line feeds\r\nhere\r\n');
    const output = new Promise<Buffer>((resolve) => normalizer.once('data', resolve));
    normalizer.end(input);
    expect((await output).buffer).toBe(input.buffer);
  });
});

describe('parseHeaderBlock / subjectOf', () => {
  it('unfolds folded fields and stops at the first empty line', () => {
    const msg = Buffer.from('From: a@b.test\r\nSubject: a long\r\n  folded\r\n\tsubject\r\nX-Empty:\r\n\r\nSubject: not a header\r\n');
    expect(parseHeaderBlock(msg)).toEqual([
      { name: 'From', value: 'a@b.test' },
      { name: 'Subject', value: 'a long  folded\tsubject' },
      { name: 'X-Empty', value: '' },
    ]);
    expect(subjectOf(msg)).toBe('a long  folded\tsubject');
  });

  it('takes bare LF headers and finds the subject case-insensitively', () => {
    expect(subjectOf(Buffer.from('SUBJECT: lf\n folded\n\nbody'))).toBe('lf folded');
  });

  it('returns null without a subject, or when the message starts with its body', () => {
    expect(subjectOf(Buffer.from('From: a@b.test\r\n\r\nhello'))).toBeNull();
    expect(subjectOf(Buffer.from('\r\nSubject: in the body\r\n'))).toBeNull();
  });

  it('decodes B and Q encoded words, joining adjacent ones', () => {
    const words = '=?UTF-8?B?U2NhbiDinJMg?= =?utf-8?Q?fr=C3=BCh_morgens?=';
    expect(subjectOf(Buffer.from(`Subject: ${words}\r\n\r\n`))).toBe('Scan ✓ früh morgens');
    expect(subjectOf(Buffer.from('Subject: Re: =?iso-8859-1?q?Gr=FC=DFe?= aus Wien\r\n\r\n'))).toBe('Re: Grüße aus Wien');
  });

  it('joins a multi-byte character that an encoder split across two words', () => {
    // "✓" is E2 9C 93; the first word carries E2 9C, the second 93, across a folded line.
    const subject = subjectOf(Buffer.from('Subject: =?utf-8?B?b2sg4pw=?=\r\n =?utf-8?B?kw==?=\r\n\r\n'));
    expect(subject).toBe('ok ✓');
  });

  it('keeps words in an unknown charset as written and plain text around them', () => {
    expect(decodeEncodedWords('a =?x-unknown?Q?b?= c')).toBe('a =?x-unknown?Q?b?= c');
    expect(decodeEncodedWords('no words here = ?')).toBe('no words here = ?');
  });

  it('reads raw 8-bit subjects as UTF-8, falling back to Latin-1', () => {
    expect(subjectOf(Buffer.concat([Buffer.from('Subject: '), Buffer.from('Größe', 'utf8'), Buffer.from('\r\n\r\n')]))).toBe('Größe');
    expect(subjectOf(Buffer.concat([Buffer.from('Subject: '), Buffer.from('Größe', 'latin1'), Buffer.from('\r\n\r\n')]))).toBe('Größe');
  });

  it('caps the subject at 998 characters and strips control characters', () => {
    expect(subjectOf(Buffer.from(`Subject: ${'s'.repeat(5000)}\r\n\r\n`))).toHaveLength(MAX_SUBJECT_CHARS);
    expect(subjectOf(Buffer.from('Subject: =?utf-8?Q?a=0D=0Ab?=\r\n\r\n'))).toBe('a  b');
  });

  it('only looks at the first 64 KiB', () => {
    const msg = Buffer.from(`X-Pad: ${'p'.repeat(70 * 1024)}\r\nSubject: too late\r\n\r\n`);
    expect(subjectOf(msg)).toBeNull();
  });

  it('headerLines gives Name: value lines for people to read', () => {
    expect(headerLines(Buffer.from('From: a@b.test\r\nSubject: =?utf-8?Q?caf=C3=A9?=\r\n\r\nbody'))).toEqual(['From: a@b.test', 'Subject: café']);
  });
});
