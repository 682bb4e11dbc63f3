import type { FastifyInstance } from 'fastify';
import { execute, newId } from '../../http/commands.ts';
import { route, schemas } from '../../http/openapi.ts';
import { Problem } from '../../http/problems.ts';
import type { Idempotency } from '../../core/decider.ts';
import { batchSize, count, id, idempotency } from '../../http/validate.ts';
import { readDoc } from '../../ports/store.ts';
import type { Service } from '../../ports/service.ts';
import { itemKey, type Item, type StockApiCommand } from './stock.ts';

type Params = Record<string, string | undefined>;

/** The course API of the stock service, under /stock. */
export function stockApi(stock: Service<StockApiCommand>) {
  const run = (command: StockApiCommand, key?: Idempotency) => execute(stock, command, { idempotency: key });
  return async (app: FastifyInstance) => {
    app.post<{ Params: Params }>('/item/create/:price', { schema: route({ access: 'shop', summary: 'Create an item (stock 0)', tags: ['stock'], params: { price: 'its price' }, ok: schemas.object({ item_id: schemas.string }), errors: ['invalid-number', 'amount-too-large', 'idempotency-key-reused'], idempotent: true }) }, async (req) => {
      const price = count(req.params.price, 'price');
      return run({ type: 'CreateItem', itemId: newId(), price }, idempotency(req));
    });

    app.get<{ Params: Params }>('/find/:itemId', { schema: route({ access: 'shop', summary: 'An item\'s stock and price', tags: ['stock'], params: { itemId: 'the item' }, ok: schemas.object({ stock: schemas.integer, price: schemas.integer }), errors: ['invalid-id', 'item-not-found'] }) }, async (req) => {
      const itemId = id(req.params.itemId, 'item_id');
      const item = await findItem(stock, itemId);
      return { stock: item.available, price: item.price };
    });

    app.post<{ Params: Params }>('/add/:itemId/:amount', { schema: route({ access: 'shop', summary: 'Add stock', tags: ['stock'], params: { itemId: 'the item', amount: 'units to add' }, errors: ['invalid-id', 'invalid-number', 'item-not-found', 'amount-too-large', 'idempotency-key-reused'], idempotent: true }) }, async (req) => {
      const command = { type: 'AddStock', itemId: id(req.params.itemId, 'item_id'), amount: count(req.params.amount, 'amount') } as const;
      return run(command, idempotency(req));
    });

    app.post<{ Params: Params }>('/subtract/:itemId/:amount', { schema: route({ access: 'shop', summary: 'Take stock (never below 0)', tags: ['stock'], params: { itemId: 'the item', amount: 'units to take' }, errors: ['invalid-id', 'invalid-number', 'item-not-found', 'out-of-stock', 'idempotency-key-reused'], idempotent: true }) }, async (req) => {
      const command = { type: 'SubtractStock', itemId: id(req.params.itemId, 'item_id'), amount: count(req.params.amount, 'amount') } as const;
      return run(command, idempotency(req));
    });

    app.post<{ Params: Params }>('/batch_init/:n/:startingStock/:itemPrice', { schema: route({ access: 'fixture', summary: 'Create items "0" … "n-1"', tags: ['stock'], params: { n: 'how many (at most 1,000,000)', startingStock: 'stock of each', itemPrice: 'price of each' }, ok: schemas.message, errors: ['invalid-number', 'amount-too-large', 'fixtures-off', 'fixture-conflict'] }) }, async (req) => {
      const command = {
        type: 'InitItems',
        count: batchSize(req.params.n, 'n'),
        stock: count(req.params.startingStock, 'starting_stock'),
        price: count(req.params.itemPrice, 'item_price'),
      } as const;
      return run(command);
    });
  };
}

/** Reads an item, or answers 404. */
async function findItem(stock: Service<StockApiCommand>, itemId: string): Promise<Item> {
  const item = await readDoc<Item>(stock.store, itemKey(itemId));
  if (!item) throw new Problem('item-not-found', `Item ${itemId} does not exist.`);
  return item;
}
