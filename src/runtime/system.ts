import type { FastifyInstance } from 'fastify';
import { join } from 'node:path';
import { inProcessBus } from '../adapters/inproc/bus.ts';
import { openPglite } from '../adapters/pglite/client.ts';
import { openSqlStore } from '../adapters/sql/store.ts';
import type { Config } from '../config.ts';
import type { Decider } from '../core/decider.ts';
import { orderDecider } from '../domain/order/businessLogic.ts';
import { checkoutSaga, defaultCheckoutPolicy } from '../domain/order/checkoutSaga.ts';
import { OrderEvents } from '../domain/order/order.ts';
import { paymentDecider } from '../domain/payment/businessLogic.ts';
import { stockDecider } from '../domain/stock/businessLogic.ts';
import { buildApp } from '../http/app.ts';
import type { Bus } from '../ports/bus.ts';
import type { Store } from '../ports/store.ts';
import type { Logger } from './log.ts';
import { lockDataDir } from './dataDirLock.ts';
import { SagaOutcomes } from './outcomes.ts';
import { Relay } from './relay.ts';
import { ServiceRuntime } from './service.ts';

const INBOX_RETENTION_MS = 60 * 60 * 1000;

export type System = Readonly<{
  app: FastifyInstance;
  services: Readonly<{ orders: ServiceRuntime; stock: ServiceRuntime; payment: ServiceRuntime }>;
  /** Messages found in the outboxes at start (work a crash left unfinished). */
  recovered: number;
  close(): Promise<void>;
}>;

/**
 * The embedded profile: the order, stock and payment services in this process, each with
 * its own embedded PostgreSQL (PGlite, in a worker thread) under `config.dataDir/<service>`,
 * talking over the in-process bus. Nothing to install, nothing lost on a crash.
 */
export async function startEmbedded(config: Config, log: Logger): Promise<System> {
  const unlock = lockDataDir(config.dataDir);
  const [ordersDb, stockDb, paymentDb] = await Promise.all([
    openPglite(join(config.dataDir, 'orders')),
    openPglite(join(config.dataDir, 'stock')),
    openPglite(join(config.dataDir, 'payment')),
  ]);
  const databases = [ordersDb, stockDb, paymentDb];
  const stores = {
    orders: await openSqlStore(ordersDb, 'orders'),
    stock: await openSqlStore(stockDb, 'stock'),
    payment: await openSqlStore(paymentDb, 'payment'),
  };
  const consumers = new Map<string, Store>(Object.values(stores).map((s) => [s.service, s]));
  const bus = inProcessBus({
    maxDeliveries: 10,
    backoffMs: [10, 100, 1000, 5000],
    deadLetter: async (consumer, message, error) => {
      log.error({ consumer, messageId: message.id, type: message.type, sagaId: message.sagaId, error }, 'message dead-lettered');
      await consumers.get(consumer)?.deadLetter(message, consumer, error);
    },
    onError: (consumer, message, err, delivery) =>
      log.warn({ consumer, messageId: message.id, type: message.type, sagaId: message.sagaId, delivery, err }, 'delivery failed; will retry'),
  });
  const saga = checkoutSaga({ ...defaultCheckoutPolicy, stepTimeoutMs: config.sagaStepTimeoutMs });
  const wired = await wire(bus, config, log, [
    ['orders', orderDecider(saga), stores.orders],
    ['stock', stockDecider, stores.stock],
    ['payment', paymentDecider, stores.payment],
  ]);
  const [orders, stock, payment] = wired.services as [ServiceRuntime, ServiceRuntime, ServiceRuntime];
  const outcomes = new SagaOutcomes(OrderEvents);
  orders.onCommitted((messages) => outcomes.observe(messages));
  const app = buildApp({ orders, stock, payment, outcomes, checkoutWaitMs: config.checkoutWaitMs, log });
  const recovered = await wired.start();
  // Inbox marks only need to outlive redelivery, which here is bounded by the outbox.
  const pruning = setInterval(() => {
    for (const store of Object.values(stores)) {
      store.pruneInbox(INBOX_RETENTION_MS).catch((err: unknown) => log.warn({ err, service: store.service }, 'inbox pruning failed'));
    }
  }, 60_000);
  pruning.unref();

  return {
    app,
    services: { orders, stock, payment },
    recovered,
    async close() {
      clearInterval(pruning);
      await app.close();
      await wired.stop();
      await bus.close();
      for (const store of Object.values(stores)) await store.close();
      for (const db of databases) await db.close();
      unlock();
    },
  };
}

/** Connects services to the bus, each with its own relay; `start` replays what the outboxes hold. */
async function wire(bus: Bus, config: Config, log: Logger, defs: readonly (readonly [string, Decider, Store])[]) {
  const now = () => Date.now();
  const relays: Relay[] = [];
  const services: ServiceRuntime[] = [];
  for (const [name, decider, store] of defs) {
    const relay = new Relay(store, bus, { chunk: 1, tickMs: 50, now, log });
    const service = new ServiceRuntime(name, decider, store, relay, { maxBatch: config.maxBatch, now, log: log.child({ service: name }) });
    await bus.subscribe(name, decider.consumes, (message) => service.consume(message));
    relays.push(relay);
    services.push(service);
  }
  return {
    services,
    async start() {
      let recovered = 0;
      for (const relay of relays) recovered += await relay.start();
      return recovered;
    },
    async stop() {
      for (const relay of relays) await relay.stop();
    },
  };
}
