import { pino } from 'pino';
import type { Logger } from '../ports/log.ts';

export type { Logger };

/** The process logger: structured JSON, one line per event. */
export function createLogger(level: string): Logger {
  return pino({ level, base: { pid: process.pid } });
}
