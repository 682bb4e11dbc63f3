import { batchKeys, busyFixture, replaced } from '../fixtures.ts';
import { assertNever, fail, ok, type Decider, type Decision, type Read } from '../../core/decider.ts';
import type { Envelope } from '../../core/message.ts';
import { mutations } from '../../core/mutations.ts';
import { parserOf } from '../../core/parse.ts';
import { MAX_AMOUNT } from '../limits.ts';
import {
  accountKey, holdKey, noFraudLimits, paymentCommandChecks, PaymentCommands, PaymentReplies, velocityKey,
  type Account, type FraudRule, type Hold, type PaymentApiCommand, type PaymentCommand, type Velocity,
} from './payment.ts';

/**
 * Payment's decisions. Like stock, every saga step is idempotent by the saga id through the
 * hold document; a void or refund that arrives before its authorize leaves a tombstone so the
 * late authorize is declined and takes nothing, and a capture after them takes nothing either.
 * A refund of money only held (its capture never came, or is still on its way) drops the hold,
 * so money is never left taken on a cancelled order. `rule` is the fraud check's.
 */
export function paymentDecider(rule: FraudRule = noFraudLimits): Decider<PaymentCommand, PaymentApiCommand> {
  return {
    consumes: Object.values(PaymentCommands),
    parse: parserOf(paymentCommandChecks),

    keys: (message) => [
      holdKey(message.sagaId),
      accountKey(message.payload.userId),
      ...(message.type === PaymentCommands.checkFraud ? [velocityKey(message.payload.userId)] : []),
    ],

    decide(message, read, now) {
      switch (message.type) {
        case PaymentCommands.authorize:
          return authorize(message, read);
        case PaymentCommands.capture:
          return capture(message, read);
        case PaymentCommands.void:
          return voidHold(message, read);
        case PaymentCommands.refund:
          return refund(message, read);
        case PaymentCommands.checkFraud:
          return checkFraud(rule, message, read, now);
        default:
          return assertNever(message);
      }
    },

    api: { keys: apiKeys, decide: (command, read) => api(command, read) },
  };
}

function authorize(message: Envelope<PaymentCommand>, read: Read): Decision {
  const key = holdKey(message.sagaId);
  const existing = read<Hold>(key);
  if (existing) {
    const granted = existing.status === 'authorized' || existing.status === 'captured';
    return { send: [granted ? authorized() : declined(existing.detail ?? `payment already ${existing.status}`)] };
  }
  const { userId, amount } = message.payload;
  const account = read<Account>(accountKey(userId));
  if (!account || account.credit < amount) {
    const detail = account ? `user ${userId} has credit ${account.credit}, ${amount} needed` : `user ${userId} does not exist`;
    const hold: Hold = { status: 'declined', userId, amount, detail };
    return { writes: { [key]: hold }, send: [declined(detail)] };
  }
  const hold: Hold = { status: 'authorized', userId, amount };
  const next: Account = { credit: account.credit - amount, held: account.held + amount };
  return { writes: { [key]: hold, [accountKey(userId)]: next }, send: [authorized()] };
}

/**
 * Moves a hold from `from` to `to`, adjusting the account; answers `reply` whether or not
 * anything changed, so repeats are harmless. A hold that does not exist yet is recorded as
 * `to` (a tombstone), so the step it undoes can no longer happen.
 */
function settle(message: Envelope<PaymentCommand>, read: Read, from: Hold['status'], to: Hold['status'], reply: string): Decision {
  const key = holdKey(message.sagaId);
  const existing = read<Hold>(key);
  const send = [{ type: reply, payload: {} }];
  if (!existing) {
    if (to === 'captured') return { send: [] }; // nothing to capture: the saga's authorize never happened
    const tombstone: Hold = { status: to, userId: message.payload.userId, amount: 0 };
    return { writes: { [key]: tombstone }, send };
  }
  if (existing.status !== from) return { send };
  const account = read<Account>(accountKey(existing.userId));
  if (!account) throw new Error(`Hold ${key} names user ${existing.userId}, who does not exist`);
  const next = adjust(account, to, existing.amount);
  return { writes: { [key]: { ...existing, status: to }, [accountKey(existing.userId)]: next }, send };
}

/** Takes held money; a hold already dropped (voided, refunded, declined) or never made takes nothing and answers nothing. */
function capture(message: Envelope<PaymentCommand>, read: Read): Decision {
  const existing = read<Hold>(holdKey(message.sagaId));
  if (existing?.status === 'captured') return { send: [{ type: PaymentReplies.captured, payload: {} }] };
  if (existing?.status !== 'authorized') return { send: [] };
  return settle(message, read, 'authorized', 'captured', PaymentReplies.captured);
}

/**
 * Drops a hold. Money already taken is given back: in a choreography the owner may abort a
 * saga it still sees at the authorization while payment has already captured it (the capture
 * reacts to payment's own event), and the void is then all the saga will ever send.
 */
function voidHold(message: Envelope<PaymentCommand>, read: Read): Decision {
  const existing = read<Hold>(holdKey(message.sagaId));
  if (existing?.status === 'captured') return settle(message, read, 'captured', 'refunded', PaymentReplies.voided);
  return settle(message, read, 'authorized', 'voided', PaymentReplies.voided);
}

