import { describe, expect, it } from 'vitest';
import * as connectionModule from 'smtp-server/lib/smtp-connection.js';
import '../src/ingress/smtp.js';
import { offerAuthOverTlsOnly } from '../src/ingress/authOffer.js';
import { copyDataTail } from '../src/ingress/dataTail.js';
import { acceptLooseEnvelopes } from '../src/ingress/looseEnvelope.js';
import { wordSizeRefusals } from '../src/ingress/sizeReply.js';

// relaybox patches internals of smtp-server (src/ingress/greetDelay.ts, dataTail.ts, looseEnvelope.ts,
// authOffer.ts); each steps aside when smtp-server changes. This says so when an upgrade made one step
// aside, instead of the greeting pause, the stalled-upload memory, the 501 to bracket-less envelopes
// or AUTH listed before STARTTLS coming back unnoticed.
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

  it('takes envelopes without angle brackets or domain (where a server asks for it)', () => {
    expect(acceptLooseEnvelopes()).toBe(true);
  });

  it('lists AUTH only once TLS is up and words the early refusal 538 5.7.11 (where a server asks for it)', () => {
    expect(offerAuthOverTlsOnly()).toBe(true);
  });

  it('words the refusal of a too large MAIL FROM SIZE= as relaybox does: 552 5.3.4 and the sizes (where a server asks for it)', () => {
    expect(wordSizeRefusals()).toBe(true);
  });
});
