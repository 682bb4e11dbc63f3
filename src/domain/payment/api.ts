import type { FastifyInstance } from 'fastify';
import { execute, newId } from '../../http/commands.ts';
import { route, schemas } from '../../http/openapi.ts';
import { Problem } from '../../http/problems.ts';
import type { Idempotency } from '../../core/decider.ts';
import { batchSize, count, id, idempotency } from '../../http/validate.ts';
import { readDoc } from '../../ports/store.ts';
import type { Service } from '../../ports/service.ts';
import { accountKey, type Account, type PaymentApiCommand } from './payment.ts';

type Params = Record<string, string | undefined>;

/** The course API of the payment service, under /payment. */
export function paymentApi(payment: Service<PaymentApiCommand>) {
  const run = (command: PaymentApiCommand, key?: Idempotency) => execute(payment, command, { idempotency: key });
  return async (app: FastifyInstance) => {
    app.post('/create_user', { schema: route({ access: 'shop', summary: 'Create a user (credit 0)', tags: ['payment'], ok: schemas.object({ user_id: schemas.string }), errors: ['idempotency-key-reused'], idempotent: true }) }, async (req) => run({ type: 'CreateUser', userId: newId() }, idempotency(req)));

    app.get<{ Params: Params }>('/find_user/:userId', { schema: route({ access: 'shop', summary: 'A user\'s credit', tags: ['payment'], params: { userId: 'the user' }, ok: schemas.object({ user_id: schemas.string, credit: schemas.integer }), errors: ['invalid-id', 'user-not-found'] }) }, async (req) => {
      const userId = id(req.params.userId, 'user_id');
      const account = await findAccount(payment, userId);
      return { user_id: userId, credit: account.credit };
    });

    app.post<{ Params: Params }>('/add_funds/:userId/:amount', { schema: route({ access: 'shop', summary: 'Add credit', tags: ['payment'], params: { userId: 'the user', amount: 'credit to add' }, errors: ['invalid-id', 'invalid-number', 'user-not-found', 'amount-too-large', 'idempotency-key-reused'], idempotent: true }) }, async (req) => {
      const command = { type: 'AddFunds', userId: id(req.params.userId, 'user_id'), amount: count(req.params.amount, 'amount') } as const;
      return run(command, idempotency(req));
    });

    app.post<{ Params: Params }>('/pay/:userId/:amount', { schema: route({ access: 'shop', summary: 'Take credit (never below 0)', tags: ['payment'], params: { userId: 'the user', amount: 'credit to take' }, errors: ['invalid-id', 'invalid-number', 'user-not-found', 'insufficient-credit', 'idempotency-key-reused'], idempotent: true }) }, async (req) => {
      const command = { type: 'Pay', userId: id(req.params.userId, 'user_id'), amount: count(req.params.amount, 'amount') } as const;
      return run(command, idempotency(req));
    });

    app.post<{ Params: Params }>('/batch_init/:n/:startingMoney', { schema: route({ access: 'fixture', summary: 'Create users "0" … "n-1"', tags: ['payment'], params: { n: 'how many (at most 1,000,000)', startingMoney: 'credit of each' }, ok: schemas.message, errors: ['invalid-number', 'amount-too-large', 'fixtures-off', 'fixture-conflict'] }) }, async (req) => {
      const command = { type: 'InitUsers', count: batchSize(req.params.n, 'n'), credit: count(req.params.startingMoney, 'starting_money') } as const;
      return run(command);
    });
  };
}

/** Reads a user's account, or answers 404. */
async function findAccount(payment: Service<PaymentApiCommand>, userId: string): Promise<Account> {
  const account = await readDoc<Account>(payment.store, accountKey(userId));
  if (!account) throw new Problem('user-not-found', `User ${userId} does not exist.`);
  return account;
}
