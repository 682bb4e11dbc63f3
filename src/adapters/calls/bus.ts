import type { Envelope } from '../../core/message.ts';
import type { Bus, Handler } from '../../ports/bus.ts';
import type { Call } from '../../ports/calls.ts';

export type { Call };

/**
 * The synchronous saga style's transport: no broker. A command is called on its participant
 * (over HTTP between processes, directly in one process), and the answers are handed to this
 * process's own consumer (the order service) before `publish` resolves. The relay drops a
 * command from the outbox only then, so the outbox is the saga's durable log: after a crash,
 * what was not answered and committed is called again, and the participants, idempotent by
 * saga id, answer the same again. A failed call rejects `publish`; the relay retries it.
 *
 * `owners` maps each command type to its participant; messages of other types go to the
 * local consumers subscribed to them (timers, answers), or nowhere when none is.
 */
export function callingBus(owners: ReadonlyMap<string, string>, call: Call): Bus {
  const local = new Map<string, Handler[]>();
  let closed = false;

  const deliver = async (messages: readonly Envelope[]) => {
    await Promise.all(messages.flatMap((m) => (local.get(m.type) ?? []).map((handler) => handler(m))));
  };

  return {
    async publish(messages) {
      if (closed) throw new Error('The bus is closed');
      const byParticipant = new Map<string, Envelope[]>();
      const here: Envelope[] = [];
      for (const message of messages) {
        const owner = owners.get(message.type);
        if (owner === undefined) here.push(message);
        else if (byParticipant.has(owner)) byParticipant.get(owner)!.push(message);
        else byParticipant.set(owner, [message]);
      }
      await Promise.all([
        deliver(here),
        ...[...byParticipant].map(async ([participant, commands]) => deliver((await call(participant, commands)).flat())),
      ]);
    },
    async subscribe(_consumer, types, handler) {
      for (const type of types) {
        if (owners.has(type)) throw new Error(`${type} is called on ${owners.get(type)}, not consumed here`);
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
