import { isIP } from 'node:net';
import { resolve } from 'node:path';
import { DEFAULT_TRACES_PER_SECOND, type TraceSampling } from './observability/tracing.ts';

export const SAGA_STYLES = ['orchestration', 'choreography', 'synchronous'] as const;
/** How checkouts are coordinated (docs/saga-styles.md): one setting for a whole deployment. */
export type SagaStyle = (typeof SAGA_STYLES)[number];

export const EMBEDDED_STORES = ['sqlite', 'pglite'] as const;
/** The database of `npm start`'s services: SQLite (node:sqlite, the default) or PGlite. */
export type EmbeddedStore = (typeof EMBEDDED_STORES)[number];

export const LOG_FORMATS = ['auto', 'json', 'pretty'] as const;
export type LogFormat = (typeof LOG_FORMATS)[number];

/** Settings of a process, read once from the environment at start-up. */
export type Config = Readonly<{
  sagaStyle: SagaStyle;
  host: string;
  port: number;
  dataDir: string;
  embeddedStore: EmbeddedStore;
  logLevel: string;
  /** How log lines look: `pretty` (readable, for a terminal), `json`, or `auto` (pretty on a terminal, JSON otherwise). */
  logFormat: LogFormat;
  /**
   * OTEL_EXPORTER_OTLP_ENDPOINT: where traces go (OTLP over HTTP, `<endpoint>/v1/traces`).
   * Unset, tracing is off: no SDK is started and no spans are made.
   */
  otlpEndpoint: string | undefined;
  /**
   * Which traces begun here are recorded: every one up to ORDERLY_TRACES_PER_SECOND a second
   * (default 20), or, when ORDERLY_TRACE_SAMPLE_RATIO is set, that share of them (0 to 1).
   */
  traceSampling: TraceSampling;
  /** How long a checkout request waits for its saga before answering 504. */
  checkoutWaitMs: number;
  /** Saga step time-out before a retry or compensation. */
  sagaStepTimeoutMs: number;
  /** Most messages committed per transaction. */
  maxBatch: number;
  /**
   * ORDERLY_CACHE_DOCS: documents each service process keeps in memory between transactions on
   * PostgreSQL and Redis (src/adapters/storeKit.ts `DocCache`: a transaction whose every document
   * is kept commits without reading them; the commit's version checks catch a stale copy); 0 (the
   * default): none, since measured side by side it saved reads but no CPU yet (docs/scaling.md).
   */
  cacheDocs: number;
  /**
   * The secret the synchronous style's saga calls carry between processes: without it, anyone
   * who reaches a participant could release stock or void a payment of a running checkout.
   */
  internalToken: string | undefined;
  /**
   * What operator routes (the console's data, /sagas, /events, /metrics, /admin/…) need as a
   * bearer token or a console session; unset, they answer on this machine only (docs/security.md).
   */
  adminToken: string | undefined;
  /**
   * ORDERLY_API_TOKEN: the keys the shop API (course and lifecycle routes) takes as bearer tokens,
   * comma-separated (one per calling backend; each is its own caller for Idempotency-Keys).
   * Empty: the shop API is open to whoever reaches the port, as the course's clients expect.
   */
  apiTokens: readonly string[];
  /**
   * ORDERLY_ALLOWED_HOSTS: the Host names requests may carry, comma-separated (`*`: any). By
   * default the loopback names while HOST is a loopback address (so a web page that rebinds its
   * name to 127.0.0.1 is refused), any otherwise.
   */
  allowedHosts: readonly string[] | 'any';
  /** ORDERLY_FIXTURES: whether the course's batch_init fixtures answer (default: on for `npm start` and `npm run cluster`, off for `orderly service`). */
  fixtures: boolean | undefined;
  /** Most live event streams (GET /events) one process holds open at once; more are answered 503. */
  maxEventStreams: number;
  /**
   * ORDERLY_PARTITIONS: how many partitions each service's messages are split into, each read by
   * one replica at a time (Redis Streams, NATS JetStream, RabbitMQ; docs/scaling.md); 0 (the default): none, replicas
   * compete for messages, which measured faster so far. The same for every process of a
   * deployment; changing it needs the streams (or queues) drained first.
   */
  partitions: number;
  /** A checkout not paid for within this long is cancelled and its stock released (0: never). */
  reservationTtlMs: number;
  /** The fraud check's limits (0: off): the largest payment, and payments per user within `windowMs`. */
  fraud: Readonly<{ maxAmount: number; maxPerWindow: number; windowMs: number }>;
  /** The checkout definition new checkouts start under (1: the course's; 2: the whole lifecycle). */
  checkoutVersion: 1 | 2;
}>;

