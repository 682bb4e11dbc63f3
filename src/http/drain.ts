import type { ServerResponse } from 'node:http';

/** How long a refused body is read (and thrown away) so that the client gets the answer. */
const DRAIN_MS = 2_000;

/**
 * Makes the answer being sent on `res` the connection's last, without a reset: the rest of the
 * request body is read and thrown away, the answer sent, only our side ended; the socket closes
 * once the client ends its side, or after 2 s.
 *
 * Node's server closes the socket of a finished `Connection: close` answer at once
 * (destroySoon). With the body still arriving, that close is a reset, which may reach the client
 * before it has read the answer and make its kernel discard it (Node's fetch posting 2 MB got
 * EPIPE instead of 413 in 14 of 20 tries; the gateway lost 2 in 300 on a busy machine).
 */
export function drainAndClose(res: ServerResponse): void {
  const socket = res.req.socket;
  socket.destroySoon = () => socket.end();
  res.shouldKeepAlive = false;
  res.setHeader('connection', 'close');
  res.req.resume();
  res.once('finish', () => setTimeout(() => socket.destroy(), DRAIN_MS).unref());
}
