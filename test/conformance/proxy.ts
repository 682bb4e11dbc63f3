import { createServer, connect, type AddressInfo, type Server, type Socket } from 'node:net';

export type Proxy = Readonly<{
  port: number;
  /** Drops every connection and refuses new ones, as a broker that went down. */
  cut(): Promise<void>;
  /** Accepts connections again on the same port, as the broker back up. */
  restore(): Promise<void>;
}>;

/**
 * A TCP relay to a real broker. Cutting it is an outage for this test's connections only,
 * where restarting the broker would break every other test running against it.
 */
export async function startProxy(target: Readonly<{ host: string; port: number }>): Promise<Proxy> {
  const sockets = new Set<Socket>();
  let server: Server | undefined;
  let port = 0;

  async function listen(): Promise<void> {
    const next = createServer((client) => {
      const upstream = connect(target.port, target.host);
      const drop = () => {
        client.destroy();
        upstream.destroy();
        sockets.delete(client);
        sockets.delete(upstream);
      };
      for (const socket of [client, upstream]) {
        sockets.add(socket);
        socket.on('error', drop);
        socket.on('close', drop);
      }
      client.pipe(upstream);
      upstream.pipe(client);
    });
    await new Promise<void>((resolve, reject) => {
      next.once('error', reject);
      next.listen(port, '127.0.0.1', resolve);
    });
    port = (next.address() as AddressInfo).port;
    server = next;
  }

  async function cut(): Promise<void> {
    const closing = server;
    server = undefined;
    for (const socket of sockets) socket.destroy();
    sockets.clear();
    if (closing) await new Promise<void>((resolve) => closing.close(() => resolve()));
  }

  await listen();
  return {
    get port() {
      return port;
    },
    cut,
    restore: listen,
  };
}
