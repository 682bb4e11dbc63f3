import fastifySwagger from '@fastify/swagger';
import fastifySwaggerUi from '@fastify/swagger-ui';
import type { FastifyInstance, FastifySchema } from 'fastify';
import { problems, type ProblemCode } from './problems.ts';

type Json = Readonly<Record<string, unknown>>;

const problem: Json = {
  type: 'object',
  description: 'RFC 9457 problem details: `code` is stable, `detail` says what was wrong and how to fix it.',
  properties: {
    type: { type: 'string' }, title: { type: 'string' }, status: { type: 'integer' },
    code: { type: 'string', enum: Object.keys(problems) }, detail: { type: 'string' }, instance: { type: 'string' },
  },
  required: ['type', 'title', 'status', 'code', 'detail'],
};

export const schemas = {
  id: { type: 'string', description: '1 to 64 of A-Z a-z 0-9 _ -' },
  amount: { type: 'string', pattern: '^[0-9]+$', description: 'a whole number from 0 to 2^53−1' },
  object: (properties: Json, required = Object.keys(properties)): Json => ({ type: 'object', properties, required }),
  integer: { type: 'integer', minimum: 0 },
  string: { type: 'string' },
  boolean: { type: 'boolean' },
  message: { type: 'object', properties: { msg: { type: 'string' } } },
} as const;

export type RouteDoc = Readonly<{
  summary: string;
  tags: readonly string[];
  /** Path parameters and what each is. */
  params?: Readonly<Record<string, string>>;
  query?: Readonly<Record<string, string>>;
  /** The JSON body the route takes. */
  body?: Json;
  /** The body of a 2xx answer. */
  ok?: Json;
  /** Error codes the route answers with (beyond those of any route: 400 malformed, 405, 413, 500). */
  errors?: readonly ProblemCode[];
  /** Takes an Idempotency-Key header. */
  idempotent?: boolean;
  admin?: boolean;
}>;

/**
 * A route's schema for the OpenAPI document. Parameters are described, not validated, here:
 * every route checks its input itself (src/http/validate.ts) and answers bad input with a
 * problem that names it, which a generic schema error could not.
 */
export function route(doc: RouteDoc): FastifySchema {
  const strings = (names: Readonly<Record<string, string>>) => ({
    type: 'object',
    properties: Object.fromEntries(Object.entries(names).map(([name, description]) => [name, { type: 'string', description }])),
  });
  const codes = [...new Set(doc.errors ?? [])];
  const by_status = new Map<number, ProblemCode[]>();
  for (const code of codes) by_status.set(problems[code].status, [...(by_status.get(problems[code].status) ?? []), code]);
  return {
    summary: doc.summary,
    tags: [...doc.tags],
    ...(doc.params ? { params: strings(doc.params) } : {}),
    ...(doc.query ? { querystring: strings(doc.query) } : {}),
    ...(doc.body ? { body: doc.body } : {}),
    ...(doc.idempotent ? { headers: { type: 'object', properties: { 'idempotency-key': { type: 'string', description: 'Repeats of this request with this key get the first answer and do nothing again.' } } } } : {}),
    ...(doc.admin ? { security: [{ adminToken: [] }] } : {}),
    response: {
      200: doc.ok ?? { type: 'object' },
      ...Object.fromEntries([...by_status].map(([status, list]) => [status, { ...problem, description: list.map((c) => `\`${c}\``).join(', ') }])),
    },
  } as FastifySchema;
}

/**
 * OpenAPI 3.1 at /openapi.json, browsable at /docs (served from this process, no CDN), from the
 * schemas of the routes registered after it. Registered on the root instance, so it sees them all.
 */
export function openApi(app: FastifyInstance): void {
  // The schemas document; they neither check requests (each route checks its input itself, with
  // problems that name what is wrong) nor filter answers (serialized as they are).
  app.setValidatorCompiler(() => () => true);
  app.setSerializerCompiler(() => (data) => JSON.stringify(data));
  void app.register(fastifySwagger, {
    openapi: {
      openapi: '3.1.0',
      info: { title: 'Orderly', version: '1', description: 'The course API (stock, payment, orders), the saga API, live events and operations. Every error is application/problem+json. See docs/api.md.' },
      components: { securitySchemes: { adminToken: { type: 'http', scheme: 'bearer', description: 'ORDERLY_ADMIN_TOKEN (unset: admin routes answer on loopback only)' } } },
    },
  });
  void app.register(fastifySwaggerUi, { routePrefix: '/docs' });
  app.get('/openapi.json', { schema: { hide: true } }, () => app.swagger());
}