export class ConfigError extends Error {}

type Env = Readonly<Record<string, string | undefined>>;

export function loadConfig(env: Env = process.env): Config {
  return Object.freeze({
    sagaStyle: oneOf(env, 'SAGA_STYLE', 'orchestration', SAGA_STYLES),
    host: env.HOST ?? '127.0.0.1',
    port: int(env, 'PORT', 8000, 0, 65535),
    dataDir: resolve(env.ORDERLY_DATA_DIR ?? './data'),
    embeddedStore: oneOf(env, 'ORDERLY_EMBEDDED_STORE', 'sqlite', EMBEDDED_STORES),
    logLevel: oneOf(env, 'LOG_LEVEL', 'info', ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']),
    logFormat: oneOf(env, 'LOG_FORMAT', 'auto', LOG_FORMATS),
    otlpEndpoint: httpUrl(env, 'OTEL_EXPORTER_OTLP_ENDPOINT'),
    traceSampling: traceSampling(env),
    checkoutWaitMs: int(env, 'ORDERLY_CHECKOUT_WAIT_MS', 60_000, 1, 3_600_000),
    sagaStepTimeoutMs: int(env, 'ORDERLY_SAGA_STEP_TIMEOUT_MS', 10_000, 10, 3_600_000),
    maxBatch: int(env, 'ORDERLY_MAX_BATCH', 256, 1, 100_000),
    cacheDocs: int(env, 'ORDERLY_CACHE_DOCS', 0, 0, 10_000_000),
    internalToken: token(env, 'ORDERLY_INTERNAL_TOKEN'),
    adminToken: token(env, 'ORDERLY_ADMIN_TOKEN'),
    apiTokens: tokens(env, 'ORDERLY_API_TOKEN'),
    allowedHosts: allowedHosts(env, env.HOST ?? '127.0.0.1'),
    fixtures: onOff(env, 'ORDERLY_FIXTURES'),
    maxEventStreams: int(env, 'ORDERLY_MAX_EVENT_STREAMS', 1_000, 0, 100_000),
    partitions: int(env, 'ORDERLY_PARTITIONS', 0, 0, 1024),
    reservationTtlMs: int(env, 'ORDERLY_RESERVATION_TTL_MS', 15 * 60_000, 0, 7 * 24 * 3_600_000),
    fraud: Object.freeze({
      maxAmount: int(env, 'ORDERLY_FRAUD_MAX_AMOUNT', 0, 0, Number.MAX_SAFE_INTEGER),
      maxPerWindow: int(env, 'ORDERLY_FRAUD_MAX_PER_USER', 0, 0, 1_000_000),
      windowMs: int(env, 'ORDERLY_FRAUD_WINDOW_MS', 60_000, 1, 7 * 24 * 3_600_000),
    }),
    checkoutVersion: oneOf(env, 'ORDERLY_CHECKOUT_VERSION', '2', ['1', '2'] as const) === '1' ? 1 : 2,
  });
}

function int(env: Env, name: string, fallback: number, min: number, max: number): number {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!/^[0-9]+$/.test(raw) || n < min || n > max) {
    throw new ConfigError(`${name}=${raw} is not valid: use a whole number from ${min} to ${max} (default ${fallback}).`);
  }
  return n;
}

