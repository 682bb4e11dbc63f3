import type { FastifyInstance } from 'fastify';
import type { DeadLetter, DeadLetters } from '../ports/deadLetters.ts';
import { metrics } from '../observability/metrics.ts';
import { route, schemas } from './openapi.ts';
import { Problem } from './problems.ts';
import { count } from './validate.ts';

/** Dead letters looked at per consumer: the lists, groups and counts are over these. */
export const MAX_DEAD_LETTERS = 10_000;
const DEFAULT_LIMIT = 50;

/** A dead letter in a list: what it is and why, without its payloads. */
export type DeadLetterSummary = Readonly<{
  id: string;
  consumer: string;
  type: string;
  reason: string;
  /** The reason with its ids and numbers taken out: dead letters with the same group failed the same way. */
  group: string;
  at: string;
  messages: number;
  message_ids: readonly string[];
  saga_ids: readonly string[];
  correlation_ids: readonly string[];
}>;

export type DeadLetterGroup = Readonly<{ group: string; reason: string; count: number; consumers: readonly string[]; types: readonly string[]; newest_at: string }>;

export type DeadLetterQuery = Readonly<{ group?: string; consumer?: string; limit: number; after?: string }>;

/**
 * The reason without what differs from one message to the next (uuids, long hex, numbers, quoted
 * values), so that dead letters that failed the same way fall in one group.
 */
export function reasonGroup(reason: string): string {
  return reason
    .replace(/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/gi, '…')
    .replace(/"[^"]*"|'[^']*'/g, '"…"')
    .replace(/\b[0-9a-f]{16,}\b/gi, '…')
    .replace(/\d+/g, '#')
    .slice(0, 300);
}

export function summarize(letter: DeadLetter): DeadLetterSummary {
  const unique = (values: readonly string[]) => [...new Set(values.filter((v) => v !== ''))];
  return {
    id: letter.id,
    consumer: letter.consumer,
    type: letter.messages[0]?.type ?? 'undecodable',
    reason: letter.reason,
    group: reasonGroup(letter.reason),
    at: new Date(letter.at).toISOString(),
    messages: letter.messages.length,
    message_ids: letter.messages.map((m) => m.id),
    saga_ids: unique(letter.messages.map((m) => m.sagaId)),
    correlation_ids: unique(letter.messages.map((m) => m.correlationId)),
  };
}

/**
 * Groups by reason (all of them) and one page of the dead letters, oldest first, of one group
 * and consumer when asked; the gateway merges the services' lists with it too.
 */
