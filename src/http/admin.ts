import { createHash, timingSafeEqual } from 'node:crypto';
import { isIP } from 'node:net';
import { Problem } from './problems.ts';

/** Admin routes: everything under this prefix (audit, dead letters, operator actions). */
export const ADMIN_PREFIX = '/admin/';

/**
 * Who may call an admin route. With a token (ORDERLY_ADMIN_TOKEN), only a request that carries
 * it as `Authorization: Bearer <token>`: none answers 401, another one 403. Without a token,
 * only requests from this machine (loopback), so that a deployment listening on every address
 * does not hand its admin routes to the network by default.
 */
export function adminAccess(token: string | undefined): (request: Readonly<{ url: string; ip: string; headers: Readonly<Record<string, string | string[] | undefined>> }>) => void {
  const expected = token === undefined ? undefined : digest(token);
  return (request) => {
    if (!request.url.startsWith(ADMIN_PREFIX)) return;
    if (expected === undefined) {
      if (!isLoopback(request.ip)) {
        throw new Problem('forbidden', `Admin routes answer only on this machine while ORDERLY_ADMIN_TOKEN is unset; set it on the server and send Authorization: Bearer <token>.`);
      }
      return;
    }
    const header = request.headers.authorization;
    const match = typeof header === 'string' ? /^Bearer +(\S+) *$/i.exec(header) : null;
    if (!match?.[1]) throw new Problem('unauthorized', 'Admin routes need Authorization: Bearer <ORDERLY_ADMIN_TOKEN>.');
    if (!timingSafeEqual(digest(match[1]), expected)) throw new Problem('forbidden', 'The bearer token is not this deployment\'s ORDERLY_ADMIN_TOKEN.');
  };
}

/** Fixed-length digests, so that comparing them takes the same time whatever the token. */
const digest = (value: string) => createHash('sha256').update(value).digest();

export function isLoopback(ip: string): boolean {
  const v4 = ip.startsWith('::ffff:') ? ip.slice(7) : ip;
  return (isIP(v4) === 4 && v4.startsWith('127.')) || ip === '::1';
}
