/**
 * The Grafana dashboard and the Prometheus alert rules of deploy/, against the real thing: a
 * cluster (PostgreSQL + RabbitMQ, 2 replicas per service) scraped every second by a real
 * Prometheus that runs deploy/prometheus/prometheus.yml (its ports moved to the cluster's) with
 * the alert rules loaded. After checkouts that succeed and fail, a dead letter and a duplicate
 * delivery, every query of every dashboard panel must return numbers, every metric the dashboard
 * and the rules name must be one Orderly exports, the dead-letter alert must fire and the
 * others stay quiet. promtool checks the rules and runs their unit tests.
 */
import assert from 'node:assert/strict';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { connect as amqpConnect } from 'amqplib';
import { encodeBatch } from '../../src/adapters/broker/delivery.ts';
import type { Envelope } from '../../src/core/message.ts';
import { CourseClient, mapLimit } from '../../src/tools/client.ts';
import { servicesOf } from '../../src/wiring/serviceWiring.ts';
import { freePort, stop } from '../support/child.ts';
import { cleanBroker, freshDatabase, randomName, SHARED, startCluster } from '../support/cluster.ts';

const PROMETHEUS = '/usr/bin/prometheus';
const PROMTOOL = '/usr/bin/promtool';
const DEPLOY = resolve('deploy');
const RULES = join(DEPLOY, 'prometheus', 'alerts.yml');
const SCRAPE_CONFIG = join(DEPLOY, 'prometheus', 'prometheus.yml');
const DASHBOARD = join(DEPLOY, 'grafana', 'orderly.json');
/** What the committed scrape config is written for: `npm run cluster -- --port 8000 --replicas 2`. */
const CONFIG_PORT = 8000;
const REPLICAS = 2;
/** Grafana's variables as a user would have them; `$__rate_interval` at least 4 scrapes, as Grafana makes it. */
const VARIABLES: Readonly<Record<string, string>> = { __rate_interval: '1m', __interval: '15s', __range: '5m', job: 'orderly' };

const run = promisify(execFile);

function requireBinaries(): void {
  for (const binary of [PROMETHEUS, PROMTOOL]) {
    assert.ok(existsSync(binary), `${binary} is missing: install Debian's prometheus package (apt-get install prometheus; .ci/run does)`);
  }
}

test('promtool: the alert rules and the scrape config are valid, and the rules pass their unit tests', async () => {
  requireBinaries();
  const cwd = join(DEPLOY, 'prometheus');
  for (const args of [['check', 'rules', 'alerts.yml'], ['test', 'rules', 'alerts.test.yml'], ['check', 'config', 'prometheus.yml']]) {
    const result = await run(PROMTOOL, args, { cwd }).then(
      ({ stdout, stderr }) => ({ ok: true, output: `${stdout}${stderr}` }),
      (error: Error & { stdout?: string; stderr?: string }) => ({ ok: false, output: `${error.message}\n${error.stdout ?? ''}${error.stderr ?? ''}` }),
    );
    assert.ok(result.ok, `promtool ${args.join(' ')} failed:\n${result.output}`);
    assert.match(result.output, /SUCCESS/, `promtool ${args.join(' ')} says SUCCESS`);
  }
});

type Target = Readonly<{ expr: string; refId: string }>;
type Panel = Readonly<{ title: string; type: string; targets?: readonly Target[]; panels?: readonly Panel[] }>;
type Sample = Readonly<{ metric: Record<string, string>; value?: [number, string]; values?: [number, string][] }>;

