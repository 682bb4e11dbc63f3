import fastifyStatic from '@fastify/static';
import type { FastifyInstance } from 'fastify';
import { fileURLToPath } from 'node:url';
import { accessCheck, clearedSessionCookie, isAdminToken, sessionCookie, type AccessPolicy } from './access.ts';
import { openRoutes, route, schemas } from './openapi.ts';
import { Problem } from './problems.ts';
import { jsonObject, onlyFields } from './validate.ts';

const ROOT = fileURLToPath(new URL('../console/', import.meta.url));

/**
 * The operator console: static files the browser runs as they are (no build step, nothing from
 * a CDN), at `/` and under `/console/`, open to anyone: they hold no data. The data they read
 * (the saga API, events, dead letters) are operator routes: with ORDERLY_ADMIN_TOKEN set, the
 * console signs in at /console/session, which sets an HttpOnly, SameSite=Strict session cookie,
 * so that the token stays out of URLs, logs and the page's storage.
 */
export function consoleRoutes(policy: AccessPolicy) {
  const check = accessCheck(policy);
  return async (app: FastifyInstance): Promise<void> => {
    await app.register(async (files) => {
      openRoutes(files);
      await files.register(fastifyStatic, { root: ROOT, prefix: '/console/', index: false, cacheControl: false, schemaHide: true });
      files.get('/', { schema: { hide: true } }, (_request, reply) => reply.sendFile('index.html'));
    });

    const session = schemas.object({ token_required: schemas.boolean, signed_in: schemas.boolean });
    const signedIn = (request: Parameters<typeof check>[1]) => {
      try {
        check('operator', request);
        return true;
      } catch {
        return false;
      }
    };
    app.get('/console/session', { schema: route({ access: 'open', summary: 'Whether this browser may read operator data, and whether it must sign in for it', tags: ['console'], ok: session }) },
      (request) => ({ token_required: policy.adminToken !== undefined, signed_in: signedIn(request) }));
    // The sign-in is a state change: refused from another site's page like any other (its Origin).
    app.post<{ Body: unknown }>('/console/session', { schema: route({ access: 'open', summary: 'Signs the console in with ORDERLY_ADMIN_TOKEN: sets the session cookie (12 hours)', tags: ['console'], body: schemas.object({ token: schemas.string }), ok: session, errors: ['invalid-body', 'forbidden', 'cross-site-request', 'unsupported-media-type'] }) }, (request, reply) => {
      check('open-state-change', request);
      const body = jsonObject(request.body);
      onlyFields(body, ['token']);
      if (typeof body.token !== 'string' || body.token === '') throw new Problem('invalid-body', 'Send {"token": "<ORDERLY_ADMIN_TOKEN>"}.');
      if (policy.adminToken === undefined) throw new Problem('forbidden', 'No ORDERLY_ADMIN_TOKEN is set on this server: the console answers on this machine without signing in.');
      if (!isAdminToken(policy, body.token)) throw new Problem('forbidden', 'That is not this deployment\'s ORDERLY_ADMIN_TOKEN.');
      const secure = request.headers['x-forwarded-proto'] === 'https' || request.protocol === 'https';
      return reply.header('set-cookie', sessionCookie(policy.adminToken, Date.now(), secure)).send({ token_required: true, signed_in: true });
    });
    app.delete('/console/session', { schema: route({ access: 'open', summary: 'Signs the console out (clears the session cookie)', tags: ['console'], ok: session, errors: ['cross-site-request'] }) }, (request, reply) => {
      check('open-state-change', request);
      return reply.header('set-cookie', clearedSessionCookie).send({ token_required: policy.adminToken !== undefined, signed_in: false });
    });
  };
}
