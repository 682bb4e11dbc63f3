import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import { isIP } from 'node:net';
import { parse as parseCookies } from 'cookie';
import type { Config } from '../config.ts';
import { TOKEN_HEADER } from '../ports/calls.ts';
import { Problem } from './problems.ts';

/**
 * Who may call a route (docs/security.md). Every route declares one class; one check, on the
 * route the router matched (never on a URL prefix), enforces it:
 * - `open`: health, readiness, the console's and the API docs' static files, the sign-in;
 * - `shop`: the shop API (course and lifecycle routes), for the shop's backend: the
 *   ORDERLY_API_TOKEN keys when set, else anyone who reaches the port;
 * - `fixture`: the course's batch_init, which resets data: only while fixtures are on, and as `shop`;
 * - `operator`: the console's data, /sagas, /events, /metrics, dead letters, the audit:
 *   ORDERLY_ADMIN_TOKEN (a bearer token or a console session) when set, else this machine only;
 * - `internal`: service to service (the synchronous style's saga calls): ORDERLY_INTERNAL_TOKEN.
 */
export const ACCESS_CLASSES = ['open', 'shop', 'fixture', 'operator', 'internal'] as const;
export type Access = (typeof ACCESS_CLASSES)[number];

export type AccessPolicy = Readonly<{
  adminToken: string | undefined;
  apiTokens: readonly string[];
  internalToken: string | undefined;
  /** Whether batch_init answers. */
  fixtures: boolean;
  allowedHosts: readonly string[] | 'any';
}>;

/** A process's policy from its settings; `fixturesByDefault` where ORDERLY_FIXTURES is unset. */
export function policyOf(config: Config, fixturesByDefault: boolean): AccessPolicy {
  return Object.freeze({
    adminToken: config.adminToken, apiTokens: config.apiTokens, internalToken: config.internalToken,
    fixtures: config.fixtures ?? fixturesByDefault, allowedHosts: config.allowedHosts,
  });
}

/** Who a request comes from, as far as the check could tell: the scope of its Idempotency-Keys. */
export type Caller = Readonly<{ id: string }>;

export type RequestFacts = Readonly<{
  method: string;
  /** The peer's address (the TCP connection's). */
  ip: string;
  headers: Readonly<Record<string, string | string[] | undefined>>;
}>;

/** The cookie the console's sign-in sets: an expiry and a MAC of it under the admin token. */
export const SESSION_COOKIE = 'orderly_session';
const SESSION_MS = 12 * 3_600_000;
const ANONYMOUS: Caller = Object.freeze({ id: 'anonymous' });
const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

/**
 * The check of a policy: given a route's class and a request, the caller, or a Problem that
 * says what is missing. Pure apart from the clock (session expiry).
 */
export function accessCheck(policy: AccessPolicy): (access: Access | 'open-state-change', request: RequestFacts) => Caller {
  const admin = policy.adminToken === undefined ? undefined : digest(policy.adminToken);
  const keys = policy.apiTokens.map((key) => ({ digest: digest(key), caller: Object.freeze({ id: `key:${fingerprint(key)}` }) }));
  const operator: Caller = Object.freeze({ id: policy.adminToken === undefined ? 'local-operator' : `operator:${fingerprint(policy.adminToken)}` });
  const internal = policy.internalToken === undefined ? undefined : digest(policy.internalToken);

  const bearer = (request: RequestFacts): Buffer | undefined => {
    const header = request.headers.authorization;
    if (typeof header !== 'string') return undefined;
    const match = /^Bearer +(\S+) *$/i.exec(header);
    return match?.[1] === undefined ? Buffer.alloc(0) : digest(match[1]);
  };
  const isOperator = (request: RequestFacts, given: Buffer | undefined) =>
    admin !== undefined && ((given !== undefined && given.length === admin.length && timingSafeEqual(given, admin)) || validSession(policy.adminToken!, request.headers.cookie));

  return (access, request) => {
    if (access === 'open') return ANONYMOUS;
    checkHost(policy.allowedHosts, request);
    if (!SAFE_METHODS.has(request.method.toUpperCase())) checkNotCrossSite(request);
    const given = bearer(request);
    switch (access) {
      // An open route that changes something (the console's sign-in): only the checks above.
      case 'open-state-change':
        return ANONYMOUS;
      case 'internal': {
        const header = request.headers[TOKEN_HEADER];
        if (internal === undefined || typeof header !== 'string' || !timingSafeEqual(digest(header), internal)) {
          throw new Problem('forbidden', `Saga steps are called by the order service only, with the deployment's ${TOKEN_HEADER} (ORDERLY_INTERNAL_TOKEN).`);
        }
        return Object.freeze({ id: 'internal' });
      }
      case 'operator': {
        if (admin === undefined) {
          onThisMachineOnly(request);
          return operator;
        }
        if (isOperator(request, given)) return operator;
        if (given === undefined || given.length === 0) {
          throw new Problem('unauthorized', 'Operator routes need Authorization: Bearer <ORDERLY_ADMIN_TOKEN>, or a console session (sign in at /).');
        }
        throw new Problem('forbidden', 'The bearer token is not this deployment\'s ORDERLY_ADMIN_TOKEN.');
      }
      case 'fixture':
      case 'shop': {
        if (access === 'fixture' && !policy.fixtures) {
          throw new Problem('fixtures-off', 'batch_init is a test fixture that replaces data, and fixtures are off on this deployment: start it with ORDERLY_FIXTURES=on to use them.');
        }
        if (keys.length === 0) return ANONYMOUS;
        if (given !== undefined && given.length > 0) {
          const key = keys.find((k) => timingSafeEqual(given, k.digest));
          if (key) return key.caller;
        }
        // An operator may do what the shop may.
        if (isOperator(request, given)) return operator;
        if (given === undefined || given.length === 0) throw new Problem('unauthorized', 'The shop API needs Authorization: Bearer <one of ORDERLY_API_TOKEN\'s keys>.');
        throw new Problem('forbidden', 'The bearer token is not one of this deployment\'s ORDERLY_API_TOKEN keys.');
      }
      default:
        return access satisfies never;
    }
  };
}

