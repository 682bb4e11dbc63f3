import Fastify, { type FastifyInstance } from 'fastify';
import type { Audit } from '../runtime/audit.ts';
import type { Logger } from '../runtime/log.ts';
import { Problem, sendProblem } from './problems.ts';

export type AppDeps = Readonly<{
  log: Logger;
  /** Registers the routes this process serves. */
  routes: (app: FastifyInstance) => void;
  /** Why this process cannot serve yet ([] when it can). */
  notReady: () => Promise<string[]>;
  /** This process's part of the audit. */
  audit: () => Promise<Partial<Audit>>;
}>;

/** The HTTP API of one process (every service, or one); `listen` is the caller's business. */
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

  deps.routes(app);
  app.get('/healthz', async () => ({ status: 'ok' }));
  app.get('/readyz', async (_request, reply) => {
    const reasons = await deps.notReady();
    return reply.code(reasons.length === 0 ? 200 : 503).send({ ready: reasons.length === 0, reasons });
  });
  // Totals over the stores, for conservation checks; reads everything, so not for hot paths.
  app.get('/admin/audit', () => deps.audit());
  return app;
}
