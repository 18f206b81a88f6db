import { pino } from 'pino';
import type { Logger as PinoLogger, DestinationStream, Level } from 'pino';

/**
 * Structured JSON logs (pino). Subsystems take a child logger: `log.child({ subsystem: 'chain' })`,
 * and add `connId` / `peer` on every line that has them. Secrets never go into a log line: the
 * redact list below is a last line of defence, not the method.
 */
export type Logger = PinoLogger;
export type LogLevel = Level | 'silent';

export interface LoggerOptions {
  readonly level?: LogLevel;
  /** Where lines go; defaults to stderr, written synchronously so nothing is lost on exit. */
  readonly destination?: DestinationStream;
  readonly name?: string;
}

const redactPaths = [
  'token',
  'secret',
  'privateKey',
  'private_key',
  'key',
  '*.token',
  '*.secret',
  '*.privateKey',
  '*.private_key',
  'req.headers.authorization',
];

export function createLogger(options: LoggerOptions = {}): Logger {
  const destination = options.destination ?? pino.destination({ fd: 2, sync: true });
  return pino(
    {
      name: options.name ?? 'nsm-agent',
      level: options.level ?? 'info',
      redact: { paths: redactPaths, censor: '[redacted]' },
      base: { pid: process.pid },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    destination,
  );
}

/** A logger that drops everything; for library defaults and tests that do not look at logs. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
