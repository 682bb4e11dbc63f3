import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createLogger, prettyLine } from '../../src/runtime/log.ts';
import { aboutMessage, aboutMessages, traceIdOf } from '../../src/observability/tracing.ts';
import type { Envelope } from '../../src/core/message.ts';

// Log lines: JSON for a collector, readable on a terminal; lines about saga messages carry the
// saga, the business transaction (correlation id) and the trace.

/** A logger writing into an array, as if to a terminal (`tty`) or not. */
function captured(format: 'auto' | 'json' | 'pretty', tty: boolean) {
  const lines: string[] = [];
  const log = createLogger('info', format, { isTTY: tty, write: (text: string) => lines.push(text) });
  return { log, lines };
}

const TRACEPARENT = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';
const message = (extra: Partial<Envelope> = {}): Envelope => ({
  id: 'm1', type: 'ReserveStock', sagaId: 'o1.s1', step: 'reserveStock', correlationId: 'o1', causationId: 'c', at: 0, payload: {}, ...extra,
});

test('auto: JSON lines when not on a terminal', () => {
  const { log, lines } = captured('auto', false);
  log.info({ service: 'stock' }, 'hello');
  const entry = JSON.parse(lines[0] ?? '') as Record<string, unknown>;
  assert.equal(entry.msg, 'hello');
  assert.equal(entry.service, 'stock');
  assert.equal(entry.level, 30);
});

test('auto: readable lines on a terminal: time, level, message, then the fields', () => {
  const { log, lines } = captured('auto', true);
  log.warn({ service: 'stock', sagaId: 'o1.s1', count: 2, note: 'two words' }, 'relay: publish failed');
  assert.match(lines[0] ?? '', /^\d\d:\d\d:\d\d\.\d{3} WARN {2}relay: publish failed {2}service=stock sagaId=o1\.s1 count=2 note="two words"\n$/);
  assert.doesNotMatch(lines[0] ?? '', /^\{/);
});

test('pretty and json can be asked for whatever the output is', () => {
  const pretty = captured('pretty', false);
  pretty.log.info({}, 'x');
  assert.match(pretty.lines[0] ?? '', /^\S+ INFO {2}x\n$/);
  const json = captured('json', true);
  json.log.info({}, 'x');
  assert.equal((JSON.parse(json.lines[0] ?? '') as { msg: string }).msg, 'x');
});

test('a readable line shows an error\'s message, and its stack below', () => {
  const line = prettyLine(JSON.stringify({ level: 50, time: 0, msg: 'decide failed', err: { type: 'Error', message: 'boom', stack: 'Error: boom\n    at here' } }));
  assert.match(line, /^00:00:00\.000 ERROR decide failed {2}err="boom"\n {4}Error: boom\n {8}at here\n$/);
  assert.equal(prettyLine('not json\n'), 'not json\n');
});

test('a line about a message carries its saga, correlation id and trace id', () => {
  assert.equal(traceIdOf(TRACEPARENT), '4bf92f3577b34da6a3ce929d0e0e4736');
  assert.equal(traceIdOf('garbage'), undefined);
  assert.deepEqual(aboutMessage(message({ traceparent: TRACEPARENT })), {
    messageId: 'm1', type: 'ReserveStock', sagaId: 'o1.s1', step: 'reserveStock', correlationId: 'o1', traceId: '4bf92f3577b34da6a3ce929d0e0e4736',
  });
  assert.equal(aboutMessage(message()).traceId, undefined, 'no trace id for an untraced message');
  assert.deepEqual(aboutMessages([message({ traceparent: TRACEPARENT }), message({ id: 'm2', sagaId: 'o2.s1', correlationId: 'o2' })]), {
    sagaIds: ['o1.s1', 'o2.s1'], correlationIds: ['o1', 'o2'], traceIds: ['4bf92f3577b34da6a3ce929d0e0e4736'],
  });
});