test('every panel of the Grafana dashboard shows data from a real Prometheus scraping a cluster, and the alerts fire as they should', async () => {
  requireBinaries();
  const database = await freshDatabase(SHARED.postgres);
  const namespace = randomName('pm');
  const dir = mkdtempSync(join(tmpdir(), 'orderly-prometheus-'));
  let cluster: Awaited<ReturnType<typeof startCluster>> | undefined;
  const prometheus: Prometheus = { output: '' };
  try {
    cluster = await startCluster({ storeUrl: database.url, busUrl: SHARED.rabbitmq, replicas: REPLICAS, namespace });
    const prom = await startPrometheus(prometheus, dir, scrapeConfigFor(Number(new URL(cluster.url).port)));
    await waitFor('Prometheus to scrape every process of the cluster', prom, 'count(up{job="orderly"} == 1)', (v) => v === 1 + servicesOf('orchestration').length * REPLICAS);

    await injectBadDeliveries(namespace);
    // Two waves, scraped in between: a labelled series appears at its first increment, and rates
    // only see what it counts after its first scrape.
    const first = await checkouts(cluster.url, { funded: 10, broke: 4 });
    assert.deepEqual(first, { succeeded: 10, failed: 4, other: [] }, 'funded checkouts succeed, the others fail for lack of credit');
    await waitFor('the first checkouts to be scraped', prom, 'sum(orderly_saga_completed_total) + sum(orderly_saga_failed_total)', (v) => v === 14);
    await sleep(1500);
    const second = await checkouts(cluster.url, { funded: 30, broke: 4 });
    assert.deepEqual(second, { succeeded: 30, failed: 4, other: [] }, 'funded checkouts succeed, the others fail for lack of credit');
    // Every end is counted, and scraped after it more than once, so that rates have two samples.
    await waitFor('the completed sagas to be scraped', prom, 'sum(orderly_saga_completed_total)', (v) => v === 40);
    await waitFor('the failed sagas to be scraped', prom, 'sum(orderly_saga_failed_total)', (v) => v === 8);
    await waitFor('the dead letter to be scraped', prom, 'sum(orderly_messages_dead_lettered_total{service="stock",type="undecodable"})', (v) => v >= 1);
    await waitFor('the duplicate to be scraped', prom, 'sum(orderly_inbox_duplicates_total{service="stock"})', (v) => v >= 1);
    await sleep(3000);

    // Every query of every panel returns at least one number.
    const dashboard = JSON.parse(readFileSync(DASHBOARD, 'utf8')) as { panels: readonly Panel[] };
    const panels = flatten(dashboard.panels).filter((p) => p.type !== 'row');
    assert.ok(panels.length >= 20, `the dashboard has its panels (${panels.length})`);
    const empty: string[] = [];
    const results = new Map<string, Sample[]>();
    for (const panel of panels) {
      assert.ok(panel.targets && panel.targets.length > 0, `panel "${panel.title}" has queries`);
      for (const target of panel.targets) {
        const expr = substitute(target.expr);
        const result = await query(prom, expr);
        results.set(`${panel.title}/${target.refId}`, result);
        const numbers = result.map((s) => Number(s.value?.[1])).filter(Number.isFinite);
        if (numbers.length === 0) empty.push(`"${panel.title}" ${target.refId}: ${expr} → ${JSON.stringify(result).slice(0, 300)}`);
      }
    }
    assert.deepEqual(empty, [], `panel queries without data:\n${empty.join('\n')}`);

    // What the test did shows where it belongs.
    const value = (key: string, labels: Record<string, string>) => {
      const samples = results.get(key) ?? [];
      const sample = samples.find((s) => Object.entries(labels).every(([k, v]) => s.metric[k] === v));
      assert.ok(sample, `${key} has a series ${JSON.stringify(labels)}: ${JSON.stringify(samples)}`);
      return Number(sample.value?.[1]);
    };
    assert.equal(value('Dead letters/A', { service: 'stock', type: 'undecodable' }), 1, 'the undecodable message is the dead letter');
    assert.ok(value('Inbox duplicates/A', { service: 'stock' }) >= 1, 'the delivery sent twice is a duplicate');
    assert.ok(value('Redeliveries/A', { service: 'stock', type: 'ReleaseStock' }) >= 1, 'the message the store refused was delivered again');
    assert.ok(value('Checkouts started /s/A', {}) > 0);
    assert.ok(value('Success rate/A', {}) > 0.5 && value('Success rate/A', {}) <= 1, 'most checkouts succeed');
    // The sums of the raw counters: every checkout ended.
    assert.equal(value('Active sagas/A', {}), 0, 'started − completed − failed is 0 once every checkout ended');
    assert.ok(value('CPU/A', { component: 'gateway' }) > 0, 'the gateway is scraped as component "gateway"');
    for (const component of servicesOf('orchestration')) assert.ok(value('Memory (resident)/A', { component }) > 0, `${component} is scraped`);

    // Every metric the dashboard and the rules name is one the cluster exports (a typo would
    // otherwise hide behind a query that falls back to 0).
    const metadata = await api<Record<string, { type: string }[]>>(prom, '/api/v1/metadata');
    const named = new Set([...`${readFileSync(DASHBOARD, 'utf8')}\n${readFileSync(RULES, 'utf8')}`.matchAll(/\b(?:orderly|process|nodejs)_[a-z0-9_]+/g)].map((m) => m[0]));
    const unknown = [...named].filter((name) => {
      if (metadata[name]) return false;
      const base = name.replace(/_(bucket|count|sum)$/, '');
      return metadata[base]?.[0]?.type !== 'histogram';
    });
    assert.ok(named.size >= 20, `the dashboard names its metrics (${named.size})`);
    assert.deepEqual(unknown, [], 'metrics named by the dashboard or the rules that the cluster does not export');

    // The alert rules, evaluated every second: a dead letter fires at once; the rest stays quiet.
    const alerts = await waitForAlert(prom, 'OrderlyDeadLetters', { service: 'stock', type: 'undecodable' });
    const noisy = alerts.filter((a) => a.labels.alertname !== 'OrderlyDeadLetters');
    assert.deepEqual(noisy, [], 'no other alert is pending or firing on a healthy cluster');
    const rules = await api<{ groups: { rules: { name: string; health: string; lastError?: string }[] }[] }>(prom, '/api/v1/rules');
    const loaded = rules.groups.flatMap((g) => g.rules);
    assert.ok(loaded.length >= 6, `the rules are loaded (${loaded.map((r) => r.name).join(', ')})`);
    assert.deepEqual(loaded.filter((r) => r.health !== 'ok'), [], 'every rule evaluates without error');
  } catch (error) {
    if (cluster) console.error(`cluster log:\n${cluster.logTail()}`);
    console.error(`prometheus log:\n${prometheus.output}`);
    throw error;
  } finally {
    if (prometheus.child) await stop(prometheus.child, 'SIGTERM');
    if (cluster) await cluster.stop();
    await cleanBroker(SHARED.rabbitmq, namespace);
    await database.drop();
    rmSync(dir, { recursive: true, force: true });
  }
});

