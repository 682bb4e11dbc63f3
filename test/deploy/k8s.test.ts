import assert from 'node:assert/strict';
import { test } from 'node:test';
import { loadConfig, type SagaStyle } from '../../src/config.ts';
import { servicesOf } from '../../src/wiring/serviceWiring.ts';
import { acceptedByCli } from './commands.ts';
import { OVERLAYS, render, variablesOf, type K8sObject } from './sources.ts';

type EnvVar = { name: string; value?: string; valueFrom?: { secretKeyRef?: { name: string; key: string; optional?: boolean }; configMapKeyRef?: { name: string; key: string }; fieldRef?: unknown } };
type Probe = { httpGet?: { path: string; port: string | number } };
type Container = {
  name: string; image: string; command?: string[]; args?: string[];
  ports?: { name?: string; containerPort: number }[];
  env?: EnvVar[]; envFrom?: { configMapRef?: { name: string }; secretRef?: { name: string } }[];
  readinessProbe?: Probe; livenessProbe?: Probe; startupProbe?: Probe;
  resources?: { requests?: Record<string, string>; limits?: Record<string, string> };
  securityContext?: { readOnlyRootFilesystem?: boolean; allowPrivilegeEscalation?: boolean; capabilities?: { drop?: string[] } };
};
type PodSpec = { containers: Container[]; securityContext?: { runAsNonRoot?: boolean; runAsUser?: number }; automountServiceAccountToken?: boolean; enableServiceLinks?: boolean };
type Deployment = K8sObject & { spec: { replicas?: number; selector: { matchLabels: Record<string, string> }; template: { metadata: { labels: Record<string, string> }; spec: PodSpec } } };
type Service = K8sObject & { spec: { selector: Record<string, string>; ports: { port: number; targetPort: string | number }[] } };

const rendered = Object.fromEntries(['base', ...OVERLAYS].map((name) => [name, render(name === 'base' ? 'deploy/k8s/base' : `deploy/k8s/overlays/${name}`)]));
const orderlyDeployments = (objects: K8sObject[]) => objects.filter((o): o is Deployment => o.kind === 'Deployment' && o.metadata.labels?.['app.kubernetes.io/name'] === 'orderly');
const find = (objects: K8sObject[], kind: string, name: string) => objects.find((o) => o.kind === kind && (o.metadata.name === name || o.metadata.name.startsWith(`${name}-`)));
const configMap = (objects: K8sObject[], name: string) => {
  const found = find(objects, 'ConfigMap', name);
  assert.ok(found?.data, `ConfigMap ${name} is rendered`);
  return found.data;
};

/** The Kubernetes model of an object's apiVersion and kind, from kubernetes-models (its JSON schemas). */
async function validate(object: K8sObject): Promise<void> {
  const models = await import(`kubernetes-models/${object.apiVersion}`) as Record<string, new (data: unknown) => { validate(): void }>;
  const Model = models[object.kind];
  assert.ok(Model, `kubernetes-models knows ${object.apiVersion} ${object.kind}`);
  new Model(object).validate();
}

await test('every overlay renders, and every object it renders is valid against the Kubernetes schemas', async () => {
  const deployment = orderlyDeployments(rendered.base ?? [])[0];
  assert.ok(deployment);
  // The check can fail: a wrong type and a missing required field are refused. (kubernetes-models
  // follows the published schemas, which allow fields they do not name: a misspelt optional
  // field is not caught here.)
  await assert.rejects(validate({ ...deployment, spec: { ...deployment.spec, replicas: 'two' } } as K8sObject), /replicas must be integer/);
  await assert.rejects(validate({ ...deployment, spec: { ...deployment.spec, selector: undefined } } as K8sObject), /selector/);
  for (const [name, objects] of Object.entries(rendered)) {
    assert.ok(objects.length > 0, `${name} renders objects`);
    for (const object of objects) await validate(object).catch((error: unknown) => assert.fail(`${name}: ${object.kind} ${object.metadata.name}: ${String(error)}`));
  }
});

