import type { FastifyReply } from 'fastify';

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
  'forbidden': { status: 403, title: 'Forbidden' },
  'item-not-found': { status: 404, title: 'Item not found' },
  'user-not-found': { status: 404, title: 'User not found' },
  'order-not-found': { status: 404, title: 'Order not found' },
  'saga-not-found': { status: 404, title: 'Saga not found' },
  'route-not-found': { status: 404, title: 'No such route' },
  'out-of-stock': { status: 409, title: 'Out of stock' },
  'insufficient-credit': { status: 409, title: 'Insufficient credit' },
  'order-locked': { status: 409, title: 'Order can no longer change' },
  'checkout-failed': { status: 409, title: 'Checkout failed' },
  'payload-too-large': { status: 413, title: 'Request body too large' },
  'amount-too-large': { status: 422, title: 'Amount too large' },
  'idempotency-key-reused': { status: 422, title: 'Idempotency key reused' },
  'internal': { status: 500, title: 'Internal error' },
  'unavailable': { status: 503, title: 'Service unavailable' },
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

export function sendProblem(reply: FastifyReply, code: ProblemCode, detail: string, extra: Record<string, unknown> = {}): FastifyReply {
  const { status, title } = problems[code];
  return reply
    .code(status)
    .type('application/problem+json')
    .send({ type: `https://orderly.dev/problems/${code}`, title, status, code, detail, instance: reply.request.url, ...extra });
}
