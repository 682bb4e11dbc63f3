import type { FastifyInstance } from 'fastify';
import type { SagaState } from '../../core/saga.ts';
import { Problem } from '../../http/problems.ts';
import { count } from '../../http/validate.ts';
import type { CheckoutContext } from '../order/order.ts';
import type { SagaSource } from './tracker.ts';

type Query = Record<string, string | undefined>;
type Saga = SagaState<CheckoutContext>;


const STATUSES = ['running', 'compensating', 'completed', 'failed'] as const;

/**
 * The saga API, under /sagas: the sagas (filtered by status and start time), one saga with its
 * step history, and statistics. Lists and statistics read every saga there is: they are for
 * operators, not for hot paths.
 */
export function sagaApi(source: SagaSource) {
  return async (app: FastifyInstance) => {
    app.get<{ Querystring: Query }>('/', async (req) => {
      const filter = listFilter(req.query);
      const sagas: ReturnType<typeof summary>[] = [];
      let next: string | null = null;
      for await (const saga of source.list(filter.after)) {
        if (!saga || !matches(saga, filter)) continue;
        if (sagas.length === filter.limit) {
          next = sagas.at(-1)!.saga_id;
          break;
        }
        sagas.push(summary(saga));
      }
      return { sagas, next };
    });

    app.get('/statistics', async () => statistics(source));

    app.get<{ Params: Query }>('/:sagaId', async (req) => {
      const sagaId = req.params.sagaId ?? '';
      const found = await source.get(sagaId);
      if (!found) throw new Problem('saga-not-found', `There is no saga ${sagaId} (or its start was not seen yet). GET /sagas lists the sagas.`);
      const { saga, early } = found;
      return { ...summary(saga), context: saga.ctx, steps: saga.history.map((e) => ({ ...e, at: iso(e.at) })), early_events: early };
    });
  };
}

type Filter = Readonly<{ status?: Saga['status']; from?: number; to?: number; limit: number; after: string }>;

function listFilter(query: Query): Filter {
  const status = query.status;
  if (status !== undefined && !(STATUSES as readonly string[]).includes(status)) {
    throw new Problem('invalid-query', `status must be one of ${STATUSES.join(', ')}; got '${status}'.`);
  }
  const limit = query.limit === undefined ? 100 : count(query.limit, 'limit', { min: 1, max: 1000 });
  return {
    ...(status === undefined ? {} : { status: status as Saga['status'] }),
    ...(query.from === undefined ? {} : { from: time(query.from, 'from') }),
    ...(query.to === undefined ? {} : { to: time(query.to, 'to') }),
    limit,
    after: query.after ?? '',
  };
}

/** A time from the query: milliseconds since the epoch, or an ISO 8601 date and time. */
function time(value: string, name: string): number {
  const ms = /^[0-9]+$/.test(value) ? Number(value) : Date.parse(value);
  if (!Number.isSafeInteger(ms)) throw new Problem('invalid-query', `${name} must be an ISO 8601 time (2026-11-21T10:00:00Z) or milliseconds since 1970; got '${value}'.`);
  return ms;
}

function matches(saga: Saga, filter: Filter): boolean {
  return (filter.status === undefined || saga.status === filter.status)
    && (filter.from === undefined || saga.startedAt >= filter.from)
    && (filter.to === undefined || saga.startedAt < filter.to);
}

function summary(saga: Saga) {
  const ended = saga.status === 'completed' || saga.status === 'failed' ? saga.endedAt : undefined;
  return {
    saga_id: saga.id,
    order_id: saga.ctx.orderId,
    status: saga.status,
    started_at: iso(saga.startedAt),
    ended_at: ended === undefined ? null : iso(ended),
    duration_ms: ended === undefined ? null : ended - saga.startedAt,
    reason: saga.status === 'failed' || saga.status === 'compensating' ? saga.reason : null,
    compensated: saga.history.some((e) => e.event === 'compensating'),
  };
}

async function statistics(source: SagaSource) {
  const byStatus: Record<string, number> = Object.fromEntries(STATUSES.map((s) => [s, 0]));
  const failures: Record<string, number> = {};
  const durations: number[] = [];
  let total = 0;
  let compensations = 0;
  let waitingForStart = 0;
  for await (const saga of source.list('')) {
    if (!saga) {
      waitingForStart++;
      continue;
    }
    total++;
    byStatus[saga.status]! += 1;
    if (saga.history.some((e) => e.event === 'compensating')) compensations++;
    if (saga.status === 'completed' || saga.status === 'failed') durations.push(saga.endedAt - saga.startedAt);
    if (saga.status === 'failed') {
      // By what went wrong ("reserveStock failed", "authorizePayment timed-out"), not by the detail.
      const cause = saga.history.find((e) => e.event === 'failed' || e.event === 'timed-out');
      const reason = cause ? `${cause.step} ${cause.event}` : 'unknown';
      failures[reason] = (failures[reason] ?? 0) + 1;
    }
  }
  durations.sort((a, b) => a - b);
  const pct = (p: number) => (durations.length === 0 ? null : durations[Math.min(durations.length - 1, Math.floor(p * durations.length))]!);
  return {
    total,
    by_status: byStatus,
    compensations_triggered: compensations,
    failures_by_reason: failures,
    duration_ms: { p50: pct(0.5), p95: pct(0.95), p99: pct(0.99), max: durations.at(-1) ?? null },
    events_waiting_for_their_start: waitingForStart,
  };
}

const iso = (ms: number) => new Date(ms).toISOString();
