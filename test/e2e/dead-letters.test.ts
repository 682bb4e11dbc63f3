import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { test } from 'node:test';
import { promisify } from 'node:util';
import { openBrowser, SHOTS } from './browser.ts';
import type { Commit, Snapshot } from '../../src/ports/store.ts';
import { assertProblem, createItem, createOrder, createUser, findOrder, ok, startTestSystem } from './helpers.ts';

// Dead letters made for real and handled as an operator would: the stock database fails while
// two checkouts reserve stock, so their ReserveStock messages fail every delivery and are
// dead-lettered (about 30 s: the in-process bus tries ten times, backing off up to 5 s). Once
// the database works again, one is redriven from the console (real headless Chromium) and its
// saga finishes; the other is discarded with the CLI. Admin routes need the admin token here.
// Each step saves a screenshot under tmp/screenshots/.

const TOKEN = 'dead-letter-test-token-0123456789';
const auth = { authorization: `Bearer ${TOKEN}` };
// Sagas wait for their reservation (no time-out while the letters are dead), checkouts answer 504 soon.
const sys = await startTestSystem({ ORDERLY_ADMIN_TOKEN: TOKEN, ORDERLY_SAGA_STEP_TIMEOUT_MS: '600000', ORDERLY_CHECKOUT_WAIT_MS: '500' });
const base = await sys.system.app.listen({ host: '127.0.0.1', port: 0 });

type Summary = { id: string; consumer: string; type: string; reason: string; group: string; saga_ids: string[]; correlation_ids: string[] };
type Page_ = { total: number; groups: { group: string; reason: string; count: number; consumers: string[]; types: string[] }[]; dead_letters: Summary[]; next: string | null };
const list = async (query = '') => ok<Page_>(await sys.inject({ method: 'GET', url: `/admin/dead-letters${query}`, headers: auth }), 'list dead letters');

const item = await createItem(sys, 3, 10);
const user = await createUser(sys, 100);
const redriven = await createOrder(sys, user, [[item, 2]]);
const discarded = await createOrder(sys, user, [[item, 1]]);

// The fault: every transaction of the stock service fails, as on a disk that went bad.
const stock = sys.system.services.stock?.store;
assert.ok(stock);
const transact = stock.transact.bind(stock);
let broken = true;
stock.transact = <T>(keys: readonly string[], ids: readonly string[], decide: (snapshot: Snapshot) => Commit<T>): Promise<T> =>
  broken ? Promise.reject(new Error('SQLITE_IOERR: disk I/O error (the test broke the stock database)')) : transact(keys, ids, decide);

for (const order of [redriven, discarded]) {
  const answer = await sys.inject({ method: 'POST', url: `/orders/checkout/${order}` });
  assert.equal(answer.json<{ code: string }>().code, 'checkout-pending', 'a checkout that cannot reserve its stock is still running when its wait ends');
}

