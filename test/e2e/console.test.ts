import assert from 'node:assert/strict';
import { test } from 'node:test';
import { eventually } from '../conformance/helpers.ts';
import { openBrowser, SHOTS } from './browser.ts';
import { createItem, createOrder, createUser, startTestSystem } from './helpers.ts';

// The console as a person meets it: real headless Chromium (Debian's), a real server. Each step
// saves a screenshot under tmp/screenshots/ to look at.

const sys = await startTestSystem();
const base = await sys.system.app.listen({ host: '127.0.0.1', port: 0 });
const { browser, page, errors } = await openBrowser({ width: 1280, height: 900 }, { consoleErrors: true });

// One checkout that succeeds, one that fails for lack of credit (and is compensated).
const item = await createItem(sys, 3, 10);
const rich = await createUser(sys, 100);
const poor = await createUser(sys, 1);
const paid = await createOrder(sys, rich, [[item, 2]]);
const declined = await createOrder(sys, poor, [[item, 1]]);
assert.equal((await sys.inject({ method: 'POST', url: `/orders/checkout/${paid}` })).statusCode, 200);
assert.equal((await sys.inject({ method: 'POST', url: `/orders/checkout/${declined}` })).statusCode, 409);

await test('the overview shows the sagas, their outcomes and durations', async () => {
  await page.goto(`${base}/`);
  await page.locator('[data-card="Sagas"] .value').getByText('2').waitFor();
  assert.equal(await page.locator('[data-card="Succeeded"] .value').textContent(), '50.0%');
  assert.equal(await page.locator('[data-card="Failed"] .value').textContent(), '50.0%');
  assert.equal(await page.locator('[data-card="Stuck"] .value').textContent(), '0');
  assert.match(await page.locator('.panel').last().textContent() ?? '', /authorizePayment failed/);
  await page.screenshot({ path: `${SHOTS}/console-overview.png`, fullPage: true });
});

await test('the saga list filters by status and leads to a saga', async () => {
  await page.click('header nav a[data-view="sagas"]');
  await page.locator('#saga-list').waitFor();
  assert.equal(await page.locator('#saga-list tr').count(), 3, 'a header and two sagas');
  await page.selectOption('select[name="status"]', 'failed');
  await page.click('form.filters button[type="submit"]');
  // Polled from here: a waitForFunction polls in the page, where the console's CSP forbids the eval it needs.
  await eventually('the list shows a header and the failed saga', async () => (await page.locator('#saga-list tr').count()) === 2);
  assert.match(await page.locator('#saga-list').textContent() ?? '', new RegExp(declined));
  await page.screenshot({ path: `${SHOTS}/console-sagas-failed.png`, fullPage: true });
  await page.locator('#saga-list a').first().click();
  await page.locator('#timeline').waitFor();
});

await test('one saga shows its graph coloured by what happened, and its timeline', async () => {
  assert.match(await page.locator('h1').textContent() ?? '', /failed/);
  // The money was declined, the stock held and then released: the graph says so.
  assert.equal(await page.locator('.graph .node[data-step="authorizePayment"]').getAttribute('class'), 'node failed');
  assert.equal(await page.locator('.graph .node[data-step="reserveStock"]').getAttribute('class'), 'node compensated');
  assert.equal(await page.locator('.graph .node[data-step="undo-reserveStock"]').getAttribute('class'), 'node compensated');
  assert.equal(await page.locator('.graph .node[data-step="capturePayment"]').getAttribute('class'), 'node idle');
  assert.equal(await page.locator('.graph .node[data-step="commitStock"]').getAttribute('class'), 'node idle pivot');
  const timeline = await page.locator('#timeline').textContent() ?? '';
  for (const event of ['started', 'failed', 'compensating', 'compensated']) assert.ok(timeline.includes(event), `the timeline shows ${event}`);
  await page.screenshot({ path: `${SHOTS}/console-saga-failed.png`, fullPage: true });
  await page.goto(`${base}/#/sagas?status=completed`);
  await page.locator('#saga-list a').first().click();
  await page.locator('#timeline').waitFor();
  assert.equal(await page.locator('.graph .node[data-step="commitStock"]').getAttribute('class'), 'node succeeded pivot');
  assert.equal(await page.locator('.graph .node[data-step="completed"]').getAttribute('class'), 'node succeeded');
  await page.screenshot({ path: `${SHOTS}/console-saga-completed.png`, fullPage: true });
});

await test('the live events page shows the messages of a checkout as they commit', async () => {
  await page.click('header nav a[data-view="events"]');
  await page.locator('#events').waitFor();
  await page.getByText('live', { exact: true }).waitFor();
  const order = await createOrder(sys, rich, [[item, 1]]);
  assert.equal((await sys.inject({ method: 'POST', url: `/orders/checkout/${order}` })).statusCode, 200);
  await page.locator('#event-rows tr', { hasText: 'CheckoutCompleted' }).waitFor();
  const text = await page.locator('#events').textContent() ?? '';
  for (const type of ['ReserveStock', 'PaymentAuthorized', 'CapturePayment', 'StockCommitted']) assert.ok(text.includes(type), `${type} is shown`);
  await page.screenshot({ path: `${SHOTS}/console-events.png`, fullPage: true });
});

await test('the console is served offline: every file from this server, no error in the page', async () => {
  const requests: string[] = [];
  page.on('request', (request) => requests.push(request.url()));
  await page.goto(`${base}/`);
  await page.locator('[data-card="Sagas"] .value').getByText('3').waitFor();
  assert.deepEqual(requests.filter((url) => !url.startsWith(base)), [], 'nothing from elsewhere');
  assert.deepEqual(errors, []);
});

await browser.close();
await sys.close();
