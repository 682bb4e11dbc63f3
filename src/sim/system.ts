import type { Config } from '../config.ts';
import type { ApiCommand, Reply } from '../core/decider.ts';
import type { Envelope } from '../core/message.ts';
import type { Logger } from '../ports/log.ts';
import type { Bus } from '../ports/bus.ts';
import type { Timers } from '../runtime/relay.ts';
import type { ServiceRuntime } from '../runtime/serviceRuntime.ts';
import type { CommandOptions } from '../ports/service.ts';
import { calledCommands, declareTopology, runService, servicesOf, type Engine, type RunningService, type ServiceName } from '../wiring/serviceWiring.ts';
import { SimBroker } from './bus.ts';
import { SimCalls } from './calls.ts';
import type { Params } from './params.ts';
import { later, outside, SimStore, type CommitHook, type Incarnation } from './store.ts';
import type { World } from './world.ts';

export type Running = Readonly<{ inc: Incarnation; service: RunningService }>;

/** What a client gets back from a command: the service's reply, or no answer (the process died, or the command failed). */
export type Answer = Readonly<{ kind: 'reply'; reply: Reply | undefined } | { kind: 'error'; error: string } | { kind: 'no-answer' }>;

/**
 * The five services (and, in choreography, the saga tracker), each wired as `npm start` wires it
 * (src/wiring/serviceWiring.ts runService: the real deciders, ServiceRuntime and Relay) on its
 * simulated store and the simulated bus, with the world's clock, timers and ids. A service runs
 * as its drawn number of replicas, each its own runService over the service's one store. Each
 * replica can crash at any moment (whatever it had in flight never finishes) and is started
 * again later, hang for a while, or leave and join again; clients reach any live replica.
 */
export class SimSystem {
  readonly names: readonly ServiceName[];
  readonly stores = new Map<string, SimStore>();
  readonly transport: SimBroker | SimCalls;
  readonly #world: World;
  readonly #params: Params;
  #config: Config;
  /** The live run of each replica, by `service/replica`. */
  readonly #running = new Map<string, Running>();
  readonly #listeners: ((service: string, messages: readonly Envelope[]) => void)[] = [];
  readonly #leaving = new Set<Incarnation>();
  #incarnations = 0;
  #ids = 0;
  /** A decider threw on a well-formed message or command: a bug, not a fault the world made. */
  readonly onBug: (what: string) => void;

  constructor(world: World, params: Params, config: Config, onCommit: CommitHook, onBug: (what: string) => void) {
    this.#world = world;
    this.#params = params;
    this.#config = config;
    this.onBug = onBug;
    this.names = servicesOf(config.sagaStyle);
    for (const name of this.names) this.stores.set(name, new SimStore(name, world, params, onCommit));
    this.transport = config.sagaStyle === 'synchronous'
      ? new SimCalls(world, params, calledCommands(config), (name) => {
        const running = this.#running.get(`${name}/0`);
        return running && { inc: running.inc, runtime: running.service.runtime };
      })
      : new SimBroker(world, params);
  }

  get config(): Config {
    return this.#config;
  }

  /** The orders restart under a newer configuration (the checkout's version upgraded). */
  reconfigure(config: Config): void {
    this.#config = config;
  }

  /** A live replica of `name` that is not leaving, as a load balancer picks one (the world draws only when there is a choice). */
  #pick(name: ServiceName): Running | undefined {
    const live: Running[] = [];
    for (let r = 0; r < this.#params.replicas[name]; r++) {
      const running = this.#running.get(`${name}/${r}`);
      if (running && !this.#leaving.has(running.inc)) live.push(running);
    }
    return live.length > 1 ? this.#world.rng.pick(live) : live[0];
  }

