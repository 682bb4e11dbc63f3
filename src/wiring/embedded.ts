import type { FastifyInstance } from 'fastify';
import { join } from 'node:path';
import { callingBus } from '../adapters/calls/bus.ts';
import { inProcessBus } from '../adapters/inproc/bus.ts';
import { openPglite } from '../adapters/pglite/client.ts';
import { openSqlStore } from '../adapters/sql/store.ts';
import type { Config } from '../config.ts';
import { buildApp } from '../http/app.ts';
import type { Bus } from '../ports/bus.ts';
import type { Store } from '../ports/store.ts';
import { lockDataDir } from '../runtime/dataDirLock.ts';
import type { Logger } from '../runtime/log.ts';
import { countDeadLetters } from '../observability/metrics.ts';
import { storeLookups } from './lookups.ts';
import type { ServiceRuntime } from '../runtime/serviceRuntime.ts';
import { calledCommands, runService, servicesOf, type ServiceName } from './serviceWiring.ts';

export type System = Readonly<{
  app: FastifyInstance;
  services: Readonly<Partial<Record<ServiceName, ServiceRuntime>>>;
  /** Messages found in the outboxes at start (work a crash left unfinished). */
  recovered: number;
  close(): Promise<void>;
}>;

/**
 * The embedded profile: the order, stock and payment services (and the tracker, in
 * choreography) in this process, each with its own embedded PostgreSQL (PGlite, in a worker
 * thread) under `config.dataDir/<service>`, talking over the in-process bus, or, in the
 * synchronous style, calling each other directly. Nothing to install, nothing lost on a crash.
 */
export async function startEmbedded(config: Config, log: Logger): Promise<System> {
  const unlock = lockDataDir(config.dataDir);
  const names = servicesOf(config.sagaStyle);
  const databases = await Promise.all(names.map((name) => openPglite(join(config.dataDir, name))));
  const stores = {} as Record<ServiceName, Store>;
  for (const [i, name] of names.entries()) stores[name] = await openSqlStore(databases[i]!, name);
  const runtimes = new Map<string, ServiceRuntime>();
  const bus: Bus = config.sagaStyle === 'synchronous'
    ? callingBus(calledCommands(config), (participant, commands) => Promise.all(commands.map((c) => runtimes.get(participant)!.call(c))))
    : inProcessBus({
      maxDeliveries: 10,
      backoffMs: [10, 100, 1000, 5000],
      deadLetter: async (consumer, message, error) => {
        log.error({ consumer, messageId: message.id, type: message.type, sagaId: message.sagaId, error }, 'message dead-lettered');
        countDeadLetters(consumer, message.type);
        if (consumer in stores) await stores[consumer as ServiceName].deadLetter(message, consumer, error);
      },
      onError: (consumer, message, err, delivery) =>
        log.warn({ consumer, messageId: message.id, type: message.type, sagaId: message.sagaId, delivery, err }, 'delivery failed; will retry'),
    });
  const options = { config, log, publishChunk: 1, sweepMs: 0, lookups: storeLookups(stores.stock, stores.payment) };
  const services = names.map((name) => runService(name, stores[name], bus, options));
  for (const service of services) runtimes.set(service.name, service.runtime);
  const app = buildApp({
    log,
    adminToken: config.adminToken,
    routes: (a) => services.forEach((s) => s.routes(a)),
    notReady: async () => [],
    audit: async () => Object.assign({}, ...(await Promise.all(services.map((s) => s.audit())))),
  });
  for (const service of services) await service.subscribe();
  let recovered = 0;
  for (const service of services) recovered += await service.start();

  return {
    app,
    services: Object.fromEntries(services.map((s) => [s.name, s.runtime])) as Record<ServiceName, ServiceRuntime>,
    recovered,
    async close() {
      await app.close();
      for (const service of services) await service.stop();
      await bus.close();
      for (const store of Object.values(stores)) await store.close();
      for (const db of databases) await db.close();
      unlock();
    },
  };
}
