import type { Envelope } from '../core/message.ts';
import { Undeliverable, type Bus, type Handler } from '../ports/bus.ts';
import { deadLetterId, splitDeadLetterId, type DeadLetter, type DeadLetters } from '../ports/deadLetters.ts';
import type { ServiceRuntime } from '../runtime/serviceRuntime.ts';
import type { Params } from './params.ts';
import { never, type Incarnation } from './store.ts';
import type { World } from './world.ts';

type Delivery = { readonly message: Envelope; readonly consumer: string; attempts: number; token: number };

/** Short name of a message for the trace. */
export const about = (m: Envelope) => `${m.type} ${m.sagaId || m.correlationId}${m.step ? `/${m.step}` : ''}`;

/**
 * A broker in the simulated world (the orchestrated and choreographed styles): durable queues per
 * consumer, at-least-once. It delays every message by its own amount (so they reorder), may take
 * a message twice, refuse a publish, lose a publish's confirm or a consumer's acknowledgement,
 * redelivers what a consumer failed (with backoff) or what was in flight when its process died,
 * and keeps as a dead letter what failed `maxDeliveries` times, until the operator redrives it.
 */
export class SimBroker {
  readonly #world: World;
  readonly #params: Params;
  readonly #routes = new Map<string, string[]>();
  readonly #handlers = new Map<string, { inc: Incarnation; handler: Handler }>();
  readonly #inFlight = new Map<Incarnation, Set<Delivery>>();
  readonly dead = new Map<string, DeadLetter>();
  /** Deliveries not yet acknowledged or dead-lettered. */
  queued = 0;

  constructor(world: World, params: Params) {
    this.#world = world;
    this.#params = params;
  }

  get idle(): boolean {
    return this.queued === 0 && this.dead.size === 0;
  }

  #delay(): number {
    return this.#world.rng.int(0, this.#params.maxDelay);
  }

  #fault(p: number): boolean {
    return this.#world.faults && this.#world.rng.chance(p);
  }

  #accept(message: Envelope): void {
    for (const consumer of this.#routes.get(message.type) ?? []) {
      this.#enqueue(consumer, message);
      if (this.#fault(this.#params.duplicate)) this.#enqueue(consumer, message);
    }
  }

  #enqueue(consumer: string, message: Envelope): void {
    const d: Delivery = { message, consumer, attempts: 0, token: 0 };
    this.queued++;
    this.#world.after(this.#delay(), () => this.#deliver(d));
  }

  #deliver(d: Delivery): void {
    const world = this.#world;
    const h = this.#handlers.get(d.consumer);
    if (!h || !h.inc.alive) {
      world.after(10 + this.#delay(), () => this.#deliver(d));
      return;
    }
    d.attempts++;
    const token = ++d.token;
    const flying = this.#inFlight.get(h.inc) ?? new Set<Delivery>();
    this.#inFlight.set(h.inc, flying);
    flying.add(d);
    world.note(`→ ${d.consumer} ${about(d.message)}${d.attempts > 1 ? ` (delivery ${d.attempts})` : ''}`);
    h.handler(d.message).then(() => {
      if (d.token !== token) return;
      world.after(this.#delay(), () => {
        if (d.token !== token) return;
        flying.delete(d);
        if (this.#fault(this.#params.ackLost)) {
          world.note(`  ack of ${about(d.message)} by ${d.consumer} lost`);
          d.token++;
          world.after(50 + this.#delay(), () => this.#deliver(d));
        } else this.queued--;
      });
    }, (error: unknown) => {
      if (d.token !== token) return;
      flying.delete(d);
      const reason = error instanceof Error ? error.message : String(error);
      if (error instanceof Undeliverable || d.attempts >= this.#params.maxDeliveries) {
        world.note(`  ${about(d.message)} dead-lettered by ${d.consumer}: ${reason}`);
        this.dead.set(deadLetterId(d.consumer, d.message.id), { id: deadLetterId(d.consumer, d.message.id), consumer: d.consumer, reason, at: world.now, messages: [d.message] });
        this.queued--;
      } else {
        world.after(Math.min(2000, 10 * 2 ** d.attempts) + this.#delay(), () => this.#deliver(d));
      }
    });
  }

  /** The process died: whatever it was handling comes back to the queue unacknowledged. */
  crashed(inc: Incarnation): void {
    for (const d of this.#inFlight.get(inc) ?? []) {
      d.token++;
      this.#world.after(this.#delay(), () => this.#deliver(d));
    }
    this.#inFlight.delete(inc);
    for (const [consumer, h] of this.#handlers) if (h.inc === inc) this.#handlers.delete(consumer);
  }

  /** The operator hands every dead letter back to its consumer. */
  redriveAll(): number {
    const letters = [...this.dead.values()];
    for (const letter of letters) this.#redrive(letter);
    return letters.length;
  }

  #redrive(letter: DeadLetter): void {
    this.dead.delete(letter.id);
    for (const m of letter.messages) this.#enqueue(letter.consumer, m);
    this.#world.note(`operator redrives ${letter.id}`);
  }

  view(inc: Incarnation): Bus {
    const world = this.#world;
    const p = this.#params;
    const deadLetters: DeadLetters = {
      list: async (max) => [...this.dead.values()].slice(0, max),
      get: async (id) => this.dead.get(id),
      redrive: async (id) => {
        const letter = this.dead.get(id);
        if (letter) this.#redrive(letter);
        return letter !== undefined && splitDeadLetterId(id) !== undefined;
      },
      discard: async (id) => this.dead.delete(id),
    };
    return {
      publish: async (messages) => {
        if (!inc.alive) return never();
        await world.sleep(this.#delay());
        if (!inc.alive) return never();
        if (this.#fault(p.publishFail)) throw new Error('simulated: the broker refused the publish');
        for (const m of messages) this.#accept(m);
        if (this.#fault(p.crashInPublish)) {
          inc.crash('after the broker took its publish, before the relay dropped it from the outbox');
          return never();
        }
        if (this.#fault(p.confirmLost)) throw new Error('simulated: the publish confirm was lost');
      },
      subscribe: async (consumer, types, handler) => {
        this.#declare(consumer, types);
        this.#handlers.set(consumer, { inc, handler });
      },
      declare: async (consumer, types) => this.#declare(consumer, types),
      deadLetters,
      connected: () => inc.alive,
      close: async () => {},
    };
  }

  #declare(consumer: string, types: readonly string[]): void {
    for (const type of types) {
      const list = this.#routes.get(type) ?? [];
      if (!list.includes(consumer)) this.#routes.set(type, [...list, consumer]);
    }
  }
}

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
