import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { Pool } from 'undici';
import { adminAccess } from '../http/admin.ts';
import { deadLetterPage, deadLetterQuery, MAX_DEAD_LETTERS, type DeadLetterSummary } from '../http/deadLetters.ts';
import { registry } from '../observability/metrics.ts';
import { endServerSpan, serverSpan, tracingOn } from '../observability/tracing.ts';
import { REQUEST_ID, requestId } from '../http/requestId.ts';
import { answerClientError, Problem, problemBody, problems, type ProblemCode } from '../http/problems.ts';
import type { Logger } from '../ports/log.ts';
import { SERVICES, type ServiceName } from '../wiring/serviceWiring.ts';

/** Replica URLs of each service the deployment runs (the tracker runs only in choreography). */
export type Upstreams = Readonly<Partial<Record<ServiceName, readonly string[]>>>;

const PREFIX: Readonly<Record<string, ServiceName>> = { stock: 'stock', payment: 'payment', orders: 'orders', fulfillment: 'fulfillment', notification: 'notification' };
/** The lifecycle API (/api/…): whose each resource is. */
const API: Readonly<Record<string, ServiceName>> = { orders: 'orders', shipments: 'fulfillment', customers: 'notification' };
/** Larger bodies are refused here; each service has its own, smaller limits (the synchronous style's saga calls carry up to 4 MiB). */
const MAX_BODY = 4 * 1024 * 1024;
/** The headers of a service's answer that the gateway passes on. */
const ANSWER_HEADERS = ['content-type', 'allow', 'location', 'retry-after', 'x-request-id'] as const;
/** The headers of a request that the gateway passes on (the trace context too, when it makes no span of its own). */
const REQUEST_HEADERS = ['idempotency-key', 'content-type', 'x-orderly-token', 'authorization', 'traceparent', 'tracestate', 'prefer'] as const;
/** A replica that refused a connection is skipped for this long. */
const COOL_DOWN_MS = 2_000;
/** Rounds over all replicas after a first one where none took the connection (100, 200, 400, 800 ms apart). */
const RETRY_ROUNDS = 4;

/**
 * The gateway: one port for the course API, spreading requests over the replicas of each
 * service (round robin). A replica that cannot be reached is skipped and the request goes to
 * the next one (safe: nothing was sent); when none can be, all are tried again for about
 * 1.5 s before the answer is 503. nginx or a Kubernetes ingress can take its place:
 * route /stock, /payment, /orders and /sagas (the tracker in choreography, else the order service) to the replicas of each service (see README).
 */
