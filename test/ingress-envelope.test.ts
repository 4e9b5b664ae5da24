import { afterEach, describe, expect, it } from 'vitest';
import { relayConfig, startRelay } from './helpers/relay.js';
import { configProblems, FILE_UPSTREAM } from './helpers/config.js';
import { TestUpstream } from './helpers/testUpstream.js';
import { tempDir } from './helpers/tmp.js';
import { SmtpTalk, startIngress, type RunningIngress } from './ingress-harness.js';

// Issue 13, item 2: envelopes from older NAS and UPS firmware — no angle brackets, or no domain —
// taken as Postfix takes them, and still checked as strictly as any other.

let running: RunningIngress | undefined;
afterEach(async () => {
  await running?.close();
  running = undefined;
});

/** EHLO, then each command in turn until one is not taken; its reply last. With `data`, DATA too. */
async function session(port: number, commands: string[], data?: string): Promise<string[]> {
  const { talk } = await SmtpTalk.open(port);
  await talk.cmd('EHLO nas');
  const replies: string[] = [];
  for (const command of commands) {
    replies.push(await talk.cmd(command));
    if (!replies.at(-1)!.startsWith('250')) break;
  }
  if (data !== undefined && replies.every((r) => r.startsWith('250'))) {
    expect(await talk.cmd('DATA')).toMatch(/^354 /);
    replies.push(await talk.cmd(`${data}\r\n.`));
  }
  await talk.quit();
  return replies;
}

/** The envelope relaybox spooled for a message. */
function spooled(run: RunningIngress, id: number): { from: string; to: string[] } {
  const from = run.db.prepare('SELECT mail_from FROM messages WHERE id = ?').pluck().get(id) as string;
  const to = run.db.prepare('SELECT rcpt FROM recipients WHERE message_id = ? ORDER BY rcpt').pluck().all(id) as string[];
  return { from, to };
}
const queuedId = (reply: string) => Number(/queued as (\d+)/.exec(reply)![1]);

describe('envelopes without angle brackets or without a domain', () => {
  it('delivers bracket-less MAIL FROM / RCPT TO with that envelope, and bare names qualified with smtp.default_domain', async () => {
    const up = await TestUpstream.start();
    const smtp = { name: 'primary', type: 'smtp', host: '127.0.0.1', port: up.port, security: 'none' };
    const { port } = await startRelay(relayConfig(tempDir(), { upstreams: [smtp], smtp: { default_domain: 'corp.example' } }));

    const bracketless = await session(port, ['MAIL FROM:scanner@corp.example SIZE=40', 'RCPT TO:ops@example.com'], 'Subject: UPS on battery\r\n\r\nhi');
    expect(bracketless.at(-1)).toMatch(/^250 2\.0\.0 Ok: queued/);
    const [first] = await up.waitForMessages(1);
    expect(first).toMatchObject({ from: 'scanner@corp.example', to: ['ops@example.com'] });

    const bare = await session(port, ['MAIL FROM:<root>', 'RCPT TO:admin', 'RCPT TO:<ops@example.com>'], 'Subject: cron\r\n\r\nhi');
    expect(bare.at(-1)).toMatch(/^250 2\.0\.0 Ok: queued/);
    const [, second] = await up.waitForMessages(2);
    expect(second!.from).toBe('root@corp.example');
    expect([...second!.to].sort()).toEqual(['admin@corp.example', 'ops@example.com']);
  });

  it('qualifies a bare name with the hostname by default; a name given twice is one recipient', async () => {
    running = await startIngress(); // hostname relaybox.test
    const replies = await session(running.port, ['MAIL FROM: root', 'RCPT TO:<admin>', 'RCPT TO:<admin@relaybox.test>', 'RCPT TO:admin'], 'Subject: x\r\n\r\nhi');
    expect(replies.at(-1)).toMatch(/^250 2\.0\.0 Ok: queued/);
    expect(spooled(running, queuedId(replies.at(-1)!))).toEqual({ from: 'root@relaybox.test', to: ['admin@relaybox.test'] });

    // The null sender stays the null sender.
    const bounce = await session(running.port, ['MAIL FROM:<>', 'RCPT TO:ops@example.com'], 'Subject: y\r\n\r\nhi');
    expect(spooled(running, queuedId(bounce.at(-1)!)).from).toBe('');
  });

  it('applies smtp.allow_recipient_domains to the qualified address', async () => {
    running = await startIngress({ allow_recipient_domains: ['example.com'], default_domain: 'corp.example' });
    expect(await session(running.port, ['MAIL FROM:root', 'RCPT TO:admin'])).toEqual(['250 Accepted', '550 5.7.1 relaying to corp.example denied']);
    expect(await session(running.port, ['MAIL FROM:root', 'RCPT TO:<postmaster>'])).toEqual(['250 Accepted', '550 5.7.1 relaying to corp.example denied']);
    expect(await session(running.port, ['MAIL FROM:root', 'RCPT TO:ops@elsewhere.test'])).toEqual(['250 Accepted', '550 5.7.1 relaying to elsewhere.test denied']);
    await running.close();

    running = await startIngress({ allow_recipient_domains: ['example.com'], default_domain: 'example.com' });
    const replies = await session(running.port, ['MAIL FROM:root', 'RCPT TO:admin'], 'Subject: x\r\n\r\nhi');
    expect(spooled(running, queuedId(replies.at(-1)!))).toEqual({ from: 'root@example.com', to: ['admin@example.com'] });
  });

  it('still refuses what is not an address, and parameters it does not know', async () => {
    running = await startIngress();
    const mailFrom = async (command: string) => (await session(running!.port, [command]))[0];
    expect(await mailFrom('MAIL FROM:<scanner@corp.example> junk')).toBe('555 5.5.4 Unsupported parameter JUNK');
    expect(await mailFrom('MAIL FROM:scanner@corp.example FOO=1')).toBe('555 5.5.4 Unsupported parameter FOO');
    expect(await mailFrom('MAIL FROM:scanner @corp.example')).toBe('555 5.5.4 Unsupported parameter @CORP.EXAMPLE');
    for (const bad of ['MAIL FROM:"scan ner"@corp.example', 'MAIL FROM:"scanner"@corp.example', 'MAIL FROM:@relay.example:scanner@corp.example', 'MAIL FROM:<scanner@corp.example>junk', 'MAIL FROM:', 'MAIL FROM:a@b@corp.example', 'MAIL FROM:<@relay.example:root>', 'MAIL FROM:.root', 'MAIL FROM:<root@>']) {
      expect(await mailFrom(bad), bad).toMatch(/^501 /);
    }
    // What was taken before still is: a source route in brackets (RFC 5321 4.1.2), parameters it knows.
    expect(await mailFrom('MAIL FROM:<@relay.example:scanner@corp.example> BODY=8BITMIME SIZE=10')).toBe('250 Accepted');
    const rcpt = async (command: string) => (await session(running!.port, ['MAIL FROM:<>', command]))[1];
    expect(await rcpt('RCPT TO:<>')).toMatch(/^501 /);
    expect(await rcpt('RCPT TO:ops@example.com NOTIFY=NEVER')).toBe('250 Accepted');
    expect(await rcpt('RCPT TO:ops@example.com junk')).toBe('555 5.5.4 Unsupported parameter JUNK');
  });

  it('names smtp.default_domain when it is not a domain', () => {
    expect(configProblems(`smtp: { default_domain: "corp example" }\n${FILE_UPSTREAM}`)).toEqual([
      'smtp.default_domain: expected a domain name like example.com (or "" for the hostname), got "corp example"',
    ]);
  });
});
