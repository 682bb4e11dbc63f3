import type { SagaStyle } from '../config.ts';
import { SERVICES, type ServiceName } from '../wiring/serviceWiring.ts';
import { Random } from './random.ts';

/**
 * What one seed simulates, drawn from the seed before anything else. Like VOPR's swarm
 * testing, every seed draws its own fault rates (each fault off half the time), so that rare
 * combinations (many crashes and no duplicates, only conflicts, ...) are each reached.
 */
export type Params = Readonly<{
  style: SagaStyle;
  /** The checkout version new checkouts start under; `upgrade`: the orders restart under version 2 part-way. */
  version: 1 | 2;
  upgrade: boolean;
  items: number;
  stockPerItem: number;
  users: number;
  creditPerUser: number;
  maxPrice: number;
  orders: number;
  /** Orders arrive over this long (virtual ms); faults stop after `faultsFor`. */
  arrivals: number;
  faultsFor: number;
  fraud: Readonly<{ maxAmount: number; maxPerWindow: number; windowMs: number }>;
  stepTimeoutMs: number;
  reservationTtlMs: number;
  checkoutWaitMs: number;
  maxBatch: number;
  publishChunk: number;
  tickMs: number;
  sweepMs: number;
  // The customers
  cancel: number;
  recheckout: number;
  idempotencyKeys: number;
  scans: number;
  // The world's faults: message delays (ms) and per-event chances
  maxDelay: number;
  gatherMs: number;
  duplicate: number;
  publishFail: number;
  confirmLost: number;
  ackLost: number;
  crashBeforeCommit: number;
  crashAfterCommit: number;
  crashInPublish: number;
  crashRandom: number;
  restartMs: number;
  conflict: number;
  storeError: number;
  maxDeliveries: number;
  redriveMs: number;
  // Partitions (orchestration and choreography; off part of the time): replicas share the work by partition
  /** Partitions of every consumer's messages; 0: none, and one replica of each service, as before partitions. */
  partitions: number;
  replicas: Readonly<Record<ServiceName, number>>;
  /** How long a replica's partition leases outlive its last renewal (renewed every third of it). */
  leaseMs: number;
  /** Per chaos round (every 100–400 ms): a replica hangs (for longer than its lease, up to `hangMs`), or leaves and joins again later. */
  hang: number;
  hangMs: number;
  leave: number;
}>;

/**
 * Draws a seed's world. The partitions are drawn from a second generator of the same seed, so
 * that a seed without them draws and runs exactly as it did before partitions existed.
 */
export function drawParams(rng: Random, seed: number): Params {
  const world = drawWorld(rng);
  return { ...world, ...drawPartitions(new Random(~seed >>> 0), world.style) };
}

type Partitioning = Pick<Params, 'partitions' | 'replicas' | 'leaseMs' | 'hang' | 'hangMs' | 'leave'>;

function drawPartitions(rng: Random, style: SagaStyle): Partitioning {
  const one = Object.fromEntries(SERVICES.map((s) => [s, 1])) as Record<ServiceName, number>;
  if (style === 'synchronous' || rng.chance(0.4)) return { partitions: 0, replicas: one, leaseMs: 0, hang: 0, hangMs: 0, leave: 0 };
  const leaseMs = rng.int(300, 3_000);
  return {
    partitions: rng.int(1, 16),
    replicas: Object.fromEntries(SERVICES.map((s) => [s, rng.int(1, 3)])) as Record<ServiceName, number>,
    leaseMs, hang: rng.rate(0.2), hangMs: Math.round(leaseMs * (1.5 + 3 * rng.next())), leave: rng.rate(0.1),
  };
}

function drawWorld(rng: Random): Omit<Params, keyof Partitioning> {
  const style = rng.pick(['orchestration', 'choreography', 'synchronous'] as const);
  const version = rng.pick([1, 2] as const);
  const users = rng.int(1, 8);
  const items = rng.int(1, 8);
  const orders = rng.int(10, 100);
  const arrivals = rng.int(100, 20_000);
  const stepTimeoutMs = rng.int(50, 3_000);
  return {
    style, version, upgrade: version === 1 && rng.chance(0.3),
    items, stockPerItem: rng.int(0, 30), users, creditPerUser: rng.int(0, 600), maxPrice: rng.int(1, 60), orders, arrivals,
    faultsFor: arrivals + rng.int(0, 10_000),
    fraud: { maxAmount: rng.chance(0.3) ? rng.int(20, 200) : 0, maxPerWindow: rng.chance(0.3) ? rng.int(1, 4) : 0, windowMs: rng.int(100, 10_000) },
    stepTimeoutMs,
    reservationTtlMs: rng.chance(0.4) ? rng.int(50, 6 * stepTimeoutMs) : 0,
    checkoutWaitMs: rng.int(10, 8_000),
    maxBatch: rng.pick([1, 2, 8, 64, 256]),
    publishChunk: rng.pick([1, 1, 3, 16]),
    tickMs: rng.int(20, 500),
    sweepMs: rng.chance(0.3) ? rng.int(200, 5_000) : 0,
    cancel: rng.rate(0.6),
    recheckout: rng.rate(0.8),
    idempotencyKeys: rng.next(),
    scans: rng.rate(1),
    maxDelay: rng.chance(0.2) ? 0 : rng.int(1, rng.chance(0.2) ? 2_000 : 100),
    gatherMs: rng.int(0, 3),
    duplicate: rng.rate(0.3),
    publishFail: rng.rate(0.2),
    confirmLost: rng.rate(0.2),
    ackLost: rng.rate(0.2),
    crashBeforeCommit: rng.rate(0.03),
    crashAfterCommit: rng.rate(0.03),
    crashInPublish: rng.rate(0.03),
    crashRandom: rng.rate(0.002),
    restartMs: rng.int(1, 3_000),
    conflict: rng.rate(0.5),
    storeError: rng.rate(0.1),
    maxDeliveries: rng.int(1, 10),
    redriveMs: rng.int(100, 10_000),
  };
}

/** One line that says what a seed simulates. */
export function describe(p: Params): string {
  const faults = (['duplicate', 'publishFail', 'confirmLost', 'ackLost', 'crashBeforeCommit', 'crashAfterCommit', 'crashInPublish', 'crashRandom', 'conflict', 'storeError'] as const)
    .filter((k) => p[k] > 0).map((k) => `${k}=${p[k].toFixed(3)}`).join(' ');
  const partitions = p.partitions === 0 ? '' : `; ${p.partitions} partitions, replicas ${Object.values(p.replicas).join('/')}, lease ${p.leaseMs} ms` +
    `${p.hang > 0 ? `, hang=${p.hang.toFixed(3)} ≤ ${p.hangMs} ms` : ''}${p.leave > 0 ? `, leave=${p.leave.toFixed(3)}` : ''}`;
  return `${p.style} v${p.version}${p.upgrade ? '→2' : ''} ${p.orders} orders, ${p.users} users × ${p.creditPerUser}, ${p.items} items × ${p.stockPerItem}; ` +
    `step ${p.stepTimeoutMs} ms, ttl ${p.reservationTtlMs} ms, delay ≤ ${p.maxDelay} ms, deliveries ${p.maxDeliveries}; ${faults || 'no faults'}${partitions}`;
}
