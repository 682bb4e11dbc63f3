import type { FastifyInstance } from 'fastify';
import { timingSafeEqual } from 'node:crypto';
import { Pool } from 'undici';
import type { Envelope } from '../../core/message.ts';
import { Problem } from '../../http/problems.ts';
import type { ServiceRuntime } from '../../runtime/serviceRuntime.ts';
import { Unreachable, type Call } from './bus.ts';

/** The path, under a participant's prefix, where the synchronous style calls its saga steps. */
export const SAGA_CALL_PATH = '/_saga';
/** Commands per HTTP request. */
const PER_REQUEST = 64;
/** The header that carries the deployment's internal token. */
const TOKEN_HEADER = 'x-orderly-token';

/** Calls participants over HTTP through `baseUrl` (the gateway, or anything routing /stock and /payment). */
export function httpCall(baseUrl: string, token: string): Call & { close(): Promise<void> } {
  const pool = new Pool(baseUrl, { connections: 64, keepAliveTimeout: 30_000 });
  const post = async (participant: string, commands: readonly Envelope[]) => {
    const where = `POST ${baseUrl}/${participant}${SAGA_CALL_PATH}`;
    const res = await pool.request({
      method: 'POST', path: `/${participant}${SAGA_CALL_PATH}`, body: JSON.stringify(commands),
      headers: { 'content-type': 'application/json', [TOKEN_HEADER]: token }, headersTimeout: 30_000, bodyTimeout: 30_000,
    }).catch((error: unknown) => {
      throw new Unreachable(`${where}: ${error instanceof Error ? error.message : String(error)}`);
    });
    const text = await res.body.text();
    // 502-504: the gateway found no replica; the participant may be restarting.
    if (res.statusCode >= 502 && res.statusCode <= 504) throw new Unreachable(`${where} answered ${res.statusCode}: ${text.slice(0, 300)}`);
    if (res.statusCode !== 200) throw new Error(`${where} answered ${res.statusCode}: ${text.slice(0, 300)}`);
    return JSON.parse(text) as Envelope[][];
  };
  const call = async (participant: string, commands: readonly Envelope[]) => {
    const requests: Promise<Envelope[][]>[] = [];
    for (let i = 0; i < commands.length; i += PER_REQUEST) requests.push(post(participant, commands.slice(i, i + PER_REQUEST)));
    return (await Promise.all(requests)).flat();
  };
  return Object.assign(call, { close: () => pool.close() });
}

/**
 * The route a participant answers synchronous saga calls on: a JSON array of command envelopes
 * in, for each the envelopes it answered, once committed. Only saga commands are accepted
 * (the types the participant consumes); its API commands go through their own routes.
 * Only callers with the deployment's internal token may call: a saga step called by anyone
 * else (a release or a void in the middle of a checkout) would break the checkout's accounts.
 */
export function sagaCallRoute(runtime: ServiceRuntime, token: string) {
  const accepted = new Set(runtime.consumes);
  const expected = Buffer.from(token);
  return async (app: FastifyInstance) => {
    app.post<{ Body: unknown }>(SAGA_CALL_PATH, { bodyLimit: 4 * 1024 * 1024 }, async (req) => {
      const given = Buffer.from(String(req.headers[TOKEN_HEADER] ?? ''));
      if (given.length !== expected.length || !timingSafeEqual(given, expected)) {
        throw new Problem('forbidden', `Saga steps are called by the order service only, with the deployment's ${TOKEN_HEADER} (ORDERLY_INTERNAL_TOKEN).`);
      }
      const commands = envelopes(req.body, accepted, (m) => {
        const parsed = runtime.parse(m);
        return parsed.ok ? undefined : parsed.problem;
      });
      return Promise.all(commands.map((command) => runtime.call(command)));
    });
  };
}

function envelopes(body: unknown, accepted: ReadonlySet<string>, problemOf: (message: Envelope) => string | undefined): Envelope[] {
  if (!Array.isArray(body)) throw new Problem('invalid-body', 'Send a JSON array of saga command envelopes.');
  return body.map((item: unknown, i) => {
    const m = item as Record<string, unknown> | null;
    const strings = ['id', 'type', 'sagaId', 'step', 'correlationId', 'causationId'];
    if (typeof m !== 'object' || m === null || strings.some((f) => typeof m[f] !== 'string') || typeof m.at !== 'number' || typeof m.payload !== 'object' || m.payload === null) {
      throw new Problem('invalid-body', `Command ${i} is not an envelope: it needs string id, type, sagaId, step, correlationId and causationId, a number at and an object payload.`);
    }
    if (!accepted.has(m.type as string)) throw new Problem('invalid-body', `Command ${i} has type ${String(m.type)}; this service takes ${[...accepted].join(', ')}.`);
    if (m.sagaId === '') throw new Problem('invalid-body', `Command ${i} has no sagaId.`);
    const envelope = m as unknown as Envelope;
    const problem = problemOf(envelope);
    if (problem !== undefined) throw new Problem('invalid-body', `Command ${i}: ${problem}.`);
    return envelope;
  });
}
