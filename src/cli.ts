/**
 * `orderly` — run Orderly as separate processes.
 *
 *   npm run orderly -- service <orders|stock|payment|fulfillment|notification|tracker> --store URL --bus URL [--gateway URL] [--port N]
 *   npm run orderly -- gateway --port 8000 --orders URL[,URL…] --stock URL[,…] --payment URL[,…] --fulfillment URL[,…] --notification URL[,…] [--tracker URL[,…]]
 *   npm run cluster -- --store URL --bus URL [--replicas 2] [--port 8000]
 *   npm run orderly -- graph   (the checkout saga as a Mermaid flowchart)
 *   npm run orderly -- dead-letters list|show|redrive|discard [id] [--url http://127.0.0.1:8000]
 *
 * Every flag can also come from the environment (ORDERLY_STORE_URL, ORDERLY_BUS_URL,
 * ORDERLY_GATEWAY_URL, ORDERLY_REPLICA, ORDERLY_NAMESPACE, PORT, HOST). SAGA_STYLE picks the
 * saga style; the synchronous style needs no bus.
 */
import { hostname } from 'node:os';
import { parseArgs } from 'node:util';
import { ConfigError, loadConfig } from './config.ts';
import { createLogger } from './runtime/log.ts';
import { isServiceName, SERVICES, servicesOf } from './wiring/serviceNames.ts';

// Each command's modules are imported when it runs: a gateway does not load the services'
// engine, stores and brokers, a replica not the gateway nor the cluster (docs/performance.md#memory).

const STOP_DEADLINE_MS = 10_000;

const USAGE = `usage:
  orderly service <${SERVICES.join('|')}> --store postgres://…|redis://… --bus amqp://…|nats://…|redis://… [--gateway http://…] [--port N] [--replica NAME]
  orderly gateway --port 8000 --orders URL[,URL…] --stock URL[,URL…] --payment URL[,URL…] --fulfillment URL[,URL…] --notification URL[,URL…] [--tracker URL[,URL…]]
  orderly cluster --store postgres://…|redis://… --bus amqp://…|nats://…|redis://… [--replicas 2] [--port 8000]
  orderly graph     (the checkout saga as a Mermaid flowchart, from its definition)
  orderly dead-letters list|show|redrive|discard …   (see orderly dead-letters --help)
SAGA_STYLE=orchestration|choreography|synchronous picks how checkouts are coordinated (default
orchestration); the synchronous style calls the participants over HTTP and takes no --bus.`;

