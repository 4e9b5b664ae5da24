import { pino, type Logger } from 'pino';

/**
 * JSON lines on stdout (journald keeps them). Secrets are never put into log objects on purpose;
 * the redaction is the second line of defence for any that slip into an error object.
 */
export function createLogger(level = 'info', destination?: NodeJS.WritableStream): Logger {
  return pino(
    {
      level,
      base: { service: 'relaybox' },
      timestamp: pino.stdTimeFunctions.isoTime,
      redact: {
        paths: ['password', 'pass', 'secret', 'token', '*.password', '*.pass', '*.client_secret', '*.refresh_token', '*.access_token', '*.auth.pass', 'err.config'],
        censor: '[redacted]',
      },
    },
    destination ?? pino.destination({ dest: 1, sync: false }),
  );
}

export type { Logger };
