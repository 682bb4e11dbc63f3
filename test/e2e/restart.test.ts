import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { test } from 'node:test';
import { CourseClient, mapLimit } from '../../src/tools/client.ts';
import { settle } from './helpers.ts';
import { freePort, startOrderly, startUnreaped, stop } from '../support/child.ts';

// Issue 11: restarted right after `kill -9` (as systemd's Restart=always does), the system was
// refused because the killed process, still a zombie, looked alive to a pid-file lock.
const USERS = 100;
const CREDIT = 5;
const ITEMS = 10;
const STOCK = 20;
const ORDERS = 300;

await test('a restart right after kill -9, while the killed process is still a zombie, starts and finishes the work; a second live process on the data is refused', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'orderly-restart-'));
  const env = { ORDERLY_DATA_DIR: dir, ORDERLY_SAGA_STEP_TIMEOUT_MS: '2000' };
  const port = await freePort();
  const first = await startUnreaped(env, port);
  const client = new CourseClient(`http://127.0.0.1:${port}`, 32);
  let second: Awaited<ReturnType<typeof startOrderly>> | undefined;
  try {
    await client.post(`/payment/batch_init/${USERS}/${CREDIT}`);
    await client.post(`/stock/batch_init/${ITEMS}/${STOCK}/1`);
    await client.post(`/orders/batch_init/${ORDERS}/${ITEMS}/${USERS}/1`);
    let answered = 0;
    const firing = mapLimit(Array.from({ length: ORDERS }, (_, i) => String(i)), 32, async (id) => {
      await client.call('POST', `/orders/checkout/${id}`).then(() => answered++, () => undefined);
    });
    for (let waited = 0; answered < ORDERS / 4 && waited < 30_000; waited += 10) await sleep(10);
    process.kill(first.pid, 'SIGKILL');
    await firing;
    // Its parent never reaps it: it stays a zombie while the new process starts.
    for (let waited = 0; processState(first.pid) !== 'Z' && waited < 5000; waited += 10) await sleep(10);
    assert.equal(processState(first.pid), 'Z', 'the killed process is a zombie');

    second = await startOrderly(env, port);
    assert.equal(processState(first.pid), 'Z', 'and still was when the restart began');
    const audit = await settle(client);
    assert.equal(audit.orders.active_sagas, 0, 'every saga ended');
    assert.equal(audit.stock.reserved + audit.payment.held, 0, 'nothing left held');
    assert.equal(audit.payment.credit + audit.orders.paid_amount, USERS * CREDIT, 'money conserves');
    assert.equal(audit.stock.available + audit.orders.paid_units, ITEMS * STOCK, 'stock conserves');

    // A third process on the same data while the second lives: refused, saying by whom.
    const refused = await run(process.execPath, ['src/main.ts'], { ...process.env, ...env, PORT: String(await freePort()) });
    assert.equal(refused.code, 2, refused.stderr);
    assert.match(refused.stderr, new RegExp(`is in use by another Orderly process \\(pid ${second.pid}\\)\\. Stop it, or give this one its own ORDERLY_DATA_DIR`));
  } finally {
    await client.close();
    if (second) await stop(second, 'SIGTERM');
    await stop(first.parent, 'SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }
});

/** The state letter of a process (R, S, Z…) from /proc, or undefined once it is gone. */
function processState(pid: number): string | undefined {
  try {
    return /^State:\s+(\w)/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1];
  } catch {
    return undefined;
  }
}

function run(command: string, args: readonly string[], env: NodeJS.ProcessEnv): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(command, args, { env, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
    });
    child.once('exit', (code) => resolve({ code, stderr }));
  });
}

