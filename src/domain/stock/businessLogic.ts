import { batchKeys, busyFixture, replaced } from '../fixtures.ts';
import { assertNever, fail, ok, type Decider, type Decision, type Read } from '../../core/decider.ts';
import type { Envelope } from '../../core/message.ts';
import { parserOf } from '../../core/parse.ts';
import { MAX_AMOUNT } from '../limits.ts';
import {
  itemKey, mergeLines, reservationKey, stockCommandChecks, StockCommands, StockReplies,
  type Item, type Reservation, type StockApiCommand, type StockCommand,
} from './stock.ts';

/**
 * Stock's decisions. Every saga step is idempotent by the saga id: the reservation document
 * records what happened, so a repeated command gets the same reply and changes nothing, and a
 * release that arrives before its reserve leaves a tombstone that makes the late reserve fail.
 * A release undoes a commit too (an order cancelled after it was confirmed gives its units
 * back), and a commit that comes after the release does nothing.
 */
export const stockDecider: Decider<StockCommand, StockApiCommand> = {
  consumes: Object.values(StockCommands),
  parse: parserOf(stockCommandChecks),

  keys: (message) => [reservationKey(message.sagaId), ...message.payload.lines.map(([id]) => itemKey(id))],

  decide(message, read, _now) {
    switch (message.type) {
      case StockCommands.reserve:
        return reserve(message, read);
      case StockCommands.release:
        return release(message, read);
      case StockCommands.commit:
        return commit(message, read);
      default:
        return assertNever(message);
    }
  },

  api: { keys: apiKeys, decide: (command, read) => api(command, read) },
};

function reserve(message: Envelope<StockCommand>, read: Read): Decision {
  const key = reservationKey(message.sagaId);
  const existing = read<Reservation>(key);
  if (existing) return { send: [reservationReply(existing)] };
  const lines = mergeLines(message.payload.lines);
  const writes: Record<string, unknown> = {};
  for (const [itemId, quantity] of lines) {
    const item = read<Item>(itemKey(itemId));
    if (!item || item.available < quantity) {
      const detail = item ? `item ${itemId} has ${item.available} in stock, ${quantity} wanted` : `item ${itemId} does not exist`;
      const failure = { reason: 'out-of-stock', detail };
      const rejected: Reservation = { status: 'rejected', lines, failure };
      return { writes: { [key]: rejected }, send: [{ type: StockReplies.reservationFailed, payload: failure }] };
    }
    writes[itemKey(itemId)] = { ...item, available: item.available - quantity, reserved: item.reserved + quantity };
  }
  const reservation: Reservation = { status: 'reserved', lines };
  writes[key] = reservation;
  return { writes, send: [{ type: StockReplies.reserved, payload: {} }] };
}

function release(message: Envelope<StockCommand>, read: Read): Decision {
  const key = reservationKey(message.sagaId);
  const existing = read<Reservation>(key);
  const released = { send: [{ type: StockReplies.released, payload: {} }] };
  if (!existing) return { ...released, writes: { [key]: { status: 'released', lines: [] } satisfies Reservation } };
  if (existing.status !== 'reserved' && existing.status !== 'committed') return released;
  const writes: Record<string, unknown> = { [key]: { ...existing, status: 'released' } satisfies Reservation };
  for (const [itemId, quantity] of existing.lines) {
    const item = reservedItem(read, itemId);
    // Reserved units go back to available; committed ones (gone from reserved already) too.
    const reserved = existing.status === 'reserved' ? item.reserved - quantity : item.reserved;
    writes[itemKey(itemId)] = { ...item, available: item.available + quantity, reserved };
  }
  return { ...released, writes };
}

function commit(message: Envelope<StockCommand>, read: Read): Decision {
  const key = reservationKey(message.sagaId);
  const existing = read<Reservation>(key);
  const committed = { send: [{ type: StockReplies.committed, payload: {} }] };
  if (!existing || existing.status !== 'reserved') return committed;
  const writes: Record<string, unknown> = { [key]: { ...existing, status: 'committed' } satisfies Reservation };
  for (const [itemId, quantity] of existing.lines) {
    const item = reservedItem(read, itemId);
    writes[itemKey(itemId)] = { ...item, reserved: item.reserved - quantity };
  }
  return { ...committed, writes };
}

/** An item a reservation holds; one that is gone is a bug (items are never deleted). */
function reservedItem(read: Read, itemId: string): Item {
  const item = read<Item>(itemKey(itemId));
  if (!item) throw new Error(`A reservation holds item ${itemId}, which does not exist`);
  return item;
}

function reservationReply(reservation: Reservation) {
  switch (reservation.status) {
    case 'reserved':
    case 'committed':
      return { type: StockReplies.reserved, payload: {} };
    case 'released':
    case 'rejected':
      return { type: StockReplies.reservationFailed, payload: reservation.failure ?? { reason: reservation.status, detail: `reservation already ${reservation.status}` } };
    default:
      return assertNever(reservation.status);
  }
}

function apiKeys(command: StockApiCommand): string[] {
  switch (command.type) {
    case 'CreateItem':
    case 'AddStock':
    case 'SubtractStock':
      return [itemKey(command.itemId)];
    case 'InitItems':
      return batchKeys(command.count, itemKey);
    default:
      return assertNever(command);
  }
}

function api(command: StockApiCommand, read: Read): Decision {
  switch (command.type) {
    case 'CreateItem': {
      const item: Item = { price: command.price, available: 0, reserved: 0 };
      return { writes: { [itemKey(command.itemId)]: item }, reply: ok({ item_id: command.itemId }) };
    }
    case 'AddStock': {
      const item = read<Item>(itemKey(command.itemId));
      if (!item) return { reply: fail('item-not-found', `Item ${command.itemId} does not exist.`) };
      if (item.available + item.reserved + command.amount > MAX_AMOUNT) {
        return { reply: fail('amount-too-large', `Stock of item ${command.itemId} would exceed ${MAX_AMOUNT}.`) };
      }
      const next: Item = { ...item, available: item.available + command.amount };
      return { writes: { [itemKey(command.itemId)]: next }, reply: ok({ stock: next.available }) };
    }
    case 'SubtractStock': {
      const item = read<Item>(itemKey(command.itemId));
      if (!item) return { reply: fail('item-not-found', `Item ${command.itemId} does not exist.`) };
      if (item.available < command.amount) {
        return { reply: fail('out-of-stock', `Item ${command.itemId} has ${item.available} in stock, ${command.amount} asked.`) };
      }
      const next: Item = { ...item, available: item.available - command.amount };
      return { writes: { [itemKey(command.itemId)]: next }, reply: ok({ stock: next.available }) };
    }
    case 'InitItems': {
      const replacing = replaced(command.count, (i) => read<Item>(itemKey(String(i))), (item) => item.reserved > 0);
      if (replacing.busy !== undefined) return { reply: busyFixture('items', command.count, replacing.busy, 'stock reserved') };
      const writes: Record<string, unknown> = {};
      const item: Item = { price: command.price, available: command.stock, reserved: 0 };
      for (let i = 0; i < command.count; i++) writes[itemKey(String(i))] = item;
      return { writes, reply: ok({ msg: `Batch init for ${command.count} items successful`, replaced: replacing.existing }) };
    }
    default:
      return assertNever(command);
  }
}
