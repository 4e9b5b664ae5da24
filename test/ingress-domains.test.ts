import { afterEach, describe, expect, it } from 'vitest';
import { ConfigError, validateConfig } from '../src/config/load.js';
import { SmtpTalk, startIngress, type RunningIngress } from './ingress-harness.js';

let running: RunningIngress | undefined;
afterEach(async () => {
  await running?.close();
  running = undefined;
});

function config(domains: unknown[]) {
  return validateConfig({ hostname: 'relaybox.test', smtp: { allow_recipient_domains: domains }, upstreams: [{ name: 'o', type: 'file', dir: '/tmp/o' }] });
}

/** One transaction over real SMTP: the reply to each RCPT, then the stored envelope when any was taken. */
async function transaction(port: number, from: string, rcpts: string[]): Promise<{ replies: string[]; stored?: { from: string; to: string[] } }> {
  const { talk } = await SmtpTalk.open(port);
  await talk.cmd('EHLO mfp');
  const mail = await talk.cmd(`MAIL FROM:<${from}>${/[^\x00-\x7f]/.test(from + rcpts.join('')) ? ' SMTPUTF8' : ''}`);
  if (!mail.startsWith('250')) {
    await talk.quit();
    return { replies: [mail] };
  }
  const replies: string[] = [];
  for (const rcpt of rcpts) replies.push(await talk.cmd(`RCPT TO:<${rcpt}>`));
  if (!replies.some((r) => r.startsWith('250'))) {
    await talk.quit();
    return { replies };
  }
  expect(await talk.cmd('DATA')).toMatch(/^354/);
  const done = await talk.cmd('Subject: idn\r\n\r\nhello\r\n.');
  await talk.quit();
  const id = Number(/queued as (\d+)/.exec(done)![1]);
  const db = running!.db;
  const to = db.prepare('SELECT rcpt FROM recipients WHERE message_id = ?').pluck().all(id) as string[];
  return { replies, stored: { from: db.prepare('SELECT mail_from FROM messages WHERE id = ?').pluck().get(id) as string, to: to.sort() } };
}

describe('smtp.allow_recipient_domains: IDN and trailing dots', () => {
  it('takes a domain in either IDN form or with a trailing dot, keeps it as ASCII, and names a bad one', () => {
    expect(config(['bücher.example', 'xn--bcher-kva.example', 'Example.COM.', 'ДОМЕН.рф']).smtp.allow_recipient_domains).toEqual([
      'xn--bcher-kva.example',
      'xn--bcher-kva.example',
      'example.com',
      'xn--d1acufc.xn--p1ai',
    ]);
    for (const bad of ['not a domain', 'a..b.example', '-x.example', '.', '']) {
      expect(() => config([bad]), bad).toThrow(ConfigError);
      try {
        config([bad]);
      } catch (err) {
        expect((err as ConfigError).problems).toEqual([`smtp.allow_recipient_domains[0]: expected a domain name like example.com or bücher.example, got "${bad}"`]);
      }
    }
  });

  it('accepts a RCPT to an allowed IDN domain written either way, and to an allowed domain with a trailing dot', async () => {
    running = await startIngress({ allow_recipient_domains: ['bücher.example', 'example.com.'] });
    const { replies, stored } = await transaction(running.port, 'scanner@office.test', [
      'punycode@xn--bcher-kva.example', // smtp-server hands this over decoded: punycode@bücher.example
      'unicode@bücher.example',
      'Upper@XN--BCHER-KVA.EXAMPLE',
      'dot@example.com.',
      'plain@example.com',
      'ü@bücher.example', // a Unicode local part needs SMTPUTF8 upstream anyway: kept in Unicode
      'someone@elsewhere.example',
      'someone@elsewhere.example.',
    ]);
    expect(replies.slice(0, 6)).toEqual(Array(6).fill('250 Accepted'));
    expect(replies.slice(6)).toEqual(['550 5.7.1 relaying to elsewhere.example denied', '550 5.7.1 relaying to elsewhere.example denied']);
    // Stored as every upstream takes them: an ASCII local part with the ASCII domain, no trailing dot.
    expect(stored!.to).toEqual(
      ['punycode@xn--bcher-kva.example', 'unicode@xn--bcher-kva.example', 'Upper@xn--bcher-kva.example', 'dot@example.com', 'plain@example.com', 'ü@bücher.example'].sort(),
    );
  });

  it('matches an allowed domain written as xn-- against a RCPT in Unicode', async () => {
    running = await startIngress({ allow_recipient_domains: ['xn--bcher-kva.example'] });
    const { replies, stored } = await transaction(running.port, 'scanner@office.test', ['a@bücher.example', 'b@bucher.example']);
    expect(replies).toEqual(['250 Accepted', '550 5.7.1 relaying to bucher.example denied']);
    expect(stored!.to).toEqual(['a@xn--bcher-kva.example']);
  });

  it('takes a trailing dot in MAIL FROM too, and still answers 501 to malformed addresses', async () => {
    running = await startIngress({ allow_recipient_domains: ['example.com'] });
    const { stored } = await transaction(running.port, 'scanner@office.example.', ['a@example.com']);
    expect(stored!.from).toBe('scanner@office.example');
    for (const bad of ['.dot@example.com', 'a..b@example.com', 'a@x-.example.com', 'a@example..com', 'a@b@example.com', 'a@[300.1.1.1]', 'a@exa_mple.com']) {
      expect((await transaction(running.port, 'scanner@office.test', [bad])).replies[0], bad).toMatch(/^501 /); // smtp-server's or ours
    }
    expect((await transaction(running.port, 'scanner@office.test', ['a..b@example.com'])).replies).toEqual(['501 5.1.3 Bad recipient address syntax']);
    expect((await transaction(running.port, 'dev..x@office.test', ['a@example.com'])).replies).toEqual(['501 5.1.7 Bad sender address syntax']);
    expect((await transaction(running.port, '', ['a@example.com'])).stored!.from).toBe('');
  });
});
