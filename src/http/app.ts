import fastifyHelmet from '@fastify/helmet';
import Fastify, { type FastifyInstance, type FastifyRequest } from 'fastify';
import FindMyWay, { type HTTPMethod } from 'find-my-way';
import type { Audit } from '../domain/audit.ts';
import type { Logger } from '../ports/log.ts';
import { metrics, registry } from '../observability/metrics.ts';
import { endServerSpan, serverSpan, tracingOn, withSpan, type Traced } from '../observability/tracing.ts';
import { accessCheck, type AccessPolicy, type Caller } from './access.ts';
import { consoleRoutes } from './console.ts';
import { drainAndClose } from './drain.ts';
import { eventRoutes } from './events.ts';
import { accessOf, openApi, route, schemas } from './openapi.ts';
import { answerClientError, Problem, sendProblem } from './problems.ts';
import { REQUEST_ID, requestId } from './requestId.ts';

export type AppDeps = Readonly<{
  log: Logger;
  /** Registers the routes this process serves. */
  routes: (app: FastifyInstance) => void;
  /** Why this process cannot serve yet ([] when it can). */
  notReady: () => Promise<string[]>;
  /** This process's part of the audit. */
  audit: () => Promise<Partial<Audit>>;
  /** Who may call which class of route (src/http/access.ts). */
  access: AccessPolicy;
  /** Most GET /events streams open at once. */
  maxEventStreams: number;
}>;

declare module 'fastify' {
  interface FastifyRequest {
    /** Who sent it, as the access check found: the scope of its Idempotency-Keys. */
    caller: Caller;
  }
}

