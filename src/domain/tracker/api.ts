import type { FastifyInstance } from 'fastify';
import type { SagaState } from '../../core/saga.ts';
import type { SagaGraph } from '../../core/sagaGraph.ts';
import { route, schemas } from '../../http/openapi.ts';
import { Problem } from '../../http/problems.ts';
import { count } from '../../http/validate.ts';
import type { CheckoutContext } from '../order/order.ts';
import type { SagaSource } from './tracker.ts';

type Query = Record<string, string | undefined>;
type Saga = SagaState<CheckoutContext>;


const STATUSES = ['running', 'compensating', 'completed', 'failed'] as const;

export type SagaApiOptions = Readonly<{
  /** The definitions the sagas run, as graphs (GET /sagas/definitions). */
  graphs: readonly SagaGraph[];
  /** A running saga with no progress for this long is stuck (three step time-outs: its retries have not helped). */
  stuckAfterMs: number;
}>;

/**
 * The saga API, under /sagas: the sagas (filtered by status, start time, current step, retrying
 * or stuck), one saga with its step history, statistics, and the definitions as graphs. Lists
 * and statistics read every saga there is: they are for operators, not for hot paths.
 */
export function sagaApi(source: SagaSource, options: SagaApiOptions) {
  return async (app: FastifyInstance) => {
    app.get<{ Querystring: Query }>('/', { schema: route({ access: 'operator', summary: 'The sagas, filtered and paged', tags: ['sagas'], query: { status: 'running, compensating, completed or failed', from: 'started at or after (ISO 8601 or ms)', to: 'started before', step: 'waiting on this step', retrying: 'true or false', stuck: 'true or false', limit: '1 to 1000 (default 100)', after: 'the `next` of the page before' }, ok: schemas.object({ sagas: { type: 'array', items: { type: 'object' } }, next: { type: ['string', 'null'] } }), errors: ['invalid-query', 'invalid-number', 'amount-too-large'] }) }, async (req) => {
      const filter = listFilter(req.query, options.graphs.flatMap((g) => g.groups.flat().map((step) => step.name)));
      const now = Date.now();
      const sagas: ReturnType<typeof summary>[] = [];
      let next: string | null = null;
      for await (const saga of source.list(filter.after)) {
        if (!saga) continue;
        const found = summary(saga, now, options.stuckAfterMs);
        if (!matches(saga, found, filter)) continue;
        if (sagas.length === filter.limit) {
          next = sagas.at(-1)?.saga_id ?? null;
          break;
        }
        sagas.push(found);
      }
      return { sagas, next };
    });

    app.get('/definitions', { schema: route({ access: 'operator', summary: 'The saga definitions as graphs (groups of steps, what undoes each, the pivot)', tags: ['sagas'] }) }, async () => ({ definitions: options.graphs }));

    app.get('/statistics', { schema: route({ access: 'operator', summary: 'Counts by status, compensations, failures by reason, duration percentiles', tags: ['sagas'] }) }, async () => statistics(source));

    app.get<{ Params: Query }>('/:sagaId', { schema: route({ access: 'operator', summary: 'One saga with its step history and context', tags: ['sagas'], params: { sagaId: 'the saga' }, errors: ['saga-not-found'] }) }, async (req) => {
      const sagaId = req.params.sagaId ?? '';
      const found = await source.get(sagaId);
      if (!found) throw new Problem('saga-not-found', `There is no saga ${sagaId} (or its start was not seen yet). GET /sagas lists the sagas.`);
      const { saga, early } = found;
      return { ...summary(saga, Date.now(), options.stuckAfterMs), context: saga.ctx, steps: saga.history.map((e) => ({ ...e, at: iso(e.at) })), early_events: early };
    });
  };
}

type Filter = Readonly<{ status?: Saga['status']; from?: number; to?: number; step?: string; retrying?: boolean; stuck?: boolean; limit: number; after: string }>;

function listFilter(query: Query, steps: readonly string[]): Filter {
  const status = query.status;
  if (status !== undefined && !(STATUSES as readonly string[]).includes(status)) {
    throw new Problem('invalid-query', `status must be one of ${STATUSES.join(', ')}; got '${status}'.`);
  }
  const limit = query.limit === undefined ? 100 : count(query.limit, 'limit', { min: 1, max: 1000 });
  return {
    ...(status === undefined ? {} : { status: status as Saga['status'] }),
    ...(query.from === undefined ? {} : { from: time(query.from, 'from') }),
    ...(query.to === undefined ? {} : { to: time(query.to, 'to') }),
    ...(query.step === undefined ? {} : { step: oneStep(query.step, steps) }),
    ...(query.retrying === undefined ? {} : { retrying: flag(query.retrying, 'retrying') }),
    ...(query.stuck === undefined ? {} : { stuck: flag(query.stuck, 'stuck') }),
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

function oneStep(value: string, steps: readonly string[]): string {
  if (!steps.includes(value)) throw new Problem('invalid-query', `step must be one of ${steps.join(', ')}; got '${value}'.`);
  return value;
}

function flag(value: string, name: string): boolean {
  if (value !== 'true' && value !== 'false') throw new Problem('invalid-query', `${name} must be true or false; got '${value}'.`);
  return value === 'true';
}

function matches(saga: Saga, found: ReturnType<typeof summary>, filter: Filter): boolean {
  return (filter.status === undefined || saga.status === filter.status)
    && (filter.from === undefined || saga.startedAt >= filter.from)
    && (filter.to === undefined || saga.startedAt < filter.to)
    && (filter.step === undefined || found.current_steps.includes(filter.step))
    && (filter.retrying === undefined || found.retrying === filter.retrying)
    && (filter.stuck === undefined || found.stuck === filter.stuck);
}

/** The steps a saga waits on now: those whose latest event leaves them under way. */
function currentSteps(saga: Saga): string[] {
  if (saga.status === 'completed' || saga.status === 'failed') return [];
  const latest = new Map<string, string>();
  for (const e of saga.history) latest.set(e.step, e.event);
  return [...latest].filter(([, event]) => event === 'started' || event === 'retried' || event === 'timed-out' || event === 'compensating').map(([step]) => step);
}

function summary(saga: Saga, now: number, stuckAfterMs: number) {
  const ended = saga.status === 'completed' || saga.status === 'failed' ? saga.endedAt : undefined;
  const active = saga.status === 'running' || saga.status === 'compensating' ? saga : undefined;
  return {
    saga_id: saga.id,
    order_id: saga.ctx.orderId,
    definition: saga.definition ?? { name: 'checkout', version: 1 },
    status: saga.status,
    started_at: iso(saga.startedAt),
    ended_at: ended === undefined ? null : iso(ended),
    duration_ms: ended === undefined ? null : ended - saga.startedAt,
    reason: saga.status === 'failed' || saga.status === 'compensating' ? saga.reason : null,
    compensated: saga.history.some((e) => e.event === 'compensating'),
    current_steps: currentSteps(saga),
    /** Tries of the current command (1 = the first send). */
    attempt: active ? active.tries : null,
    last_progress_at: active ? iso(active.since) : null,
    retrying: active !== undefined && active.tries > 1,
    stuck: active !== undefined && now - active.since > stuckAfterMs,
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
      const cause = saga.history.find((e) => e.event === 'failed' || e.event === 'timed-out' || e.event === 'aborted');
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
