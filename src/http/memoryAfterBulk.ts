import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import type { FastifyInstance } from 'fastify';

/**
 * After a bulk request — the course's batch_init (up to a million documents in one
 * transaction), or an audit (it reads every document) — the V8 heap has grown by hundreds of
 * MB, and the V8 of Node 24 keeps the pages it frees for itself: resident memory would stay at
 * that peak for good (740 MB after a batch_init of 400,000 orders in `npm start`, 461 MB after
 * the audits of a 500,000-order bench; a cluster's order replica stayed at 220 MB of heap,
 * 30 MB of it live, after a batch_init of 30,000). A last-resort collection a second after the
 * last one gives them back to the system (about 150 ms for 400 MB, once; the request itself
 * takes seconds).
 */
export function givesMemoryBackAfterBulkRequests(app: FastifyInstance): void {
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as (options: Readonly<{ type: 'major'; execution: 'sync'; flavor: 'last-resort' }>) => void;
  let pending: NodeJS.Timeout | undefined;
  app.addHook('onResponse', async (request) => {
    const url = request.routeOptions.url ?? '';
    if (!url.includes('/batch_init/') && url !== '/admin/audit') return;
    clearTimeout(pending);
    pending = setTimeout(() => gc({ type: 'major', execution: 'sync', flavor: 'last-resort' }), 1000).unref();
  });
}