/** The HTTP API of one process (every service, or one); `listen` is the caller's business. */
export function buildApp(deps: AppDeps): FastifyInstance {
  const app = Fastify({
    // Long ids must reach validation (and get a clear 400), not the router's 404.
    routerOptions: { maxParamLength: 16 * 1024 },
    bodyLimit: 64 * 1024,
    // Every request has an id: the caller's X-Request-Id when it sends a sensible one, else a
    // new one; it is echoed in the answer and carried by the request's log lines.
    requestIdHeader: false,
    genReqId: requestId,
    // A request whose line and headers have not arrived after 10 s (an HTTP/0.9 line, a stalled
    // client) is answered 408 and closed; Node checks every second instead of every 30.
    http: { headersTimeout: 10_000, connectionsCheckingInterval: 1_000 },
    clientErrorHandler: answerClientError,
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
    if (err.code === 'FST_ERR_CTP_BODY_TOO_LARGE') {
      // The client is still sending the body: drain it before closing, or the close is a reset
      // that can make the client's kernel discard this answer.
      drainAndClose(reply.raw);
      return sendProblem(reply, 'payload-too-large', 'The request body is larger than 64 KiB.');
    }
    if (err.statusCode !== undefined && err.statusCode >= 400 && err.statusCode < 500) {
      return sendProblem(reply, 'invalid-body', `The request could not be read: ${err.message ?? 'malformed'}.`);
    }
    deps.log.error({ err: error, reqId: reply.request.id, method: reply.request.method, url: reply.request.url }, 'request failed');
    return sendProblem(reply, 'internal', 'Something went wrong on our side; the request may be retried.');
  });

  // Every route by method, to tell a wrong method (405, with the ones that exist) from a wrong path (404).
  const routes = FindMyWay();
  app.addHook('onRoute', (route) => {
    for (const method of [route.method].flat()) routes.on(method as HTTPMethod, route.url, () => {});
  });
  app.setNotFoundHandler((request, reply) => {
    const path = request.url.split('?')[0] ?? '/';
    const allowed = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE'].filter((method) => routes.find(method as HTTPMethod, path) !== null);
    if (allowed.length > 0) {
      return sendProblem(reply.header('allow', allowed.join(', ')), 'method-not-allowed', `${path} answers only ${allowed.join(', ')}; this request was a ${request.method}.`);
    }
    return sendProblem(reply, 'route-not-found', `There is no ${request.method} ${path}. See the API in docs/api.md.`);
  });

  // Security headers on every answer: the console may run only its own scripts and styles, in no
  // frame; no answer is sniffed as another type. (HSTS is the TLS proxy's to set.)
  void app.register(fastifyHelmet, {
    contentSecurityPolicy: {
      useDefaults: false,
      directives: {
        defaultSrc: ["'self'"], scriptSrc: ["'self'"], styleSrc: ["'self'"], imgSrc: ["'self'", 'data:'], connectSrc: ["'self'"],
        objectSrc: ["'none'"], baseUri: ["'none'"], formAction: ["'self'"], frameAncestors: ["'none'"],
      },
    },
    strictTransportSecurity: false,
    frameguard: { action: 'deny' },
    referrerPolicy: { policy: 'no-referrer' },
  });
  openApi(app);

  // Requests by route pattern (not by URL: ids would make a series each), and the metrics themselves.
  app.addHook('onResponse', async (request, reply) => {
    const route = request.routeOptions.url ?? 'unmatched';
    metrics.httpRequests.inc({ method: request.method, route, status: String(reply.statusCode) });
    metrics.httpDuration.observe({ method: request.method, route }, reply.elapsedTime / 1000);
  });

  // The one access check: on the route the router matched, by the class it declared. A route
  // that declared none is an operator route; an unmatched one only answers 404 or 405.
  const check = accessCheck(deps.access);
  app.decorateRequest('caller', null as unknown as Caller);
  app.addHook('onRequest', async (request, reply) => {
    void reply.header(REQUEST_ID, request.id);
    try {
      request.caller = check(request.is404 ? 'open' : accessOf(request.routeOptions.schema) ?? 'operator', request);
    } catch (error) {
      if (error instanceof Problem && error.code === 'unauthorized') void reply.header('www-authenticate', 'Bearer realm="orderly"');
      throw error;
    }
  });
  if (tracingOn()) traceRequests(app);

  // The course API sends no bodies; accept any content type on POST without reading it as JSON.
  app.addContentTypeParser('*', { parseAs: 'buffer' }, (_req, body, done) => done(null, body));

  void app.register(consoleRoutes(deps.access));
  void app.register(eventRoutes(deps.maxEventStreams));
  deps.routes(app);
  // In a plugin, so that they load after OpenAPI's, which documents them.
  void app.register(async (ops) => {
    ops.get('/healthz', { schema: route({ access: 'open', summary: 'Alive', tags: ['operations'], ok: schemas.object({ status: schemas.string }) }) }, async () => ({ status: 'ok' }));
    ops.get('/readyz', { schema: route({ access: 'open', summary: 'Ready: its store and bus are reachable (503 with the reasons until then)', tags: ['operations'] }) }, async (_request, reply) => {
      const reasons = await deps.notReady();
      return reply.code(reasons.length === 0 ? 200 : 503).send({ ready: reasons.length === 0, reasons });
    });
    ops.get('/metrics', { schema: route({ access: 'operator', summary: 'Prometheus metrics of this process (text format)', tags: ['operations'] }) }, async (_request, reply) =>
      reply.type(registry.contentType).send(await registry.metrics()));
    // Totals over the stores, for conservation checks; reads everything, so not for hot paths.
    ops.get('/admin/audit', { schema: route({ access: 'operator', summary: 'Totals over every store, for conservation checks (reads everything)', tags: ['admin'], errors: ['unauthorized', 'forbidden'] }) }, () => deps.audit());
  });
  return app;
}

/**
 * A server span per request (continuing the caller's traceparent), active while its route runs,
 * so that the commands the route runs are its children. Only when tracing is on.
 */
function traceRequests(app: FastifyInstance): void {
  const spans = new WeakMap<FastifyRequest, Traced>();
  app.addHook('onRequest', (request, _reply, done) => {
    const route = request.routeOptions.url ?? 'unmatched';
    const span = serverSpan(request.method, route, request.headers, { 'url.path': request.url.split('?')[0] ?? '/', 'orderly.request_id': request.id });
    if (span !== undefined) spans.set(request, span);
    done();
  });
  // After the body is read, right before the handler: the handler runs in the span's context.
  app.addHook('preHandler', (request, _reply, done) => {
    const span = spans.get(request);
    if (span === undefined) done();
    else withSpan(span, done);
  });
  app.addHook('onResponse', (request, reply, done) => {
    endServerSpan(spans.get(request), reply.statusCode);
    done();
  });
}