export async function startGateway(upstreams: Upstreams, host: string, port: number, log: Logger, adminToken?: string) {
  const admin = adminAccess(adminToken);
  const served = SERVICES.filter((name) => (upstreams[name] ?? []).length > 0);
  // The saga API: the tracker's in choreography, the order service's otherwise.
  const sagas: ServiceName = served.includes('tracker') ? 'tracker' : 'orders';
  const replicas = Object.fromEntries(SERVICES.map((name) => [name, (upstreams[name] ?? []).map((url) => ({
    url, pool: new Pool(url, { connections: 128, keepAliveTimeout: 30_000 }), downUntil: 0,
  }))])) as Record<ServiceName, { url: string; pool: Pool; downUntil: number }[]>;
  const next = Object.fromEntries(SERVICES.map((name) => [name, 0])) as Record<ServiceName, number>;

  /**
   * Sends the request to the next replica that takes the connection. When none does, tries
   * them all again a few times over about 1.5 s (a replica may be starting or restarting):
   * safe, since nothing was sent.
   */
  async function forward(service: ServiceName, method: string, path: string, headers: Record<string, string>, body: Buffer | undefined) {
    const list = replicas[service];
    for (let round = 0; ; round++) {
      for (let tried = 0; tried < list.length; tried++) {
        const replica = list[next[service]++ % list.length]!;
        if (round === 0 && replica.downUntil > Date.now() && tried < list.length - 1) continue;
        try {
          const res = await replica.pool.request({ method: method as 'GET', path, headers, body, headersTimeout: 120_000, bodyTimeout: 120_000 });
          const kept = Object.fromEntries(ANSWER_HEADERS.flatMap((name) => (typeof res.headers[name] === 'string' ? [[name, res.headers[name]]] : [])));
          return { status: res.statusCode, headers: kept, body: Buffer.from(await res.body.arrayBuffer()) };
        } catch (error) {
          if (!isConnectFailure(error)) throw error;
          if (replica.downUntil <= Date.now()) log.warn({ replica: replica.url, code: (error as { code?: string }).code }, 'gateway: a replica cannot be reached; trying the others');
          replica.downUntil = Date.now() + COOL_DOWN_MS;
        }
      }
      if (round === RETRY_ROUNDS) return undefined;
      await sleep(100 * 2 ** round);
    }
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = req.url ?? '/';
    const path = url.split('?')[0] ?? '/';
    if (path === '/healthz') return json(res, 200, { status: 'ok' });
    if (path === '/readyz') return ready(res);
    if (path === '/events') return events(req, res, url);
    if (path === '/metrics') {
      const text = await registry.metrics();
      res.writeHead(200, { 'content-type': registry.contentType, 'content-length': Buffer.byteLength(text) });
      return void res.end(text);
    }
    try {
      admin({ url: path, ip: req.socket.remoteAddress ?? '', headers: req.headers });
    } catch (error) {
      if (error instanceof Problem) return problem(res, error.code, error.detail);
      throw error;
    }
    if (path === '/admin/audit') return audit(res, req.headers.authorization);
    if (path === '/admin/dead-letters') return deadLetters(res, url, req.headers.authorization);
    if (path.startsWith('/admin/dead-letters/')) return deadLetter(res, req.method ?? 'GET', url, req.headers.authorization);
    const first = path.split('/')[1] ?? '';
    // The console (at / and under /console/) comes from an order service replica; it reads /sagas through here.
    const service = first === 'api' ? API[path.split('/')[2] ?? ''] : PREFIX[first] ?? (first === 'sagas' ? sagas : path === '/' || first === 'console' ? 'orders' : undefined);
    if (!service) return problem(res, 'route-not-found', `There is no ${req.method} ${path}. See the API in docs/api.md.`);
    const body = await readBody(req);
    if (body === 'too-large') return refuseBody(res);
    const headers: Record<string, string> = {};
    for (const name of REQUEST_HEADERS) {
      const value = req.headers[name];
      if (typeof value === 'string') headers[name] = value;
    }
    // The service answers with the same request id, so the caller, the gateway and the service agree on it.
    const reqId = requestId(req);
    headers[REQUEST_ID] = reqId;
    // With tracing on, the gateway's own span, which the service's continues.
    const method = req.method ?? 'GET';
    const span = tracingOn() ? serverSpan(method, `/${first}`, req.headers, { 'url.path': path, 'orderly.request_id': reqId, 'orderly.service': 'gateway' }) : undefined;
    if (span !== undefined) {
      headers.traceparent = span.traceparent;
      res.once('close', () => endServerSpan(span, res.statusCode));
    }
    const answer = await forward(service, method, url, headers, body.length > 0 ? body : undefined);
    if (!answer) return problem(res, 'unavailable', `No replica of the ${service} service can be reached; retry shortly.`);
    res.writeHead(answer.status, { 'content-type': 'application/json', [REQUEST_ID]: reqId, ...answer.headers, 'content-length': answer.body.length });
    res.end(answer.body);
  }

  /**
   * The live events of every replica of every service, merged into one server-sent event
   * stream: each upstream's events are passed on whole, as they come; an upstream that goes
   * away (a replica restarting) is followed again a second later.
   */
  function events(req: IncomingMessage, res: ServerResponse, url: string): void {
    res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache', connection: 'keep-alive', 'x-accel-buffering': 'no' });
    res.write(': the messages committed from now on, by every replica\n\n');
    const stop = new AbortController();
    for (const service of served) for (const replica of replicas[service]) void follow(replica.pool, url, res, stop.signal);
    const heartbeat = setInterval(() => res.write(': still here\n\n'), 15_000);
    res.on('close', () => {
      stop.abort();
      clearInterval(heartbeat);
    });
  }

  async function follow(pool: Pool, url: string, res: ServerResponse, signal: AbortSignal): Promise<void> {
    while (!signal.aborted) {
      try {
        const upstream = await pool.request({ method: 'GET', path: url, signal, headersTimeout: 0, bodyTimeout: 0 });
        let pending = '';
        for await (const chunk of upstream.body) {
          pending += String(chunk);
          const end = pending.lastIndexOf('\n\n');
          if (end === -1) continue;
          // Whole events only, and not the upstream's comments (its heartbeats): this stream has its own.
          const whole = pending.slice(0, end).split('\n\n').filter((block) => block !== '' && !block.startsWith(':'));
          pending = pending.slice(end + 2);
          if (whole.length > 0) res.write(`${whole.join('\n\n')}\n\n`);
        }
      } catch {
        // Gone (or aborted): follow it again shortly while the client listens.
      }
      await sleep(1_000, undefined, { signal }).catch(() => undefined);
    }
  }

  async function ready(res: ServerResponse): Promise<void> {
    const reasons: string[] = [];
    for (const service of served) {
      const answers = await Promise.all(replicas[service].map((r) => r.pool.request({ method: 'GET', path: '/readyz' })
        .then(async (x) => { await x.body.dump(); return x.statusCode === 200; }, () => false)));
      if (!answers.some(Boolean)) reasons.push(`no ready replica of ${service}`);
    }
    json(res, reasons.length === 0 ? 200 : 503, { ready: reasons.length === 0, reasons });
  }

  async function audit(res: ServerResponse, authorization: string | undefined): Promise<void> {
    const parts = await Promise.all(served.map(async (service) => {
      const answer = await forward(service, 'GET', '/admin/audit', authorization === undefined ? {} : { authorization }, undefined);
      if (!answer || answer.status !== 200) throw new Error(`${service} did not answer /admin/audit`);
      return JSON.parse(answer.body.toString()) as object;
    }));
    json(res, 200, Object.assign({}, ...parts));
  }

  /**
   * The dead letters of every service, merged: each service lists those of its consumers
   * (one replica each: the replicas of a service share its broker and store), and the groups
   * and the page are made again over all of them.
   */
  async function deadLetters(res: ServerResponse, url: string, authorization: string | undefined): Promise<void> {
    let query;
    try {
      query = deadLetterQuery(Object.fromEntries(new URLSearchParams(url.split('?')[1] ?? '')));
    } catch (error) {
      if (error instanceof Problem) return problem(res, error.code, error.detail);
      throw error;
    }
    const lists = await Promise.all(served.map(async (service) => {
      const answer = await forward(service, 'GET', `/admin/dead-letters?limit=${MAX_DEAD_LETTERS}`, authorization === undefined ? {} : { authorization }, undefined);
      if (!answer || answer.status !== 200) throw new Error(`${service} did not answer /admin/dead-letters`);
      return (JSON.parse(answer.body.toString()) as { dead_letters: DeadLetterSummary[] }).dead_letters;
    }));
    try {
      json(res, 200, deadLetterPage(lists.flat(), query));
    } catch (error) {
      if (error instanceof Problem) return problem(res, error.code, error.detail);
      throw error;
    }
  }

  /**
   * One dead letter (show, redrive, discard): the service that holds it answers. Which one that
   * is depends on the bus (the consumer's own, or in the synchronous style the order service,
   * which makes the calls), so each is asked in turn until one knows the id.
   */
  async function deadLetter(res: ServerResponse, method: string, url: string, authorization: string | undefined): Promise<void> {
    let last: Awaited<ReturnType<typeof forward>>;
    for (const service of served) {
      last = await forward(service, method, url, authorization === undefined ? {} : { authorization }, undefined);
      if (last && !(last.status === 404 && last.body.includes('"dead-letter-not-found"'))) break;
    }
    if (!last) return problem(res, 'unavailable', 'No replica of a service that may hold this dead letter can be reached; retry shortly.');
    res.writeHead(last.status, { 'content-type': 'application/json', ...last.headers, 'content-length': last.body.length });
    res.end(last.body);
  }

  const server = createServer({ connectionsCheckingInterval: 1_000 }, (req, res) => {
    handle(req, res).catch((err: unknown) => {
      log.error({ err, url: req.url }, 'gateway: request failed');
      if (!res.headersSent) problem(res, 'unavailable', 'The request could not be forwarded; retry shortly.');
      else res.destroy();
    });
  });
  server.keepAliveTimeout = 75_000;
  // The same answers to what the HTTP parser refuses as the services give (problem+json, then close).
  server.headersTimeout = 10_000;
  server.on('clientError', answerClientError);
  await new Promise<void>((resolve) => server.listen(port, host, resolve));
  const address = `http://${host}:${(server.address() as AddressInfo).port}`;
  log.info({ address, upstreams }, 'gateway is running');
  return {
    address,
    async close() {
      // close() waits for every connection to end: end them, idle or not.
      const closed = new Promise((resolve) => server.close(resolve));
      server.closeAllConnections();
      await closed;
      for (const list of Object.values(replicas)) for (const r of list) await r.pool.close();
    },
  };
}

