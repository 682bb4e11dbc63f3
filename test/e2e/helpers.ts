import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { InjectOptions, LightMyRequestResponse } from 'fastify';
import { loadConfig } from '../../src/config.ts';
import { policyOf } from '../../src/http/access.ts';
import { startGateway, type Upstreams } from '../../src/processes/gateway.ts';
import type { Audit } from '../../src/domain/audit.ts';
import { createLogger } from '../../src/runtime/log.ts';
import type { CourseClient } from '../../src/tools/client.ts';
import { settled } from '../../src/tools/lifecycle.ts';
import { startEmbedded, type System } from '../../src/wiring/embedded.ts';

export type TestSystem = Readonly<{
  system: System;
  /** Sends a request through `app.inject()` (no socket). */
  inject(options: InjectOptions): Promise<LightMyRequestResponse>;
  /** Stops the system and deletes its data directory. */
  close(): Promise<void>;
}>;

/**
 * Starts the whole system in this process (the default embedded store in a fresh temporary directory, silent
 * logs). `env` adds settings, e.g. a shorter ORDERLY_CHECKOUT_WAIT_MS.
 */
export async function startTestSystem(env: Readonly<Record<string, string>> = {}): Promise<TestSystem> {
  const dir = mkdtempSync(join(tmpdir(), 'orderly-e2e-'));
  try {
    const config = loadConfig({ ...env, ORDERLY_DATA_DIR: dir, LOG_LEVEL: 'silent' });
    const system = await startEmbedded(config, createLogger('silent'));
    return {
      system,
      inject: (options) => system.app.inject(options),
      async close() {
        try {
          await system.close();
        } finally {
          rmSync(dir, { recursive: true, force: true });
        }
      },
    };
  } catch (error) {
    rmSync(dir, { recursive: true, force: true });
    throw error;
  }
}

export type ProblemBody = Readonly<{ code: string; status: number; title: string; detail: string }>;

/**
 * Asserts that `res` is a 4xx `application/problem+json` answer with `code`, `status`,
 * `title` and `detail`, and returns its body.
 */
export function assertProblem(res: LightMyRequestResponse, context = ''): ProblemBody {
  const where = `${context} → ${res.statusCode} ${res.body.slice(0, 300)}`;
  assert.ok(res.statusCode >= 400 && res.statusCode < 500, `a 4xx answer: ${where}`);
  assert.match(String(res.headers['content-type']), /^application\/problem\+json\b/, `problem+json content type: ${where}`);
  let body: unknown;
  assert.doesNotThrow(() => {
    body = JSON.parse(res.body);
  }, `a JSON body: ${where}`);
  const problem = body as Partial<Record<keyof ProblemBody, unknown>>;
  assert.equal(typeof problem.code, 'string', `code: ${where}`);
  assert.equal(problem.status, res.statusCode, `status matches the HTTP status: ${where}`);
  assert.ok(typeof problem.title === 'string' && problem.title.length > 0, `title: ${where}`);
  assert.ok(typeof problem.detail === 'string' && problem.detail.length > 0, `detail: ${where}`);
  return problem as ProblemBody;
}

/** Asserts a 2xx answer and returns its JSON body. */
export function ok<T>(res: LightMyRequestResponse, context = ''): T {
  assert.ok(res.statusCode >= 200 && res.statusCode < 300, `a 2xx answer: ${context} → ${res.statusCode} ${res.body.slice(0, 300)}`);
  return res.json<T>();
}

/** How many documents of a service's store have keys starting with `prefix`. */
export async function countDocs(system: System, service: keyof System['services'], prefix: string): Promise<number> {
  return (await system.services[service]!.store.scan(prefix, 1_000_000)).length;
}

// Small course-API clients that assert success.

export async function createItem(t: TestSystem, price: number, stock: number): Promise<string> {
  const { item_id } = ok<{ item_id: string }>(await t.inject({ method: 'POST', url: `/stock/item/create/${price}` }), 'create item');
  if (stock > 0) ok(await t.inject({ method: 'POST', url: `/stock/add/${item_id}/${stock}` }), 'add stock');
  return item_id;
}

export async function createUser(t: TestSystem, credit: number): Promise<string> {
  const { user_id } = ok<{ user_id: string }>(await t.inject({ method: 'POST', url: '/payment/create_user' }), 'create user');
  if (credit > 0) ok(await t.inject({ method: 'POST', url: `/payment/add_funds/${user_id}/${credit}` }), 'add funds');
  return user_id;
}

export async function createOrder(t: TestSystem, userId: string, lines: readonly (readonly [string, number])[]): Promise<string> {
  const { order_id } = ok<{ order_id: string }>(await t.inject({ method: 'POST', url: `/orders/create/${userId}` }), 'create order');
  for (const [itemId, quantity] of lines) {
    ok(await t.inject({ method: 'POST', url: `/orders/addItem/${order_id}/${itemId}/${quantity}` }), 'add item');
  }
  return order_id;
}

export type ItemView = Readonly<{ stock: number; price: number }>;
export type UserView = Readonly<{ user_id: string; credit: number }>;
export type OrderView = Readonly<{ order_id: string; paid: boolean; items: [string, number][]; user_id: string; total_cost: number }>;

export async function findItem(t: TestSystem, itemId: string): Promise<ItemView> {
  return ok<ItemView>(await t.inject({ method: 'GET', url: `/stock/find/${itemId}` }), `find item ${itemId}`);
}

export async function findUser(t: TestSystem, userId: string): Promise<UserView> {
  return ok<UserView>(await t.inject({ method: 'GET', url: `/payment/find_user/${userId}` }), `find user ${userId}`);
}

export async function findOrder(t: TestSystem, orderId: string): Promise<OrderView> {
  return ok<OrderView>(await t.inject({ method: 'GET', url: `/orders/find/${orderId}` }), `find order ${orderId}`);
}

/** Waits until no saga is under way (recovery done) and returns the audit. */
export const settle = (client: CourseClient): Promise<Audit> => settled(client, 30_000);

/** A gateway on a free loopback port in front of `upstreams`, with the settings `env` gives (tokens, limits). */
export function startTestGateway(upstreams: Upstreams, env: Readonly<Record<string, string>> = {}) {
  const config = loadConfig({ ...env, LOG_LEVEL: 'silent' });
  return startGateway(upstreams, { host: '127.0.0.1', port: 0, log: createLogger('silent'), access: policyOf(config, false), maxEventStreams: config.maxEventStreams });
}