async function main(): Promise<void> {
  const { values: flags, positionals } = parseArgs({
    allowPositionals: true,
    options: {
      store: { type: 'string' }, bus: { type: 'string' }, gateway: { type: 'string' }, port: { type: 'string' },
      host: { type: 'string' }, replica: { type: 'string' }, namespace: { type: 'string' }, replicas: { type: 'string' },
      orders: { type: 'string' }, stock: { type: 'string' }, payment: { type: 'string' }, fulfillment: { type: 'string' }, notification: { type: 'string' }, tracker: { type: 'string' },
      help: { type: 'boolean' }, url: { type: 'string' }, group: { type: 'string' }, limit: { type: 'string' }, after: { type: 'string' }, json: { type: 'boolean' },
    },
  });
  const [command, service] = positionals;
  if (command === 'dead-letters') {
    const { DEAD_LETTERS_USAGE, deadLettersCommand } = await import('./tools/deadLetters.ts');
    if (flags.help) return void console.log(DEAD_LETTERS_USAGE);
    // A client of a running deployment: no configuration of its own beyond where and the token.
    process.exitCode = await deadLettersCommand({
      action: positionals[1], id: positionals[2], url: flags.url ?? process.env.ORDERLY_URL ?? 'http://127.0.0.1:8000', token: process.env.ORDERLY_ADMIN_TOKEN,
      json: flags.json ?? false, ...(flags.group !== undefined ? { group: flags.group } : {}), ...(flags.limit !== undefined ? { limit: flags.limit } : {}), ...(flags.after !== undefined ? { after: flags.after } : {}),
    }, (line) => console.log(line), (line) => console.error(`orderly: ${line}`));
    return;
  }
  if (flags.help || !command) {
    console.log(USAGE);
    return;
  }
  const env = process.env;
  const config = loadConfig({ ...env, ...(flags.port ? { PORT: flags.port } : {}), ...(flags.host ? { HOST: flags.host } : {}) });
  const log = createLogger(config.logLevel, config.logFormat);
  const storeUrl = flags.store ?? env.ORDERLY_STORE_URL;
  // The synchronous style has no bus: the order service calls the participants.
  const busUrl = config.sagaStyle === 'synchronous' ? undefined : flags.bus ?? env.ORDERLY_BUS_URL;
  const namespace = flags.namespace ?? env.ORDERLY_NAMESPACE ?? 'orderly';
  const need = (value: string | undefined, what: string) => {
    if (!value) throw new ConfigError(`${what} is required.\n${USAGE}`);
    return value;
  };

  switch (command) {
    case 'service': {
      if (!service || !isServiceName(service)) throw new ConfigError(`Name a service: ${SERVICES.join(', ')}.\n${USAGE}`);
      if (!servicesOf(config.sagaStyle).includes(service)) throw new ConfigError(`The ${service} service runs only with SAGA_STYLE=choreography.`);
      const [{ startTracing }, { startServiceProcess }] = await Promise.all([import('./observability/tracing.ts'), import('./processes/replica.ts')]);
      const tracing = await startTracing({ serviceName: `orderly-${service}`, endpoint: config.otlpEndpoint, sampling: config.traceSampling });
      const running = await startServiceProcess({
        service,
        storeUrl: need(storeUrl, '--store (or ORDERLY_STORE_URL)'),
        busUrl: config.sagaStyle === 'synchronous' ? undefined : need(busUrl, '--bus (or ORDERLY_BUS_URL)'),
        gatewayUrl: flags.gateway ?? env.ORDERLY_GATEWAY_URL ?? 'http://127.0.0.1:8000',
        namespace,
        replica: flags.replica ?? env.ORDERLY_REPLICA ?? `${service}@${hostname()}:${process.pid}`,
      }, config, log);
      onStop(async () => {
        await running.close();
        await tracing?.shutdown();
      });
      return;
    }
    case 'gateway': {
      const [{ startTracing }, { startGateway }, { policyOf }] = await Promise.all([import('./observability/tracing.ts'), import('./processes/gateway.ts'), import('./http/access.ts')]);
      const tracing = await startTracing({ serviceName: 'orderly-gateway', endpoint: config.otlpEndpoint, sampling: config.traceSampling });
      const list = (value: string | undefined) => (value ?? '').split(',').map((u) => u.trim()).filter(Boolean);
      const gateway = await startGateway({
        orders: list(need(flags.orders, '--orders')), stock: list(need(flags.stock, '--stock')), payment: list(need(flags.payment, '--payment')),
        fulfillment: list(need(flags.fulfillment, '--fulfillment')), notification: list(need(flags.notification, '--notification')),
        tracker: list(flags.tracker),
      }, { host: config.host, port: config.port, log, access: policyOf(config, false), maxEventStreams: config.maxEventStreams });
      onStop(async () => {
        await gateway.close();
        await tracing?.shutdown();
      });
      return;
    }
    case 'graph': {
      // The checkout's definition as this deployment's style runs it, as a Mermaid flowchart.
      const [{ sagaGraph, sagaMermaid }, { checkoutSagaOf }] = await Promise.all([import('./core/sagaGraph.ts'), import('./domain/order/checkoutSaga.ts')]);
      process.stdout.write(sagaMermaid(sagaGraph(checkoutSagaOf(config.sagaStyle, config.sagaStepTimeoutMs, config.checkoutVersion))));
      return;
    }
    case 'cluster': {
      const replicas = Number(flags.replicas ?? '2');
      if (!Number.isInteger(replicas) || replicas < 1 || replicas > 16) throw new ConfigError('--replicas must be a whole number from 1 to 16.');
      const { runCluster } = await import('./processes/cluster.ts');
      await runCluster({
        storeUrl: need(storeUrl, '--store (or ORDERLY_STORE_URL)'),
        busUrl: config.sagaStyle === 'synchronous' ? undefined : need(busUrl, '--bus (or ORDERLY_BUS_URL)'),
        style: config.sagaStyle,
        replicas, port: config.port, host: config.host, namespace,
      });
      process.exit(0);
      return;
    }
    default:
      throw new ConfigError(`Unknown command ${command}.\n${USAGE}`);
  }
}

/** Stops cleanly on SIGINT/SIGTERM; a stop that hangs is cut short (everything is durable, so nothing is lost). */
function onStop(close: () => Promise<void>): void {
  let stopping = false;
  const stop = () => {
    if (stopping) return;
    stopping = true;
    setTimeout(() => {
      console.error(`orderly: still stopping after ${STOP_DEADLINE_MS / 1000} s; exiting now`);
      process.exit(1);
    }, STOP_DEADLINE_MS).unref();
    close().then(() => process.exit(0), () => process.exit(1));
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
}

main().catch((error: unknown) => {
  console.error(`orderly: ${error instanceof ConfigError ? error.message : String(error instanceof Error ? error.stack : error)}`);
  process.exit(error instanceof ConfigError ? 2 : 1);
});