function isConnectFailure(error: unknown): boolean {
  const code = (error as { code?: string }).code;
  return code === 'ECONNREFUSED' || code === 'UND_ERR_CONNECT_TIMEOUT' || code === 'ENOTFOUND' || code === 'EHOSTUNREACH';
}

/**
 * The body, read only up to MAX_BODY: a larger one (by its Content-Length, or as its chunks
 * arrive) stops the reading and is answered 413 at once.
 */
function readBody(req: IncomingMessage): Promise<Buffer | 'too-large'> {
  if (Number(req.headers['content-length'] ?? 0) > MAX_BODY) return Promise.resolve('too-large');
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size <= MAX_BODY) return void chunks.push(chunk);
      req.off('data', onData);
      resolve('too-large');
    };
    req.on('data', onData);
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

/**
 * Answers 413 and closes the connection: the rest of the body is not read (only drained, for
 * at most 2 s, so that the client sees the answer instead of a reset).
 */
function refuseBody(res: ServerResponse): void {
  const socket = res.req.socket;
  // Node's server closes the socket of a finished `Connection: close` answer at once
  // (destroySoon). With the body still arriving, that close is a reset, which may reach the client
  // before it has read the 413 and make its kernel discard it (2 in 300 on a busy machine). So
  // only this side is ended: the client reads the answer, then the end; the body is drained
  // meanwhile, and the socket closes once the client ends its side too, or after 2 s.
  socket.destroySoon = () => socket.end();
  res.shouldKeepAlive = false;
  problem(res, 'payload-too-large', `The request body is larger than ${MAX_BODY / 1024 / 1024} MiB.`);
  res.req.resume();
  res.once('finish', () => setTimeout(() => socket.destroy(), 2_000).unref());
}

function json(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

function problem(res: ServerResponse, code: ProblemCode, detail: string): void {
  const text = JSON.stringify(problemBody(code, detail, res.req.url));
  res.writeHead(problems[code].status, { 'content-type': 'application/problem+json; charset=utf-8', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}
