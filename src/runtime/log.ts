import { pino } from 'pino';
import type { Logger } from '../ports/log.ts';

export type { Logger };

/**
 * The process logger (pino), on standard output: one JSON object per line, or with `format`
 * `pretty` (`auto` on a terminal) one readable line per event.
 */
export function createLogger(level: string, format: 'auto' | 'json' | 'pretty' = 'json', out: { write(text: string): unknown; isTTY?: boolean } = process.stdout): Logger {
  const pretty = format === 'pretty' || (format === 'auto' && out.isTTY === true);
  const options = { level, base: { pid: process.pid } };
  if (pretty) return pino(options, { write: (line: string) => out.write(prettyLine(line)) });
  return out === process.stdout ? pino(options) : pino(options, { write: (line: string) => out.write(line) });
}

const LEVELS: Readonly<Record<number, string>> = { 10: 'TRACE', 20: 'DEBUG', 30: 'INFO ', 40: 'WARN ', 50: 'ERROR', 60: 'FATAL' };
/** Fields every line has, shown in its head rather than after it. */
const HEAD = new Set(['level', 'time', 'msg', 'pid', 'hostname']);

/**
 * One JSON log line as a readable one: time, level, message, then the fields as key=value
 * (strings as they are when they have no spaces, the rest as JSON), an error's stack below.
 */
export function prettyLine(json: string): string {
  let entry: Record<string, unknown>;
  try {
    entry = JSON.parse(json) as Record<string, unknown>;
  } catch {
    return json;
  }
  const time = typeof entry.time === 'number' ? new Date(entry.time).toISOString().slice(11, 23) : '';
  const level = LEVELS[entry.level as number] ?? String(entry.level);
  const fields: string[] = [];
  let stack = '';
  for (const [key, value] of Object.entries(entry)) {
    if (HEAD.has(key) || value === undefined) continue;
    if ((key === 'err' || key === 'error') && typeof value === 'object' && value !== null && 'message' in value) {
      const err = value as { message?: unknown; stack?: unknown };
      fields.push(`${key}=${JSON.stringify(String(err.message))}`);
      if (typeof err.stack === 'string') stack = `\n    ${err.stack.split('\n').join('\n    ')}`;
      continue;
    }
    fields.push(`${key}=${typeof value === 'string' && /^[^\s"=]+$/.test(value) ? value : JSON.stringify(value)}`);
  }
  return `${time} ${level} ${String(entry.msg ?? '')}${fields.length > 0 ? `  ${fields.join(' ')}` : ''}${stack}\n`;
}
