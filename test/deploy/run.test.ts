/**
 * What can be run here of the image and the manifests, with no container engine: the image's
 * last stage laid out as /app (production packages only), its default command and its
 * HEALTHCHECK; then every command of the dev overlay and of compose.yaml started from it with
 * the environment their manifests give (ConfigMaps, Secrets, the pod's name), against this
 * machine's PostgreSQL and RabbitMQ, each probed on the paths its manifest names.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { test } from 'node:test';
import { parse } from 'yaml';
import { freePort } from '../support/child.ts';
import { cleanBroker, freshDatabase, randomName, SHARED } from '../support/cluster.ts';
import { layOutImage, readDockerfile } from './image.ts';
import { render, ROOT, type K8sObject } from './sources.ts';

type EnvVar = { name: string; value?: string; valueFrom?: { secretKeyRef?: { name: string; key: string }; fieldRef?: { fieldPath: string } } };
type Container = { command: string[]; env?: EnvVar[]; envFrom?: { configMapRef?: { name: string } }[]; readinessProbe: { httpGet: { path: string } }; livenessProbe: { httpGet: { path: string } } };
type Deployment = K8sObject & { spec: { template: { spec: { containers: Container[] } } } };

const dockerfile = readDockerfile();
const image = layOutImage();
process.on('exit', () => image.remove());

type Running = { name: string; url: string; child: ChildProcess; output: () => string };

/** A command of the image started in its /app, with the image's ENV, the container's env and nothing of this shell's. */
function run(name: string, command: readonly string[], env: Readonly<Record<string, string>>, port: number): Running {
  assert.equal(command[0], 'node');
  const child = spawn(process.execPath, command.slice(1), {
    cwd: image.dir, stdio: ['ignore', 'pipe', 'pipe'],
    env: { PATH: process.env.PATH, ...dockerfile.env, ...env, PORT: String(port) },
  });
  let output = '';
  for (const stream of [child.stdout, child.stderr]) stream.on('data', (chunk: Buffer) => { output = (output + chunk.toString()).slice(-3000); });
  return { name, url: `http://127.0.0.1:${port}`, child, output: () => output };
}

async function until(process: Running, path: string, status = 200): Promise<void> {
  for (let i = 0; i < 600; i++) {
    if (process.child.exitCode !== null) assert.fail(`${process.name} exited with ${process.child.exitCode}:\n${process.output()}`);
    const answer = await fetch(process.url + path).catch(() => undefined);
    if (answer?.status === status) return;
    await sleep(200);
  }
  assert.fail(`${process.name}: ${path} did not answer ${status} within 120 s:\n${process.output()}`);
}

/** SIGTERM, as docker stop and Kubernetes send it: the process must exit 0 on its own, in time. */
async function stop(process: Running): Promise<number | null> {
  if (process.child.exitCode !== null) return process.child.exitCode;
  const exited = new Promise<number | null>((resolve) => process.child.once('exit', resolve));
  process.child.kill('SIGTERM');
  const code = await Promise.race([exited, sleep(12_000).then(() => 'late' as const)]);
  if (code === 'late') {
    process.child.kill('SIGKILL');
    return -1;
  }
  return code;
}

/** A health check command of the image (`node -e …`) run as Docker would, in the container's environment. */
function check(command: readonly string[], port: number): number | null {
  assert.equal(command[0], 'node');
  return spawnSync(process.execPath, command.slice(1), { cwd: image.dir, env: { PATH: process.env.PATH, ...dockerfile.env, PORT: String(port) }, timeout: 10_000 }).status;
}

await test('the image: pinned to the Node of package-lock.json, production packages only, a numeric non-root user', () => {
  const lock = JSON.parse(readFileSync(join(ROOT, 'package-lock.json'), 'utf8')) as { packages: Record<string, { version?: string }> };
  assert.equal(dockerfile.nodeVersion, lock.packages['node_modules/node']?.version, 'the Node of npm start');
  assert.ok(dockerfile.installs.some((line) => /npm ci .*--omit=dev/.test(line)), 'npm ci --omit=dev');
  assert.deepEqual(dockerfile.finalCopies.map((c) => c.split(/\s+/).at(-2)).sort(), ['/app/node_modules', 'package.json', 'src'].sort());
  assert.match(dockerfile.user, /^[1-9][0-9]*(:[0-9]+)?$/);
  const ignored = readFileSync(join(ROOT, '.dockerignore'), 'utf8').split('\n').filter((l) => l && !l.startsWith('#'));
  assert.deepEqual(ignored, ['*', '!package.json', '!package-lock.json', '!src/'], 'the build context is what the Dockerfile copies');
  assert.ok(existsSync(join(image.dir, 'node_modules/fastify')) && !existsSync(join(image.dir, 'node_modules/typescript')), 'the laid-out /app has the production packages and no devDependency');
});

await test('the image\'s default command runs the whole system, its HEALTHCHECK passes (and fails with nothing there), SIGTERM stops it', async () => {
  const data = mkdtempSync(join(tmpdir(), 'orderly-image-data-'));
  const port = await freePort();
  assert.notEqual(check(dockerfile.healthcheck, port), 0, 'nothing listening: unhealthy');
  const embedded = run('npm start', dockerfile.cmd, { ORDERLY_DATA_DIR: data }, port);
  try {
    await until(embedded, '/healthz');
    assert.equal(check(dockerfile.healthcheck, port), 0);
    assert.equal((await fetch(`${embedded.url}/stock/item/create/5`, { method: 'POST' })).status, 200);
  } finally {
    assert.equal(await stop(embedded), 0, embedded.output());
    rmSync(data, { recursive: true, force: true });
  }
});

