/**
 * What the engine, the adapters and the HTTP edge log through: structured fields first, then
 * a message (pino's shape; the process logger is pino, made in runtime/log.ts).
 */
export interface Logger {
  error(fields: object, message: string): void;
  warn(fields: object, message: string): void;
  info(fields: object, message: string): void;
  debug(fields: object, message: string): void;
  /** A logger that adds `bindings` to every line. */
  child(bindings: Readonly<Record<string, unknown>>): Logger;
}
