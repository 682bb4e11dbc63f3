import { createHash } from 'node:crypto';
import type { Redis } from 'ioredis';

/** A Lua script run by its SHA1 (EVALSHA), sent in full only when the server does not know it yet. */
export type Script = Readonly<{ run(redis: Redis, keys: readonly string[], args: readonly (string | number | Buffer)[]): Promise<unknown> }>;

export function script(source: string): Script {
  const sha = createHash('sha1').update(source).digest('hex');
  return {
    async run(redis, keys, args) {
      try {
        // One array, not spread arguments: a batch_init's commit has hundreds of thousands.
        return await redis.call('EVALSHA', [sha, keys.length, ...keys, ...args]);
      } catch (error) {
        // A restarted or flushed server has an empty script cache; EVAL runs and caches it again.
        if (!(error instanceof Error && error.message.startsWith('NOSCRIPT'))) throw error;
        return redis.call('EVAL', [source, keys.length, ...keys, ...args]);
      }
    },
  };
}