await test('every command of the dev overlay and of compose.yaml starts from the image with its manifest\'s environment and answers its probes; two replicas migrate one schema together', async () => {
  const objects = render('deploy/k8s/overlays/dev');
  const byName = (kind: string, name: string) => objects.find((o) => o.kind === kind && o.metadata.name === name);
  const deployments = objects.filter((o): o is Deployment => o.kind === 'Deployment' && o.metadata.labels?.['app.kubernetes.io/name'] === 'orderly');
  const database = await freshDatabase(SHARED.postgres);
  const namespace = randomName('deploy_');
  const running: Running[] = [];
  const ports = new Map<string, number>();
  for (const d of deployments) ports.set(d.metadata.name, await freePort());
  // Cluster DNS: a Service's name is its Deployment's (first) replica here.
  const local = (url: string) => {
    const { hostname } = new URL(url);
    const port = ports.get(hostname) ?? ports.get(`orderly-${hostname}`);
    assert.ok(port, `${url} names a process of the deployment`);
    return `http://127.0.0.1:${port}`;
  };
  const environment = (container: Container, pod: string) => {
    const env: Record<string, string> = {};
    for (const from of container.envFrom ?? []) Object.assign(env, (byName('ConfigMap', from.configMapRef?.name ?? '') as { data: Record<string, string> }).data);
    for (const v of container.env ?? []) {
      const ref = v.valueFrom?.secretKeyRef;
      const secret = ref && (byName('Secret', ref.name) as { data?: Record<string, string> } | undefined)?.data?.[ref.key];
      const value = v.value ?? (v.valueFrom?.fieldRef?.fieldPath === 'metadata.name' ? pod : secret === undefined ? undefined : Buffer.from(secret, 'base64').toString());
      if (value !== undefined) env[v.name] = value;
    }
    // Only where things are differs here: the same names, this machine's servers.
    const here: Record<string, string> = { HOST: '127.0.0.1' };
    if ('ORDERLY_STORE_URL' in env) Object.assign(here, { ORDERLY_STORE_URL: database.url, ORDERLY_BUS_URL: SHARED.rabbitmq, ORDERLY_NAMESPACE: namespace, ORDERLY_GATEWAY_URL: local(env.ORDERLY_GATEWAY_URL ?? '') });
    for (const name of Object.keys(here)) assert.ok(name in env, `${pod}: ${name} is set by the manifest`);
    return { ...env, ...here };
  };
  const token = environment(deployments[0]!.spec.template.spec.containers[0]!, 'x').ORDERLY_ADMIN_TOKEN ?? '';
  try {
    for (const deployment of deployments) {
      const container = deployment.spec.template.spec.containers[0]!;
      const command = container.command.map((arg) => (/^http:\/\//.test(arg) ? local(arg) : arg));
      const replicas = deployment.metadata.name === 'orderly-orders' ? 2 : 1;
      for (let i = 1; i <= replicas; i++) {
        const pod = `${deployment.metadata.name}-${i}`;
        running.push(run(pod, command, environment(container, pod), i === 1 ? ports.get(deployment.metadata.name)! : await freePort()));
      }
    }
    for (const process of running) {
      const container = deployments.find((d) => process.name.startsWith(`${d.metadata.name}-`))!.spec.template.spec.containers[0]!;
      await until(process, container.livenessProbe.httpGet.path);
      await until(process, container.readinessProbe.httpGet.path);
    }
    const gateway = running.find((p) => p.name === 'orderly-gateway-1')!;
    const user = await fetch(`${gateway.url}/payment/create_user`, { method: 'POST' });
    assert.equal(user.status, 200, 'the gateway routes to the services');
    assert.equal((await fetch(`${gateway.url}/metrics`, { headers: { authorization: `Bearer ${token}` } })).status, 200, 'the admin token of the Secret opens /metrics');

    // compose.yaml: the same service commands, its gateway's, its health checks.
    const compose = parse(readFileSync(join(ROOT, 'compose.yaml'), 'utf8'), { merge: true }) as { services: Record<string, { command?: string[]; healthcheck?: { test: string[] } }> };
    for (const [name, service] of Object.entries(compose.services).filter(([, s]) => s.command?.[1] === 'src/cli.ts')) {
      if (name !== 'gateway') {
        assert.ok(running.some((p) => p.name === `orderly-${name}-1` && JSON.stringify(service.command) === JSON.stringify(deployments.find((d) => d.metadata.name === `orderly-${name}`)?.spec.template.spec.containers[0]?.command)), `${name}: the same command as in Kubernetes`);
        const [kind, ...healthcheck] = service.healthcheck?.test ?? [];
        assert.equal(kind, 'CMD');
        assert.equal(check(healthcheck, ports.get(`orderly-${name}`)!), 0, `${name}: compose's health check passes on a ready replica`);
        continue;
      }
      const composeGateway = run('compose gateway', (service.command ?? []).map((arg) => (/^http:\/\//.test(arg) ? local(arg) : arg)), { ORDERLY_ADMIN_TOKEN: token }, await freePort());
      running.push(composeGateway);
      await until(composeGateway, '/readyz');
      assert.equal(check(dockerfile.healthcheck, Number(new URL(composeGateway.url).port)), 0, 'the image\'s HEALTHCHECK passes on the gateway');
    }
  } finally {
    const codes = await Promise.all(running.map(async (p) => [p.name, await stop(p)] as const));
    await cleanBroker(SHARED.rabbitmq, namespace).catch(() => undefined);
    await database.drop();
    assert.deepEqual(codes.filter(([, code]) => code !== 0), [], 'every process stops on SIGTERM with exit code 0');
  }
});