export function deadLetterPage(all: readonly DeadLetterSummary[], query: DeadLetterQuery) {
  const sorted = [...all].sort((a, b) => (a.at < b.at ? -1 : a.at > b.at ? 1 : a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  const groups = new Map<string, { group: string; reason: string; count: number; consumers: Set<string>; types: Set<string>; newest_at: string }>();
  for (const s of sorted) {
    const g = groups.get(s.group) ?? { group: s.group, reason: s.reason, count: 0, consumers: new Set(), types: new Set(), newest_at: s.at };
    g.count++;
    g.consumers.add(s.consumer);
    g.types.add(s.type);
    g.newest_at = s.at;
    groups.set(s.group, g);
  }
  const chosen = sorted.filter((s) => (query.group === undefined || s.group === query.group) && (query.consumer === undefined || s.consumer === query.consumer));
  let start = 0;
  if (query.after !== undefined) {
    const index = chosen.findIndex((s) => s.id === query.after);
    if (index === -1) throw new Problem('invalid-query', `after must be the id of a dead letter of this list (the \`next\` of the page before); ${query.after} is none.`);
    start = index + 1;
  }
  const page = chosen.slice(start, start + query.limit);
  return {
    total: sorted.length,
    groups: [...groups.values()].sort((a, b) => b.count - a.count || (a.group < b.group ? -1 : 1))
      .map((g): DeadLetterGroup => ({ ...g, consumers: [...g.consumers].sort(), types: [...g.types].sort() })),
    dead_letters: page,
    next: start + query.limit < chosen.length ? (page.at(-1)?.id ?? null) : null,
  };
}

/** Checks a dead letter's id from the URL: `<consumer>:<the bus's id>`. */
export function deadLetterIdParam(value: string | undefined): string {
  if (value === undefined || !/^[a-z][a-z0-9_]*:[\x21-\x7e]{1,300}$/.test(value)) {
    throw new Problem('invalid-id', `A dead letter's id is <consumer>:<id> (visible ASCII, at most 300 after the colon), as GET /admin/dead-letters lists it; got '${(value ?? '').slice(0, 100)}'.`);
  }
  return value;
}

/** Checks the list's query: group, consumer, limit (1 to 10000), after. */
export function deadLetterQuery(query: Readonly<Record<string, string | undefined>>): DeadLetterQuery {
  for (const name of Object.keys(query)) {
    if (!['group', 'consumer', 'limit', 'after'].includes(name)) throw new Problem('invalid-query', `Unknown query parameter ${name}; the list takes group, consumer, limit and after.`);
  }
  const limit = query.limit === undefined ? DEFAULT_LIMIT : count(query.limit, 'limit', { min: 1, max: MAX_DEAD_LETTERS });
  return {
    limit,
    ...(query.group !== undefined ? { group: query.group } : {}),
    ...(query.consumer !== undefined ? { consumer: query.consumer } : {}),
    ...(query.after !== undefined ? { after: deadLetterIdParam(query.after) } : {}),
  };
}

const notFound = (id: string) => new Problem('dead-letter-not-found', `There is no dead letter ${id} (redriven or discarded already?). GET /admin/dead-letters lists them.`);

const summarySchema = { type: 'object', description: 'id, consumer, type, reason, group, at, messages, message_ids, saga_ids, correlation_ids' };
const listSchema = schemas.object({ total: schemas.integer, groups: { type: 'array', items: { type: 'object' } }, dead_letters: { type: 'array', items: summarySchema }, next: { type: ['string', 'null'] } });
const adminErrors = ['unauthorized', 'forbidden'] as const;
const idParam = { id: '<consumer>:<id>, as the list gives it' };

/**
 * The dead letters of the consumers this process runs (admin): grouped by reason and listed,
 * one shown with its messages, redriven to its consumer, or discarded. On a cluster the
 * gateway merges the services' lists and finds which service holds an id.
 */
export function deadLetterRoutes(deadLetters: DeadLetters) {
  return async (app: FastifyInstance) => {
    app.get<{ Querystring: Record<string, string | undefined> }>('/admin/dead-letters', {
      schema: route({ access: 'operator', summary: 'Dead letters grouped by reason, and a page of them (oldest first)', tags: ['admin'], query: { group: 'only this group (a `group` of the list)', consumer: 'only this consumer (service)', limit: '1 to 10000 (default 50)', after: 'the `next` of the page before' }, ok: listSchema, errors: [...adminErrors, 'invalid-query', 'invalid-number', 'amount-too-large', 'invalid-id'] }),
    }, async (req) => {
      const query = deadLetterQuery(req.query);
      return deadLetterPage((await deadLetters.list(MAX_DEAD_LETTERS)).map(summarize), query);
    });

    app.get<{ Params: { id?: string } }>('/admin/dead-letters/:id', {
      schema: route({ access: 'operator', summary: 'One dead letter with its messages (payloads included)', tags: ['admin'], params: idParam, errors: [...adminErrors, 'invalid-id', 'dead-letter-not-found'] }),
    }, async (req) => {
      const id = deadLetterIdParam(req.params.id);
      const letter = await deadLetters.get(id);
      if (!letter) throw notFound(id);
      return { ...summarize(letter), envelopes: letter.messages, ...(letter.undecodable !== undefined ? { undecodable: letter.undecodable } : {}) };
    });

    app.post<{ Params: { id?: string } }>('/admin/dead-letters/:id/redrive', {
      schema: route({ access: 'operator', summary: 'Hands a dead letter back to the consumer it failed for (202: on its way; it is forgotten once consumed, kept again if it fails again)', tags: ['admin'], params: idParam, ok: schemas.object({ redriven: schemas.string }), errors: [...adminErrors, 'invalid-id', 'dead-letter-not-found'] }),
    }, async (req, reply) => {
      const id = deadLetterIdParam(req.params.id);
      const letter = await deadLetters.get(id);
      if (!letter || !(await deadLetters.redrive(id))) throw notFound(id);
      metrics.deadLettersRedriven.inc({ service: letter.consumer, type: letter.messages[0]?.type ?? 'undecodable' }, Math.max(1, letter.messages.length));
      return reply.code(202).send({ redriven: id });
    });

    app.delete<{ Params: { id?: string } }>('/admin/dead-letters/:id', {
      schema: route({ access: 'operator', summary: 'Discards a dead letter for good', tags: ['admin'], params: idParam, ok: schemas.object({ discarded: schemas.string }), errors: [...adminErrors, 'invalid-id', 'dead-letter-not-found'] }),
    }, async (req) => {
      const id = deadLetterIdParam(req.params.id);
      const letter = await deadLetters.get(id);
      if (!letter || !(await deadLetters.discard(id))) throw notFound(id);
      metrics.deadLettersDiscarded.inc({ service: letter.consumer, type: letter.messages[0]?.type ?? 'undecodable' }, Math.max(1, letter.messages.length));
      return { discarded: id };
    });
  };
}
