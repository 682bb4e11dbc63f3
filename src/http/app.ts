import Fastify, { type FastifyInstance } from 'fastify';
import { orderApi, type OrderApiDeps } from '../domain/order/api.ts';
import { paymentApi } from '../domain/payment/api.ts';
import { stockApi } from '../domain/stock/api.ts';
import { audit } from '../runtime/audit.ts';
import type { Logger } from '../runtime/log.ts';
import { Problem, sendProblem } from './problems.ts';

export type AppDeps = OrderApiDeps & Readonly<{ log: Logger }>;

/** The course-compatible HTTP API of the whole system; `listen` is the caller's business. */
export function buildApp(deps: AppDeps): FastifyInstance {
  const app = Fastify({
    // Long ids must reach validation (and get a clear 400), not the router's 404.
    routerOptions: { maxParamLength: 16 * 1024 },
    bodyLimit: 64 * 1024,
    // Errors the router answers before any route runs.
    frameworkErrors: (error, _request, reply) => {
      if (error.code === 'FST_ERR_MAX_PARAM_LENGTH') void sendProblem(reply, 'invalid-id', 'A path segment is longer than 16384 characters; ids may be at most 64.');
      else if (error.code === 'FST_ERR_BAD_URL') void sendProblem(reply, 'invalid-url', 'The URL has a malformed percent-encoding, such as a lone "%" or "%zz".');
      else void sendProblem(reply, 'invalid-url', `The request could not be routed: ${error.message}.`);
    },
  });

  app.setErrorHandler((error, _request, reply) => {
    if (error instanceof Problem) return sendProblem(reply, error.code, error.detail);
    const err = error as { code?: string; statusCode?: number; message?: string };
    if (err.code === 'FST_ERR_CTP_BODY_TOO_LARGE') return sendProblem(reply, 'payload-too-large', 'The request body is larger than 64 KiB.');
    if (err.statusCode !== undefined && err.statusCode >= 400 && err.statusCode < 500) {
      return sendProblem(reply, 'invalid-body', `The request could not be read: ${err.message ?? 'malformed'}.`);
    }
    deps.log.error({ err: error, url: reply.request.url }, 'request failed');
    return sendProblem(reply, 'internal', 'Something went wrong on our side; the request may be retried.');
  });

  app.setNotFoundHandler((request, reply) =>
    sendProblem(reply, 'route-not-found', `There is no ${request.method} ${request.url.split('?')[0]}. See the API in README.md.`));

  // The course API sends no bodies; accept any content type on POST without reading it as JSON.
  app.addContentTypeParser('*', { parseAs: 'buffer' }, (_req, body, done) => done(null, body));

  app.register(stockApi(deps.stock), { prefix: '/stock' });
  app.register(paymentApi(deps.payment), { prefix: '/payment' });
  app.register(orderApi(deps), { prefix: '/orders' });
  app.get('/healthz', async () => ({ status: 'ok' }));
  // Totals over every store, for conservation checks; reads everything, so not for hot paths.
  app.get('/admin/audit', async () => audit({ orders: deps.orders.store, stock: deps.stock.store, payment: deps.payment.store }));
  return app;
}
