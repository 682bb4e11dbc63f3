/**
 * Every command in the README's code blocks is run: by this file, as written (with PORT and a
 * data directory or namespace of its own in the environment, since 8000 and ./data may be
 * someone else's here), or by .ci/run, where it must stand on a line of its own.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { test } from 'node:test';
import pg from 'pg';
import { freePort } from '../support/child.ts';
import { cleanBroker, randomName, SHARED } from '../support/cluster.ts';
import { ROOT } from './sources.ts';

const START = 'npm start';
const CLUSTER = 'npm run cluster -- --store postgres://postgres@127.0.0.1/orderly --bus amqp://guest:guest@127.0.0.1';
const RENDER = 'kubectl kustomize deploy/k8s/overlays/prod';

const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
const commands = [...readme.matchAll(/```sh\n([\s\S]*?)```/g)].flatMap((m) => (m[1] ?? '').split('\n')).map((line) => line.replace(/\s+#.*$/, '').trim()).filter(Boolean);
const ci = readFileSync(join(ROOT, '.ci/run'), 'utf8').split('\n').map((line) => line.trim());

/** A shell running `command` as written, in its own process group (npm starts children). */
function shell(command: string, env: Readonly<Record<string, string>>): { child: ChildProcess; output: () => string } {
  const child = spawn('/bin/sh', ['-c', command], { cwd: ROOT, detached: true, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
  let output = '';
  for (const stream of [child.stdout, child.stderr]) stream?.on('data', (chunk: Buffer) => { output = (output + chunk.toString()).slice(-6000); });
  return { child, output: () => output };
}

async function stopGroup(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  process.kill(-child.pid!, 'SIGINT');
  await Promise.race([exited, sleep(20_000).then(() => process.kill(-child.pid!, 'SIGKILL'))]);
}

async function until(what: string, output: () => string, ready: () => Promise<boolean>): Promise<void> {
  for (let i = 0; i < 600; i++) {
    if (await ready().catch(() => false)) return;
    await sleep(200);
  }
  assert.fail(`${what} was not ready within 120 s:\n${output()}`);
}

/** `count` consecutive free ports on 127.0.0.1 (the cluster takes the gateway's and the ones after it). */
async function freeRun(count: number): Promise<number> {
  const free = (port: number) => new Promise<boolean>((resolve) => {
    const server = createServer().once('error', () => resolve(false)).listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
  for (;;) {
    const first = 20_000 + Math.floor(Math.random() * 40_000);
    let ok = true;
    for (let p = first; ok && p < first + count; p++) ok = await free(p);
    if (ok) return first;
  }
}

await test('every command of the README is run by this test or stands in .ci/run', () => {
  assert.ok(commands.length >= 5, commands.join('\n'));
  for (const command of commands) assert.ok([START, CLUSTER, RENDER].includes(command) || ci.includes(command), `README: ${command} is run by nobody`);
  for (const command of [START, CLUSTER, RENDER]) assert.ok(commands.includes(command), `the README no longer says ${command}: drop it here`);
  assert.ok(readme.split('\n').length <= 150, 'the README stays short');
});

await test(`${START}: the console answers at the address it prints`, async () => {
  const data = mkdtempSync(join(tmpdir(), 'orderly-readme-'));
  const port = await freePort();
  const { child, output } = shell(START, { PORT: String(port), ORDERLY_DATA_DIR: data });
  try {
    await until(START, output, async () => output().includes(`Console http://127.0.0.1:${port}/`));
    const page = await fetch(`http://127.0.0.1:${port}/`);
    assert.equal(page.status, 200);
    assert.match(page.headers.get('content-type') ?? '', /text\/html/);
    assert.match(await page.text(), /<title>[^<]*Orderly/i);
  } finally {
    await stopGroup(child);
    rmSync(data, { recursive: true, force: true });
  }
});

await test(`${CLUSTER}: the gateway is ready once every service is`, async () => {
  // The README says the database must exist (createdb orderly).
  const admin = new pg.Client({ connectionString: `${SHARED.postgres}/postgres` });
  await admin.connect();
  const made = (await admin.query("select 1 from pg_database where datname = 'orderly'")).rowCount === 0;
  if (made) await admin.query('create database orderly');
  const namespace = randomName('readme_');
  const port = await freeRun(11);
  const { child, output } = shell(CLUSTER, { PORT: String(port), ORDERLY_NAMESPACE: namespace });
  try {
    await until(CLUSTER, output, async () => (await fetch(`http://127.0.0.1:${port}/readyz`)).status === 200);
    assert.equal((await fetch(`http://127.0.0.1:${port}/`)).status, 200, 'the console, through the gateway');
  } finally {
    await stopGroup(child);
    await cleanBroker(SHARED.rabbitmq, namespace).catch(() => undefined);
    if (made) await admin.query('drop database if exists orderly with (force)');
    await admin.end();
  }
});

await test(`${RENDER}: renders the production overlay`, async () => {
  const { child, output } = shell(RENDER, {});
  const code = await new Promise((resolve) => child.once('exit', resolve));
  assert.equal(code, 0, output());
  assert.match(output(), /kind: Deployment/);
});
