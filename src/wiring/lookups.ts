import type { Lookups } from '../domain/order/api.ts';
import { accountKey } from '../domain/payment/payment.ts';
import { itemKey, type Item } from '../domain/stock/stock.ts';
import { readDoc, type Store } from '../ports/store.ts';
import { CourseClient } from '../tools/client.ts';
import { outgoingHeaders } from '../observability/tracing.ts';

/** Lookups in the same process: read the other services' stores. */
export function storeLookups(stock: Store, payment: Store): Lookups {
  return {
    itemPrice: async (itemId) => (await readDoc<Item>(stock, itemKey(itemId)))?.price,
    userExists: async (userId) => (await readDoc(payment, accountKey(userId))) !== undefined,
  };
}

/** Lookups across processes: the other services' public API, through the gateway. */
export function httpLookups(baseUrl: string, apiKey: string | undefined): Lookups & { close(): Promise<void> } {
  const client = new CourseClient(baseUrl, 32);
  const credentials: Record<string, string> = apiKey === undefined ? {} : { authorization: `Bearer ${apiKey}` };
  const get = async (path: string) => {
    // Within the checkout's trace when tracing is on (the route's span is active here).
    const answer = await client.call('GET', path, outgoingHeaders(credentials));
    if (answer.status === 404) return undefined;
    if (answer.status !== 200) throw new Error(`GET ${baseUrl}${path} answered ${answer.status}`);
    return answer.body as Record<string, unknown>;
  };
  return {
    async itemPrice(itemId) {
      const item = await get(`/stock/find/${encodeURIComponent(itemId)}`);
      return item === undefined ? undefined : Number(item.price);
    },
    async userExists(userId) {
      return (await get(`/payment/find_user/${encodeURIComponent(userId)}`)) !== undefined;
    },
    close: () => client.close(),
  };
}
