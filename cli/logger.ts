/** The one logger of a program: structured JSON to stderr, secrets redacted. */
import pino, { type Logger } from 'pino';

export const REDACT_PATHS = ['password', 'token', 'accessToken', 'secretKey', '*.password', '*.token', '*.accessToken', '*.secretKey', 'headers.authorization', 'req.headers.authorization'];

export function createLogger(level: string, name: string): Logger {
  return pino({ name, level, redact: { paths: REDACT_PATHS, censor: '[redacted]' } }, pino.destination(2));
}