/** Gives captured money back; money only held is released instead (its capture may still come, and will then take nothing). */
function refund(message: Envelope<PaymentCommand>, read: Read): Decision {
  const existing = read<Hold>(holdKey(message.sagaId));
  if (existing?.status === 'authorized') return settle(message, read, 'authorized', 'voided', PaymentReplies.refunded);
  if (mutations.refundTwice && existing?.status === 'refunded') return settle(message, read, 'refunded', 'refunded', PaymentReplies.refunded); // a bug the simulator's tests put back
  return settle(message, read, 'captured', 'refunded', PaymentReplies.refunded);
}

/**
 * The fraud check of a captured payment: over `maxAmount`, or more passed checks of the user
 * within the window than `maxPerWindow`, fails. The verdict is kept in the hold, so a repeated
 * check answers the same; a payment no longer captured (refunded on a cancel) is not checked.
 */
function checkFraud(rule: FraudRule, message: Envelope<PaymentCommand>, read: Read, now: number): Decision {
  const key = holdKey(message.sagaId);
  const hold = read<Hold>(key);
  if (hold?.fraud) return { send: [hold.fraud.passed ? fraudPassed() : fraudFailed(hold.fraud.detail)] };
  if (hold?.status !== 'captured') return { send: [] };
  const { userId, amount } = message.payload;
  const velocity = read<Velocity>(velocityKey(userId)) ?? { passed: [] };
  const recent = velocity.passed.filter((at) => at > now - rule.windowMs);
  const detail = rule.maxAmount > 0 && amount > rule.maxAmount
    ? `amount ${amount} is above the fraud limit of ${rule.maxAmount}`
    : rule.maxPerWindow > 0 && recent.length >= rule.maxPerWindow
      ? `user ${userId} already paid ${recent.length} times within ${rule.windowMs} ms (the limit is ${rule.maxPerWindow})`
      : undefined;
  if (detail !== undefined) return { writes: { [key]: { ...hold, fraud: { passed: false, detail } } satisfies Hold }, send: [fraudFailed(detail)] };
  const writes: Record<string, unknown> = { [key]: { ...hold, fraud: { passed: true } } satisfies Hold };
  // The velocity memory is only kept while a limit needs it.
  if (rule.maxPerWindow > 0) writes[velocityKey(userId)] = { passed: [...recent, now] } satisfies Velocity;
  return { writes, send: [fraudPassed()] };
}

const fraudPassed = () => ({ type: PaymentReplies.fraudPassed, payload: {} });
const fraudFailed = (detail: string) => ({ type: PaymentReplies.fraudFailed, payload: { reason: 'fraud-suspected', detail } });

function adjust(account: Account, to: Hold['status'], amount: number): Account {
  switch (to) {
    case 'captured':
      return { ...account, held: account.held - amount };
    case 'voided':
      return { credit: account.credit + amount, held: account.held - amount };
    case 'refunded':
      return { ...account, credit: account.credit + amount };
    case 'authorized':
    case 'declined':
      throw new Error(`A hold cannot be settled to ${to}`);
    default:
      return assertNever(to);
  }
}

const authorized = () => ({ type: PaymentReplies.authorized, payload: {} });
const declined = (detail: string) => ({ type: PaymentReplies.declined, payload: { reason: 'insufficient-credit', detail } });

function apiKeys(command: PaymentApiCommand): string[] {
  switch (command.type) {
    case 'CreateUser':
    case 'AddFunds':
    case 'Pay':
      return [accountKey(command.userId)];
    case 'InitUsers':
      return batchKeys(command.count, accountKey);
    default:
      return assertNever(command);
  }
}

function api(command: PaymentApiCommand, read: Read): Decision {
  switch (command.type) {
    case 'CreateUser': {
      const account: Account = { credit: 0, held: 0 };
      return { writes: { [accountKey(command.userId)]: account }, reply: ok({ user_id: command.userId }) };
    }
    case 'AddFunds': {
      const account = read<Account>(accountKey(command.userId));
      if (!account) return { reply: fail('user-not-found', `User ${command.userId} does not exist.`) };
      if (account.credit + account.held + command.amount > MAX_AMOUNT) {
        return { reply: fail('amount-too-large', `Credit of user ${command.userId} would exceed ${MAX_AMOUNT}.`) };
      }
      const next: Account = { ...account, credit: account.credit + command.amount };
      return { writes: { [accountKey(command.userId)]: next }, reply: ok({ credit: next.credit }) };
    }
    case 'Pay': {
      const account = read<Account>(accountKey(command.userId));
      if (!account) return { reply: fail('user-not-found', `User ${command.userId} does not exist.`) };
      if (account.credit < command.amount) {
        return { reply: fail('insufficient-credit', `User ${command.userId} has credit ${account.credit}, ${command.amount} asked.`) };
      }
      const next: Account = { ...account, credit: account.credit - command.amount };
      return { writes: { [accountKey(command.userId)]: next }, reply: ok({ credit: next.credit }) };
    }
    case 'InitUsers': {
      const replacing = replaced(command.count, (i) => read<Account>(accountKey(String(i))), (account) => account.held > 0);
      if (replacing.busy !== undefined) return { reply: busyFixture('users', command.count, replacing.busy, 'credit held') };
      const writes: Record<string, unknown> = {};
      const account: Account = { credit: command.credit, held: 0 };
      for (let i = 0; i < command.count; i++) writes[accountKey(String(i))] = account;
      return { writes, reply: ok({ msg: `Batch init for ${command.count} users successful`, replaced: replacing.existing }) };
    }
    default:
      return assertNever(command);
  }
}
