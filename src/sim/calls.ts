import type { Envelope } from '../core/message.ts';
import type { Bus, Handler } from '../ports/bus.ts';
import type { DeadLetter } from '../ports/deadLetters.ts';
import type { ServiceRuntime } from '../runtime/serviceRuntime.ts';
import { about } from './bus.ts';
import type { Params } from './params.ts';
import { never, type Incarnation } from './store.ts';
import type { World } from './world.ts';

/** A running service the synchronous style can call. */
export type Callee = Readonly<{ inc: Incarnation; runtime: ServiceRuntime }>;

/**
 * The synchronous style's transport in the simulated world (as src/adapters/calls/bus.ts does
 * it between processes): a saga command is called on its participant, and what it answers goes
 * to the caller's own consumers before `publish` resolves. A call takes virtual time each way,
 * may be refused, answered twice, lose its answer, or find its participant down or dying (it
 * then times out); the relay calls again and the participant, idempotent by saga id, answers the same.
 */
export class SimCalls {
  readonly #world: World;
  readonly #params: Params;
  readonly #owners: ReadonlyMap<string, readonly string[]>;
  readonly #callee: (service: string) => Callee | undefined;
  readonly #local = new Map<string, Map<string, { inc: Incarnation; handler: Handler }>>();
  readonly dead = new Map<string, DeadLetter>();

  constructor(world: World, params: Params, owners: ReadonlyMap<string, readonly string[]>, callee: (service: string) => Callee | undefined) {
    this.#world = world;
    this.#params = params;
    this.#owners = owners;
    this.#callee = callee;
  }

  /** Nothing is kept here: a call not yet answered is still in its caller's outbox, which the end of a run waits on. */
  get idle(): boolean {
    return true;
  }

  #delay(): number {
    return this.#world.rng.int(0, this.#params.maxDelay);
  }

  #fault(p: number): boolean {
    return this.#world.faults && this.#world.rng.chance(p);
  }

  async #timed<T>(work: Promise<T>, what: string): Promise<T> {
    const limit = 10_000 + 2 * this.#params.maxDelay;
    return Promise.race([work, this.#world.sleep(limit).then((): never => {
      throw new Error(`simulated: ${what} did not answer within ${limit} ms`);
    })]);
  }

  async #deliver(messages: readonly Envelope[]): Promise<void> {
    await Promise.all(messages.map(async (m) => {
      const consumers = this.#local.get(m.type);
      if (!consumers || consumers.size === 0) return;
      for (const [consumer, h] of consumers) {
        if (!h.inc.alive) throw new Error(`simulated: ${consumer} is down`);
        this.#world.note(`→ ${consumer} ${about(m)}`);
        await this.#timed(h.handler(m), consumer);
      }
    }));
  }

  async #call(participant: string, commands: readonly Envelope[], inc: Incarnation): Promise<void> {
    const world = this.#world;
    await world.sleep(this.#delay());
    const target = this.#callee(participant);
    if (!target || !target.inc.alive) throw new Error(`simulated: ${participant} unreachable`);
    if (this.#fault(this.#params.publishFail)) throw new Error(`simulated: the call to ${participant} failed`);
    for (const c of commands) world.note(`⇒ ${participant} ${about(c)}`);
    const ask = () => this.#timed(Promise.all(commands.map((c) => target.runtime.call(c))), participant);
    const answers = (await ask()).flat();
    const again = this.#fault(this.#params.duplicate) ? (await ask()).flat() : [];
    if (!inc.alive) return never();
    if (this.#fault(this.#params.confirmLost)) throw new Error(`simulated: the answer of ${participant} was lost`);
    await world.sleep(this.#delay());
    await this.#deliver([...answers, ...again]);
  }

  view(inc: Incarnation): Bus {
    return {
      publish: async (messages) => {
        if (!inc.alive) return never();
        {
          const here: Envelope[] = [];
          const byParticipant = new Map<string, Envelope[]>();
          for (const m of messages) {
            const owners = this.#owners.get(m.type) ?? [];
            if (owners.length === 0) here.push(m);
            for (const owner of owners) byParticipant.set(owner, [...(byParticipant.get(owner) ?? []), m]);
          }
          await this.#world.sleep(this.#delay());
          await Promise.all([this.#deliver(here), ...[...byParticipant].map(([participant, commands]) => this.#call(participant, commands, inc))]);
          if (!inc.alive) return never();
          if (this.#fault(this.#params.crashInPublish)) {
            inc.crash('after its calls were answered, before the relay dropped them from the outbox');
            return never();
          }
        }
      },
      subscribe: async (consumer, types, handler) => {
        for (const type of types) {
          const consumers = this.#local.get(type) ?? new Map<string, { inc: Incarnation; handler: Handler }>();
          consumers.set(consumer, { inc, handler });
          this.#local.set(type, consumers);
        }
      },
      declare: async () => {},
      deadLetters: { list: async () => [], get: async () => undefined, redrive: async () => false, discard: async () => false },
      connected: () => inc.alive,
      close: async () => {},
    };
  }

  redriveAll(): number {
    return 0;
  }

  crashed(_inc: Incarnation): void {}
}
