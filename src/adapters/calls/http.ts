import { Pool } from 'undici';
import type { Envelope } from '../../core/message.ts';
import { SAGA_CALL_PATH, TOKEN_HEADER, type Call } from '../../ports/calls.ts';

/** Commands per HTTP request. */
const PER_REQUEST = 64;

/** Calls participants over HTTP through `baseUrl` (the gateway, or anything routing /stock and /payment). */
export function httpCall(baseUrl: string, token: string): Call & { close(): Promise<void> } {
  const pool = new Pool(baseUrl, { connections: 64, keepAliveTimeout: 30_000 });
  const post = async (participant: string, commands: readonly Envelope[]) => {
    const res = await pool.request({
      method: 'POST', path: `/${participant}${SAGA_CALL_PATH}`, body: JSON.stringify(commands),
      headers: { 'content-type': 'application/json', [TOKEN_HEADER]: token }, headersTimeout: 30_000, bodyTimeout: 30_000,
    });
    const text = await res.body.text();
    if (res.statusCode !== 200) throw new Error(`POST ${baseUrl}/${participant}${SAGA_CALL_PATH} answered ${res.statusCode}: ${text.slice(0, 300)}`);
    return JSON.parse(text) as Envelope[][];
  };
  const call = async (participant: string, commands: readonly Envelope[]) => {
    const requests: Promise<Envelope[][]>[] = [];
    for (let i = 0; i < commands.length; i += PER_REQUEST) requests.push(post(participant, commands.slice(i, i + PER_REQUEST)));
    return (await Promise.all(requests)).flat();
  };
  return Object.assign(call, { close: () => pool.close() });
}
