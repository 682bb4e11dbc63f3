import type { Redis } from 'ioredis';
import type { Logger } from '../../ports/log.ts';

/** Where a client points, for messages. */
export function address(redis: Redis): string {
  const { host, port, path } = redis.options;
  return path ? String(path) : `${host ?? '127.0.0.1'}:${port ?? 6379}`;
}

/**
 * What makes this Redis lose acknowledged data: nothing on disk (no AOF, no RDB save points)
 * or an eviction policy that may drop keys under memory pressure. Empty when it is durable.
 */
export function durabilityWarnings(config: ReadonlyMap<string, string>, where: string): string[] {
  const warnings: string[] = [];
  if (config.get('appendonly') !== 'yes') {
    warnings.push((config.get('save') ?? '').trim() === ''
      ? `Redis at ${where} keeps nothing on disk (appendonly no, no save points): a restart of Redis loses committed data. Run it with appendonly yes (appendfsync everysec or always).`
      : `Redis at ${where} only keeps snapshots (appendonly no, save "${config.get('save')}"): a restart loses what was committed since the last one. Run it with appendonly yes (appendfsync everysec or always).`);
  } else if (config.get('appendfsync') === 'no') {
    warnings.push(`Redis at ${where} runs with appendfsync no: a machine crash loses whatever the OS had not flushed. Prefer appendfsync everysec or always.`);
  }
  const policy = config.get('maxmemory-policy');
  if (policy !== undefined && policy !== 'noeviction') {
    warnings.push(`Redis at ${where} runs with maxmemory-policy ${policy}: under memory pressure it may evict documents, outbox or streams. Use noeviction.`);
  }
  return warnings;
}

/**
 * Reads the server's persistence settings and logs what makes it lose data. A server that
 * refuses CONFIG (managed services often do) is reported as unchecked rather than failing.
 */
export async function checkDurability(redis: Redis, log: Logger | undefined, component: string): Promise<string[]> {
  const where = address(redis);
  let warnings: string[];
  try {
    const config = new Map<string, string>();
    for (const name of ['appendonly', 'appendfsync', 'save', 'maxmemory-policy']) {
      const reply = await redis.call('CONFIG', ['GET', name]);
      if (Array.isArray(reply)) for (let i = 0; i + 1 < reply.length; i += 2) config.set(String(reply[i]), String(reply[i + 1]));
    }
    warnings = durabilityWarnings(config, where);
  } catch (error) {
    warnings = [`Could not check the persistence of Redis at ${where} (${error instanceof Error ? error.message : String(error)}); make sure it runs with appendonly yes.`];
  }
  for (const warning of warnings) log?.warn({ component }, warning);
  return warnings;
}