/**
 * deploy/prometheus/prometheus.yml for the cluster whose gateway is on `port`: the same targets
 * and labels, each port moved by as much as the gateway's, scraped and evaluated every second,
 * with the rule file by its absolute path.
 */
function scrapeConfigFor(port: number): string {
  const committed = readFileSync(SCRAPE_CONFIG, 'utf8');
  let moved = 0;
  const config = committed
    .replace(/^\s*#.*\n/gm, '') // the commented-out tracker of choreography
    .replace(/'127\.0\.0\.1:(\d+)'/g, (_, p: string) => {
      moved++;
      return `'127.0.0.1:${port + Number(p) - CONFIG_PORT}'`;
    })
    .replace(/scrape_interval: \S+/, 'scrape_interval: 1s')
    .replace(/evaluation_interval: \S+/, 'evaluation_interval: 1s')
    .replace(/^(\s+)- alerts\.yml$/m, `$1- ${JSON.stringify(RULES)}`);
  assert.equal(moved, 1 + 5 * REPLICAS, 'the committed scrape config names the gateway and 2 replicas of orders, stock, payment, fulfillment and notification');
  assert.ok(config.includes('scrape_interval: 1s') && config.includes('evaluation_interval: 1s') && config.includes(JSON.stringify(RULES)), config);
  return config;
}

type Prometheus = { child?: ChildProcess; output: string };

/** Runs /usr/bin/prometheus on `config` with its data in `dir`; resolves with its URL once ready. */
async function startPrometheus(prometheus: Prometheus, dir: string, config: string): Promise<string> {
  const file = join(dir, 'prometheus.yml');
  writeFileSync(file, config);
  const port = await freePort();
  const child = spawn(PROMETHEUS, [`--config.file=${file}`, `--storage.tsdb.path=${join(dir, 'data')}`, `--web.listen-address=127.0.0.1:${port}`, '--log.level=warn'], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  prometheus.child = child;
  child.stderr?.on('data', (chunk: Buffer) => {
    prometheus.output = (prometheus.output + chunk.toString()).slice(-10_000);
  });
  const url = `http://127.0.0.1:${port}`;
  for (let i = 0; i < 300; i++) {
    if (child.exitCode !== null) throw new Error(`prometheus exited with ${child.exitCode}: ${prometheus.output}`);
    if (await fetch(`${url}/-/ready`).then((r) => r.ok, () => false)) return url;
    await sleep(100);
  }
  throw new Error(`prometheus was not ready within 30 s: ${prometheus.output}`);
}

/** Checkouts through the gateway: `funded` users can pay, `broke` ones have no credit. */
async function checkouts(url: string, { funded, broke }: { funded: number; broke: number }) {
  const client = new CourseClient(url, 16);
  try {
    const items = await mapLimit([0, 1, 2], 3, async () => {
      const { item_id } = await client.post<{ item_id: string }>('/stock/item/create/5');
      await client.post(`/stock/add/${item_id}/1000`);
      return item_id;
    });
    const orders = await mapLimit(Array.from({ length: funded + broke }, (_, i) => i), 16, async (i) => {
      const { user_id } = await client.post<{ user_id: string }>('/payment/create_user');
      if (i < funded) await client.post(`/payment/add_funds/${user_id}/1000`);
      const { order_id } = await client.post<{ order_id: string }>(`/orders/create/${user_id}`);
      await client.post(`/orders/addItem/${order_id}/${items[i % items.length]!}/2`);
      return order_id;
    });
    const statuses = await mapLimit(orders, 16, async (id) => (await client.call('POST', `/orders/checkout/${id}`)).status);
    return { succeeded: statuses.filter((s) => s === 200).length, failed: statuses.filter((s) => s === 409).length, other: statuses.filter((s) => s !== 200 && s !== 409) };
  } finally {
    await client.close();
  }
}

/**
 * What goes wrong on a bus, for real, on the stock service's queue: bytes that are no message
 * (dead-lettered at once), one message delivered twice (the inbox drops the second), and one
 * the store refuses (PostgreSQL takes no NUL character), which fails and is delivered again.
 * The stock service releases a reservation of a saga nobody runs; the orders ignore its reply.
 */
async function injectBadDeliveries(namespace: string): Promise<void> {
  const release = (id: string, sagaId: string): Envelope => ({
    id, type: 'ReleaseStock', sagaId, step: 'reserveStock', correlationId: randomName('probe'), causationId: '', at: Date.now(), payload: { lines: [['1', 1]] },
  });
  const twice = release(randomName('dup'), `${randomName('probe')}.1`);
  const refused = release(randomName('nul'), `${randomName('probe')}\u0000.1`);
  const connection = await amqpConnect(SHARED.rabbitmq);
  try {
    const channel = await connection.createConfirmChannel();
    const publish = (content: Buffer) => new Promise<void>((done, fail) => {
      channel.publish(namespace, 'ReleaseStock', content, { persistent: true }, (err) => (err ? fail(err as Error) : done()));
    });
    await publish(Buffer.from('this is no batch of envelopes'));
    await publish(encodeBatch([twice]));
    await sleep(500);
    await publish(encodeBatch([twice]));
    await publish(encodeBatch([refused]));
    await channel.close();
  } finally {
    await connection.close();
  }
}

function flatten(panels: readonly Panel[]): Panel[] {
  return panels.flatMap((p) => [p, ...flatten(p.panels ?? [])]);
}

function substitute(expr: string): string {
  return expr.replace(/\$\{(\w+)(?::\w+)?\}|\$(\w+)/g, (whole, braced?: string, bare?: string) => {
    const name = braced ?? bare ?? '';
    const value = VARIABLES[name];
    assert.ok(value !== undefined, `the test knows dashboard variable ${whole} (in ${expr})`);
    return value;
  });
}

async function api<T>(prom: string, path: string): Promise<T> {
  const res = await fetch(`${prom}${path}`);
  const body = (await res.json()) as { status: string; data: T; error?: string };
  assert.equal(body.status, 'success', `${path}: ${body.error ?? res.status}`);
  return body.data;
}

async function query(prom: string, expr: string): Promise<Sample[]> {
  const data = await api<{ resultType: string; result: Sample[] }>(prom, `/api/v1/query?query=${encodeURIComponent(expr)}`);
  assert.equal(data.resultType, 'vector', expr);
  return data.result;
}

async function waitFor(what: string, prom: string, expr: string, ok: (value: number) => boolean): Promise<void> {
  let last: Sample[] = [];
  for (let i = 0; i < 300; i++) {
    last = await query(prom, expr);
    if (last.length > 0 && ok(Number(last[0]?.value?.[1]))) return;
    await sleep(100);
  }
  assert.fail(`waited 30 s for ${what} (${expr}); Prometheus says ${JSON.stringify(last)}`);
}

type Alert = Readonly<{ labels: Record<string, string>; state: string }>;
async function waitForAlert(prom: string, name: string, labels: Record<string, string>): Promise<Alert[]> {
  let alerts: Alert[] = [];
  for (let i = 0; i < 150; i++) {
    alerts = (await api<{ alerts: Alert[] }>(prom, '/api/v1/alerts')).alerts;
    if (alerts.some((a) => a.labels.alertname === name && a.state === 'firing' && Object.entries(labels).every(([k, v]) => a.labels[k] === v))) return alerts;
    await sleep(100);
  }
  assert.fail(`${name} ${JSON.stringify(labels)} did not fire within 15 s; the alerts: ${JSON.stringify(alerts)}`);
}
