/**
 * stockDecider as given/when/then: given these documents, when this message arrives, then
 * these documents are written, these messages sent and this reply given.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Envelope, Outgoing } from '../../src/core/message.ts';
import { apiCommand, deciderSpec, NOW } from './deciderSpec.ts';
import { MAX_AMOUNT } from '../../src/domain/limits.ts';
import { stockDecider } from '../../src/domain/stock/businessLogic.ts';
import type { Item, Line, Reservation, StockApiCommand } from '../../src/domain/stock/stock.ts';

const { given, keys } = deciderSpec(stockDecider);

// ---------------------------------------------------------------------------------------------
// Stock's documents and messages

const SAGA = 'o1.1';
const item = (available: number, reserved = 0, price = 10): Item => ({ price, available, reserved });
const reservation = (status: Reservation['status'], lines: readonly Line[], detail?: string): Reservation =>
  detail === undefined ? { status, lines } : { status, lines, failure: { reason: 'out-of-stock', detail } };

function sagaCommand(type: string, step: string, lines: readonly Line[]): Envelope {
  return { id: `${SAGA}:${type}`, type, sagaId: SAGA, step, correlationId: 'o1', causationId: 'o1:checkout', at: NOW, payload: { lines } };
}
const reserve = (...lines: Line[]) => sagaCommand('ReserveStock', 'reserveStock', lines);
const release = (...lines: Line[]) => sagaCommand('ReleaseStock', 'reserveStock', lines);
const commit = (...lines: Line[]) => sagaCommand('CommitStock', 'commitStock', lines);

const api = (command: StockApiCommand) => apiCommand(command);

const reserved: Outgoing = { type: 'StockReserved', payload: {} };
const released: Outgoing = { type: 'StockReleased', payload: {} };
const committed: Outgoing = { type: 'StockCommitted', payload: {} };
const reservationFailed = (reason: string, detail: string): Outgoing => ({ type: 'StockReservationFailed', payload: { reason, detail } });

// ---------------------------------------------------------------------------------------------

void describe('stock: ReserveStock', () => {
  void it('moves the quantities from available to reserved and records the reservation', () => {
    given({ 'item:a': item(5), 'item:b': item(1, 2) })
      .when(reserve(['a', 2], ['b', 1]))
      .then({
        writes: { 'item:a': item(3, 2), 'item:b': item(0, 3), 'reservation:o1.1': reservation('reserved', [['a', 2], ['b', 1]]) },
        send: [reserved],
      });
  });

  void it('fails when an item has too little stock: only a rejected reservation is written', () => {
    given({ 'item:a': item(5), 'item:b': item(1) })
      .when(reserve(['a', 2], ['b', 2]))
      .then({
        writes: { 'reservation:o1.1': reservation('rejected', [['a', 2], ['b', 2]], 'item b has 1 in stock, 2 wanted') },
        send: [reservationFailed('out-of-stock', 'item b has 1 in stock, 2 wanted')],
      });
  });

  void it('fails when an item does not exist', () => {
    given({ 'item:a': item(5) })
      .when(reserve(['a', 1], ['zz', 1]))
      .then({
        writes: { 'reservation:o1.1': reservation('rejected', [['a', 1], ['zz', 1]], 'item zz does not exist') },
        send: [reservationFailed('out-of-stock', 'item zz does not exist')],
      });
  });

  void it('takes exactly the last unit', () => {
    given({ 'item:a': item(2) })
      .when(reserve(['a', 2]))
      .then({ writes: { 'item:a': item(0, 2), 'reservation:o1.1': reservation('reserved', [['a', 2]]) }, send: [reserved] });
  });

  void it('merges repeated lines of an item before checking the stock', () => {
    given({ 'item:a': item(3) })
      .when(reserve(['a', 2], ['a', 2]))
      .then({
        writes: { 'reservation:o1.1': reservation('rejected', [['a', 4]], 'item a has 3 in stock, 4 wanted') },
        send: [reservationFailed('out-of-stock', 'item a has 3 in stock, 4 wanted')],
      });
    given({ 'item:a': item(4) })
      .when(reserve(['a', 2], ['b', 1], ['a', 2]))
      .then({
        writes: { 'reservation:o1.1': reservation('rejected', [['a', 4], ['b', 1]], 'item b does not exist') },
        send: [reservationFailed('out-of-stock', 'item b does not exist')],
      });
    given({ 'item:a': item(4) })
      .when(reserve(['a', 1], ['a', 3]))
      .then({ writes: { 'item:a': item(0, 4), 'reservation:o1.1': reservation('reserved', [['a', 4]]) }, send: [reserved] });
  });

  void it('repeated: the same reply, nothing changes', () => {
    const afterReserve = given({ 'item:a': item(5) }).when(reserve(['a', 2])).then({
      writes: { 'item:a': item(3, 2), 'reservation:o1.1': reservation('reserved', [['a', 2]]) },
      send: [reserved],
    });
    given(afterReserve.docs).when(reserve(['a', 2])).then({ send: [reserved] });

    const afterCommit = given(afterReserve.docs).when(commit(['a', 2])).then({
      writes: { 'item:a': item(3, 0), 'reservation:o1.1': reservation('committed', [['a', 2]]) },
      send: [committed],
    });
    given(afterCommit.docs).when(reserve(['a', 2])).then({ send: [reserved] });
  });

  void it('repeated after a failure: fails again and takes nothing, even if stock arrived meanwhile', () => {
    const rejected = { 'item:a': item(50), 'reservation:o1.1': reservation('rejected', [['a', 2]]) };
    given(rejected).when(reserve(['a', 2])).then({
      send: [reservationFailed('rejected', 'reservation already rejected')],
    });
  });

  void it('repeated after a failure: the very same reply (reason and detail) as the first time', () => {
    const first = reservationFailed('out-of-stock', 'item a has 1 in stock, 2 wanted');
    const afterFailure = given({ 'item:a': item(1) }).when(reserve(['a', 2])).then({
      writes: { 'reservation:o1.1': reservation('rejected', [['a', 2]], 'item a has 1 in stock, 2 wanted') },
      send: [first],
    });
    given(afterFailure.docs).when(reserve(['a', 2])).then({ send: [first] });
  });

  void it('names the reservation and every item it may read', () => {
    assert.deepEqual(keys(reserve(['a', 1], ['b', 2])), ['reservation:o1.1', 'item:a', 'item:b']);
    assert.deepEqual(stockDecider.consumes, ['ReserveStock', 'ReleaseStock', 'CommitStock']);
  });
});

void describe('stock: ReleaseStock', () => {
  const held = { 'item:a': item(3, 2), 'item:b': item(0, 1), 'reservation:o1.1': reservation('reserved', [['a', 2], ['b', 1]]) };

  void it('gives the reserved quantities back and marks the reservation released', () => {
    given(held).when(release(['a', 2], ['b', 1])).then({
      writes: { 'item:a': item(5, 0), 'item:b': item(1, 0), 'reservation:o1.1': reservation('released', [['a', 2], ['b', 1]]) },
      send: [released],
    });
  });

  void it('repeated: the same reply, nothing changes', () => {
    const after = given(held).when(release(['a', 2], ['b', 1])).then({
      writes: { 'item:a': item(5, 0), 'item:b': item(1, 0), 'reservation:o1.1': reservation('released', [['a', 2], ['b', 1]]) },
      send: [released],
    });
    given(after.docs).when(release(['a', 2], ['b', 1])).then({ send: [released] });
  });

  void it('of a rejected reservation: nothing to give back', () => {
    given({ 'item:a': item(1), 'reservation:o1.1': reservation('rejected', [['a', 2]]) })
      .when(release(['a', 2]))
      .then({ send: [released] });
  });

  void it('before its reserve: leaves a tombstone, so the late reserve fails and takes nothing', () => {
    const afterRelease = given({ 'item:a': item(5) }).when(release(['a', 2])).then({
      writes: { 'reservation:o1.1': reservation('released', []) },
      send: [released],
    });
    given(afterRelease.docs).when(reserve(['a', 2])).then({
      send: [reservationFailed('released', 'reservation already released')],
    });
  });
});

void describe('stock: CommitStock', () => {
  const held = { 'item:a': item(3, 2), 'reservation:o1.1': reservation('reserved', [['a', 2]]) };

  void it('takes the reserved quantities out of stock for good', () => {
    given(held).when(commit(['a', 2])).then({
      writes: { 'item:a': item(3, 0), 'reservation:o1.1': reservation('committed', [['a', 2]]) },
      send: [committed],
    });
  });

  void it('repeated: the same reply, nothing changes', () => {
    const after = given(held).when(commit(['a', 2])).then({
      writes: { 'item:a': item(3, 0), 'reservation:o1.1': reservation('committed', [['a', 2]]) },
      send: [committed],
    });
    given(after.docs).when(commit(['a', 2])).then({ send: [committed] });
  });

  void it('after a release: does not take the released stock', () => {
    given({ 'item:a': item(5), 'reservation:o1.1': reservation('released', [['a', 2]]) })
      .when(commit(['a', 2]))
      .then({ send: [committed] });
  });

  void it('a release after the commit gives the units back (an order cancelled after it was confirmed), once', () => {
    const back = given({ 'item:a': item(3), 'reservation:o1.1': reservation('committed', [['a', 2]]) })
      .when(release(['a', 2]))
      .then({ writes: { 'item:a': item(5), 'reservation:o1.1': reservation('released', [['a', 2]]) }, send: [released] });
    given(back.docs).when(release(['a', 2])).then({ send: [released] });
  });
});

void describe('stock: API commands', () => {
  void it('CreateItem: an item with no stock', () => {
    given({}).when(api({ type: 'CreateItem', itemId: 'a', price: 7 })).then({
      writes: { 'item:a': item(0, 0, 7) },
      reply: { ok: true, value: { item_id: 'a' } },
    });
  });

  void it('AddStock: adds to the available stock', () => {
    given({ 'item:a': item(3, 2) }).when(api({ type: 'AddStock', itemId: 'a', amount: 4 })).then({
      writes: { 'item:a': item(7, 2) },
      reply: { ok: true, value: { stock: 7 } },
    });
  });

  void it('AddStock: up to exactly MAX_AMOUNT, not one above; above writes nothing', () => {
    given({ 'item:a': item(3) }).when(api({ type: 'AddStock', itemId: 'a', amount: MAX_AMOUNT - 3 })).then({
      writes: { 'item:a': item(MAX_AMOUNT) },
      reply: { ok: true, value: { stock: MAX_AMOUNT } },
    });
    given({ 'item:a': item(3) }).when(api({ type: 'AddStock', itemId: 'a', amount: MAX_AMOUNT - 2 })).then({
      reply: { ok: false, code: 'amount-too-large', detail: `Stock of item a would exceed ${MAX_AMOUNT}.` },
    });
  });

  void it('AddStock: counts the reserved units, which a release gives back', () => {
    given({ 'item:a': item(0, 10) }).when(api({ type: 'AddStock', itemId: 'a', amount: MAX_AMOUNT })).then({
      reply: { ok: false, code: 'amount-too-large', detail: `Stock of item a would exceed ${MAX_AMOUNT}.` },
    });
  });

  void it('AddStock: an unknown item', () => {
    given({}).when(api({ type: 'AddStock', itemId: 'zz', amount: 1 })).then({
      reply: { ok: false, code: 'item-not-found', detail: 'Item zz does not exist.' },
    });
  });

  void it('SubtractStock: takes from the available stock, down to zero', () => {
    given({ 'item:a': item(5, 1) }).when(api({ type: 'SubtractStock', itemId: 'a', amount: 5 })).then({
      writes: { 'item:a': item(0, 1) },
      reply: { ok: true, value: { stock: 0 } },
    });
  });

  void it('SubtractStock: below zero fails and writes nothing (reserved units are not available)', () => {
    given({ 'item:a': item(5, 10) }).when(api({ type: 'SubtractStock', itemId: 'a', amount: 6 })).then({
      reply: { ok: false, code: 'out-of-stock', detail: 'Item a has 5 in stock, 6 asked.' },
    });
  });

  void it('SubtractStock: an unknown item', () => {
    given({}).when(api({ type: 'SubtractStock', itemId: 'zz', amount: 1 })).then({
      reply: { ok: false, code: 'item-not-found', detail: 'Item zz does not exist.' },
    });
  });

  void it('InitItems: items "0" … "count-1" with the given stock and price', () => {
    given({}).when(api({ type: 'InitItems', count: 3, stock: 100, price: 5 })).then({
      writes: { 'item:0': item(100, 0, 5), 'item:1': item(100, 0, 5), 'item:2': item(100, 0, 5) },
      reply: { ok: true, value: { msg: 'Batch init for 3 items successful', replaced: 0 } },
    });
  });

  void it('InitItems says how many items it replaced', () => {
    given({ 'item:1': item(7) }).when(api({ type: 'InitItems', count: 2, stock: 1, price: 5 })).then({
      writes: { 'item:0': item(1, 0, 5), 'item:1': item(1, 0, 5) },
      reply: { ok: true, value: { msg: 'Batch init for 2 items successful', replaced: 1 } },
    });
  });

  void it('InitItems replaces nothing while a checkout holds stock of one of them: 409 fixture-conflict', () => {
    const step = given({ 'item:0': item(7), 'item:1': item(3, 2) }).when(api({ type: 'InitItems', count: 2, stock: 1, price: 5 }));
    assert.deepEqual(step.decision.writes ?? {}, {});
    assert.equal(step.decision.reply?.ok, false);
    assert.equal(step.decision.reply?.ok === false && step.decision.reply.code, 'fixture-conflict');
    assert.match(step.decision.reply?.ok === false ? step.decision.reply.detail : '', /1 has stock reserved.*Nothing was changed/);
  });

  void it('names the one item an API command reads, and every item InitItems would replace', () => {
    assert.deepEqual(keys(api({ type: 'AddStock', itemId: 'a', amount: 1 })), ['item:a']);
    assert.deepEqual(keys(api({ type: 'InitItems', count: 3, stock: 1, price: 1 })), ['item:0', 'item:1', 'item:2']);
  });
});
