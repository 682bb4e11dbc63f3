import assert from 'node:assert/strict';
import { test } from 'node:test';
import { openBrowser, SHOTS } from './browser.ts';
import { createItem, createOrder, createUser, startTestSystem } from './helpers.ts';

// The console's sign-in where ORDERLY_ADMIN_TOKEN is set, in real headless Chromium: nothing
// operator-only shows before it, a wrong token says so, the right one opens the console (a
// session cookie, never the token in the page's storage or a URL), Sign out ends it.
// Screenshots under tmp/screenshots/.

const TOKEN = 'a-console-admin-token-0123456789';
const sys = await startTestSystem({ ORDERLY_ADMIN_TOKEN: TOKEN });
const base = await sys.system.app.listen({ host: '127.0.0.1', port: 0 });
const { browser, page, errors } = await openBrowser({ width: 1280, height: 800 });
const item = await createItem(sys, 3, 10);
const user = await createUser(sys, 100);
const order = await createOrder(sys, user, [[item, 1]]);
assert.equal((await sys.inject({ method: 'POST', url: `/orders/checkout/${order}` })).statusCode, 200);

await test('before signing in, the console asks for the admin token and shows no operator data', async () => {
  await page.goto(`${base}/`);
  await page.locator('#sign-in').waitFor();
  assert.equal(await page.locator('[data-card="Sagas"]').count(), 0);
  assert.equal(await page.locator('#sign-out').count(), 0);
  await page.screenshot({ path: `${SHOTS}/console-sign-in.png` });
});

await test('a wrong token says what is wrong and stays on the sign-in', async () => {
  await page.fill('#admin-token', 'not-the-admin-token-at-all');
  await page.click('#sign-in button[type="submit"]');
  await page.locator('#sign-in-message.error').waitFor();
  assert.match(await page.locator('#sign-in-message').textContent() ?? '', /not this deployment's ORDERLY_ADMIN_TOKEN/);
  await page.screenshot({ path: `${SHOTS}/console-sign-in-wrong.png` });
});

await test('the right token opens the console; the session is an HttpOnly cookie, the token is kept nowhere in the page', async () => {
  await page.fill('#admin-token', TOKEN);
  await page.click('#sign-in button[type="submit"]');
  await page.locator('[data-card="Sagas"] .value').getByText('1').waitFor();
  await page.locator('#sign-out').waitFor();
  const cookies = await page.context().cookies();
  const session = cookies.find((c) => c.name === 'orderly_session');
  assert.ok(session?.httpOnly && session.sameSite === 'Strict', JSON.stringify(cookies));
  const stored = await page.evaluate<string>('JSON.stringify({ local: { ...localStorage }, session: { ...sessionStorage }, cookie: document.cookie, url: location.href })');
  assert.doesNotMatch(stored, new RegExp(TOKEN), stored);
  await page.screenshot({ path: `${SHOTS}/console-signed-in.png` });
});

await test('Sign out ends the session: the sign-in is back, operator routes answer 401 again', async () => {
  await page.click('#sign-out');
  await page.locator('#sign-in').waitFor();
  assert.equal((await page.context().cookies()).filter((c) => c.name === 'orderly_session').length, 0);
  const status = await page.evaluate<number>("fetch('/sagas').then((r) => r.status)");
  assert.equal(status, 401);
  await page.screenshot({ path: `${SHOTS}/console-signed-out.png` });
});

await test('the page threw no errors', () => {
  assert.deepEqual(errors, []);
});

await browser.close();
await sys.close();
