import type { Config } from '../config.ts';
import type { ApiCommand, Reply } from '../core/decider.ts';
import type { Envelope } from '../core/message.ts';
import type { Logger } from '../ports/log.ts';
import type { Bus } from '../ports/bus.ts';
import type { Timers } from '../runtime/relay.ts';
import type { ServiceRuntime } from '../runtime/serviceRuntime.ts';
import type { CommandOptions } from '../ports/service.ts';
import { calledCommands, declareTopology, runService, servicesOf, type Engine, type RunningService, type ServiceName } from '../wiring/serviceWiring.ts';
import { SimBroker, SimCalls } from './bus.ts';
import type { Params } from './params.ts';
import { SimStore, type CommitHook, type Incarnation } from './store.ts';
import type { World } from './world.ts';

export type Running = Readonly<{ inc: Incarnation; service: RunningService }>;

/** What a client gets back from a command: the service's reply, or no answer (the process died, or the command failed). */
export type Answer = Readonly<{ kind: 'reply'; reply: Reply | undefined } | { kind: 'error'; error: string } | { kind: 'no-answer' }>;

/**
 * The five services (and, in choreography, the saga tracker), each wired as `npm start` wires it
 * (src/wiring/serviceWiring.ts runService: the real deciders, ServiceRuntime and Relay) on its
 * simulated store and the simulated bus, with the world's clock, timers and ids. Each can crash
 * at any moment (whatever it had in flight never finishes) and is started again later.
 */
export class SimSystem {
  readonly names: readonly ServiceName[];
  readonly stores = new Map<string, SimStore>();
  readonly transport: SimBroker | SimCalls;
  readonly #world: World;
  readonly #params: Params;
  #config: Config;
  readonly #running = new Map<string, Running>();
  readonly #listeners: ((service: string, messages: readonly Envelope[]) => void)[] = [];
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
        const running = this.#running.get(name);
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

  runtime(name: string): ServiceRuntime | undefined {
    return this.#running.get(name)?.service.runtime;
  }

  isUp(name: string): boolean {
    return this.#running.has(name);
  }

  /** Every commit's messages, from whichever run of each service. */
  onCommitted(listener: (service: string, messages: readonly Envelope[]) => void): void {
    this.#listeners.push(listener);
  }

  async declare(): Promise<void> {
    if (this.transport instanceof SimBroker) await declareTopology(this.transport.view({ service: '', n: 0, alive: true, crash: () => undefined }), this.#config);
  }

  /** Starts a run of `name`: subscribes, then loads and sends what its outbox holds. */
  async start(name: ServiceName): Promise<void> {
    if (this.#running.has(name)) return;
    const world = this.#world;
    const inc: Incarnation = {
      service: name, n: ++this.#incarnations, alive: true,
      crash: (why) => this.crash(name, why, inc),
    };
    const store = this.stores.get(name);
    if (!store) throw new Error(`No store for ${name}`);
    const bus: Bus = this.transport.view(inc);
    const timers: Timers = {
      every: (ms, fn) => {
        let on = true;
        const tick = () => {
          if (!on || !inc.alive) return;
          fn();
          world.after(ms, tick);
        };
        world.after(ms, tick);
        return () => {
          on = false;
        };
      },
      after: (ms, fn) => world.after(ms, () => inc.alive && fn()),
    };
    const engine: Engine = {
      now: () => world.now,
      timers,
      newId: () => `${(++this.#ids).toString(36)}`,
      gather: () => new Promise((resolve) => world.after(world.rng.int(0, this.#params.gatherMs), () => inc.alive && resolve())),
      tickMs: this.#params.tickMs,
    };
    const service = runService(name, store.view(inc), bus, {
      config: this.#config, log: this.#logger(name), publishChunk: this.#params.publishChunk, sweepMs: this.#params.sweepMs, engine,
      lookups: { itemPrice: async () => undefined, userExists: async () => false },
    });
    service.runtime.onCommitted((messages) => {
      if (inc.alive) for (const listener of this.#listeners) listener(name, messages);
    });
    this.#running.set(name, { inc, service });
    world.note(`start ${name} (run ${inc.n})`);
    await service.subscribe();
    await service.start();
  }

  /** Kills a run of `name` (the current one unless `inc` says which): nothing it had under way finishes; it starts again later. */
  crash(name: ServiceName, why: string, inc = this.#running.get(name)?.inc): void {
    const running = this.#running.get(name);
    if (!inc || !inc.alive || running?.inc !== inc) return;
    inc.alive = false;
    this.#running.delete(name);
    this.transport.crashed(inc);
    this.#world.note(`CRASH ${name} (run ${inc.n}) ${why}`);
    const restart = this.#world.faults ? this.#world.rng.int(1, this.#params.restartMs) : 1;
    this.#world.after(restart, () => void this.start(name));
  }

  /** Runs a command on the current run of `name`, as a client would, giving up after `patience`. */
  command<C extends ApiCommand>(name: ServiceName, command: C, options: CommandOptions, patience: number): Promise<Answer> {
    const runtime = this.runtime(name) as ServiceRuntime<never, C> | undefined;
    if (!runtime) return Promise.resolve({ kind: 'no-answer' });
    const asked = runtime.command(command, options).then(
      (reply): Answer => ({ kind: 'reply', reply }),
      (error: unknown): Answer => ({ kind: 'error', error: error instanceof Error ? error.message : String(error) }),
    );
    return Promise.race([asked, this.#world.sleep(patience).then((): Answer => ({ kind: 'no-answer' }))]);
  }

  /** Every service up again, with nothing in flight lost: what the end of a run waits from. */
  restartAll(): void {
    for (const name of this.names) if (!this.#running.has(name)) void this.start(name);
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
