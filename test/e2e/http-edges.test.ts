import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { startTestSystem, type TestSystem, startTestGateway } from './helpers.ts';

// What a hostile or broken HTTP client meets, over real sockets, on the embedded server and on
// the gateway in front of it: a problem+json answer for everything the HTTP parser refuses, a
// body limit enforced while reading, 405 with Allow for a wrong method; never a hang.

type Raw = Readonly<{ status: number; headers: Readonly<Record<string, string>>; body: string; closed: boolean; sent: number }>;

/**
 * Writes `head` on a new connection, then `body` chunks (while the connection takes them), and
 * returns the answer once the server closes the connection or `waitMs` passed.
 */
function raw(port: number, head: string, options: { chunks?: Iterable<Buffer>; waitMs?: number } = {}): Promise<Raw> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    let received = '';
    let sent = 0;
    let done = false;
    const finish = (closed: boolean) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.destroy();
      const [top = '', ...rest] = received.split('\r\n\r\n');
      const [statusLine = '', ...headerLines] = top.split('\r\n');
      const headers = Object.fromEntries(headerLines.map((line) => {
        const at = line.indexOf(':');
        return [line.slice(0, at).trim().toLowerCase(), line.slice(at + 1).trim()];
      }));
      resolve({ status: Number(statusLine.split(' ')[1] ?? 0), headers, body: rest.join('\r\n\r\n'), closed, sent });
    };
    const timer = setTimeout(() => finish(false), options.waitMs ?? 5_000);
    socket.on('data', (data) => {
      received += data.toString('latin1');
    });
    socket.on('close', () => finish(true));
    socket.on('error', (error: NodeJS.ErrnoException) => {
      // The server may reset a connection whose body it refused once it has answered.
      if (error.code !== 'ECONNRESET' && error.code !== 'EPIPE') reject(error);
    });
    socket.write(head);
    const chunks = options.chunks?.[Symbol.iterator]();
    const pump = () => {
      for (let next = chunks?.next(); next && !next.done && !done; next = chunks?.next()) {
        sent += next.value.length;
        if (!socket.write(next.value)) return void socket.once('drain', pump);
      }
    };
    pump();
  });
}

function assertProblemAnswer(answer: Raw, status: number, code: string, context: string): void {
  assert.equal(answer.status, status, `${context}: status (got ${answer.status} ${answer.body.slice(0, 200)})`);
  assert.match(answer.headers['content-type'] ?? '', /^application\/problem\+json/, `${context}: problem+json`);
  const body = JSON.parse(answer.body) as { code: string; status: number; detail: string };
  assert.equal(body.code, code, `${context}: code`);
  assert.equal(body.status, status, `${context}: status in the body`);
  assert.ok(body.detail.length > 0, `${context}: a detail`);
}

/** 1 MiB chunks, 100 MiB in all, as the chunked transfer coding frames them. */
function* chunked(): Generator<Buffer> {
  const data = Buffer.alloc(1024 * 1024, 'x');
  const frame = Buffer.concat([Buffer.from(`${data.length.toString(16)}\r\n`), data, Buffer.from('\r\n')]);
  for (let i = 0; i < 100; i++) yield frame;
  yield Buffer.from('0\r\n\r\n');
}

let sys: TestSystem;
let gateway: Awaited<ReturnType<typeof startTestGateway>>;
const ports: Record<string, number> = {};

before(async () => {
  sys = await startTestSystem();
  const address = await sys.system.app.listen({ host: '127.0.0.1', port: 0 });
  ports.server = Number(new URL(address).port);
  gateway = await startTestGateway({ orders: [address], stock: [address], payment: [address] });
  ports.gateway = Number(new URL(gateway.address).port);
});

after(async () => {
  await gateway.close();
  await sys.close();
});

for (const target of ['server', 'gateway'] as const) {
  void describe(`the ${target === 'server' ? 'embedded server' : 'gateway'}`, () => {
    const port = () => ports[target] ?? 0;

    void test('a request with both Content-Length and Transfer-Encoding gets a 400 problem and the connection is closed', async () => {
      const answer = await raw(port(), 'POST /stock/item/create/5 HTTP/1.1\r\nHost: localhost\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n');
      assertProblemAnswer(answer, 400, 'malformed-request', 'CL + TE');
      assert.match(answer.body, /Transfer-Encoding/, 'the detail says what is wrong');
      assert.ok(answer.closed, 'closed');
    });

    void test('a request line that is not HTTP gets a 400 problem', async () => {
      const answer = await raw(port(), 'HELLO\r\n\r\n');
      assertProblemAnswer(answer, 400, 'malformed-request', 'not HTTP');
      assert.ok(answer.closed, 'closed');
    });

    void test('an HTTP/0.9 request line gets a 408 problem and the connection is closed, instead of hanging', async () => {
      const answer = await raw(port(), 'GET /healthz\r\n', { waitMs: 15_000 });
      assertProblemAnswer(answer, 408, 'request-timeout', 'HTTP/0.9');
      assert.ok(answer.closed, 'closed');
    });

    void test('a 100 MB body is refused with 413 long before it is all sent, and the connection is closed', async () => {
      const declared = await raw(port(), `POST /stock/item/create/5 HTTP/1.1\r\nHost: localhost\r\nContent-Length: ${100 * 1024 * 1024}\r\n\r\n`, { chunks: chunked() });
      assertProblemAnswer(declared, 413, 'payload-too-large', 'Content-Length: 100 MiB');
      assert.ok(declared.closed, 'closed');
      assert.ok(declared.sent < 100 * 1024 * 1024, `answered before all was sent (${declared.sent} bytes sent)`);
      const streamed = await raw(port(), 'POST /stock/item/create/5 HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n', { chunks: chunked() });
      assertProblemAnswer(streamed, 413, 'payload-too-large', 'chunked 100 MiB');
      assert.ok(streamed.closed, 'closed');
      assert.ok(streamed.sent < 100 * 1024 * 1024, `answered before all was sent (${streamed.sent} bytes sent)`);
    });

    void test('a wrong method answers 405 with Allow naming the method that exists', async () => {
      const answer = await raw(port(), 'GET /stock/item/create/5 HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n');
      assertProblemAnswer(answer, 405, 'method-not-allowed', 'GET on a POST route');
      assert.equal(answer.headers.allow, 'POST');
      const find = await raw(port(), 'POST /stock/find/1 HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\nConnection: close\r\n\r\n');
      assertProblemAnswer(find, 405, 'method-not-allowed', 'POST on a GET route');
      assert.equal(find.headers.allow, 'GET, HEAD');
      const unknown = await raw(port(), 'GET /stock/nothing-here HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n');
      assertProblemAnswer(unknown, 404, 'route-not-found', 'an unknown path');
    });
  });
}