await test('ReserveStock that keeps failing is dead-lettered, grouped by reason, and shown with its payload', { timeout: 90_000 }, async () => {
  for (let i = 0; (await list()).total < 2; i++) {
    assert.ok(i < 700, 'two dead letters within 70 s');
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  const page = await list();
  assert.equal(page.groups.length, 1, 'one reason, one group');
  assert.equal(page.groups[0]?.count, 2);
  assert.deepEqual(page.groups[0]?.consumers, ['stock']);
  assert.deepEqual(page.groups[0]?.types, ['ReserveStock']);
  assert.match(page.groups[0]?.reason ?? '', /disk I\/O error/);
  const letter = page.dead_letters.find((d) => d.correlation_ids.includes(redriven));
  assert.ok(letter);
  const shown = ok<{ envelopes: { payload: unknown; sagaId: string }[] }>(await sys.inject({ method: 'GET', url: `/admin/dead-letters/${encodeURIComponent(letter.id)}`, headers: auth }));
  assert.deepEqual(shown.envelopes[0]?.payload, { lines: [[item, 2]] });
  assert.deepEqual((await list(`?group=${encodeURIComponent(letter.group)}&limit=1`)).dead_letters.length, 1, 'paged');
  // The saga waits on its reservation meanwhile.
  const saga = ok<{ status: string; current_steps: string[] }>(await sys.inject({ method: 'GET', url: `/sagas/${encodeURIComponent(shown.envelopes[0]?.sagaId ?? '')}`, headers: auth }));
  assert.equal(saga.status, 'running');
  assert.ok(saga.current_steps.includes('reserveStock'));
  const metrics = (await sys.inject({ method: 'GET', url: '/metrics', headers: auth })).body;
  assert.match(metrics, /orderly_messages_dead_lettered_total\{service="stock",type="ReserveStock"\} 2/);
});

await test('dead-letter routes need the admin token and answer problems for bad or unknown ids', async () => {
  const [letter] = (await list()).dead_letters;
  assert.ok(letter);
  const url = `/admin/dead-letters/${encodeURIComponent(letter.id)}`;
  for (const [method, path] of [['GET', '/admin/dead-letters'], ['GET', url], ['POST', `${url}/redrive`], ['DELETE', url]] as const) {
    assert.equal(assertProblem(await sys.inject({ method, url: path }), `${method} ${path} without a token`).code, 'unauthorized');
    assert.equal(assertProblem(await sys.inject({ method, url: path, headers: { authorization: 'Bearer not-the-token-at-all' } }), `${method} ${path}, wrong token`).code, 'forbidden');
  }
  for (const [method, path, code] of [
    ['GET', '/admin/dead-letters/no-colon', 'invalid-id'],
    ['GET', `/admin/dead-letters/${encodeURIComponent('stock:has space')}`, 'invalid-id'],
    ['GET', '/admin/dead-letters/stock:unknown', 'dead-letter-not-found'],
    ['POST', '/admin/dead-letters/stock:unknown/redrive', 'dead-letter-not-found'],
    ['DELETE', '/admin/dead-letters/nobody:unknown', 'dead-letter-not-found'],
    ['GET', '/admin/dead-letters?limit=0', 'invalid-number'],
    ['GET', '/admin/dead-letters?sort=reason', 'invalid-query'],
    ['GET', '/admin/dead-letters?after=stock:unknown', 'invalid-query'],
  ] as const) {
    assert.equal(assertProblem(await sys.inject({ method, url: path, headers: auth }), `${method} ${path}`).code, code, `${method} ${path}`);
  }
  assert.equal((await list()).total, 2, 'nothing changed');
});

await test('the CLI lists and shows them', async () => {
  const run = (...args: string[]) => promisify(execFile)(process.execPath, ['src/cli.ts', 'dead-letters', ...args, '--url', base], { env: { ...process.env, ORDERLY_ADMIN_TOKEN: TOKEN } });
  const listed = await run('list');
  assert.match(listed.stdout, /^2 dead letters\n\s+2\s+SQLITE_IOERR: disk I\/O error/);
  const [letter] = (await list()).dead_letters;
  assert.ok(letter);
  assert.match((await run('show', letter.id)).stdout, /"ReserveStock"/);
  await assert.rejects(promisify(execFile)(process.execPath, ['src/cli.ts', 'dead-letters', 'list', '--url', base], { env: { ...process.env, ORDERLY_ADMIN_TOKEN: '' } }), /401 unauthorized/);
});

const { browser, page, errors } = await openBrowser({ width: 1280, height: 900 });

await test('the console asks for the admin token, then shows the dead letters grouped by reason', async () => {
  await page.goto(`${base}/`);
  await page.locator('#sign-in').waitFor();
  assert.equal(await page.locator('[data-card="Dead letters"]').count(), 0, 'nothing before signing in');
  await page.locator('#admin-token').fill(TOKEN);
  await page.screenshot({ path: `${SHOTS}/console-dead-letters-token.png`, fullPage: true });
  await page.click('#sign-in button[type="submit"]');
  await page.locator('[data-card="Dead letters"] .value').getByText('2').waitFor();
  await page.screenshot({ path: `${SHOTS}/console-overview-dead-letters.png`, fullPage: true });
  await page.click('[data-card="Dead letters"] a');
  await page.locator('#dead-groups').waitFor();
  assert.match(await page.locator('#dead-groups').textContent() ?? '', /disk I\/O error.*2stockReserveStock/);
  assert.equal(await page.locator('#dead-list tr[data-id]').count(), 2);
  await page.screenshot({ path: `${SHOTS}/console-dead-letters.png`, fullPage: true });
});

await test('redriven from the console once the stock database works again, the dead letter goes and its saga finishes', { timeout: 60_000 }, async () => {
  const letter = (await list()).dead_letters.find((d) => d.correlation_ids.includes(redriven));
  assert.ok(letter);
  await page.goto(`${base}/#/dead-letters`);
  await page.locator(`#dead-list tr[data-id="${letter.id}"] a[data-action="look"]`).click();
  await page.locator('#dead-messages').waitFor();
  assert.match(await page.locator('#dead-messages').textContent() ?? '', new RegExp(`"ReserveStock"[\\s\\S]*"${item}",\\s*2`));
  await page.screenshot({ path: `${SHOTS}/console-dead-letter.png`, fullPage: true });

  broken = false; // the fix
  await page.click('button[data-action="redrive"]');
  await page.locator('#dead-note .note').getByText(/Redriven/).waitFor();
  await page.screenshot({ path: `${SHOTS}/console-dead-letter-redriven.png`, fullPage: true });
  await page.locator('.actions a.saga').click();
  await page.locator('h1 .badge.completed').waitFor({ timeout: 30_000 });
  assert.equal(await page.locator('.graph .node[data-step="completed"]').getAttribute('class'), 'node succeeded');
  await page.screenshot({ path: `${SHOTS}/console-dead-letter-saga-completed.png`, fullPage: true });
  assert.equal((await findOrder(sys, redriven)).paid, true);
  assert.deepEqual((await list()).dead_letters.map((d) => d.correlation_ids[0]), [discarded], 'the redriven one is gone, the other stays');
  assert.match((await sys.inject({ method: 'GET', url: '/metrics', headers: auth })).body, /orderly_dead_letters_redriven_total\{service="stock",type="ReserveStock"\} 1/);
});

await test('the other is discarded with the CLI, and gone', async () => {
  const [letter] = (await list()).dead_letters;
  assert.ok(letter);
  const { stdout } = await promisify(execFile)(process.execPath, ['src/cli.ts', 'dead-letters', 'discard', letter.id, '--url', base], { env: { ...process.env, ORDERLY_ADMIN_TOKEN: TOKEN } });
  assert.match(stdout, /discarded/);
  assert.equal((await list()).total, 0);
  assertProblem(await sys.inject({ method: 'GET', url: `/admin/dead-letters/${encodeURIComponent(letter.id)}`, headers: auth }), 'gone');
  await page.goto(`${base}/#/dead-letters`);
  await page.getByText('No dead letters').waitFor();
  await page.screenshot({ path: `${SHOTS}/console-dead-letters-none.png`, fullPage: true });
  assert.deepEqual(errors, []);
});

await browser.close();
await sys.close();
