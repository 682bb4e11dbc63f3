import fastifySwagger from '@fastify/swagger';
import fastifySwaggerUi from '@fastify/swagger-ui';
import type { FastifyInstance, FastifySchema } from 'fastify';
import type { Access } from './access.ts';
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
  /** Who may call it (src/http/access.ts): the one check on the matched route reads this. */
  access: Access;
}>;

/** What each class of route needs, as OpenAPI security requirements ({} where none is needed). */
const SECURITY: Readonly<Record<Access, readonly Json[]>> = {
  open: [],
  shop: [{ apiToken: [] }, {}],
  fixture: [{ apiToken: [] }, {}],
  operator: [{ adminToken: [] }, { consoleSession: [] }],
  internal: [{ internalToken: [] }],
};

const ACCESS_NOTE: Readonly<Record<Access, string>> = {
  open: 'Access: open.',
  shop: 'Access: shop API (a key of ORDERLY_API_TOKEN as a bearer token when set; open otherwise).',
  fixture: 'Access: fixture (only with ORDERLY_FIXTURES=on; then as the shop API).',
  operator: 'Access: operator (ORDERLY_ADMIN_TOKEN as a bearer token, or a console session; unset, this machine only).',
  internal: 'Access: internal (X-Orderly-Token: ORDERLY_INTERNAL_TOKEN).',
};

/** The access class a route declared (in its schema, by `route` or `hidden`); undefined for one that declared none. */
export const accessOf = (schema: unknown): Access | undefined => (schema as { access?: Access } | undefined)?.access;

/** Marks every route registered in `scope` (a plugin's static files, say) as open. */
export function openRoutes(scope: FastifyInstance): void {
  scope.addHook('onRoute', (options) => {
    options.schema = { ...(options.schema ?? {}), access: 'open' } as FastifySchema;
  });
}

/** The schema of a route left out of the OpenAPI document. */
export const hidden = (access: Access): FastifySchema => ({ hide: true, access } as FastifySchema);

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
    access: doc.access,
    summary: doc.summary,
    description: ACCESS_NOTE[doc.access],
    tags: [...doc.tags],
    ...(doc.params ? { params: strings(doc.params) } : {}),
    ...(doc.query ? { querystring: strings(doc.query) } : {}),
    ...(doc.body ? { body: doc.body } : {}),
    ...(doc.idempotent ? { headers: { type: 'object', properties: { 'idempotency-key': { type: 'string', description: 'Repeats of this request with this key get the first answer and do nothing again.' } } } } : {}),
    security: SECURITY[doc.access],
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
      components: {
        securitySchemes: {
          apiToken: { type: 'http', scheme: 'bearer', description: 'A key of ORDERLY_API_TOKEN (unset: the shop API is open)' },
          adminToken: { type: 'http', scheme: 'bearer', description: 'ORDERLY_ADMIN_TOKEN (unset: operator routes answer on this machine only)' },
          consoleSession: { type: 'apiKey', in: 'cookie', name: 'orderly_session', description: 'The console\'s sign-in (POST /console/session with the admin token)' },
          internalToken: { type: 'apiKey', in: 'header', name: 'x-orderly-token', description: 'ORDERLY_INTERNAL_TOKEN: service to service' },
        },
      },
    },
  });
  void app.register(async (docs) => {
    openRoutes(docs);
    // Swagger UI styles its page inline: its own policy, with inline styles allowed, on its pages.
    await docs.register(fastifySwaggerUi, {
      routePrefix: '/docs',
      staticCSP: "default-src 'self'; base-uri 'self'; img-src 'self' data:; object-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; frame-ancestors 'none'; form-action 'self'",
    });
  });
  app.get('/openapi.json', { schema: hidden('open') }, () => app.swagger());
}