function traceSampling(env: Env): TraceSampling {
  const set = (name: string) => env[name] !== undefined && env[name] !== '';
  if (set('ORDERLY_TRACE_SAMPLE_RATIO') && set('ORDERLY_TRACES_PER_SECOND')) {
    throw new ConfigError('ORDERLY_TRACE_SAMPLE_RATIO and ORDERLY_TRACES_PER_SECOND are both set: set one (a share of the traces, or at most so many a second).');
  }
  if (set('ORDERLY_TRACE_SAMPLE_RATIO')) return { ratio: ratio(env, 'ORDERLY_TRACE_SAMPLE_RATIO', 1) };
  return { perSecond: int(env, 'ORDERLY_TRACES_PER_SECOND', DEFAULT_TRACES_PER_SECOND, 1, 1_000_000) };
}

function ratio(env: Env, name: string, fallback: number): number {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!/^[0-9.]+$/.test(raw) || !(n >= 0 && n <= 1)) throw new ConfigError(`${name}=${raw} is not valid: use a number from 0 to 1 (default ${fallback}).`);
  return n;
}

function httpUrl(env: Env, name: string): string | undefined {
  const raw = env[name];
  if (raw === undefined || raw === '') return undefined;
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new ConfigError(`${name}=${raw} is not a URL: use the OTLP/HTTP endpoint of a collector, such as http://127.0.0.1:4318.`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new ConfigError(`${name}=${raw} is not valid: traces are sent over OTLP/HTTP, so use an http:// or https:// URL (such as http://127.0.0.1:4318).`);
  return raw.replace(/\/+$/, '');
}

function token(env: Env, name: string): string | undefined {
  const raw = env[name];
  if (raw === undefined || raw === '') return undefined;
  if (raw.length < 16 || !/^[\x21-\x7e]+$/.test(raw)) throw new ConfigError(`${name} must be at least 16 visible ASCII characters (for example: openssl rand -hex 16).`);
  return raw;
}

function tokens(env: Env, name: string): readonly string[] {
  const raw = env[name];
  if (raw === undefined || raw === '') return Object.freeze([]);
  return Object.freeze(raw.split(',').map((one, i) => {
    try {
      return token({ [name]: one.trim() }, name) ?? '';
    } catch {
      throw new ConfigError(`${name}: key ${i + 1} is not valid: each comma-separated key must be at least 16 visible ASCII characters other than a comma (for example: openssl rand -hex 16).`);
    }
  }).filter((one) => one !== ''));
}

const LOOPBACK_NAMES = ['localhost', '*.localhost', '127.0.0.1', '::1'] as const;

function allowedHosts(env: Env, host: string): readonly string[] | 'any' {
  const raw = env.ORDERLY_ALLOWED_HOSTS;
  if (raw === undefined || raw === '') {
    const loopback = host === 'localhost' || host === '::1' || /^127\.[0-9.]+$/.test(host);
    return loopback ? Object.freeze([...new Set([...LOOPBACK_NAMES, host])]) : 'any';
  }
  if (raw.trim() === '*') return 'any';
  // Names as a Host header carries them without its port; an IPv6 address without brackets.
  const names = raw.split(',').map((name) => name.trim().toLowerCase().replace(/^\[(.*)\]$/, '$1')).filter(Boolean);
  const bad = names.find((name) => !/^(\*\.)?[a-z0-9.-]+$/.test(name) && isIP(name) !== 6);
  if (bad !== undefined) throw new ConfigError(`ORDERLY_ALLOWED_HOSTS: ${bad} is not a host name; list names without ports, such as shop.example.com,*.internal (or * for any).`);
  return Object.freeze(names);
}

function onOff(env: Env, name: string): boolean | undefined {
  const raw = env[name];
  if (raw === undefined || raw === '') return undefined;
  if (raw === 'on' || raw === 'off') return raw === 'on';
  throw new ConfigError(`${name}=${raw} is not valid: use on or off.`);
}

function oneOf<T extends string>(env: Env, name: string, fallback: T, allowed: readonly T[]): T {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  if (!(allowed as readonly string[]).includes(raw)) throw new ConfigError(`${name}=${raw} is not valid: use one of ${allowed.join(', ')}.`);
  return raw as T;
}
