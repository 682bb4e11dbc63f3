/** Payment: users' credit, and holds (authorize, capture, void, refund) keyed by saga id. */

export type Account = Readonly<{ credit: number; held: number }>;

export type Hold = Readonly<{
  status: 'authorized' | 'captured' | 'voided' | 'refunded' | 'declined';
  userId: string;
  amount: number;
  /** Why it was declined, repeated to a repeated request. */
  detail?: string;
}>;

export const accountKey = (userId: string) => `user:${userId}`;
export const holdKey = (sagaId: string) => `hold:${sagaId}`;

export const PaymentCommands = {
  authorize: 'AuthorizePayment',
  capture: 'CapturePayment',
  void: 'VoidPayment',
  refund: 'RefundPayment',
} as const;

export const PaymentReplies = {
  authorized: 'PaymentAuthorized',
  declined: 'PaymentDeclined',
  captured: 'PaymentCaptured',
  voided: 'PaymentVoided',
  refunded: 'PaymentRefunded',
} as const;

/** Payload of every payment command. */
export type Charge = Readonly<{ userId: string; amount: number }>;

export type PaymentApiCommand =
  | Readonly<{ type: 'CreateUser'; userId: string }>
  | Readonly<{ type: 'AddFunds'; userId: string; amount: number }>
  | Readonly<{ type: 'Pay'; userId: string; amount: number }>
  | Readonly<{ type: 'InitUsers'; count: number; credit: number }>;

/** What is wrong with a payment command's payload from outside (synchronous calls), if anything. */
export function chargeProblem(payload: object): string | undefined {
  const { userId, amount } = payload as { userId?: unknown; amount?: unknown };
  if (typeof userId !== 'string' || userId === '') return 'userId must be a user id';
  if (!Number.isSafeInteger(amount) || (amount as number) < 0) return 'amount must be a whole number of at least 0';
  return undefined;
}
