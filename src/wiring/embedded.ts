import type { FastifyInstance } from 'fastify';
import { callingBus } from '../adapters/calls/bus.ts';
import { parkCalls } from './parkCalls.ts';
import { inProcessBus } from '../adapters/inproc/bus.ts';
import type { Config } from '../config.ts';
import { policyOf } from '../http/access.ts';
import { buildApp } from '../http/app.ts';
import type { Bus } from '../ports/bus.ts';
import { lockDataDir } from '../runtime/dataDirLock.ts';
import type { Logger } from '../runtime/log.ts';
import { storeShelf } from './deadLetterShelf.ts';
import { deadLetterRoutes } from '../http/deadLetters.ts';
import { aboutMessage } from '../observability/tracing.ts';
import { openEmbeddedStores, type EmbeddedStores } from './embeddedStores.ts';
import { storeLookups } from './lookups.ts';
import type { ServiceRuntime } from '../runtime/serviceRuntime.ts';
import { calledCommands, isServiceName, runService, servicesOf, type ServiceName } from './serviceWiring.ts';

export type System = Readonly<{
  app: FastifyInstance;
  services: Readonly<Partial<Record<ServiceName, ServiceRuntime>>>;
  /** Messages found in the outboxes at start (work a crash left unfinished). */
  recovered: number;
  close(): Promise<void>;
}>;

/** Runs one step of the start-up; `npm start` uses it to say what a slow step is doing. */
export type Step = <T>(label: string, run: () => Promise<T>) => Promise<T>;

/**
 * The embedded profile: the order, stock and payment services (and the tracker, in
 * choreography) in this process, each with its own embedded database under `config.dataDir`
 * (SQLite, `<service>.sqlite`, or PGlite in a worker thread, `<service>/`), talking over the
 * in-process bus, or, in the synchronous style, calling each other directly. Nothing to
 * install, nothing lost on a crash.
 */
export async function startEmbedded(config: Config, log: Logger, step: Step = (_, run) => run()): Promise<System> {
  const unlock = lockDataDir(config.dataDir);
  let databases: EmbeddedStores | undefined;
  try {
    const names = servicesOf(config.sagaStyle);
    databases = await step(`opening the ${config.embeddedStore === 'sqlite' ? 'SQLite' : 'PGlite'} databases`, () => openEmbeddedStores(config.embeddedStore, config.dataDir, names));
    return await serve(config, log, step, databases, unlock);
  } catch (error) {
    // A start that fails part-way leaves the data as it found it, and the directory free.
    await databases?.close().catch(() => undefined);
    unlock();
    throw error;
  }
}

async function serve(config: Config, log: Logger, step: Step, databases: EmbeddedStores, unlock: () => void): Promise<System> {
  const names = servicesOf(config.sagaStyle);
  const { stores } = databases;
  const runtimes = new Map<string, ServiceRuntime>();
  const bus: Bus = config.sagaStyle === 'synchronous'
    ? callingBus(calledCommands(config), (participant, commands) => Promise.all(commands.map((c) => runtimes.get(participant)!.call(c))), parkCalls(stores.orders, log))
    : inProcessBus({
      maxDeliveries: 10,
      backoffMs: [10, 100, 1000, 5000],
      shelf: storeShelf((consumer) => (isServiceName(consumer) ? stores[consumer] : undefined), log),
      onError: (consumer, message, err, delivery) =>
        log.warn({ consumer, ...aboutMessage(message), delivery, err }, 'delivery failed; will retry'),
    });
  const options = { config, log, publishChunk: 1, sweepMs: 0, lookups: storeLookups(stores.stock, stores.payment) };
  const services = names.map((name) => runService(name, stores[name], bus, options));
  for (const service of services) runtimes.set(service.name, service.runtime);
  const app = buildApp({
    log,
    // `npm start` is the course's system: its batch_init fixtures are on unless ORDERLY_FIXTURES=off.
    access: policyOf(config, true),
    maxEventStreams: config.maxEventStreams,
    routes: (a) => {
      services.forEach((s) => s.routes(a));
      a.register(deadLetterRoutes(bus.deadLetters));
    },
    notReady: async () => [],
    audit: async () => Object.assign({}, ...(await Promise.all(services.map((s) => s.audit())))),
  });
  for (const service of services) await service.subscribe();
  const recovered = await step('resuming unfinished work', async () => {
    let found = 0;
    for (const service of services) found += await service.start();
    return found;
  });

  return {
    app,
    services: Object.fromEntries(services.map((s) => [s.name, s.runtime])) as Record<ServiceName, ServiceRuntime>,
    recovered,
    async close() {
      await app.close();
      for (const service of services) await service.stop();
      await bus.close();
      await databases.close();
      unlock();
    },
  };
}