/** The Set-Cookie value of a new console session under `adminToken`. */
export function sessionCookie(adminToken: string, now: number, secure: boolean): string {
  const expires = now + SESSION_MS;
  return `${SESSION_COOKIE}=${expires}.${mac(adminToken, expires)}; Path=/; HttpOnly; SameSite=Strict; Max-Age=${SESSION_MS / 1000}${secure ? '; Secure' : ''}`;
}

export const clearedSessionCookie = `${SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0`;

/** Whether `token` is the admin token (for the sign-in), in time that does not depend on how much of it matches. */
export function isAdminToken(policy: AccessPolicy, token: string): boolean {
  return policy.adminToken !== undefined && timingSafeEqual(digest(token), digest(policy.adminToken));
}

function validSession(adminToken: string, header: string | string[] | undefined): boolean {
  if (typeof header !== 'string' || !header.includes(SESSION_COOKIE)) return false;
  const value = parseCookies(header)[SESSION_COOKIE];
  const match = value === undefined ? null : /^([0-9]{13})\.([A-Za-z0-9_-]{43})$/.exec(value);
  if (!match?.[1] || !match[2]) return false;
  const expires = Number(match[1]);
  return expires > Date.now() && timingSafeEqual(Buffer.from(match[2]), Buffer.from(mac(adminToken, expires)));
}

const mac = (adminToken: string, expires: number) => createHmac('sha256', adminToken).update(`orderly-console-session:${expires}`).digest('base64url');

/**
 * A Host the deployment does not answer to is refused: with the default list (the loopback names,
 * while the server listens on loopback), a web page that rebinds its own name to 127.0.0.1 cannot
 * reach it. A proxy's X-Forwarded-Host must be allowed as well.
 */
function checkHost(allowed: readonly string[] | 'any', request: RequestFacts): void {
  if (allowed === 'any') return;
  for (const name of ['host', 'x-forwarded-host'] as const) {
    const value = request.headers[name];
    if (value === undefined && name === 'x-forwarded-host') continue;
    const host = hostnameOf(typeof value === 'string' ? value : '');
    if (host === undefined || !allowed.some((entry) => entry === host || (entry.startsWith('*.') && host.endsWith(entry.slice(1))))) {
      throw new Problem('host-not-allowed', `This server does not answer to the host ${JSON.stringify(typeof value === 'string' ? value : '')}; it answers to ${allowed.join(', ')}. Set ORDERLY_ALLOWED_HOSTS on the server to add names.`);
    }
  }
}

/**
 * A state change a browser sends on behalf of another site is refused: a cross-site Origin or
 * Sec-Fetch-Site, or a body a web form can send without asking (anything but JSON).
 */
