/**
 * `orderly dead-letters list|show|redrive|discard`: the dead letters of a running deployment,
 * over its HTTP API (`--url`, the gateway or `npm start`), with ORDERLY_ADMIN_TOKEN as the
 * bearer token when set.
 */
export type DeadLetterCommand = Readonly<{ action: string | undefined; id: string | undefined; url: string; token: string | undefined; group?: string; limit?: string; after?: string; json: boolean }>;

type Summary = Readonly<{ id: string; consumer: string; type: string; reason: string; at: string; saga_ids: readonly string[] }>;
type Group = Readonly<{ group: string; reason: string; count: number; consumers: readonly string[]; types: readonly string[] }>;
type Page = Readonly<{ total: number; groups: readonly Group[]; dead_letters: readonly Summary[]; next: string | null }>;

export const DEAD_LETTERS_USAGE = `usage: orderly dead-letters list [--group G] [--limit N] [--after ID] | show <id> | redrive <id> | discard <id>  [--url http://127.0.0.1:8000] [--json]
  (ORDERLY_ADMIN_TOKEN is sent as the bearer token when set)`;

/** Runs the command, printing with `out` (what went wrong with `err`); resolves with the exit code (0 done, 1 refused or failed, 2 bad usage). */
export async function deadLettersCommand(command: DeadLetterCommand, out: (line: string) => void, err: (line: string) => void = out): Promise<number> {
  const call = async (method: string, path: string) => {
    const res = await fetch(new URL(path, command.url), { method, headers: { accept: 'application/json', ...(command.token ? { authorization: `Bearer ${command.token}` } : {}) } });
    const body = (await res.json().catch(() => ({}))) as Record<string, unknown>;
    if (!res.ok) throw new Error(`${method} ${path} answered ${res.status} ${String(body.code ?? '')}: ${String(body.detail ?? '')}`);
    return body;
  };
  const one = (id: string | undefined) => {
    if (!id) throw new UsageError(`Name the dead letter (its id, as list shows it).\n${DEAD_LETTERS_USAGE}`);
    return `/admin/dead-letters/${encodeURIComponent(id)}`;
  };
  try {
    switch (command.action ?? '') {
      case 'list': {
        const query = new URLSearchParams();
        for (const name of ['group', 'limit', 'after'] as const) if (command[name] !== undefined) query.set(name, command[name]);
        const page = (await call('GET', `/admin/dead-letters?${query}`)) as unknown as Page;
        if (command.json) {
          out(JSON.stringify(page, null, 2));
          return 0;
        }
        out(`${page.total} dead letter${page.total === 1 ? '' : 's'}`);
        for (const g of page.groups) out(`  ${String(g.count).padStart(5)}  ${g.group}  (${g.consumers.join(', ')}; ${g.types.join(', ')})`);
        if (page.dead_letters.length > 0) out('');
        for (const d of page.dead_letters) out(`${d.id}  ${d.at}  ${d.consumer}  ${d.type}  saga ${d.saga_ids.join(',') || '—'}\n    ${d.reason}`);
        if (page.next) out(`more: --after ${page.next}`);
        return 0;
      }
      case 'show':
        out(JSON.stringify(await call('GET', one(command.id)), null, 2));
        return 0;
      case 'redrive':
        await call('POST', `${one(command.id)}/redrive`);
        out(`redriven: ${command.id ?? ''} is on its way back to its consumer`);
        return 0;
      case 'discard':
        await call('DELETE', one(command.id));
        out(`discarded: ${command.id ?? ''}`);
        return 0;
      default:
        throw new UsageError(DEAD_LETTERS_USAGE);
    }
  } catch (error) {
    err(error instanceof Error ? error.message : String(error));
    return error instanceof UsageError ? 2 : 1;
  }
}

class UsageError extends Error {}
