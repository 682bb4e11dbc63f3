import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { SagaState } from '../../src/core/saga.ts';
import { sagaProgress } from '../../src/core/sagaProgress.ts';

type S = SagaState<null>;
const active = { seq: 0, since: 0, tries: 1, timer: 't' } as const;
const running = (history: S['history']): S => ({ status: 'running', id: 'a', ctx: null, startedAt: 100, step: 0, awaiting: [0], history, ...active });

await test('a new saga has started; its first step is under way', () => {
  assert.deepEqual(sagaProgress(undefined, running([{ step: 'reserve', event: 'started', at: 100 }])), [{ kind: 'started' }]);
});

await test('a step that answers reports the time since it was last sent', () => {
  const before = running([{ step: 'reserve', event: 'started', at: 100 }, { step: 'reserve', event: 'retried', at: 200 }]);
  const after = running([...before.history, { step: 'reserve', event: 'succeeded', at: 250 }]);
  assert.deepEqual(sagaProgress(before, after), [{ kind: 'step', step: 'reserve', outcome: 'succeeded', durationMs: 50 }]);
});

await test('a failure starts the compensation once, and the end reports the duration', () => {
  const before = running([{ step: 'reserve', event: 'started', at: 100 }, { step: 'pay', event: 'started', at: 100 }]);
  const history = [...before.history, { step: 'pay', event: 'failed', at: 130 } as const, { step: 'reserve', event: 'compensating', at: 130 } as const];
  const compensating: S = { status: 'compensating', id: 'a', ctx: null, startedAt: 100, pending: [0], reason: 'declined', history, ...active };
  assert.deepEqual(sagaProgress(before, compensating), [{ kind: 'step', step: 'pay', outcome: 'failed', durationMs: 30 }, { kind: 'compensating' }]);
  const failed: S = { status: 'failed', id: 'a', ctx: null, startedAt: 100, reason: 'declined', endedAt: 190, history: [...history, { step: 'reserve', event: 'compensated', at: 190 }] };
  assert.deepEqual(sagaProgress(compensating, failed), [{ kind: 'step', step: 'reserve', outcome: 'compensated', durationMs: 60 }, { kind: 'ended', status: 'failed', durationMs: 90 }]);
  assert.deepEqual(sagaProgress(failed, failed), [], 'a commit that changes nothing of the saga reports nothing');
});

await test('a retried checkout (a new saga id) is a new start', () => {
  const old: S = { status: 'failed', id: 'a', ctx: null, startedAt: 100, reason: 'x', endedAt: 190, history: [] };
  const retry = { ...running([{ step: 'reserve', event: 'started', at: 300 }]), id: 'b' };
  assert.deepEqual(sagaProgress(old, retry), [{ kind: 'started' }]);
});