for (const overlay of OVERLAYS) {
  const objects = rendered[overlay] ?? [];
  const config = configMap(objects, 'orderly-config');
  const style = loadConfig(config).sagaStyle satisfies SagaStyle;
  const deployments = orderlyDeployments(objects);

  await test(`${overlay}: a Deployment, Service, PodDisruptionBudget and autoscaler for the gateway and every service of its style, each running what src/cli.ts accepts`, () => {
    const services = servicesOf(style);
    assert.deepEqual(deployments.map((d) => d.metadata.name).sort(), ['gateway', ...services].map((s) => `orderly-${s}`).sort());
    for (const service of ['gateway', ...services]) {
      const deployment = find(objects, 'Deployment', `orderly-${service}`) as Deployment;
      const [container, ...others] = deployment.spec.template.spec.containers;
      assert.ok(container && others.length === 0, `${service}: one container`);
      const command = [...(container.command ?? []), ...(container.args ?? [])];
      assert.deepEqual(acceptedByCli(command), [], `${service}: ${command.join(' ')}`);
      assert.deepEqual(command.slice(2, service === 'gateway' ? 3 : 4), service === 'gateway' ? ['gateway'] : ['service', service]);
      const pods = deployment.spec.template.metadata.labels;
      assert.deepEqual({ ...pods, ...deployment.spec.selector.matchLabels }, pods, `${service}: the selector matches its pods`);
      const svc = find(objects, 'Service', `orderly-${service}`) as Service | undefined;
      assert.ok(svc, `${service}: a Service`);
      assert.deepEqual({ ...pods, ...svc.spec.selector }, pods, `${service}: its Service selects its pods`);
      assert.ok(svc.spec.ports.every((p) => container.ports?.some((c) => c.name === p.targetPort || c.containerPort === p.targetPort)), `${service}: its Service targets its port`);
      const pdb = find(objects, 'PodDisruptionBudget', `orderly-${service}`) as (K8sObject & { spec: { selector: { matchLabels: Record<string, string> } } }) | undefined;
      assert.ok(pdb && Object.entries(pdb.spec.selector.matchLabels).every(([k, v]) => pods[k] === v), `${service}: a PodDisruptionBudget over its pods`);
      const hpa = find(objects, 'HorizontalPodAutoscaler', `orderly-${service}`) as (K8sObject & { spec: { scaleTargetRef: { kind: string; name: string }; minReplicas: number; maxReplicas: number } }) | undefined;
      assert.ok(hpa && hpa.spec.scaleTargetRef.kind === 'Deployment' && hpa.spec.scaleTargetRef.name === deployment.metadata.name, `${service}: an autoscaler of its Deployment`);
      assert.ok(hpa.spec.minReplicas <= hpa.spec.maxReplicas);
    }
    // The gateway is given every service of the style, each at a Service that exists.
    const gateway = (find(objects, 'Deployment', 'orderly-gateway') as Deployment).spec.template.spec.containers[0]?.command ?? [];
    for (const service of services) {
      const at = gateway.indexOf(`--${service}`);
      assert.ok(at > 0, `the gateway is told where ${service} is`);
      const host = new URL(gateway[at + 1] ?? '').hostname;
      assert.ok(find(objects, 'Service', host), `the gateway's ${service} URL names a Service (${host})`);
    }
  });

  await test(`${overlay}: probes on /readyz and /healthz of the port the process listens on, resources, and a locked-down security context`, () => {
    const port = Number(config.PORT);
    assert.ok(port > 0, 'PORT is set in orderly-config');
    for (const deployment of deployments) {
      const pod = deployment.spec.template.spec;
      const container = pod.containers[0]!;
      const named = container.ports?.find((p) => p.containerPort === port);
      assert.ok(named, `${deployment.metadata.name}: the container port is PORT (${port})`);
      const probePort = (probe: Probe | undefined) => probe?.httpGet?.port;
      for (const [kind, path] of [['readinessProbe', '/readyz'], ['livenessProbe', '/healthz']] as const) {
        assert.equal(container[kind]?.httpGet?.path, path, `${deployment.metadata.name}: ${kind}`);
        assert.ok([named.name, port].includes(probePort(container[kind])), `${deployment.metadata.name}: ${kind} on its port`);
      }
      assert.ok(container.resources?.requests?.cpu && container.resources.requests.memory && container.resources.limits?.memory, `${deployment.metadata.name}: resources`);
      assert.equal(pod.securityContext?.runAsNonRoot, true);
      assert.ok(Number.isInteger(pod.securityContext?.runAsUser) && pod.securityContext.runAsUser !== 0, 'a numeric non-root user (runAsNonRoot cannot check a user name)');
      assert.equal(container.securityContext?.readOnlyRootFilesystem, true);
      assert.equal(container.securityContext?.allowPrivilegeEscalation, false);
      assert.deepEqual(container.securityContext?.capabilities?.drop, ['ALL']);
      assert.equal(pod.automountServiceAccountToken, false);
      assert.equal(pod.enableServiceLinks, false, 'no <SERVICE>_PORT variables beside the ones it reads');
    }
  });

  await test(`${overlay}: each process is given exactly the variables src/config.ts and src/cli.ts read for its command, tokens and URLs from Secrets`, () => {
    assert.doesNotThrow(() => loadConfig(config), 'orderly-config passes loadConfig');
    for (const deployment of deployments) {
      const container = deployment.spec.template.spec.containers[0]!;
      const given = new Set<string>();
      const add = (name: string, from: string) => {
        assert.ok(!given.has(name), `${deployment.metadata.name}: ${name} is set once (${from})`);
        given.add(name);
      };
      for (const source of container.envFrom ?? []) {
        assert.ok(source.configMapRef, `${deployment.metadata.name}: envFrom only of ConfigMaps (a Secret's keys are named one by one)`);
        const map = objects.find((o) => o.kind === 'ConfigMap' && o.metadata.name === source.configMapRef?.name);
        assert.ok(map?.data, `${deployment.metadata.name}: ConfigMap ${source.configMapRef.name} is rendered`);
        for (const name of Object.keys(map.data)) add(name, map.metadata.name);
      }
      for (const variable of container.env ?? []) {
        add(variable.name, 'env');
        const ref = variable.valueFrom?.secretKeyRef;
        if (/TOKEN|_URL$/.test(variable.name) && variable.name !== 'ORDERLY_GATEWAY_URL') assert.ok(ref, `${deployment.metadata.name}: ${variable.name} comes from a Secret`);
        const secret = ref && objects.find((o) => o.kind === 'Secret' && o.metadata.name === ref.name);
        // dev renders its Secrets: each key asked for is in it; prod's are made outside Git.
        if (overlay === 'dev' && ref && !ref.optional) assert.ok((secret as { data?: Record<string, string> } | undefined)?.data?.[ref.key], `${ref.name} has ${ref.key}`);
      }
      const command = container.command ?? [];
      const reads = variablesOf(command.slice(2));
      assert.ok(reads.has('SAGA_STYLE') && (command[2] !== 'service' || reads.has('ORDERLY_STORE_URL')), 'the variables are read off the source');
      assert.deepEqual([...given].sort(), [...reads].sort(), `${deployment.metadata.name} (${command.slice(2, 4).join(' ')})`);
    }
    // No Secret carries a key nobody reads.
    for (const secret of objects.filter((o) => o.kind === 'Secret')) {
      const asked = deployments.flatMap((d) => (d.spec.template.spec.containers[0]?.env ?? []).flatMap((v) => (v.valueFrom?.secretKeyRef?.name === secret.metadata.name ? [v.valueFrom.secretKeyRef.key] : [])));
      for (const key of Object.keys((secret as { data?: Record<string, string> }).data ?? {})) assert.ok(asked.includes(key), `${secret.metadata.name}: ${key} is read by a process`);
    }
  });
}

await test('prod runs a pinned image from a registry, dev the image built here; both the same for every process', () => {
  for (const overlay of OVERLAYS) {
    const images = new Set(orderlyDeployments(rendered[overlay] ?? []).map((d) => d.spec.template.spec.containers[0]?.image));
    assert.equal(images.size, 1, `${overlay}: one image`);
    const [image] = images;
    assert.match(image ?? '', overlay === 'prod' ? /^[a-z0-9.-]+\.[a-z]+\/[a-z0-9/-]+:(?!latest$)[\w.-]+$/ : /^orderly:dev$/);
  }
  assert.ok(orderlyDeployments(rendered.prod ?? []).every((d) => (d.spec.replicas ?? 1) >= 2), 'prod: two replicas or more');
});
