import { pino, type Logger } from 'pino';

export type { Logger };

/** The process logger: structured JSON, one line per event. */
export function createLogger(level: string): Logger {
  return pino({ level, base: { pid: process.pid } });
}
