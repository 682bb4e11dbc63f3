import type { FastifyInstance } from 'fastify';
import type { Config } from '../config.ts';
import { reacting, reactions } from '../core/choreography.ts';
import type { ApiCommand, Decider } from '../core/decider.ts';
import type { Message } from '../core/message.ts';
import { sagaGraph } from '../core/sagaGraph.ts';
import { orderApi, orderSagas, type Lookups } from '../domain/order/api.ts';
import { choreographedOrders } from '../domain/order/choreography.ts';
import { orchestratedOrders } from '../domain/order/orchestration.ts';
import { checkoutParticipant, checkoutSagasOf } from '../domain/order/checkoutSaga.ts';
import { FulfillmentEvents } from '../domain/fulfillment/fulfillment.ts';
import { checkoutOutcomes } from '../domain/order/checkoutOutcomes.ts';
import { lifecycleApi } from '../domain/order/lifecycleApi.ts';
import { fulfillmentApi } from '../domain/fulfillment/api.ts';
import { fulfillmentDecider } from '../domain/fulfillment/businessLogic.ts';
import type { FulfillmentApiCommand } from '../domain/fulfillment/fulfillment.ts';
import { notificationApi } from '../domain/notification/api.ts';
import { notificationDecider } from '../domain/notification/businessLogic.ts';
import type { NotificationApiCommand } from '../domain/notification/notification.ts';
import { checkoutContextCheck, ORDER_PREFIX, OrderEvents, type Order, type OrderApiCommand } from '../domain/order/order.ts';
import type { PaymentApiCommand } from '../domain/payment/payment.ts';
import type { StockApiCommand } from '../domain/stock/stock.ts';
import { sagaProgress } from '../core/sagaProgress.ts';
import { publishCommitted } from '../observability/events.ts';
import { metrics, observeSaga, watchOutbox } from '../observability/metrics.ts';
import type { Change } from '../runtime/serviceRuntime.ts';
import { paymentApi } from '../domain/payment/api.ts';
import { paymentDecider } from '../domain/payment/businessLogic.ts';
import { stockApi } from '../domain/stock/api.ts';
import { stockDecider } from '../domain/stock/businessLogic.ts';
import { sagaApi } from '../domain/tracker/api.ts';
import { trackerDecider } from '../domain/tracker/businessLogic.ts';
import { trackedSagas } from '../domain/tracker/tracker.ts';
import type { Bus } from '../ports/bus.ts';
import type { Store } from '../ports/store.ts';
import { sagaCallRoute } from '../http/sagaCalls.ts';
import { audits, type Audit } from '../domain/audit.ts';
import type { Logger } from '../ports/log.ts';
import { nodeTimers, Relay, type Timers } from '../runtime/relay.ts';
import { ServiceRuntime } from '../runtime/serviceRuntime.ts';
import { servicesOf, type ServiceName } from './serviceNames.ts';

export { isServiceName, SERVICES, servicesOf, type ServiceName } from './serviceNames.ts';

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
  /** The clock, timers and ids of the simulator (src/sim); absent, Node's. */
  engine?: Engine;
}>;

/** Where the engine reads time, sets timers and makes command ids: the simulator's are virtual and seeded. */
export type Engine = Readonly<{ now: () => number; timers: Timers; newId: () => string; gather: () => Promise<void>; tickMs: number }>;

