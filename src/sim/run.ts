import { loadConfig, type Config } from '../config.ts';
import type { ApiCommand, Reply } from '../core/decider.ts';
import type { CommandOptions } from '../ports/service.ts';
import type { ServiceName } from '../wiring/serviceWiring.ts';
import { SCANS, type Scan } from '../domain/fulfillment/fulfillment.ts';
import type { CheckoutAnswer } from '../domain/order/businessLogic.ts';
import { checkoutSagasOf } from '../domain/order/checkoutSaga.ts';
import { OrderEvents, orderKey, type Order, type PricedLine } from '../domain/order/order.ts';
import type { Hold } from '../domain/payment/payment.ts';
import type { Reservation } from '../domain/stock/stock.ts';
import { Invariants } from './checks.ts';
import { finalChecks, type ClientAnswer } from './final.ts';
import { SimBroker } from './bus.ts';
import { describe, drawParams, type Params } from './params.ts';
import { SimSystem } from './system.ts';
import { World } from './world.ts';

export type SeedResult = Readonly<{
  seed: number;
  params: Params;
  violations: readonly string[];
  /** Checkout attempts started (sagas). */
  checkouts: number;
  /** Messages committed by a replica after their partition had moved to another (the hand-over overlaps). */
  lateCommits: number;
  steps: number;
  virtualMs: number;
  trace: Readonly<{ hash: string; lines: number; recent: readonly string[] }>;
}>;

