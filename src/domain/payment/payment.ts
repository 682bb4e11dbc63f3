/** Payment: users' credit, and holds (authorize, capture, void, refund) keyed by saga id. */
import type { Message } from '../../core/message.ts';
import { anyObject, isNonEmptyString, isRecord, withDetail, type Check, type Checks } from '../../core/parse.ts';

export type Account = Readonly<{ credit: number; held: number }>;

export type Hold = Readonly<{
  status: 'authorized' | 'captured' | 'voided' | 'refunded' | 'declined';
  userId: string;
  amount: number;
  /** Why it was declined, repeated to a repeated request. */
  detail?: string;
  /** The fraud check's verdict on the payment, repeated to a repeated check. */
  fraud?: Readonly<{ passed: true } | { passed: false; detail: string }>;
}>;

/**
 * The fraud check: a deterministic rule, set per deployment. A payment above `maxAmount`, or a
 * user's payment beyond `maxPerWindow` passed checks within `windowMs`, is refused; 0 turns a
 * limit off. The default turns both off, so no course checkout is refused.
 */
export type FraudRule = Readonly<{ maxAmount: number; maxPerWindow: number; windowMs: number }>;
export const noFraudLimits: FraudRule = { maxAmount: 0, maxPerWindow: 0, windowMs: 60_000 };

/** When each of a user's recent payments passed the fraud check (the velocity limit's memory). */
export type Velocity = Readonly<{ passed: readonly number[] }>;

export const accountKey = (userId: string) => `user:${userId}`;
export const holdKey = (sagaId: string) => `hold:${sagaId}`;
export const velocityKey = (userId: string) => `velocity:${userId}`;

export const PaymentCommands = {
  authorize: 'AuthorizePayment',
  capture: 'CapturePayment',
  void: 'VoidPayment',
  refund: 'RefundPayment',
  checkFraud: 'CheckFraud',
} as const;

export const PaymentReplies = {
  authorized: 'PaymentAuthorized',
  declined: 'PaymentDeclined',
  captured: 'PaymentCaptured',
  voided: 'PaymentVoided',
  refunded: 'PaymentRefunded',
  fraudPassed: 'FraudCheckPassed',
  fraudFailed: 'FraudCheckFailed',
} as const;

/** Payload of every payment command. */
export type Charge = Readonly<{ userId: string; amount: number }>;
type Empty = Readonly<Record<string, never>>;

/** The saga commands payment consumes. */
export type PaymentCommand =
  | Message<typeof PaymentCommands.authorize, Charge>
  | Message<typeof PaymentCommands.capture, Charge>
  | Message<typeof PaymentCommands.void, Charge>
  | Message<typeof PaymentCommands.refund, Charge>
  | Message<typeof PaymentCommands.checkFraud, Charge>;

/** Payment's replies to them. */
export type PaymentReply =
  | Message<typeof PaymentReplies.authorized, Empty>
  | Message<typeof PaymentReplies.declined, Readonly<{ reason: string; detail: string }>>
  | Message<typeof PaymentReplies.captured, Empty>
  | Message<typeof PaymentReplies.voided, Empty>
  | Message<typeof PaymentReplies.refunded, Empty>
  | Message<typeof PaymentReplies.fraudPassed, Empty>
  | Message<typeof PaymentReplies.fraudFailed, Readonly<{ reason: string; detail: string }>>;

export type PaymentApiCommand =
  | Readonly<{ type: 'CreateUser'; userId: string }>
  | Readonly<{ type: 'AddFunds'; userId: string; amount: number }>
  | Readonly<{ type: 'Pay'; userId: string; amount: number }>
  | Readonly<{ type: 'InitUsers'; count: number; credit: number }>;

/** What is wrong with a payment command's payload, if anything. */
const charge: Check = (payload) => {
  if (!isRecord(payload)) return 'the payload must be an object';
  if (!isNonEmptyString(payload.userId)) return 'userId must be a user id';
  if (!Number.isSafeInteger(payload.amount) || Number(payload.amount) < 0) return 'amount must be a whole number of at least 0';
  return undefined;
};

export const paymentCommandChecks: Checks<PaymentCommand> = {
  [PaymentCommands.authorize]: charge,
  [PaymentCommands.capture]: charge,
  [PaymentCommands.void]: charge,
  [PaymentCommands.refund]: charge,
  [PaymentCommands.checkFraud]: charge,
};

/** What the saga's owner checks of payment's replies (the failure's detail; the rest it does not read). */
export const paymentReplyChecks: Checks<PaymentReply> = {
  [PaymentReplies.authorized]: anyObject,
  [PaymentReplies.declined]: withDetail,
  [PaymentReplies.captured]: anyObject,
  [PaymentReplies.voided]: anyObject,
  [PaymentReplies.refunded]: anyObject,
  [PaymentReplies.fraudPassed]: anyObject,
  [PaymentReplies.fraudFailed]: withDetail,
};
