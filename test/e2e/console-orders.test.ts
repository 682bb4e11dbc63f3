import assert from 'node:assert/strict';
import { test } from 'node:test';
import { openBrowser, SHOTS } from './browser.ts';
import { createItem, createUser, ok, startTestSystem } from './helpers.ts';

// The console's order page as an operator meets it, in real headless Chromium: find an order,
// follow it through shipping with carrier scans, cancel another. Screenshots under tmp/screenshots/.

const sys = await startTestSystem();
const base = await sys.system.app.listen({ host: '127.0.0.1', port: 0 });
const { browser, page, errors } = await openBrowser({ width: 1280, height: 1000 });

const item = await createItem(sys, 4, 10);
const user = await createUser(sys, 100);
const place = async () => ok<{ order_id: string }>(await sys.inject({
  method: 'POST', url: '/api/orders', headers: { 'content-type': 'application/json' }, payload: { user_id: user, items: [{ item_id: item, quantity: 2 }] },
}), 'create order').order_id;
const shipped = await place();
ok(await sys.inject({ method: 'POST', url: `/api/orders/${shipped}/checkout` }), 'checkout');
const toCancel = await place();

await test('an order found by its id shows its status, money, shipment and timeline, and takes carrier scans', async () => {
  await page.goto(`${base}/`);
  await page.fill('#find-order input', shipped);
  await page.click('#find-order button');
  await page.locator('#order-status .badge', { hasText: 'SHIPPED' }).waitFor();
  assert.equal(await page.locator('#order-amounts').textContent(), 'authorized 8 · captured 8 · refunded 0');
  assert.match(await page.locator('#order-shipment').textContent() ?? '', /^OP[0-9A-Z]{11} Orderly Post label_created/);
  assert.match(await page.locator('#order-timeline').textContent() ?? '', /createShipment/);
  await page.screenshot({ path: `${SHOTS}/console-order-shipped.png`, fullPage: true });
  await page.click('button[data-scan="picked_up"]');
  await page.locator('#order-status .badge', { hasText: 'IN_TRANSIT' }).waitFor();
  await page.click('button[data-scan="delivered"]');
  await page.locator('#order-status .badge', { hasText: 'DELIVERED' }).waitFor();
  await page.locator('#order-notifications', { hasText: 'was delivered' }).waitFor();
  assert.equal(await page.locator('#cancel-order button').isDisabled(), true, 'a delivered order cannot be cancelled');
  await page.screenshot({ path: `${SHOTS}/console-order-delivered.png`, fullPage: true });
});

await test('an operator cancels an order from its page; a refused action says why', async () => {
  await page.goto(`${base}/#/orders/${toCancel}`);
  await page.locator('#order-status .badge', { hasText: 'CREATED' }).waitFor();
  await page.fill('#cancel-order input', 'customer called');
  await page.click('#cancel-order button');
  await page.locator('#order-status .badge', { hasText: 'CANCELLED' }).waitFor();
  await page.locator('#order-message', { hasText: 'Cancel: done.' }).waitFor();
  assert.match(await page.locator('#order').textContent() ?? '', /by the customer: customer called/);
  await page.locator('#order-notifications', { hasText: 'cancelled' }).waitFor();
  await page.screenshot({ path: `${SHOTS}/console-order-cancelled.png`, fullPage: true });
  // The shipped order: the API refuses the cancel, and the page says why.
  await page.goto(`${base}/#/orders/${shipped}`);
  await page.locator('#order-status .badge', { hasText: 'DELIVERED' }).waitFor();
  await page.locator('#cancel-order button').evaluate((button) => button.removeAttribute('disabled'));
  await page.click('#cancel-order button');
  await page.locator('#order-message.error', { hasText: 'can no longer be cancelled' }).waitFor();
  await page.screenshot({ path: `${SHOTS}/console-order-refused.png`, fullPage: true });
  assert.deepEqual(errors, []);
});

await test('closes', async () => {
  await browser.close();
  await sys.close();
});
