import assert from 'node:assert/strict';
import { test } from 'node:test';
import { sagaGraph, sagaMermaid } from '../../src/core/sagaGraph.ts';
import { checkoutSaga } from '../../src/domain/order/checkoutSaga.ts';

await test('the checkout as a graph: two groups, the holds undoable, the takes past the pivot', () => {
  const graph = sagaGraph(checkoutSaga());
  assert.equal(graph.name, 'checkout');
  assert.deepEqual(graph.groups.map((g) => g.map((s) => s.name)), [['reserveStock', 'authorizePayment'], ['capturePayment', 'commitStock']]);
  assert.deepEqual(graph.groups.flat().map((s) => s.afterPivot), [false, false, true, true]);
  assert.deepEqual(graph.groups.flat().map((s) => s.compensated), ['StockReleased', 'PaymentVoided', null, null]);
  assert.deepEqual(graph.groups.flat().map((s) => s.failure), ['StockReservationFailed', 'PaymentDeclined', null, null]);
});

await test('in choreography the money is held after the stock: one step a group before the pivot', () => {
  const graph = sagaGraph(checkoutSaga(undefined, { sequential: true }));
  assert.deepEqual(graph.groups.map((g) => g.map((s) => s.name)), [['reserveStock'], ['authorizePayment'], ['capturePayment', 'commitStock']]);
});

await test('the Mermaid flowchart runs the groups in order and undoes in reverse', () => {
  const text = sagaMermaid(sagaGraph(checkoutSaga()));
  const lines = text.trim().split('\n');
  assert.equal(lines[0], 'flowchart LR');
  assert.ok(lines.includes('  start --> reserveStock & authorizePayment'), text);
  assert.ok(lines.includes('  reserveStock & authorizePayment --> capturePayment & commitStock'), text);
  assert.ok(lines.includes('  capturePayment & commitStock --> completed'), text);
  assert.ok(lines.includes('  undo_authorizePayment --> undo_reserveStock --> failed'), text);
  assert.ok(lines.includes('  reserveStock -. StockReservationFailed .-> undo_authorizePayment'), text);
  assert.ok(lines.includes('  class capturePayment,commitStock pivot'), text);
});
