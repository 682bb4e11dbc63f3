import type { Envelope } from '../../core/message.ts';
import type { Bus, Handler } from '../../ports/bus.ts';
import type { Call } from '../../ports/calls.ts';
import { splitDeadLetterId, type DeadLetterShelf, type DeadLetters } from '../../ports/deadLetters.ts';

export type { Call };

/**
 * A call that did not reach its participant (no connection, or a gateway with no replica): the
 * participant may be restarting, so the call is tried again for as long as it takes. Any other
 * failure is the participant's own (it answered with an error), and is tried only so often.
 */
export class Unreachable extends Error {}

export type CallingBusOptions = Readonly<{
  /** Failed calls of one command, answered by its participant, before it is parked. */
  maxFailures: number;
  /** Keeps a command its participant kept failing, with why (it is then not called again), until redriven or discarded. */
  shelf: DeadLetterShelf;
}>;

/** Pause between the calls of a redriven command that did not reach its participant or failed (before it is parked again). */
const REDRIVE_RETRY_MS = 1000;

/**
 * The synchronous saga style's transport: no broker. A command is called on its participant
 * (over HTTP between processes, directly in one process), and the answers are handed to this
 * process's own consumer (the order service) before `publish` resolves. The relay drops a
 * command from the outbox only then, so the outbox is the saga's durable log: after a crash,
 * what was not answered and committed is called again, and the participants, idempotent by
 * saga id, answer the same again. A failed call rejects `publish`; the relay retries it.
 *
 * `owners` maps each command type to its participant, and each event another service must hear
 * to those services (each is called with it); messages of other types go to the local consumers
 * subscribed to them (timers, answers), or nowhere when none is. A command its
 * participant fails `maxFailures` times (counted in this process) is parked as a dead letter
 * instead of being called for ever; one that cannot reach its participant is never parked.
 * A parked command redriven is called again (its failures counted afresh) until its participant
 * answers, and its answers go to the local consumer as any call's.
 */
export function callingBus(owners: ReadonlyMap<string, readonly string[]>, call: Call, options?: CallingBusOptions): Bus {
  const local = new Map<string, Handler[]>();
  const failures = new Map<string, number>();
  const parked = new Set<string>();
  let closed = false;

  /** Calls `commands` on `participant` and delivers the answers; parks those that failed too often. */
  const callOn = async (participant: string, commands: readonly Envelope[]) => {
    const live = commands.filter((c) => !parked.has(`${participant} ${c.id}`));
    if (live.length === 0) return;
    try {
      await deliver((await call(participant, live)).flat());
      for (const c of live) failures.delete(`${participant} ${c.id}`);
    } catch (error) {
      if (!options || error instanceof Unreachable) throw error;
      const reason = error instanceof Error ? error.message : String(error);
      const spent = live.filter((c) => {
        const n = (failures.get(`${participant} ${c.id}`) ?? 0) + 1;
        failures.set(`${participant} ${c.id}`, n);
        return n >= options.maxFailures;
      });
      for (const c of spent) {
        await options.shelf.keep(participant, c, `${participant} failed it ${options.maxFailures} times; last: ${reason}`);
        parked.add(`${participant} ${c.id}`);
        failures.delete(`${participant} ${c.id}`);
      }
      if (spent.length < live.length) throw error;
    }
  };

  const deliver = async (messages: readonly Envelope[]) => {
    await Promise.all(messages.flatMap((m) => (local.get(m.type) ?? []).map((handler) => handler(m))));
  };

  const participants = new Set([...owners.values()].flat());
  const mine = (id: string) => {
    const split = splitDeadLetterId(id);
    return split && options && participants.has(split.consumer) ? { ...split, shelf: options.shelf } : undefined;
  };

  /** Calls a redriven command until its participant answers or it is parked again; then forgets the old dead letter if answered. */
  const again = async (participant: string, command: Envelope, forget: () => Promise<unknown>) => {
    const key = `${participant} ${command.id}`;
    parked.delete(key);
    failures.delete(key);
    while (!closed) {
      try {
        await callOn(participant, [command]);
        if (!parked.has(key)) await forget();
        return;
      } catch {
        await new Promise((resolve) => setTimeout(resolve, REDRIVE_RETRY_MS));
      }
    }
  };

  const deadLetters: DeadLetters = {
    list: async (max) => (options ? (await Promise.all([...participants].map((p) => options.shelf.list(p, max)))).flat() : []),
    get: async (id) => {
      const at = mine(id);
      return at && at.shelf.get(at.consumer, at.local);
    },
    async redrive(id) {
      const at = mine(id);
      const letter = at && (await at.shelf.get(at.consumer, at.local));
      if (!at || !letter) return false;
      for (const command of letter.messages) void again(at.consumer, command, () => at.shelf.remove(at.consumer, at.local));
      return true;
    },
    discard: async (id) => {
      const at = mine(id);
      return at !== undefined && at.shelf.remove(at.consumer, at.local);
    },
  };

  return {
    deadLetters,
    async publish(messages) {
      if (closed) throw new Error('The bus is closed');
      const byParticipant = new Map<string, Envelope[]>();
      const here: Envelope[] = [];
      for (const message of messages) {
        const called = owners.get(message.type) ?? [];
        if (called.length === 0) here.push(message);
        for (const owner of called) byParticipant.set(owner, [...(byParticipant.get(owner) ?? []), message]);
      }
      await Promise.all([
        deliver(here),
        ...[...byParticipant].map(([participant, commands]) => callOn(participant, commands)),
      ]);
    },
    async subscribe(_consumer, types, handler) {
      for (const type of types) {
        if (owners.has(type)) throw new Error(`${type} is called on ${owners.get(type)?.join(', ')}, not consumed here`);
        local.set(type, [...(local.get(type) ?? []), handler]);
      }
    },
    declare: async () => {},
    connected: () => !closed,
    async close() {
      closed = true;
    },
  };
}
