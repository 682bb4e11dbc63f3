/**
 * The process's Prometheus metrics (prom-client), served at GET /metrics by every process.
 * Names follow seed 003's saga counters with an `orderly_` prefix. Every process of a
 * deployment has its own registry; Prometheus adds them up.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { SagaProgress } from '../core/sagaProgress.ts';

export const registry = new Registry();
// The event loop's delay sampled every 100 ms, not prom-client's default 10: each sample wakes
// the process, and 100 wakeups a second cost an idle process about 3-4 ms of CPU a second here.
collectDefaultMetrics({ register: registry, eventLoopMonitoringPrecision: 100 });

const registers = [registry];
/** Seconds, from a millisecond to a minute: saga steps and whole sagas. */
const SAGA_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];
/** Seconds, from a tenth of a millisecond to five seconds: store transactions and HTTP requests. */
const FAST_BUCKETS = [0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];

export const metrics = {
  sagaStarted: new Counter({ name: 'orderly_saga_started_total', help: 'Sagas started', labelNames: ['saga'], registers }),
  sagaCompleted: new Counter({ name: 'orderly_saga_completed_total', help: 'Sagas that completed', labelNames: ['saga'], registers }),
  sagaFailed: new Counter({ name: 'orderly_saga_failed_total', help: 'Sagas that failed (after compensating what they did)', labelNames: ['saga'], registers }),
  sagaCompensationTriggered: new Counter({ name: 'orderly_saga_compensation_triggered_total', help: 'Sagas that began to compensate', labelNames: ['saga'], registers }),
  sagaDuration: new Histogram({ name: 'orderly_saga_duration_seconds', help: 'Time from a saga\'s start to its end', labelNames: ['saga', 'outcome'], buckets: SAGA_BUCKETS, registers }),
  stepDuration: new Histogram({ name: 'orderly_saga_step_duration_seconds', help: 'Time from sending a step\'s command to its outcome', labelNames: ['saga', 'step', 'outcome'], buckets: SAGA_BUCKETS, registers }),
  consumed: new Counter({ name: 'orderly_messages_consumed_total', help: 'Messages consumed and committed', labelNames: ['service', 'type'], registers }),
  published: new Counter({ name: 'orderly_messages_published_total', help: 'Messages the outbox relay handed to the bus', labelNames: ['service', 'type'], registers }),
  failedDeliveries: new Counter({ name: 'orderly_messages_redelivered_total', help: 'Deliveries whose handler failed (the bus delivers them again, or dead-letters them after its last try)', labelNames: ['service', 'type'], registers }),
  deadLettered: new Counter({ name: 'orderly_messages_dead_lettered_total', help: 'Messages kept aside as dead letters', labelNames: ['service', 'type'], registers }),
  deadLettersRedriven: new Counter({ name: 'orderly_dead_letters_redriven_total', help: 'Dead-lettered messages handed back to their consumer by an operator', labelNames: ['service', 'type'], registers }),
  deadLettersDiscarded: new Counter({ name: 'orderly_dead_letters_discarded_total', help: 'Dead-lettered messages discarded by an operator', labelNames: ['service', 'type'], registers }),
  duplicates: new Counter({ name: 'orderly_inbox_duplicates_total', help: 'Messages dropped because the inbox had them already', labelNames: ['service'], registers }),
  transaction: new Histogram({ name: 'orderly_store_transaction_seconds', help: 'Store transactions of the service runtime (read, decide, commit), retries included', labelNames: ['service'], buckets: FAST_BUCKETS, registers }),
  conflicts: new Counter({ name: 'orderly_store_conflict_retries_total', help: 'Store transactions run again because another writer changed what they read', labelNames: ['service'], registers }),
  httpRequests: new Counter({ name: 'orderly_http_requests_total', help: 'HTTP requests answered', labelNames: ['method', 'route', 'status'], registers }),
  httpDuration: new Histogram({ name: 'orderly_http_request_duration_seconds', help: 'Time to answer an HTTP request', labelNames: ['method', 'route'], buckets: FAST_BUCKETS, registers }),
};

/** What the outbox of one service holds, as its relay knows it. */
export type OutboxState = Readonly<{ due: number; delayed: number; oldestDueAt: number | undefined }>;
const outboxes = new Map<string, () => OutboxState>();

new Gauge({
  name: 'orderly_outbox_messages', help: 'Messages in the outbox not yet on the bus: due now, or delayed (timers)', labelNames: ['service', 'state'], registers,
  collect() {
    this.reset();
    for (const [service, state] of outboxes) {
      const now = state();
      this.set({ service, state: 'due' }, now.due);
      this.set({ service, state: 'delayed' }, now.delayed);
    }
  },
});
new Gauge({
  name: 'orderly_outbox_oldest_age_seconds', help: 'Age of the oldest outbox message due and not yet on the bus (0 when none)', labelNames: ['service'], registers,
  collect() {
    this.reset();
    const at = Date.now();
    for (const [service, state] of outboxes) {
      const oldest = state().oldestDueAt;
      this.set({ service }, oldest === undefined ? 0 : Math.max(0, at - oldest) / 1000);
    }
  },
});

/** Reports a service's outbox through `state` until the returned function is called. */
export function watchOutbox(service: string, state: () => OutboxState): () => void {
  outboxes.set(service, state);
  return () => {
    if (outboxes.get(service) === state) outboxes.delete(service);
  };
}

/** Counts what one commit did to a saga. */
export function observeSaga(saga: string, progress: readonly SagaProgress[]): void {
  for (const p of progress) {
    switch (p.kind) {
      case 'started':
        metrics.sagaStarted.inc({ saga });
        break;
      case 'compensating':
        metrics.sagaCompensationTriggered.inc({ saga });
        break;
      case 'ended':
        (p.status === 'completed' ? metrics.sagaCompleted : metrics.sagaFailed).inc({ saga });
        metrics.sagaDuration.observe({ saga, outcome: p.status }, p.durationMs / 1000);
        break;
      case 'step':
        metrics.stepDuration.observe({ saga, step: p.step, outcome: p.outcome }, p.durationMs / 1000);
        break;
      default:
        p satisfies never;
    }
  }
}

/** Counts `count` messages of `type` (undefined: bytes that were no messages) that `service` dead-lettered. */
export function countDeadLetters(service: string, type: string | undefined, count = 1): void {
  metrics.deadLettered.inc({ service, type: type ?? 'undecodable' }, count);
}