/** One service, wired: its decider on its store, consuming from and publishing to the bus. */
export function runService(name: ServiceName, store: Store, bus: Bus, options: ServiceOptions): RunningService {
  const { config, log } = options;
  const deciders = decidersOf(config);
  // In the synchronous style the participants are called (over HTTP when they have a token), not subscribed.
  const called = config.sagaStyle === 'synchronous' && isParticipant(name);
  const token = called ? config.internalToken : undefined;
  const wire = <C extends ApiCommand>(decider: Decider<Message, C>, routes: (app: FastifyInstance, runtime: ServiceRuntime<Message, C>) => void) =>
    wired(name, decider, store, bus, options, called, routes);
  // Each runtime is typed by its service's API commands, so each route plugin is checked against its own.
  switch (name) {
    case 'stock':
      return wire(deciders.stock, (app, runtime) => {
        app.register(stockApi(runtime), { prefix: '/stock' });
        if (token !== undefined) app.register(sagaCallRoute(runtime), { prefix: '/stock' });
      });
    case 'payment':
      return wire(deciders.payment, (app, runtime) => {
        app.register(paymentApi(runtime), { prefix: '/payment' });
        if (token !== undefined) app.register(sagaCallRoute(runtime), { prefix: '/payment' });
      });
    case 'fulfillment':
      return wire(deciders.fulfillment, (app, runtime) => {
        app.register(fulfillmentApi(runtime), { prefix: '/api' });
        if (token !== undefined) app.register(sagaCallRoute(runtime), { prefix: '/fulfillment' });
      });
    case 'notification':
      return wire(deciders.notification, (app, runtime) => {
        app.register(notificationApi(runtime), { prefix: '/api' });
        if (token !== undefined) app.register(sagaCallRoute(runtime, { events: true }), { prefix: '/notification' });
      });
    case 'tracker':
      return wire(deciders.tracker, (app) => {
        app.register(sagaApi(trackedSagas(store), sagaApiOptions(config)), { prefix: '/sagas' });
      });
    case 'orders': {
      const lookups = options.lookups;
      if (!lookups) throw new Error('The order service needs lookups of stock and payment');
      return wire(deciders.orders, (app, runtime) => {
        const outcomes = checkoutOutcomes(runtime, log);
        app.register(orderApi({ orders: runtime, lookups, checkoutWaitMs: config.checkoutWaitMs, outcomes }), { prefix: '/orders' });
        app.register(lifecycleApi({ orders: runtime, lookups, checkoutWaitMs: config.checkoutWaitMs, outcomes }), { prefix: '/api' });
        // In the synchronous style, fulfillment calls the order service with its carrier scans.
        if (config.sagaStyle === 'synchronous' && config.internalToken !== undefined) {
          app.register(sagaCallRoute({ consumes: CALLED_ON_ORDERS, parse: (m) => runtime.parse(m), call: (m) => runtime.call(m) }, { events: true }), { prefix: '/orders' });
        }
        // In choreography the tracker serves the saga API; otherwise the orders hold the sagas.
        if (config.sagaStyle !== 'choreography') app.register(sagaApi(orderSagas(store), sagaApiOptions(config)), { prefix: '/sagas' });
      });
    }
  }
}

function wired<C extends ApiCommand>(
  name: ServiceName,
  decider: Decider<Message, C>,
  store: Store,
  bus: Bus,
  options: ServiceOptions,
  called: boolean,
  routes: (app: FastifyInstance, runtime: ServiceRuntime<Message, C>) => void,
): RunningService {
  const { config, log } = options;
  const { engine } = options;
  const now = engine?.now ?? (() => Date.now());
  const timers = engine?.timers ?? nodeTimers;
  const relay = new Relay(store, bus, { chunk: options.publishChunk, tickMs: engine?.tickMs ?? 50, now, log, timers });
  const seams = engine ? { newId: engine.newId, gather: engine.gather } : {};
  const runtime = new ServiceRuntime(name, decider, store, relay, { maxBatch: config.maxBatch, now, log: log.child({ service: name }), ...seams });
  runtime.onCommitted((messages) => publishCommitted(name, messages));
  // The orders follow every checkout in every style: the saga metrics come from them.
  if (name === 'orders') runtime.onCommitted((_messages, changes) => observeCheckouts(changes));
  // Series start at 0, so that rate() and increase() count their first events too.
  zeroMetrics(name, runtime.consumes);
  const unwatch = watchOutbox(name, () => relay.state());
  const stops: (() => void)[] = [];

  return {
    name,
    runtime,
    routes: (app) => routes(app, runtime),
    audit: () => audits[name](store),
    subscribe: async () => {
      if (!called) {
        // In the synchronous style the order service is called with others' events, and subscribes to the rest.
        const types = config.sagaStyle === 'synchronous' ? runtime.consumes.filter((t) => !CALLED_ON_ORDERS.includes(t)) : runtime.consumes;
        await bus.subscribe(name, types, (message) => runtime.consume(message).catch((error: unknown) => {
          metrics.failedDeliveries.inc({ service: name, type: message.type });
          throw error;
        }));
      }
    },
    async start() {
      const recovered = await relay.start();
      if (options.sweepMs > 0) {
        stops.push(timers.every(options.sweepMs, () => {
          relay.sweep(options.sweepMs).then(
            (n) => n > 0 && log.info({ service: name, messages: n }, 'relay: sent what another run left in the outbox'),
            (err: unknown) => log.warn({ err, service: name }, 'relay: outbox sweep failed'),
          );
        }));
      }
      stops.push(timers.every(60_000, () => {
        // Inbox marks must outlive any redelivery; an hour is far beyond the buses' retry windows.
        store.pruneInbox(60 * 60 * 1000).catch((err: unknown) => log.warn({ err, service: name }, 'inbox pruning failed'));
      }));
      return recovered;
    },
    async stop() {
      unwatch();
      for (const stop of stops) stop();
      await relay.stop();
    },
  };
}