  /** Whether every replica of `name` runs (and none is leaving). */
  isUp(name: ServiceName): boolean {
    for (let r = 0; r < this.#params.replicas[name]; r++) {
      const running = this.#running.get(`${name}/${r}`);
      if (!running || this.#leaving.has(running.inc)) return false;
    }
    return true;
  }

  /** Every commit's messages, from whichever run of each service. */
  onCommitted(listener: (service: string, messages: readonly Envelope[]) => void): void {
    this.#listeners.push(listener);
  }

  async declare(): Promise<void> {
    if (this.transport instanceof SimBroker) await declareTopology(this.transport.view(outside('')), this.#config);
  }

  /** Starts every replica of `name`. */
  async startAll(name: ServiceName): Promise<void> {
    for (let r = 0; r < this.#params.replicas[name]; r++) await this.start(name, r);
  }

  /** Starts a run of replica `replica` of `name`: subscribes, then loads and sends what its outbox holds. */
  async start(name: ServiceName, replica: number): Promise<void> {
    const slot = `${name}/${replica}`;
    if (this.#running.has(slot)) return;
    const world = this.#world;
    const inc: Incarnation = {
      service: name, replica, n: ++this.#incarnations, alive: true, hungUntil: 0,
      crash: (why) => this.crash(name, why, inc),
    };
    const store = this.stores.get(name);
    if (!store) throw new Error(`No store for ${name}`);
    const bus: Bus = this.transport.view(inc);
    const timers: Timers = {
      every: (ms, fn) => {
        let on = true;
        const tick = () => {
          if (!on) return;
          fn();
          later(world, inc, ms, tick);
        };
        later(world, inc, ms, tick);
        return () => {
          on = false;
        };
      },
      after: (ms, fn) => later(world, inc, ms, fn),
    };
    const engine: Engine = {
      now: () => world.now,
      timers,
      newId: () => `${(++this.#ids).toString(36)}`,
      gather: () => new Promise((resolve) => later(world, inc, world.rng.int(0, this.#params.gatherMs), resolve)),
      tickMs: this.#params.tickMs,
    };
    const service = runService(name, store.view(inc), bus, {
      config: this.#config, log: this.#logger(name), publishChunk: this.#params.publishChunk, sweepMs: this.#params.sweepMs, engine,
      lookups: { itemPrice: async () => undefined, userExists: async () => false },
    });
    service.runtime.onCommitted((messages) => {
      if (inc.alive) for (const listener of this.#listeners) listener(name, messages);
    });
    this.#running.set(slot, { inc, service });
    world.note(`start ${name}${replica > 0 ? `/${replica}` : ''} (run ${inc.n})`);
    await service.subscribe();
    await service.start();
  }

  /** Kills a run of `name` (a live replica's unless `inc` says which): nothing it had under way finishes; it starts again later. */
  crash(name: ServiceName, why: string, inc = this.#pick(name)?.inc): void {
    if (!inc || !inc.alive || this.#running.get(`${name}/${inc.replica}`)?.inc !== inc) return;
    inc.alive = false;
    this.#leaving.delete(inc);
    this.#running.delete(`${name}/${inc.replica}`);
    this.transport.crashed(inc);
    this.#world.note(`CRASH ${name} (run ${inc.n}) ${why}`);
    const restart = this.#world.faults ? this.#world.rng.int(1, this.#params.restartMs) : 1;
    this.#world.after(restart, () => void this.start(name, inc.replica));
  }

  /** Kills every run of `name` (the upgrade restarts them all). */
  crashAll(name: ServiceName, why: string): void {
    for (let r = 0; r < this.#params.replicas[name]; r++) this.crash(name, why, this.#running.get(`${name}/${r}`)?.inc);
  }

  /** A live replica of `name` stops making progress for `ms` (a long pause); then it goes on with whatever it had under way. */
  hang(name: ServiceName, ms: number): void {
    const running = this.#pick(name);
    if (!running) return;
    running.inc.hungUntil = Math.max(running.inc.hungUntil, this.#world.now + ms);
    this.#world.note(`HANG ${name} (run ${running.inc.n}) for ${ms} ms`);
  }

  /** A live replica of `name` leaves: it gives its partitions back and stops reading, finishes what it has for `drainMs`, exits, and joins again later. */
  leave(name: ServiceName, drainMs: number): void {
    const running = this.#pick(name);
    if (!running || !(this.transport instanceof SimBroker)) return;
    const inc = running.inc;
    this.#leaving.add(inc);
    this.transport.left(inc);
    this.#world.note(`LEAVE ${name} (run ${inc.n})`);
    this.#world.after(drainMs, () => this.crash(name, 'exits, having left', inc));
  }

  /** Runs a command on a live replica of `name`, as a client would, giving up after `patience`. */
  command<C extends ApiCommand>(name: ServiceName, command: C, options: CommandOptions, patience: number): Promise<Answer> {
    const runtime = this.#pick(name)?.service.runtime as ServiceRuntime<never, C> | undefined;
    if (!runtime) return Promise.resolve({ kind: 'no-answer' });
    const asked = runtime.command(command, options).then(
      (reply): Answer => ({ kind: 'reply', reply }),
      (error: unknown): Answer => ({ kind: 'error', error: error instanceof Error ? error.message : String(error) }),
    );
    return Promise.race([asked, this.#world.sleep(patience).then((): Answer => ({ kind: 'no-answer' }))]);
  }

  /** Every replica of every service up again, with nothing in flight lost: what the end of a run waits from. */
  restartAll(): void {
    for (const name of this.names) for (let r = 0; r < this.#params.replicas[name]; r++) void this.start(name, r);
  }

  #logger(service: string): Logger {
    const world = this.#world;
    const log: Logger = {
      error: (fields, message) => {
        const err = (fields as { err?: unknown }).err;
        const text = err instanceof Error ? err.message : '';
        // A decider that throws is a bug; a transaction the world failed is not.
        if (message === 'decide failed') this.onBug(`${service}: decide threw: ${text}`);
        else if (!text.startsWith('simulated') && !text.includes('still conflicting') && message !== 'message dead-lettered') this.onBug(`${service}: ${message}: ${text}`);
      },
      warn: (fields, message) => {
        const err = (fields as { err?: unknown }).err;
        world.note(`  ${service} warns: ${message}${err instanceof Error ? `: ${err.message}` : ''}`);
      },
      info: () => undefined,
      debug: () => undefined,
      child: () => log,
    };
    return log;
  }
}