/** Simulates one seed from start to end and checks it; the same seed gives the same result and trace. */
export async function simulate(seed: number): Promise<SeedResult> {
  const world = new World(seed);
  const p = drawParams(world.rng, seed);
  const base = loadConfig({});
  const configOf = (version: 1 | 2): Config => Object.freeze({
    ...base, sagaStyle: p.style, checkoutVersion: version, sagaStepTimeoutMs: p.stepTimeoutMs, maxBatch: p.maxBatch,
    reservationTtlMs: p.reservationTtlMs, checkoutWaitMs: p.checkoutWaitMs, fraud: p.fraud,
  });
  const invariants = new Invariants(checkoutSagasOf(p.style, p.stepTimeoutMs).all);
  const system = new SimSystem(world, p, configOf(p.version), (service, changes, outbox, again, consumed, by) => {
    invariants.onCommit(service, changes, outbox, again);
    const wrong = broker?.consumedBy(by, consumed);
    if (wrong) invariants.fail(wrong);
  }, (bug) => invariants.fail(bug));
  const broker = system.transport instanceof SimBroker ? system.transport : undefined;
  const rng = world.rng;
  const answers: ClientAnswer[] = [];
  const outcomes = new Map<string, 'completed' | 'failed'>();
  const waiting = new Map<string, (outcome: 'completed' | 'failed') => void>();
  let clientsDone = 0;
  let checkouts = 0;
  const patience = 500 + 4 * p.maxDelay;

  system.onCommitted((service, messages) => {
    if (service !== 'orders') return;
    for (const m of messages) {
      const outcome = m.type === OrderEvents.confirmed ? 'completed' : m.type === OrderEvents.failed || m.type === OrderEvents.cancelled ? 'failed' : undefined;
      if (!outcome || m.sagaId === '') continue;
      outcomes.set(m.sagaId, outcome);
      waiting.get(m.sagaId)?.(outcome);
    }
  });

  /** Asks until answered (a client retries what got no answer), at most `tries` times; `command` may differ per try. */
  const ask = async <C extends ApiCommand>(name: ServiceName, command: C | ((n: number) => C), options: CommandOptions, tries = 30): Promise<Reply | undefined> => {
    for (let n = 0; n < tries; n++) {
      const answer = await system.command(name, typeof command === 'function' ? command(n) : command, options, patience);
      if (answer.kind === 'reply') return answer.reply;
      await world.sleep(rng.int(1, 200));
    }
    return undefined;
  };

  // The shop: items with stock, users with credit, made before any fault.
  world.faults = false;
  const prices = Array.from({ length: p.items }, () => rng.int(1, p.maxPrice));
  const setup = (async () => {
    await system.declare();
    for (const name of system.names) await system.startAll(name);
    for (const [i, price] of prices.entries()) {
      await ask('stock', { type: 'CreateItem', itemId: `i${i}`, price }, {});
      if (p.stockPerItem > 0) await ask('stock', { type: 'AddStock', itemId: `i${i}`, amount: p.stockPerItem }, {});
    }
    for (let u = 0; u < p.users; u++) {
      await ask('payment', { type: 'CreateUser', userId: `u${u}` }, {});
      if (p.creditPerUser > 0) await ask('payment', { type: 'AddFunds', userId: `u${u}`, amount: p.creditPerUser }, {});
    }
  })();
  let ready = false;
  void setup.then(() => {
    ready = true;
  });
  await world.run(world.now + 600_000, () => ready || invariants.violations.length > 0, () => undefined);
  if (!ready) invariants.fail('the shop could not be set up');
  invariants.baseline(system.stores.get('payment')?.scan('user:', 1e9) ?? [], system.stores.get('stock')?.scan('item:', 1e9) ?? []);
  const start = world.now;
  world.faults = true;

  const waitOutcome = (sagaId: string, ms: number): Promise<'completed' | 'failed' | 'pending'> => {
    const known = outcomes.get(sagaId);
    if (known) return Promise.resolve(known);
    return new Promise((resolve) => {
      waiting.set(sagaId, (o) => {
        waiting.delete(sagaId);
        resolve(o);
      });
      world.after(ms, () => {
        if (waiting.delete(sagaId)) resolve('pending');
      });
    });
  };

  const customer = async (k: number) => {
    const userId = `u${rng.int(0, p.users - 1)}`;
    const items: PricedLine[] = Array.from({ length: rng.int(1, 3) }, () => {
      const i = rng.int(0, p.items - 1);
      return { itemId: `i${i}`, quantity: rng.int(1, 3), price: prices[i] ?? 1 };
    });
    // Each try creates a new order, as the route does (it makes the id): a try that a replica
    // runs after the customer has moved on must not replace the order the customer got.
    const created = await ask('orders', (n) => ({ type: 'CreateOrder', orderId: n === 0 ? `o${k}` : `o${k}~${n}`, userId, items }), { correlationId: `o${k}` });
    if (!created?.ok) return;
    const orderId = (created.value as { order_id: string }).order_id;
    let cancelled = false;
    const cancel = async () => {
      if (cancelled) return;
      cancelled = true;
      world.note(`customer cancels ${orderId}`);
      await ask('orders', { type: 'Cancel', orderId, reason: 'changed my mind' }, { correlationId: orderId }, 10);
    };
    if (rng.chance(p.cancel)) world.after(rng.int(0, 4 * p.stepTimeoutMs + p.checkoutWaitMs), () => void cancel());
    for (let attempt = 1; attempt <= 3; attempt++) {
      const idempotency = rng.chance(p.idempotencyKeys) ? { key: `${orderId}-${attempt}`, request: `POST /orders/checkout/${orderId}` } : undefined;
      let answer: Reply | undefined;
      for (let n = 0; n < 20 && !answer; n++) {
        const sagaId = `${orderId}.${attempt}-${n}`;
        const asked = await system.command('orders', { type: 'Checkout', orderId, sagaId }, { correlationId: orderId, idempotency }, patience);
        if (asked.kind === 'reply') answer = asked.reply;
        else await world.sleep(rng.int(1, 200));
      }
      if (!answer) break;
      if (!answer.ok) {
        answers.push({ orderId, status: 409, detail: answer.code });
        break;
      }
      const value = answer.value as CheckoutAnswer;
      if (value.paid) {
        answers.push({ orderId, status: 200, detail: 'paid already' });
        break;
      }
      checkouts++;
      const outcome = await waitOutcome(value.sagaId, p.checkoutWaitMs);
      if (outcome === 'completed') {
        // 2xx: the money and the stock are taken now.
        const hold = system.stores.get('payment')?.docs.get(`hold:${value.sagaId}`) as Hold | undefined;
        const reservation = system.stores.get('stock')?.docs.get(`reservation:${value.sagaId}`) as Reservation | undefined;
        if (hold?.status !== 'captured' || reservation?.status !== 'committed') {
          invariants.fail(`checkout ${value.sagaId} answered 2xx with payment ${hold?.status ?? 'none'} and stock ${reservation?.status ?? 'none'}`);
        }
      }
      answers.push({ orderId, sagaId: value.sagaId, status: outcome === 'completed' ? 200 : outcome === 'failed' ? 409 : 504, detail: outcome });
      world.note(`client: checkout ${value.sagaId} answered ${outcome}`);
      if (outcome === 'completed') {
        if (rng.chance(p.scans)) await scan(value.sagaId, orderId);
        break;
      }
      if (outcome === 'pending' || !rng.chance(p.recheckout)) break;
      await world.sleep(rng.int(0, 500));
    }
  };

  const scan = async (_sagaId: string, orderId: string) => {
    await world.sleep(rng.int(0, 2 * p.stepTimeoutMs));
    const order = system.stores.get('orders')?.docs.get(orderKey(orderId)) as Order | undefined;
    const tracking = order?.shipment?.trackingNumber;
    if (!tracking) return;
    const scans: Scan[] = SCANS.filter(() => rng.chance(0.7));
    for (const s of rng.chance(0.2) ? scans.reverse() : scans) {
      await world.sleep(rng.int(0, 300));
      await ask('fulfillment', { type: 'RecordScan', trackingNumber: tracking, scan: s }, {}, 10);
    }
  };

  for (let k = 0; k < p.orders; k++) {
    world.after(rng.int(0, p.arrivals), () => void customer(k).finally(() => clientsDone++));
  }
  // Chaos: a process dies at any moment, not only at the points the stores and buses choose.
  const chaos = () => {
    if (!world.faults) return;
    if (rng.chance(p.crashRandom * 250)) system.crash(rng.pick(system.names), 'at a random moment');
    world.after(rng.int(100, 400), chaos);
  };
  if (p.crashRandom > 0) world.after(0, chaos);
  // Partitions move: a replica hangs for longer than its lease, or leaves and joins again later.
  const handOvers = () => {
    if (!world.faults) return;
    if (rng.chance(p.hang)) system.hang(rng.pick(system.names), rng.int(Math.round(1.2 * p.leaseMs), p.hangMs));
    if (rng.chance(p.leave)) system.leave(rng.pick(system.names), rng.int(0, 2 * p.leaseMs));
    world.after(rng.int(100, 400), handOvers);
  };
  if (p.hang + p.leave > 0) world.after(0, handOvers);
  const operator = () => {
    const n = system.transport.redriveAll();
    if (n > 0) world.note(`operator redrove ${n} dead letters`);
    world.after(world.faults ? p.redriveMs : 500, operator);
  };
  world.after(p.redriveMs, operator);
  if (p.upgrade) {
    world.after(rng.int(0, p.arrivals), () => {
      world.note('upgrade: the orders restart with checkout version 2');
      system.reconfigure(configOf(2));
      system.crashAll('orders', 'for the upgrade');
    });
  }
  world.after(p.faultsFor, () => {
    world.faults = false;
    world.note('faults stop');
    system.restartAll();
    // Once every replica is up and awake, every partition has a holder again within a few leases.
    if (broker) {
      const within = p.hangMs + 5 * p.leaseMs + 100;
      world.after(within, () => {
        const unowned = broker.unowned();
        if (unowned.length > 0) invariants.fail(`partitions ${unowned.slice(0, 5).join(', ')} have no live holder ${within} ms after the faults stopped`);
      });
    }
  });

  const quiet = () => {
    if (world.faults || clientsDone < p.orders || invariants.activeSagas > 0 || !system.transport.idle) return false;
    for (const store of system.stores.values()) for (const m of store.outbox.values()) if ((m.deliverAt ?? 0) <= world.now) return false;
    return system.names.every((n) => system.isUp(n)) && (broker?.unowned().length ?? 0) === 0;
  };
  // Every saga must end within this long once the faults stop: the longest backoff twice over, and the waits of the clients.
  const bound = 2 * (p.stepTimeoutMs + 30_000) + 4 * p.stepTimeoutMs + p.checkoutWaitMs + 20 * p.maxDelay + p.reservationTtlMs + 10_000 + p.hangMs + 5 * p.leaseMs;
  const ended = await world.run(start + p.faultsFor + bound, () => invariants.violations.length > 0 || quiet(), () => undefined);
  if (invariants.violations.length === 0) {
    await finalChecks({ system, invariants, answers, quiescent: ended === 'stopped', bound, clientsDone, clients: p.orders });
  }
  return { seed, params: p, violations: invariants.violations, checkouts, lateCommits: broker?.lateCommits ?? 0, steps: world.steps, virtualMs: world.now - start, trace: world.trace };
}

export { describe };
