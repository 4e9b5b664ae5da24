// smtp-server refuses `MAIL FROM:<…> SIZE=n` above its `size` option itself, before onMailFrom,
// as `552 Error: message exceeds fixed maximum message size 26214400`: without the enhanced code
// (relaybox writes those into its own replies) and in words a scanner's panel makes little of.
// This words that refusal as relaybox's: `552 5.3.4 Message too large for Gmail: 25 MB max (this
// one 31 MB)`. Only servers that ask for it (`relayboxSizeRefusal`) are affected; should a later
// smtp-server rename the check, the patch steps aside and the refusal keeps smtp-server's words.
import * as connectionModule from 'smtp-server/lib/smtp-connection.js';

export interface SizeRefusalOptions {
  /** The text after `552` for a declared size above the advertised one. */
  relayboxSizeRefusal?: (declared: number) => string;
}

interface ValidationError {
  code: number;
  message: string;
  enhancedCode: string | null;
}

interface ConnectionInternals {
  _server: { options: SizeRefusalOptions };
}

type Validate = (this: ConnectionInternals, parsed: { args?: Record<string, string> | false }) => ValidationError | null;

export function wordSizeRefusals(): boolean {
  const { SMTPConnection } = connectionModule as unknown as {
    SMTPConnection?: { prototype: { _validateMailParams?: Validate; __relayboxSizeRefusal?: true } };
  };
  const proto = SMTPConnection?.prototype;
  if (proto?.__relayboxSizeRefusal) return true;
  const validate = proto?._validateMailParams;
  if (!proto || typeof validate !== 'function' || !String(validate).includes('MESSAGE_TOO_BIG')) return false;
  proto.__relayboxSizeRefusal = true;
  proto._validateMailParams = function validateMailParams(this: ConnectionInternals, parsed) {
    const error = validate.call(this, parsed);
    const words = this._server.options.relayboxSizeRefusal;
    if (!error || error.enhancedCode !== 'MESSAGE_TOO_BIG' || !words) return error;
    return { ...error, message: words(Number((parsed.args || {}).SIZE)) };
  };
  return true;
}
