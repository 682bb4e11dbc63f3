import { createHash } from 'node:crypto';
import type { Idempotency } from '../core/decider.ts';
import type { Caller } from './access.ts';
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

/**
 * Checks the optional Idempotency-Key header. A key belongs to its caller (the API key that sent
 * it, src/http/access.ts): another caller's same key is another key. It stands for one request
 * (method, URL and body): the same key with a different one is refused (422), as Stripe does.
 */
export function idempotency(req: Readonly<{ method: string; url: string; body?: unknown; caller?: Caller; headers: Readonly<Record<string, string | string[] | undefined>> }>): Idempotency | undefined {
  const header = req.headers['idempotency-key'];
  if (header === undefined) return undefined;
  if (Array.isArray(header) || header.length === 0 || header.length > 200 || !/^[\x21-\x7e]+$/.test(header)) {
    throw new Problem('invalid-header', 'Idempotency-Key must be one value of 1 to 200 visible ASCII characters.');
  }
  const body = req.body === undefined || req.body === null || (Buffer.isBuffer(req.body) && req.body.length === 0) ? '' : createHash('sha256').update(Buffer.isBuffer(req.body) ? req.body : JSON.stringify(req.body)).digest('base64url');
  return { key: `${req.caller?.id ?? 'anonymous'}:${header}`, request: `${req.method} ${req.url}${body === '' ? '' : ` (body ${body.slice(0, 16)})`}` };
}

/** A JSON request body that must be an object (an absent body is an empty one). */
export function jsonObject(body: unknown): Readonly<Record<string, unknown>> {
  if (body === undefined || body === null) return {};
  if (typeof body !== 'object' || Array.isArray(body)) throw new Problem('invalid-body', 'The body must be a JSON object.');
  return body as Record<string, unknown>;
}

/** An id in a JSON body. */
export function idField(body: Readonly<Record<string, unknown>>, name: string): string {
  const value = body[name];
  if (typeof value !== 'string') throw new Problem('invalid-body', `${name} must be a string id; got ${describe(value)}.`);
  try {
    return id(value, name);
  } catch (error) {
    if (error instanceof Problem) throw new Problem('invalid-body', error.detail);
    throw error;
  }
}

/** A whole number in a JSON body. */
export function countField(body: Readonly<Record<string, unknown>>, name: string, options: { min?: number; max?: number } = {}): number {
  const value = body[name];
  const min = options.min ?? 0;
  const max = options.max ?? MAX_AMOUNT;
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min || value > max) {
    throw new Problem('invalid-body', `${name} must be a whole number from ${min} to ${max}; got ${describe(value)}.`);
  }
  return value;
}

/** An optional short text in a JSON body. */
export function textField(body: Readonly<Record<string, unknown>>, name: string, fallback: string, maxLength = 500): string {
  const value = body[name];
  if (value === undefined) return fallback;
  if (typeof value !== 'string' || value.length > maxLength) throw new Problem('invalid-body', `${name} must be a string of at most ${maxLength} characters; got ${describe(value)}.`);
  return value;
}

/** One of some strings in a JSON body. */
export function oneOfField<T extends string>(body: Readonly<Record<string, unknown>>, name: string, allowed: readonly T[]): T {
  const value = body[name];
  if (typeof value !== 'string' || !(allowed as readonly string[]).includes(value)) {
    throw new Problem('invalid-body', `${name} must be one of ${allowed.join(', ')}; got ${describe(value)}.`);
  }
  return value as T;
}

/** Only the fields a body may have. */
export function onlyFields(body: Readonly<Record<string, unknown>>, allowed: readonly string[]): void {
  const extra = Object.keys(body).filter((key) => !allowed.includes(key));
  if (extra.length > 0) throw new Problem('invalid-body', `Unknown field${extra.length > 1 ? 's' : ''} ${extra.join(', ')}; the body takes ${allowed.join(', ')}.`);
}

function describe(value: unknown): string {
  if (value === undefined) return 'nothing';
  const text = JSON.stringify(value) ?? String(value);
  return text.length > 40 ? `${text.slice(0, 40)}…` : text;
}
