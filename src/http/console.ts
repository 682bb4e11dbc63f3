import fastifyStatic from '@fastify/static';
import type { FastifyInstance } from 'fastify';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../console/', import.meta.url));

/**
 * The operator console: static files the browser runs as they are (no build step, nothing from
 * a CDN), at `/` and under `/console/`. It reads the saga API of the process that serves it.
 */
export async function consoleRoutes(app: FastifyInstance): Promise<void> {
  await app.register(fastifyStatic, { root: ROOT, prefix: '/console/', index: false, cacheControl: false, schemaHide: true });
  app.get('/', { schema: { hide: true } }, (_request, reply) => reply.sendFile('index.html'));
}
