import type { FastifyReply } from 'fastify';
import { STATUS_CODES } from 'node:http';
import type { Socket } from 'node:net';

/**
 * The one catalogue of errors the API answers with: a stable code, its HTTP status and a
 * title. Bodies are RFC 9457 `application/problem+json` with `code` and a `detail` that says
 * what was wrong and how to fix it.
 */
export const problems = {
  'invalid-id': { status: 400, title: 'Invalid id' },
  'invalid-url': { status: 400, title: 'Invalid URL' },
  'invalid-number': { status: 400, title: 'Invalid number' },
  'invalid-body': { status: 400, title: 'Invalid request body' },
  'invalid-header': { status: 400, title: 'Invalid header' },
  'invalid-query': { status: 400, title: 'Invalid query parameter' },
  'malformed-request': { status: 400, title: 'Malformed HTTP request' },
  'unauthorized': { status: 401, title: 'Unauthorized' },
  'forbidden': { status: 403, title: 'Forbidden' },
  'cross-site-request': { status: 403, title: 'Cross-site request refused' },
  'fixtures-off': { status: 403, title: 'Fixtures are off' },
  'item-not-found': { status: 404, title: 'Item not found' },
  'user-not-found': { status: 404, title: 'User not found' },
  'order-not-found': { status: 404, title: 'Order not found' },
  'saga-not-found': { status: 404, title: 'Saga not found' },
  'shipment-not-found': { status: 404, title: 'Shipment not found' },
  'dead-letter-not-found': { status: 404, title: 'Dead letter not found' },
  'route-not-found': { status: 404, title: 'No such route' },
  'method-not-allowed': { status: 405, title: 'Method not allowed' },
  'request-timeout': { status: 408, title: 'Request timeout' },
  'fixture-conflict': { status: 409, title: 'Fixture would overwrite work in progress' },
  'out-of-stock': { status: 409, title: 'Out of stock' },
  'insufficient-credit': { status: 409, title: 'Insufficient credit' },
  'order-locked': { status: 409, title: 'Order can no longer change' },
  'checkout-failed': { status: 409, title: 'Checkout failed' },
  'order-cancelled': { status: 409, title: 'Order cancelled' },
  'order-not-cancellable': { status: 409, title: 'Order can no longer be cancelled' },
  'shipment-cancelled': { status: 409, title: 'Shipment cancelled' },
  'shipment-delivered': { status: 409, title: 'Shipment delivered already' },
  'payload-too-large': { status: 413, title: 'Request body too large' },
  'unsupported-media-type': { status: 415, title: 'Unsupported media type' },
  'host-not-allowed': { status: 421, title: 'Host not allowed' },
  'headers-too-large': { status: 431, title: 'Request headers too large' },
  'amount-too-large': { status: 422, title: 'Amount too large' },
  'idempotency-key-reused': { status: 422, title: 'Idempotency key reused' },
  'internal': { status: 500, title: 'Internal error' },
  'unavailable': { status: 503, title: 'Service unavailable' },
  'too-many-streams': { status: 503, title: 'Too many event streams' },
  'checkout-pending': { status: 504, title: 'Checkout still in progress' },
} as const satisfies Record<string, { status: number; title: string }>;

export type ProblemCode = keyof typeof problems;

/** A problem to answer with; thrown by route code and turned into a response by the error handler. */
export class Problem extends Error {
  readonly code: ProblemCode;
  readonly detail: string;

  constructor(code: ProblemCode, detail: string) {
    super(detail);
    this.code = code;
    this.detail = detail;
  }
}

export function isProblemCode(code: string): code is ProblemCode {
  return Object.hasOwn(problems, code);
}

/** The RFC 9457 body of a problem; every error answer of every process is one of these. */
export function problemBody(code: ProblemCode, detail: string, instance?: string, extra: Record<string, unknown> = {}) {
  const { status, title } = problems[code];
  return { type: `https://orderly.dev/problems/${code}`, title, status, code, detail, ...(instance === undefined ? {} : { instance }), ...extra };
}

export function sendProblem(reply: FastifyReply, code: ProblemCode, detail: string, extra: Record<string, unknown> = {}): FastifyReply {
  return reply.code(problems[code].status).type('application/problem+json').send(problemBody(code, detail, reply.request.url, extra));
}

/**
 * Answers a request the HTTP parser refused, before any route or handler could see it (the
 * server's `clientError`), with a problem, and closes the connection: after a framing error
 * nothing more on it can be trusted.
 */
export function answerClientError(error: Error & { code?: string; reason?: string }, socket: Socket): void {
  if (error.code === 'ECONNRESET' || socket.destroyed) return;
  const [code, detail] = clientErrorProblem(error);
  const body = JSON.stringify(problemBody(code, detail));
  const { status } = problems[code];
  if (socket.writable) {
    socket.write(`HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ''}\r\ncontent-type: application/problem+json; charset=utf-8\r\n`
      + `content-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`);
  }
  socket.destroySoon();
}

function clientErrorProblem(error: Error & { code?: string; reason?: string }): [ProblemCode, string] {
  if (error.code === 'ERR_HTTP_REQUEST_TIMEOUT') {
    return ['request-timeout', 'The request line and headers did not arrive in time (HTTP/0.9 and requests without a blank line after the headers are not served); send an HTTP/1.1 request.'];
  }
  if (error.code === 'HPE_HEADER_OVERFLOW') return ['headers-too-large', 'The request headers are larger than 16 KiB.'];
  return ['malformed-request', `The request is not valid HTTP/1.1 (${error.reason ?? error.message}${error.code ? `, ${error.code}` : ''}).`];
}
