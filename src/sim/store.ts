import type { Envelope } from '../core/message.ts';
import { ConflictError, type Commit, type KeptLetter, type Snapshot, type Store } from '../ports/store.ts';
import type { Params } from './params.ts';
import type { World } from './world.ts';

/** One run of a service's process; once `alive` is false, nothing it started ever finishes. */
export type Incarnation = { readonly service: string; readonly n: number; alive: boolean; crash(why: string): void };

/** A promise that never settles: what a call into a process that died becomes. */
export const never = <T>(): Promise<T> => new Promise<T>(() => undefined);

/** A document change a commit made, as the invariants see it. */
export type Changed = Readonly<{ key: string; before: unknown; after: unknown }>;
/** Told of every commit: what it changed, what it sent, and which of the messages it consumed had been consumed before. */
export type CommitHook = (service: string, changes: readonly Changed[], outbox: readonly Envelope[], again: readonly string[]) => void;

/**
 * A service's durable state in the simulated world: what survives its crashes. Each run of the
 * service sees it through `view(incarnation)`, a `Store` whose calls take virtual time, and
 * which the world makes conflict, fail, or crash the process before or after the commit.
 */
export class SimStore {
  readonly service: string;
  readonly docs = new Map<string, unknown>();
  readonly inbox = new Map<string, number>();
  readonly outbox = new Map<string, Envelope>();
  readonly dead = new Map<string, KeptLetter>();
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
    if (!inc.alive) return never();
  }

  #fault(p: number): boolean {
    return p > 0 && this.#world.faults && this.#world.rng.chance(p);
  }

  /** Applies a commit: all of it, at once. */
  #apply<T>(commit: Commit<T>): void {
    const changes: Changed[] = [];
    for (const [key, doc] of commit.writes) {
      changes.push({ key, before: this.docs.get(key), after: doc });
      if (doc === null) this.docs.delete(key);
      else this.docs.set(key, doc);
    }
    const again = commit.consumed.filter((id) => this.inbox.has(id));
    for (const id of commit.consumed) this.inbox.set(id, this.#world.now);
    for (const m of commit.outbox) this.outbox.set(m.id, m);
    for (const id of commit.cancel) this.outbox.delete(id);
    this.#onCommit(this.service, changes, commit.outbox, again);
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
          for (const key of keys) {
            const doc = self.docs.get(key);
            if (doc !== undefined) docs.set(key, doc);
          }
          const seen = new Set(messageIds.filter((id) => self.inbox.has(id)));
          const commit = decide({ docs, seen });
          await self.#tick(inc);
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
          self.#apply(commit);
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
