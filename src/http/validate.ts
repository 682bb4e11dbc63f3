import type { Idempotency } from '../core/decider.ts';
import { MAX_AMOUNT, MAX_BATCH, MAX_ID_LENGTH } from '../domain/limits.ts';
import { Problem } from './problems.ts';

const ID = /^[A-Za-z0-9_-]+$/;
const DIGITS = /^[0-9]+$/;

/** Checks an id from the URL. */
export function id(value: string | undefined, name: string): string {
  if (value === undefined || value.length === 0) throw new Problem('invalid-id', `${name} is missing.`);
  if (value.length > MAX_ID_LENGTH) throw new Problem('invalid-id', `${name} is ${value.length} characters long; at most ${MAX_ID_LENGTH} are allowed.`);
  if (!ID.test(value)) throw new Problem('invalid-id', `${name} may only contain letters, digits, '_' and '-'.`);
  return value;
}

/** Checks a non-negative whole number from the URL (an amount, price, quantity or count). */
export function count(value: string | undefined, name: string, options: { min?: number; max?: number } = {}): number {
  const min = options.min ?? 0;
  const max = options.max ?? MAX_AMOUNT;
  if (value === undefined || !DIGITS.test(value)) {
    throw new Problem('invalid-number', `${name} must be a whole number from ${min} to ${max}; got '${value ?? ''}'.`);
  }
  const n = Number(value);
  if (!Number.isSafeInteger(n) || n > max) throw new Problem('amount-too-large', `${name} must be at most ${max}; got ${value}.`);
  if (n < min) throw new Problem('invalid-number', `${name} must be at least ${min}; got ${value}.`);
  return n;
}

export const batchSize = (value: string | undefined, name: string) => count(value, name, { max: MAX_BATCH });

/** Checks the optional Idempotency-Key header. */
export function idempotency(req: Readonly<{ method: string; url: string; headers: Readonly<Record<string, string | string[] | undefined>> }>): Idempotency | undefined {
  const header = req.headers['idempotency-key'];
  if (header === undefined) return undefined;
  if (Array.isArray(header) || header.length === 0 || header.length > 200 || !/^[\x21-\x7e]+$/.test(header)) {
    throw new Problem('invalid-header', 'Idempotency-Key must be one value of 1 to 200 visible ASCII characters.');
  }
  return { key: header, request: `${req.method} ${req.url}` };
}
