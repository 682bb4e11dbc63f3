import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { ConfigError, loadConfig, type EmbeddedStore } from '../../src/config.ts';
import { createLogger } from '../../src/runtime/log.ts';
import { startEmbedded } from '../../src/wiring/embedded.ts';
import { freePort } from '../support/child.ts';

const start = (dir: string, store: EmbeddedStore) => startEmbedded(loadConfig({ ORDERLY_DATA_DIR: dir, ORDERLY_EMBEDDED_STORE: store }), createLogger('silent'));

await test('a data directory of one embedded store is refused by the other, with what to do, and left as it was', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'orderly-startup-'));
  try {
    await (await start(dir, 'pglite')).close();
    const before = readdirSync(dir).sort();
    await assert.rejects(start(dir, 'sqlite'), (error: unknown) =>
      error instanceof ConfigError
      && /holds PGlite data \(orders, stock, payment, fulfillment, notification\)/.test(error.message)
      && /start with ORDERLY_EMBEDDED_STORE=pglite/.test(error.message)
      && /give a new ORDERLY_DATA_DIR/.test(error.message));
    assert.deepEqual(readdirSync(dir).sort(), before, 'no SQLite file made beside the PGlite data');
    // The refused start let go of the directory: the right store opens it.
    await (await start(dir, 'pglite')).close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  const other = mkdtempSync(join(tmpdir(), 'orderly-startup-'));
  try {
    await (await start(other, 'sqlite')).close();
    await assert.rejects(start(other, 'pglite'), /holds SQLite data \(orders\.sqlite, stock\.sqlite, payment\.sqlite, fulfillment\.sqlite, notification\.sqlite\).*ORDERLY_EMBEDDED_STORE=sqlite/);
    assert.equal(existsSync(join(other, 'orders')), false, 'no PGlite directory made beside the SQLite data');
  } finally {
    rmSync(other, { recursive: true, force: true });
  }
});

await test('npm start on a port in use stops at once with a clear message, and creates no data directory', async () => {
  const parent = mkdtempSync(join(tmpdir(), 'orderly-startup-'));
  const dir = join(parent, 'data');
  const port = await freePort();
  const taken = createServer();
  await new Promise<void>((resolve) => taken.listen(port, '127.0.0.1', resolve));
  try {
    const child = spawn(process.execPath, ['src/main.ts'], { env: { ...process.env, ORDERLY_DATA_DIR: dir, PORT: String(port) }, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
    });
    const code = await new Promise((resolve) => child.once('exit', resolve));
    assert.equal(code, 2, stderr);
    assert.match(stderr, new RegExp(`Port ${port} on 127\\.0\\.0\\.1 is already in use: .*start with PORT=`));
    assert.equal(existsSync(dir), false, 'no data directory left behind');
  } finally {
    await new Promise((resolve) => taken.close(resolve));
    rmSync(parent, { recursive: true, force: true });
  }
});
