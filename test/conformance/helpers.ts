import { randomBytes } from 'node:crypto';
import type { Envelope } from '../../src/core/message.ts';

/** A fresh lower-case name, valid as a schema, a database, a queue or a stream name. */
export function randomName(prefix: string): string {
  return `${prefix}_${randomBytes(5).toString('hex')}`;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * Waits until `check` returns true, failing with `what` after `timeoutMs`. Brokers deliver
 * asynchronously, so tests wait for an outcome instead of guessing a delay.
 */
export async function eventually(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`Timed out waiting for: ${what}`);
    await sleep(10);
  }
}

export function envelope(id: string, type = 'Tested', extra: Partial<Envelope> = {}): Envelope {
  return { id, type, sagaId: 'saga-1', step: 'step', correlationId: 'order-1', causationId: 'cause', at: 1_700_000_000_000, payload: { n: 1 }, ...extra };
}
