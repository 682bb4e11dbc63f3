import { Random } from './random.ts';

type Event = { at: number; seq: number; fn: () => void };

const settled = Promise.resolve();

/** The virtual epoch every seed starts at (2025-01-01), so times in traces read as dates. */
export const EPOCH = 1_735_689_600_000;

/**
 * The simulated world: a virtual clock, one seeded generator, and the events still to happen,
 * run one at a time in time order (ties in the order they were scheduled). After each event the
 * microtasks it started run to their end before the next event, so the real code's promises
 * interleave only where the world's events say they do, and a seed always replays the same.
 */
export class World {
  readonly rng: Random;
  now = EPOCH;
  /** Faults happen while this is true; the end of a run turns them off and waits for everything to settle. */
  faults = true;
  steps = 0;
  readonly #heap: Event[] = [];
  #seq = 0;
  readonly #recent: string[] = [];
  readonly #keep: number;
  #hash = 0x811c9dc5;
  #lines = 0;

  constructor(seed: number, keep = 40) {
    this.rng = new Random(seed);
    this.#keep = keep;
  }

  /** Runs `fn` after `delay` virtual milliseconds. */
  after(delay: number, fn: () => void): void {
    const event = { at: this.now + Math.max(0, delay), seq: this.#seq++, fn };
    const heap = this.#heap;
    heap.push(event);
    let i = heap.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      const p = heap[parent]!;
      if (p.at < event.at || (p.at === event.at && p.seq < event.seq)) break;
      heap[i] = p;
      i = parent;
    }
    heap[i] = event;
  }

  /** A promise the world resolves after `delay`. */
  sleep(delay: number): Promise<void> {
    return new Promise((resolve) => this.after(delay, resolve));
  }

  /** Adds a line to the trace: the last lines are kept for a report, and every line goes into the trace's hash. */
  note(line: string): void {
    const stamped = `${(this.now - EPOCH).toString().padStart(7)} ${line}`;
    let h = this.#hash;
    for (let i = 0; i < stamped.length; i++) h = Math.imul(h ^ stamped.charCodeAt(i), 0x01000193);
    this.#hash = h >>> 0;
    this.#lines++;
    this.#recent.push(stamped);
    if (this.#recent.length > this.#keep) this.#recent.shift();
  }

  get trace(): Readonly<{ hash: string; lines: number; recent: readonly string[] }> {
    return { hash: this.#hash.toString(16).padStart(8, '0'), lines: this.#lines, recent: [...this.#recent] };
  }

  get pending(): number {
    return this.#heap.length;
  }

  /**
   * Runs events until `stop()` says so (checked after each), the clock passes `until`, or
   * nothing is left to happen; `after` runs after each event once its microtasks are done.
   */
  async run(until: number, stop: () => boolean, check: () => void): Promise<'stopped' | 'deadline' | 'idle'> {
    await new Promise<void>((resolve) => setImmediate(resolve));
    for (;;) {
      if (stop()) return 'stopped';
      const event = this.#pop();
      if (!event) return 'idle';
      if (event.at > until) {
        this.now = until;
        return 'deadline';
      }
      this.now = event.at;
      this.steps++;
      event.fn();
      // Let the promises it started run on (to their next wait on the world, mostly): each await
      // moves every chain queued before it one step. What is left runs on during the next event,
      // which is one more interleaving, and as deterministic as the rest.
      for (let i = 0; i < 16; i++) await settled;
      check();
    }
  }

  #pop(): Event | undefined {
    const heap = this.#heap;
    const top = heap[0];
    const last = heap.pop();
    if (heap.length === 0 || last === undefined) return top;
    let i = 0;
    for (;;) {
      const left = 2 * i + 1;
      if (left >= heap.length) break;
      const right = left + 1;
      const l = heap[left]!;
      const r = heap[right];
      const child = r !== undefined && (r.at < l.at || (r.at === l.at && r.seq < l.seq)) ? right : left;
      const c = heap[child]!;
      if (last.at < c.at || (last.at === c.at && last.seq < c.seq)) break;
      heap[i] = c;
      i = child;
    }
    heap[i] = last;
    return top;
  }
}
