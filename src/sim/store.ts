import type { Envelope } from '../core/message.ts';
import { ConflictError, type Commit, type KeptLetter, type Snapshot, type Store } from '../ports/store.ts';
import type { Params } from './params.ts';
import type { World } from './world.ts';

/**
 * One run of one replica of a service's process; once `alive` is false, nothing it started ever
 * finishes. Until `hungUntil` it makes no progress (a long pause): what it had under way goes on
 * when it wakes.
 */
export type Incarnation = { readonly service: string; readonly replica: number; readonly n: number; alive: boolean; hungUntil: number; crash(why: string): void };

/** Who reads a store outside the world (the invariants): no time passes, no fault happens. */
export const outside = (service: string): Incarnation => ({ service, replica: 0, n: 0, alive: true, hungUntil: 0, crash: () => undefined });

/** Waits until a hung process wakes; call it only when `inc.hungUntil > world.now`, so that a process that does not hang awaits nothing more than before. */
export async function awake(world: World, inc: Incarnation): Promise<void> {
  while (inc.hungUntil > world.now) await world.sleep(inc.hungUntil - world.now);
}

/** Runs `fn` after `ms` in the process `inc`: never once it died, and only once it woke if it hangs then. */
export function later(world: World, inc: Incarnation, ms: number, fn: () => void): void {
  world.after(ms, () => {
    if (!inc.alive) return;
    if (inc.hungUntil > world.now) later(world, inc, inc.hungUntil - world.now, fn);
    else fn();
  });
}

/** A promise that never settles: what a call into a process that died becomes. */
export const never = <T>(): Promise<T> => new Promise<T>(() => undefined);

/** A document change a commit made, as the invariants see it. */
export type Changed = Readonly<{ key: string; before: unknown; after: unknown }>;
/** Told of every commit: what it changed, what it sent, which of the messages it consumed had been consumed before (never, while the inbox check holds), what it consumed, and which run committed it. */
export type CommitHook = (service: string, changes: readonly Changed[], outbox: readonly Envelope[], again: readonly string[], consumed: readonly string[], by: Incarnation) => void;

/**
 * A service's durable state in the simulated world: what survives its crashes, shared by its
 * replicas as one database is. Each run of a replica sees it through `view(incarnation)`, a
 * `Store` whose calls take virtual time, and which the world makes conflict, fail, or crash the
 * process before or after the commit. As the PostgreSQL and Redis stores do, a commit checks
 * what its transaction read: when a document read has changed (another replica committed it
 * meanwhile) or a message it consumes is in the inbox already, nothing is written and the
 * transaction is decided again on fresh data.
 */
export class SimStore {
  readonly service: string;
  readonly docs = new Map<string, unknown>();
  readonly inbox = new Map<string, number>();
  readonly outbox = new Map<string, Envelope>();
  readonly dead = new Map<string, KeptLetter>();
  /** The commit that last wrote each document (kept when deleted, so that a read of a missing one sees its re-creation). */
  readonly #versions = new Map<string, number>();
  #commits = 0;
  readonly #world: World;
  readonly #params: Params;
  readonly #onCommit: CommitHook;

  constructor(service: string, world: World, params: Params, onCommit: CommitHook) {
    this.service = service;
    this.#world = world;
    this.#params = params;
    this.#onCommit = onCommit;
  }