function checkNotCrossSite(request: RequestFacts): void {
  const type = request.headers['content-type'];
  if (type !== undefined && !/^application\/([a-z0-9.+-]+\+)?json\s*(;|$)/i.test(String(type))) {
    throw new Problem('unsupported-media-type', `A request that changes something takes a JSON body (Content-Type: application/json) or none; this one is ${String(type)}.`);
  }
  const site = request.headers['sec-fetch-site'];
  if (site === 'cross-site' || site === 'same-site') throw new Problem('cross-site-request', 'A web page of another site may not change anything here.');
  const origin = request.headers.origin;
  if (typeof origin === 'string') {
    const host = request.headers['x-forwarded-host'] ?? request.headers.host;
    let originHost: string | undefined;
    try {
      originHost = new URL(origin).host;
    } catch {
      originHost = undefined;
    }
    if (originHost === undefined || originHost !== host) throw new Problem('cross-site-request', `A web page of ${origin} may not change anything here.`);
  }
}

/**
 * Without an admin token, operator routes answer only what comes from this machine: the peer is
 * loopback, and so is the client a same-host proxy names (X-Forwarded-For, Forwarded), the Host
 * and any Origin.
 */
function onThisMachineOnly(request: RequestFacts): void {
  const refuse = (why: string) => new Problem('forbidden', `Operator routes answer only on this machine while ORDERLY_ADMIN_TOKEN is unset (${why}); set it on the server and send Authorization: Bearer <token>, or sign in on the console.`);
  if (!isLoopback(request.ip)) throw refuse(`this request comes from ${request.ip}`);
  for (const client of forwardedClients(request.headers)) if (!isLoopback(client)) throw refuse(`a proxy forwards it from ${client}`);
  for (const name of ['host', 'x-forwarded-host'] as const) {
    const value = request.headers[name];
    if (value === undefined && name === 'x-forwarded-host') continue;
    const host = hostnameOf(typeof value === 'string' ? value : '');
    if (host === undefined || !isLoopbackName(host)) throw refuse(`it is addressed to ${String(value ?? 'no host')}`);
  }
  const origin = request.headers.origin;
  if (typeof origin === 'string' && origin !== 'null') {
    let host: string | undefined;
    try {
      host = new URL(origin).hostname.replace(/^\[|\]$/g, '');
    } catch {
      host = undefined;
    }
    if (host === undefined || !isLoopbackName(host)) throw refuse(`a page of ${origin} sent it`);
  }
}

/** The client addresses a proxy says it forwards for (X-Forwarded-For and Forwarded's for=). */
function forwardedClients(headers: RequestFacts['headers']): string[] {
  const list = (name: string) => [headers[name]].flat().filter((v): v is string => typeof v === 'string');
  const xff = list('x-forwarded-for').flatMap((v) => v.split(',')).map((v) => v.trim()).filter(Boolean);
  const forwarded = list('forwarded').flatMap((v) => [...v.matchAll(/for="?\[?([^\]";,]+)/gi)].map((m) => m[1] ?? ''));
  // An address may come with a port (1.2.3.4:5678); anything that is no address (unknown, _hidden) is no loopback.
  return [...xff, ...forwarded].map((address) => {
    const bare = address.replace(/^\[|\]$/g, '');
    if (isIP(bare) !== 0) return bare;
    const withPort = /^\[?([^\]]+?)\]?:[0-9]+$/.exec(address)?.[1];
    return withPort !== undefined && isIP(withPort) !== 0 ? withPort : address;
  });
}

/** The host name of a Host header value (without the port, brackets of IPv6 removed), lower-cased. */
export function hostnameOf(value: string): string | undefined {
  if (value === '') return undefined;
  const match = /^(\[[0-9a-fA-F:.]+\]|[^:[\]]+)(:[0-9]{1,5})?$/.exec(value.trim());
  return match?.[1]?.replace(/^\[|\]$/g, '').toLowerCase();
}

function isLoopbackName(host: string): boolean {
  return host === 'localhost' || host.endsWith('.localhost') || isLoopback(host);
}

export function isLoopback(ip: string): boolean {
  const v4 = ip.startsWith('::ffff:') ? ip.slice(7) : ip;
  return (isIP(v4) === 4 && v4.startsWith('127.')) || ip === '::1';
}

/** Fixed-length digests, so that comparing them takes the same time whatever the token. */
const digest = (value: string) => createHash('sha256').update(value).digest();
const fingerprint = (value: string) => createHash('sha256').update(value).digest('hex').slice(0, 16);
