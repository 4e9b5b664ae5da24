import { describe, expect, it } from 'vitest';
import * as connectionModule from 'smtp-server/lib/smtp-connection.js';
import '../src/ingress/smtp.js';
import { copyDataTail } from '../src/ingress/dataTail.js';

// relaybox patches two internals of smtp-server (src/ingress/greetDelay.ts, dataTail.ts); each
// steps aside when smtp-server changes. This says so when an upgrade made one step aside, instead
// of the greeting pause and the stalled-upload memory coming back unnoticed.
describe('the smtp-server patches still apply to the installed smtp-server', () => {
  it('greets at once (no 100 ms anti-spambot pause)', () => {
    const { SMTPConnection } = connectionModule as unknown as { SMTPConnection: { prototype: { init: () => void } } };
    const init = String(SMTPConnection.prototype.init);
    expect(init).toContain('connectionReady');
    expect(init).not.toMatch(/setTimeout\(\(\) => this\.connectionReady\(\), *100\)/);
  });

  it('copies the tail of each DATA chunk instead of pinning the socket read', () => {
    expect(copyDataTail()).toBe(true);
  });
});
