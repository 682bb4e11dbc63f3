import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { Pool } from 'undici';
import { accessCheck, type Access, type AccessPolicy } from '../http/access.ts';
import { drainAndClose } from '../http/drain.ts';
import { eventFilter, streamEvents, streamLimit, STREAMS_RETRY_AFTER_S } from '../http/events.ts';
import { deadLetterPage, deadLetterQuery, MAX_DEAD_LETTERS, type DeadLetterSummary } from '../http/deadLetters.ts';
import { registry } from '../observability/metrics.ts';
import { endServerSpan, serverSpan, tracingOn } from '../observability/tracing.ts';
import { REQUEST_ID, requestId } from '../http/requestId.ts';
import { answerClientError, Problem, problemBody, problems, type ProblemCode } from '../http/problems.ts';
import type { Logger } from '../ports/log.ts';
import { SERVICES, type ServiceName } from '../wiring/serviceNames.ts';
import { upstreamEvents } from './gatewayEvents.ts';

/** Replica URLs of each service the deployment runs (the tracker runs only in choreography). */
export type Upstreams = Readonly<Partial<Record<ServiceName, readonly string[]>>>;

const PREFIX: Readonly<Record<string, ServiceName>> = { stock: 'stock', payment: 'payment', orders: 'orders', fulfillment: 'fulfillment', notification: 'notification' };
/** The lifecycle API (/api/…): whose each resource is. */
const API: Readonly<Record<string, ServiceName>> = { orders: 'orders', shipments: 'fulfillment', customers: 'notification' };
/** Larger bodies are refused here; each service has its own, smaller limits (the synchronous style's saga calls carry up to 4 MiB). */
const MAX_BODY = 4 * 1024 * 1024;
/** The headers of a service's answer that the gateway passes on. */
const ANSWER_HEADERS = ['content-type', 'allow', 'location', 'retry-after', 'x-request-id', 'set-cookie', 'www-authenticate', 'cache-control',
  'content-security-policy', 'x-frame-options', 'x-content-type-options', 'referrer-policy', 'cross-origin-opener-policy', 'cross-origin-resource-policy',
  'origin-agent-cluster', 'x-dns-prefetch-control', 'x-download-options', 'x-permitted-cross-domain-policies', 'x-xss-protection'] as const;
/**
 * The headers of a request that the gateway passes on (the trace context too, when it makes no
 * span of its own): with those of the caller (credentials, Origin) and X-Forwarded-For/-Host,
 * which it sets, the service checks who may call the route it matched as if called directly.
 */
const REQUEST_HEADERS = ['idempotency-key', 'content-type', 'x-orderly-token', 'authorization', 'cookie', 'origin', 'sec-fetch-site', 'x-forwarded-proto',
  'traceparent', 'tracestate', 'prefer'] as const;
/** The gateway's own answers: what every answer of a service says too. */
const OWN_HEADERS = { 'x-content-type-options': 'nosniff', 'cache-control': 'no-store' } as const;
/** A readiness probe of a replica that has not answered by then counts as not ready. */
const READY_TIMEOUT_MS = 2_000;
/** A replica that refused a connection is skipped for this long. */
const COOL_DOWN_MS = 2_000;
/** Every replica's /healthz is asked this often and must answer within it. */
const PROBE_MS = 1_000;
/** How long replicas that never answered a health probe are taken to be starting, not down, in what the gateway logs. */
const START_GRACE_MS = 30_000;
/** Rounds over all replicas after a first one where none took the connection (100, 200, 400, 800 ms apart). */
const RETRY_ROUNDS = 4;

/**
 * The gateway: one port for the course API, spreading requests over the replicas of each
 * service (round robin). A replica that cannot be reached is skipped and the request goes to
 * the next one (safe: nothing was sent); when none can be, all are tried again for about
 * 1.5 s before the answer is 503. nginx or a Kubernetes ingress can take its place:
 * route /stock, /payment, /orders and /sagas (the tracker in choreography, else the order service) to the replicas of each service (see README).
 */
export type GatewayOptions = Readonly<{
  host: string;
  port: number;
  log: Logger;
  /** Who may call the gateway's own routes (events, metrics, the merged admin routes); the services check the rest. */
  access: AccessPolicy;
  maxEventStreams: number;
}>;