/** Makes the bus keep every service's messages, whether or not that service runs yet. */
export async function declareTopology(bus: Bus, config: Config): Promise<void> {
  const deciders = decidersOf(config);
  for (const name of servicesOf(config.sagaStyle)) await bus.declare(name, deciders[name].consumes);
}

/**
 * The services a synchronous deployment calls with everything they consume: the checkout's
 * participants, and notification, which hears the order's and fulfillment's events.
 */
const CALLED = ['stock', 'payment', 'fulfillment', 'notification'] as const satisfies readonly ServiceName[];
const isParticipant = (name: ServiceName): name is (typeof CALLED)[number] => (CALLED as readonly string[]).includes(name);
/** What the order service is called with in the synchronous style: the events of others (its replies and timers stay local). */
const CALLED_ON_ORDERS: readonly string[] = [FulfillmentEvents.scanned];

/** The message types a synchronous deployment calls services with, and whom it calls with each. */
export function calledCommands(config: Config): ReadonlyMap<string, readonly ServiceName[]> {
  const owners = new Map<string, ServiceName[]>();
  const deciders = decidersOf(config);
  const add = (type: string, name: ServiceName) => owners.set(type, [...(owners.get(type) ?? []), name]);
  for (const name of CALLED) for (const type of deciders[name].consumes) add(type, name);
  for (const type of CALLED_ON_ORDERS) add(type, 'orders');
  return owners;
}

function zeroMetrics(service: ServiceName, consumes: readonly string[]): void {
  if (service === 'orders') {
    for (const counter of [metrics.sagaStarted, metrics.sagaCompleted, metrics.sagaFailed, metrics.sagaCompensationTriggered]) counter.inc({ saga: 'checkout' }, 0);
  }
  for (const type of consumes) {
    for (const counter of [metrics.consumed, metrics.failedDeliveries, metrics.deadLettered]) counter.inc({ service, type }, 0);
  }
  metrics.duplicates.inc({ service }, 0);
  metrics.conflicts.inc({ service }, 0);
}

/** What each commit of the order service did to the checkouts it changed. */
function observeCheckouts(changes: readonly Change[]): void {
  for (const { key, before, after } of changes) {
    if (!key.startsWith(ORDER_PREFIX)) continue;
    observeSaga('checkout', sagaProgress((before as Order | undefined)?.checkout, (after as Order | null)?.checkout));
  }
}

const sagaApiOptions = (config: Config) => ({
  // The current definition first, then the older ones sagas may still run under.
  graphs: checkoutVersionsOf(config).all.map(sagaGraph).sort((a) => (a.version === config.checkoutVersion ? -1 : 1)),
  stuckAfterMs: 3 * config.sagaStepTimeoutMs,
});

/** Each service's decider, typed by the commands of its API. */
type Deciders = Readonly<{
  orders: Decider<Message, OrderApiCommand>;
  stock: Decider<Message, StockApiCommand>;
  payment: Decider<Message, PaymentApiCommand>;
  fulfillment: Decider<Message, FulfillmentApiCommand>;
  notification: Decider<Message, NotificationApiCommand>;
  tracker: Decider<Message, never>;
}>;

/** The checkout's definitions this deployment knows, and the one new checkouts start under. */
export const checkoutVersionsOf = (config: Config) => checkoutSagasOf(config.sagaStyle, config.sagaStepTimeoutMs, config.checkoutVersion);

/**
 * Each service's decider in each style. The domain deciders are the same in every style:
 * choreography wraps the participants' so they react to events instead of commands.
 */
function decidersOf(config: Config): Deciders {
  const style = config.sagaStyle;
  const versions = checkoutVersionsOf(config);
  // Each participant reacts to a saga's events as the version the saga runs under says.
  const reactionsOf = (participant: string) => new Map(versions.all.map((def) => [
    def.version,
    reactions(def, OrderEvents.requested, checkoutParticipant, OrderEvents.aborted).filter((r) => r.participant === participant),
  ]));
  const choreography = style === 'choreography';
  const react = <M extends Message, C extends ApiCommand>(decider: Decider<M, C>, participant: string): Decider<Message, C> =>
    (choreography ? reacting(decider, reactionsOf(participant), checkoutContextCheck) : decider) as Decider<Message, C>;
  const options = { reservationTtlMs: config.reservationTtlMs };
  return {
    orders: choreography ? choreographedOrders(versions, options) : orchestratedOrders(versions, options),
    stock: react(stockDecider, 'stock'),
    payment: react(paymentDecider(config.fraud), 'payment'),
    fulfillment: react(fulfillmentDecider, 'fulfillment'),
    notification: notificationDecider as Decider<Message, NotificationApiCommand>,
    tracker: trackerDecider(versions, OrderEvents.requested, OrderEvents.aborted),
  };
}
