import { callingBus } from '../adapters/calls/bus.ts';
import { parkCalls } from '../wiring/parkCalls.ts';
import { connectBus, connectStore, redact } from '../adapters/connect.ts';
import { ConfigError, type Config } from '../config.ts';
import { policyOf } from '../http/access.ts';
import { buildApp } from '../http/app.ts';
import { deadLetterRoutes } from '../http/deadLetters.ts';
import { givesMemoryBackAfterBulkRequests } from '../http/memoryAfterBulk.ts';
import type { Logger } from '../ports/log.ts';
import { calledCommands, declareTopology, runService, type ServiceName } from '../wiring/serviceWiring.ts';

export type ServiceProcessOptions = Readonly<{
  service: ServiceName;
  storeUrl: string;
  /** None in the synchronous style. */
  busUrl: string | undefined;
  /** Where the other services' APIs are (the gateway), for the order service's lookups and synchronous calls. */
  gatewayUrl: string;
  namespace: string;
  replica: string;
}>;

/** One replica of one service as its own process: its store, the bus, its HTTP API. */
export async function startServiceProcess(options: ServiceProcessOptions, config: Config, log: Logger) {
  const { service, replica, busUrl } = options;
  // No bus: the synchronous style, whose saga calls carry the deployment's secret.
  const token = config.internalToken;
  if (busUrl === undefined && token === undefined) {
    throw new ConfigError('SAGA_STYLE=synchronous needs ORDERLY_INTERNAL_TOKEN, a secret shared by the order service and the participants so that nobody else can call their saga steps (for example: openssl rand -hex 16). npm run cluster makes one for you.');
  }
  const { store, close: closeStore } = await connectStore(options.storeUrl, service, options.namespace, busUrl ?? '', log, config.partitions, config.cacheDocs);
  // The HTTP clients (undici) are loaded only by the replicas that call out: every replica in the
  // synchronous style, the order service for its lookups.
  const calls = busUrl === undefined ? (await import('../adapters/calls/http.ts')).httpCall(options.gatewayUrl, token!) : undefined;
  const bus = calls ? callingBus(calledCommands(config), calls, parkCalls(store, log)) : await connectBus(busUrl!, options.namespace, replica, log, config.partitions);
  await declareTopology(bus, config);
  // The lookups read the shop API: with one of its keys where it needs them.
  const lookups = service === 'orders' ? (await import('../wiring/lookups.ts')).httpLookups(options.gatewayUrl, config.apiTokens[0]) : undefined;
  const running = runService(service, store, bus, {
    config, log, publishChunk: 64, sweepMs: 5_000, ...(lookups ? { lookups } : {}),
  });
  const app = buildApp({
    log,
    access: policyOf(config, false),
    maxEventStreams: config.maxEventStreams,
    routes: (a) => {
      running.routes(a);
      a.register(deadLetterRoutes(bus.deadLetters));
    },
    async notReady() {
      const reasons: string[] = [];
      if (!bus.connected()) reasons.push(`bus ${redact(busUrl ?? '')} is not connected`);
      await store.read([]).catch((err: unknown) => reasons.push(`store ${redact(options.storeUrl)}: ${String(err)}`));
      return reasons;
    },
    audit: () => running.audit(),
  });
  givesMemoryBackAfterBulkRequests(app);
  await running.subscribe();
  const recovered = await running.start();
  const address = await app.listen({ host: config.host, port: config.port });
  log.info({ service, replica, address, recovered }, 'service replica is running');
  return {
    address,
    async close() {
      await app.close();
      await running.stop();
      await bus.close();
      await lookups?.close();
      await calls?.close();
      await closeStore();
    },
  };
}
