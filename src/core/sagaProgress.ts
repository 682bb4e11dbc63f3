/**
 * What happened to a saga in one commit, from its state before and after: for metrics and
 * logs, which observe sagas without taking part in them.
 */
import type { SagaState, StepEvent } from './saga.ts';

export type SagaProgress = Readonly<
  | { kind: 'started' }
  /** The saga began to undo what it did. */
  | { kind: 'compensating' }
  | { kind: 'ended'; status: 'completed' | 'failed'; durationMs: number }
  /** A step (or its compensation, `compensated`) ended, `durationMs` after it was last sent. */
  | { kind: 'step'; step: string; outcome: 'succeeded' | 'failed' | 'timed-out' | 'compensated'; durationMs: number }
>;

export function sagaProgress<C>(before: SagaState<C> | undefined, after: SagaState<C> | undefined): SagaProgress[] {
  if (!after) return [];
  const same = before?.id === after.id ? before : undefined;
  const out: SagaProgress[] = [];
  if (!same) out.push({ kind: 'started' });
  const seen = same?.history.length ?? 0;
  after.history.forEach((event, i) => {
    if (i < seen) return;
    if (event.event === 'compensating' && !after.history.slice(0, i).some((e) => e.event === 'compensating')) out.push({ kind: 'compensating' });
    if (event.event === 'succeeded' || event.event === 'failed' || event.event === 'timed-out' || event.event === 'compensated') {
      const sent = lastSent(after.history.slice(0, i), event);
      if (sent) out.push({ kind: 'step', step: event.step, outcome: event.event, durationMs: event.at - sent.at });
    }
  });
  const ended = after.status === 'completed' || after.status === 'failed' ? after : undefined;
  if (ended && same?.status !== ended.status) out.push({ kind: 'ended', status: ended.status, durationMs: ended.endedAt - ended.startedAt });
  return out;
}

/** When the command a step's event answers was last sent: its start or retry, or for an undo, the compensation. */
function lastSent(earlier: readonly StepEvent[], event: StepEvent): StepEvent | undefined {
  const undo = event.event === 'compensated';
  for (let i = earlier.length - 1; i >= 0; i--) {
    const e = earlier[i];
    if (e?.step !== event.step) continue;
    if (undo ? e.event === 'compensating' : e.event === 'started' || e.event === 'retried') return e;
  }
  return undefined;
}
