import { Pool } from 'undici';
import type { Envelope } from '../../core/message.ts';
import { SAGA_CALL_PATH, TOKEN_HEADER, type Call } from '../../ports/calls.ts';
import { Unreachable } from './bus.ts';

/** Commands per HTTP request. */
const PER_REQUEST = 64;

/** Calls participants over HTTP through `baseUrl` (the gateway, or anything routing /stock and /payment). */
export function httpCall(baseUrl: string, token: string): Call & { close(): Promise<void> } {
  const pool = new Pool(baseUrl, { connections: 64, keepAliveTimeout: 30_000 });
  const post = async (participant: string, commands: readonly Envelope[]) => {
    const where = `POST ${baseUrl}/${participant}${SAGA_CALL_PATH}`;
    const headers: Record<string, string> = { 'content-type': 'application/json', [TOKEN_HEADER]: token };
    // The request continues the trace of its first traced command (each command's own span, on
    // the participant, continues its own: a request may carry commands of several checkouts).
    const traceparent = commands.find((c) => c.traceparent !== undefined)?.traceparent;
    if (traceparent !== undefined) headers.traceparent = traceparent;
    const res = await pool.request({
      method: 'POST', path: `/${participant}${SAGA_CALL_PATH}`, body: JSON.stringify(commands),
      headers, headersTimeout: 30_000, bodyTimeout: 30_000,
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
