import type { FastifyInstance } from 'fastify';
import type { Config } from '../config.ts';
import type { Decider } from '../core/decider.ts';
import { endedCheckouts, orderApi, type Lookups } from '../domain/order/api.ts';
import { orderDecider } from '../domain/order/businessLogic.ts';
import { checkoutSaga, defaultCheckoutPolicy } from '../domain/order/checkoutSaga.ts';
import { OrderEvents } from '../domain/order/order.ts';
import { paymentApi } from '../domain/payment/api.ts';
import { paymentDecider } from '../domain/payment/businessLogic.ts';
import { stockApi } from '../domain/stock/api.ts';
import { stockDecider } from '../domain/stock/businessLogic.ts';
import type { Bus } from '../ports/bus.ts';
import type { Store } from '../ports/store.ts';
import { audits, type Audit } from './audit.ts';
import type { Logger } from './log.ts';
import { SagaOutcomes } from './outcomes.ts';
import { Relay } from './relay.ts';
import { ServiceRuntime } from './service.ts';

export const SERVICES = ['orders', 'stock', 'payment'] as const;
export type ServiceName = (typeof SERVICES)[number];

export function isServiceName(name: string): name is ServiceName {
  return (SERVICES as readonly string[]).includes(name);
}

export type RunningService = Readonly<{
  name: ServiceName;
  runtime: ServiceRuntime;
  /** Registers the service's HTTP API. */
  routes(app: FastifyInstance): void;
  audit(): Promise<Partial<Audit>>;
  /** Starts consuming; every service of a process subscribes before any of them starts. */
  subscribe(): Promise<void>;
  /** Loads the outbox left by earlier runs and sends it; resolves with how many messages that was. */
  start(): Promise<number>;
  stop(): Promise<void>;
}>;

export type ServiceOptions = Readonly<{
  config: Config;
  log: Logger;
  /** Messages per publish call: 1 on the in-process bus (exact deletes), more on a broker. */
  publishChunk: number;
  /** Sweep the outbox for what dead replicas left, every this many ms (0: never). */
  sweepMs: number;
  /** For the order service: how to ask stock and payment. */
  lookups?: Lookups;
}>;

/** One service, wired: its decider on its store, consuming from and publishing to the bus. */
export function runService(name: ServiceName, store: Store, bus: Bus, options: ServiceOptions): RunningService {
  const { config, log } = options;
  const now = () => Date.now();
  const relay = new Relay(store, bus, { chunk: options.publishChunk, tickMs: 50, now, log });
  const runtime = new ServiceRuntime(name, deciderOf(name, config), store, relay, { maxBatch: config.maxBatch, now, log: log.child({ service: name }) });
  const outcomes = new SagaOutcomes(OrderEvents);
  runtime.onCommitted((messages) => outcomes.observe(messages));
  const timers: NodeJS.Timeout[] = [];
  let stopPolling = () => {};

  return {
    name,
    runtime,
    routes(app) {
      switch (name) {
        case 'stock':
          app.register(stockApi(runtime), { prefix: '/stock' });
          return;
        case 'payment':
          app.register(paymentApi(runtime), { prefix: '/payment' });
          return;
        case 'orders': {
          if (!options.lookups) throw new Error('The order service needs lookups of stock and payment');
          app.register(orderApi({ orders: runtime, lookups: options.lookups, outcomes, checkoutWaitMs: config.checkoutWaitMs }), { prefix: '/orders' });
          return;
        }
      }
    },
    audit: () => audits[name](store),
    subscribe: () => bus.subscribe(name, runtime.consumes, (message) => runtime.consume(message)),
    async start() {
      const recovered = await relay.start();
      if (name === 'orders') {
        // Another replica may commit the end of a checkout this one has a request waiting for.
        stopPolling = outcomes.poll((ids) => endedCheckouts(runtime, ids), 10, (err) => log.warn({ err }, 'polling checkout outcomes failed'));
      }
      if (options.sweepMs > 0) {
        const sweep = setInterval(() => {
          relay.sweep(options.sweepMs).then(
            (n) => n > 0 && log.info({ service: name, messages: n }, 'relay: sent what another run left in the outbox'),
            (err: unknown) => log.warn({ err, service: name }, 'relay: outbox sweep failed'),
          );
        }, options.sweepMs);
        sweep.unref();
        timers.push(sweep);
      }
      const pruning = setInterval(() => {
        // Inbox marks must outlive any redelivery; an hour is far beyond the buses' retry windows.
        store.pruneInbox(60 * 60 * 1000).catch((err: unknown) => log.warn({ err, service: name }, 'inbox pruning failed'));
      }, 60_000);
      pruning.unref();
      timers.push(pruning);
      return recovered;
    },
    async stop() {
      stopPolling();
      for (const timer of timers) clearInterval(timer);
      await relay.stop();
    },
  };
}

/** Makes the bus keep every service's messages, whether or not that service runs yet. */
export async function declareTopology(bus: Bus, config: Config): Promise<void> {
  for (const name of SERVICES) await bus.declare(name, deciderOf(name, config).consumes);
}

function deciderOf(name: ServiceName, config: Config): Decider {
  switch (name) {
    case 'orders':
      return orderDecider(checkoutSaga({ ...defaultCheckoutPolicy, stepTimeoutMs: config.sagaStepTimeoutMs }));
    case 'stock':
      return stockDecider;
    case 'payment':
      return paymentDecider;
  }
}
