/** Stock (inventory): items with available and reserved quantities, and reservations. */
import type { Message } from '../../core/message.ts';
import { anyObject, isNonEmptyString, isRecord, withDetail, type Check, type Checks } from '../../core/parse.ts';

export type Item = Readonly<{ price: number; available: number; reserved: number }>;

/** A checkout's hold on stock, keyed by saga id: the idempotency record of every stock step. */
export type Reservation = Readonly<{
  status: 'reserved' | 'committed' | 'released' | 'rejected';
  lines: readonly Line[];
  /** Why it was rejected: the failure reply, repeated as it was to a repeated request. */
  failure?: Readonly<{ reason: string; detail: string }>;
}>;

export type Line = readonly [itemId: string, quantity: number];

export const itemKey = (itemId: string) => `item:${itemId}`;
export const reservationKey = (sagaId: string) => `reservation:${sagaId}`;

/** Commands other services send to stock, and stock's replies. */
export const StockCommands = { reserve: 'ReserveStock', release: 'ReleaseStock', commit: 'CommitStock' } as const;
export const StockReplies = {
  reserved: 'StockReserved',
  reservationFailed: 'StockReservationFailed',
  released: 'StockReleased',
  committed: 'StockCommitted',
} as const;

/** Payload of every stock command: the order's lines (release and commit use the recorded ones). */
export type StockLines = Readonly<{ lines: readonly Line[] }>;
/** Why a reservation failed. */
export type StockFailure = Readonly<{ reason: string; detail: string }>;
type Empty = Readonly<Record<string, never>>;

/** The saga commands stock consumes. */
export type StockCommand =
  | Message<typeof StockCommands.reserve, StockLines>
  | Message<typeof StockCommands.release, StockLines>
  | Message<typeof StockCommands.commit, StockLines>;

/** Stock's replies to them. */
export type StockReply =
  | Message<typeof StockReplies.reserved, Empty>
  | Message<typeof StockReplies.reservationFailed, StockFailure>
  | Message<typeof StockReplies.released, Empty>
  | Message<typeof StockReplies.committed, Empty>;

/** Commands of stock's own HTTP API. */
export type StockApiCommand =
  | Readonly<{ type: 'CreateItem'; itemId: string; price: number }>
  | Readonly<{ type: 'AddStock'; itemId: string; amount: number }>
  | Readonly<{ type: 'SubtractStock'; itemId: string; amount: number }>
  | Readonly<{ type: 'InitItems'; count: number; stock: number; price: number }>;

/** Merges repeated items so each is checked and changed once. */
export function mergeLines(lines: readonly Line[]): Line[] {
  const merged = new Map<string, number>();
  for (const [itemId, quantity] of lines) merged.set(itemId, (merged.get(itemId) ?? 0) + quantity);
  return [...merged];
}

/** What is wrong with a stock command's payload (or anything with the order's lines), if anything. */
export const stockLinesCheck: Check = (payload) => {
  const lines = isRecord(payload) ? payload.lines : undefined;
  const valid = Array.isArray(lines) && lines.every((line: unknown) =>
    Array.isArray(line) && line.length === 2 && isNonEmptyString(line[0]) && Number.isSafeInteger(line[1]) && Number(line[1]) > 0);
  return valid ? undefined : 'lines must be a list of [item id, quantity above 0]';
};

export const stockCommandChecks: Checks<StockCommand> = {
  [StockCommands.reserve]: stockLinesCheck,
  [StockCommands.release]: stockLinesCheck,
  [StockCommands.commit]: stockLinesCheck,
};

/** What the saga's owner checks of stock's replies (the failure's detail; the rest it does not read). */
export const stockReplyChecks: Checks<StockReply> = {
  [StockReplies.reserved]: anyObject,
  [StockReplies.reservationFailed]: withDetail,
  [StockReplies.released]: anyObject,
  [StockReplies.committed]: anyObject,
};