  #delay(): number {
    return this.#world.rng.int(0, Math.min(5, this.#params.maxDelay));
  }

  /** Waits a little virtual time, and never comes back if the process died meanwhile. */
  async #tick(inc: Incarnation): Promise<void> {
    if (inc.n === 0) return; // the invariants' own reads, outside the world
    if (!inc.alive) return never();
    await this.#world.sleep(this.#delay());
    if (inc.hungUntil > this.#world.now) await awake(this.#world, inc);
    if (!inc.alive) return never();
  }

  /** Whether a commit would lose a race: a document read changed since, or a message it consumes was consumed since. */
  #stale(read: ReadonlyMap<string, number>, consumed: readonly string[]): boolean {
    for (const [key, version] of read) if ((this.#versions.get(key) ?? 0) !== version) return true;
    return consumed.some((id) => this.inbox.has(id));
  }

  #fault(p: number): boolean {
    return p > 0 && this.#world.faults && this.#world.rng.chance(p);
  }

  /** Applies a commit: all of it, at once. */
  #apply<T>(commit: Commit<T>, inc: Incarnation): void {
    const changes: Changed[] = [];
    const version = ++this.#commits;
    for (const [key, doc] of commit.writes) {
      this.#versions.set(key, version);
      changes.push({ key, before: this.docs.get(key), after: doc });
      if (doc === null) this.docs.delete(key);
      else this.docs.set(key, doc);
    }
    const again = commit.consumed.filter((id) => this.inbox.has(id));
    for (const id of commit.consumed) this.inbox.set(id, this.#world.now);
    for (const m of commit.outbox) this.outbox.set(m.id, m);
    for (const id of commit.cancel) this.outbox.delete(id);
    this.#onCommit(this.service, changes, commit.outbox, again, commit.consumed, inc);
  }

  view(inc: Incarnation): Store {
    const world = this.#world;
    const p = this.#params;
    const self = this; // eslint-disable-line @typescript-eslint/no-this-alias -- the view's methods are the store's, seen through one run
    return {
      service: this.service,
      sendsOnCommit: false,
      async transact<T>(keys: readonly string[], messageIds: readonly string[], decide: (snapshot: Snapshot) => Commit<T>): Promise<T> {
        for (let attempt = 1; ; attempt++) {
          await self.#tick(inc);
          const docs = new Map<string, unknown>();
          const read = new Map<string, number>();
          for (const key of keys) {
            const doc = self.docs.get(key);
            if (doc !== undefined) docs.set(key, doc);
            read.set(key, self.#versions.get(key) ?? 0);
          }
          const seen = new Set(messageIds.filter((id) => self.inbox.has(id)));
          const commit = decide({ docs, seen });
          await self.#tick(inc);
          if (self.#stale(read, commit.consumed)) {
            // Another replica committed first: as src/adapters/storeKit.ts does, a short pause, then again.
            world.note(`${self.service}: run ${inc.n} lost a race, decides again`);
            if (attempt >= 50) throw new ConflictError(self.service, attempt);
            await world.sleep(world.rng.int(0, Math.min(50, attempt * attempt)));
            continue;
          }
          if (self.#fault(p.conflict)) {
            if (attempt >= 50) throw new ConflictError(self.service, attempt);
            continue;
          }
          if (self.#fault(p.storeError)) {
            world.note(`${self.service}: store fault, transaction rolled back`);
            throw new Error('simulated store fault');
          }
          if (self.#fault(p.crashBeforeCommit)) {
            inc.crash('deciding, before its commit');
            return never();
          }
          self.#apply(commit, inc);
          if (self.#fault(p.crashAfterCommit)) {
            inc.crash('after a commit, before publishing or acknowledging');
            return never();
          }
          return commit.result;
        }
      },
      async read(keys) {
        await self.#tick(inc);
        const found = new Map<string, unknown>();
        for (const key of keys) {
          const doc = self.docs.get(key);
          if (doc !== undefined) found.set(key, doc);
        }
        return found;
      },
      async scan(prefix, limit, after = '') {
        await self.#tick(inc);
        return self.scan(prefix, limit, after);
      },
      async outbox() {
        await self.#tick(inc);
        return [...self.outbox.values()];
      },
      async delivered(ids) {
        await self.#tick(inc);
        for (const id of ids) self.outbox.delete(id);
      },
      async deadLetter(message, consumer, error) {
        await self.#tick(inc);
        self.dead.set(`${consumer} ${message.id}`, { consumer, message, error, at: world.now });
      },
      async deadLetters(consumer, max, id) {
        await self.#tick(inc);
        return [...self.dead.values()].filter((l) => l.consumer === consumer && (id === undefined || l.message.id === id)).slice(0, max);
      },
      async dropDeadLetter(consumer, id) {
        await self.#tick(inc);
        return self.dead.delete(`${consumer} ${id}`);
      },
      async pruneInbox(olderThanMs) {
        await self.#tick(inc);
        let n = 0;
        for (const [id, at] of self.inbox) {
          if (at < world.now - olderThanMs) {
            self.inbox.delete(id);
            n++;
          }
        }
        return n;
      },
      async close() {},
    };
  }

  /** Documents by key prefix, in key order (outside any process: the invariants read this way too). */
  scan(prefix: string, limit: number, after = ''): Array<readonly [string, unknown]> {
    const keys = [...this.docs.keys()].filter((k) => k.startsWith(prefix) && k > after).sort();
    return keys.slice(0, limit).map((k) => [k, this.docs.get(k)] as const);
  }
}