export async function startGateway(upstreams: Upstreams, options: GatewayOptions) {
  const { host, port, log } = options;
  const check = accessCheck(options.access);
  // The gateway asks the services' operator routes for a caller it has let through: with the token.
  const adminToken = options.access.adminToken;
  const asOperator = (): Record<string, string> => (adminToken === undefined ? {} : { authorization: `Bearer ${adminToken}` });
  const served = SERVICES.filter((name) => (upstreams[name] ?? []).length > 0);
  // The saga API: the tracker's in choreography, the order service's otherwise.
  const sagas: ServiceName = served.includes('tracker') ? 'tracker' : 'orders';
  const replicas = Object.fromEntries(SERVICES.map((name) => [name, (upstreams[name] ?? []).map((url) => ({
    url, pool: new Pool(url, { connections: 128, keepAliveTimeout: 30_000 }), probes: new Pool(url, { connections: 1 }), downUntil: 0, answeredAt: Date.now(), answered: false,
  }))])) as Record<ServiceName, Replica[]>;
  const next = Object.fromEntries(SERVICES.map((name) => [name, 0])) as Record<ServiceName, number>;
  const liveEvents = upstreamEvents(served.flatMap((service) => (upstreams[service] ?? [])), asOperator);
  const streams = streamLimit(options.maxEventStreams);

  /**
   * A replica whose host is cut off from the network refuses nothing: requests sent there wait.
   * Each replica's /healthz is asked every second (on a connection of its own, so that busy
   * request connections do not delay it), and one that has not answered one for two seconds
   * takes no new requests until it answers again.
   */
  const slowStarters = new Set<Replica>();
  const probing = setInterval(() => {
    for (const list of Object.values(replicas)) {
      for (const replica of list) {
        replica.probes.request({ method: 'GET', path: '/healthz', headersTimeout: PROBE_MS, bodyTimeout: PROBE_MS, signal: AbortSignal.timeout(PROBE_MS) })
          .then(async (res) => {
            await res.body.dump();
            if (replica.answered && isDown(replica)) log.info({ replica: replica.url }, 'gateway: a replica answers its health probe again');
            replica.answeredAt = Date.now();
            replica.answered = true;
          })
          .catch((error: unknown) => {
            if (replica.answered) {
              if (!isDown(replica) && Date.now() - replica.answeredAt > PROBE_MS) log.warn({ replica: replica.url, err: error }, 'gateway: a replica does not answer its health probes; sending it nothing new meanwhile');
            } else if (Date.now() - replica.answeredAt > START_GRACE_MS && !slowStarters.has(replica)) {
              // One that never answered is starting (the cluster starts them beside the gateway): said once, if it takes long.
              slowStarters.add(replica);
              log.warn({ replica: replica.url, err: error }, `gateway: a replica has not answered a health probe in the ${START_GRACE_MS / 1000} s since the gateway started; is it running at that URL?`);
            }
          });
      }
    }
  }, PROBE_MS);
  probing.unref();

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
        if (round === 0 && isDown(replica) && tried < list.length - 1) continue;
        try {
          const res = await replica.pool.request({ method: method as 'GET', path, headers, body, headersTimeout: 120_000, bodyTimeout: 120_000 });
          const kept = Object.fromEntries(ANSWER_HEADERS.flatMap((name) => (res.headers[name] === undefined ? [] : [[name, res.headers[name]]])));
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

  /** Whether the caller may call a route of the gateway's own of `access`; if not, it is answered. */
  function allowed(req: IncomingMessage, res: ServerResponse, access: Access): boolean {
    try {
      check(access, { method: req.method ?? 'GET', ip: req.socket.remoteAddress ?? '', headers: req.headers });
      return true;
    } catch (error) {
      if (!(error instanceof Problem)) throw error;
      problem(res, error.code, error.detail, error.code === 'unauthorized' ? { 'www-authenticate': 'Bearer realm="orderly"' } : {});
      return false;
    }
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = req.url ?? '/';
    // Routed by the decoded path, as the services' router matches it: /%61dmin/audit is /admin/audit.
    let path: string;
    try {
      path = decodeURIComponent(url.split('?')[0] ?? '/');
    } catch {
      return problem(res, 'invalid-url', 'The URL has a malformed percent-encoding, such as a lone "%" or "%zz".');
    }
    if (path === '/healthz') return json(res, 200, { status: 'ok' });
    if (path === '/readyz') return ready(res);
    const own = path === '/events' || path === '/metrics' || path === '/admin/audit' || path === '/admin/dead-letters' || path.startsWith('/admin/dead-letters/');
    if (own && !allowed(req, res, 'operator')) return;
    if (path === '/events') return events(res, url);
    if (path === '/metrics') {
      const text = await registry.metrics();
      res.writeHead(200, { ...OWN_HEADERS, 'content-type': registry.contentType, 'content-length': Buffer.byteLength(text) });
      return void res.end(text);
    }
    if (path === '/admin/audit') return audit(res);
    if (path === '/admin/dead-letters') return deadLetters(res, url);
    if (path.startsWith('/admin/dead-letters/')) return deadLetter(res, req.method ?? 'GET', url);
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
    const forwardedFor = req.headers['x-forwarded-for'];
    headers['x-forwarded-for'] = [typeof forwardedFor === 'string' ? forwardedFor : undefined, req.socket.remoteAddress ?? 'unknown'].filter(Boolean).join(', ');
    const forwardedHost = req.headers['x-forwarded-host'] ?? req.headers.host;
    if (typeof forwardedHost === 'string') headers['x-forwarded-host'] = forwardedHost;
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
   * stream (src/processes/gatewayEvents.ts): at most ORDERLY_MAX_EVENT_STREAMS at once, none of
   * them holding a connection that requests are forwarded on.
   */
  function events(res: ServerResponse, url: string): void {
    let release: () => void;
    try {
      release = streams.take();
    } catch (error) {
      if (!(error instanceof Problem)) throw error;
      return problem(res, error.code, error.detail, { 'retry-after': String(STREAMS_RETRY_AFTER_S) });
    }
    const wanted = eventFilter(Object.fromEntries(new URLSearchParams(url.split('?')[1] ?? '')));
    streamEvents(res, wanted, liveEvents.listen, 'the messages committed from now on, by every replica', release);
  }

  async function ready(res: ServerResponse): Promise<void> {
    const reasons: string[] = [];
    for (const service of served) {
      const answers = await Promise.all(replicas[service].map((r) => r.pool.request({ method: 'GET', path: '/readyz', headersTimeout: READY_TIMEOUT_MS, bodyTimeout: READY_TIMEOUT_MS, signal: AbortSignal.timeout(READY_TIMEOUT_MS) })
        .then(async (x) => { await x.body.dump(); return x.statusCode === 200; }, () => false)));
      if (!answers.some(Boolean)) reasons.push(`no ready replica of ${service}`);
    }
    json(res, reasons.length === 0 ? 200 : 503, { ready: reasons.length === 0, reasons });
  }

  async function audit(res: ServerResponse): Promise<void> {
    const parts = await Promise.all(served.map(async (service) => {
      const answer = await forward(service, 'GET', '/admin/audit', asOperator(), undefined);
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
  async function deadLetters(res: ServerResponse, url: string): Promise<void> {
    let query;
    try {
      query = deadLetterQuery(Object.fromEntries(new URLSearchParams(url.split('?')[1] ?? '')));
    } catch (error) {
      if (error instanceof Problem) return problem(res, error.code, error.detail);
      throw error;
    }
    const lists = await Promise.all(served.map(async (service) => {
      const answer = await forward(service, 'GET', `/admin/dead-letters?limit=${MAX_DEAD_LETTERS}`, asOperator(), undefined);
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
  async function deadLetter(res: ServerResponse, method: string, url: string): Promise<void> {
    let last: Awaited<ReturnType<typeof forward>>;
    for (const service of served) {
      last = await forward(service, method, url, asOperator(), undefined);
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
      clearInterval(probing);
      await liveEvents.close();
      for (const list of Object.values(replicas)) for (const r of list) await Promise.all([r.pool.close(), r.probes.destroy()]);
    },
  };
}

type Replica = {
  readonly url: string; readonly pool: Pool; readonly probes: Pool;
  /** Until when it is skipped after it refused a connection. */
  downUntil: number;
  /** When it last answered a health probe (when the gateway started, until it has). */
  answeredAt: number;
  /** Whether it has answered a health probe since the gateway started. */
  answered: boolean;
};

/** Skipped by new requests: it refused a connection a moment ago, or has not answered its health probes for two of their periods. */
const isDown = (replica: Replica) => replica.downUntil > Date.now() || Date.now() - replica.answeredAt > 2 * PROBE_MS;

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

/** Answers 413 and closes the connection once the body is drained (src/http/drain.ts). */
function refuseBody(res: ServerResponse): void {
  drainAndClose(res);
  problem(res, 'payload-too-large', `The request body is larger than ${MAX_BODY / 1024 / 1024} MiB.`);
}

function json(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { ...OWN_HEADERS, 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

function problem(res: ServerResponse, code: ProblemCode, detail: string, extra: Readonly<Record<string, string>> = {}): void {
  const text = JSON.stringify(problemBody(code, detail, res.req.url));
  res.writeHead(problems[code].status, { ...OWN_HEADERS, ...extra, 'content-type': 'application/problem+json; charset=utf-8', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}
