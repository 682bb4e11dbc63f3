/** Counts the handlers running at once per consumer; retries and reclaims may go over for a moment. */
export class Slots {
  readonly #size: number;
  #busy = 0;
  #waiting: (() => void)[] = [];

  constructor(size: number) {
    this.#size = size;
  }

  get free(): number {
    return this.#size - this.#busy;
  }

  take(): void {
    this.#busy++;
  }

  release(): void {
    this.#busy--;
    if (this.free > 0) for (const wake of this.#waiting.splice(0)) wake();
  }

  async whenFree(): Promise<void> {
    while (this.free <= 0) await new Promise<void>((resolve) => this.#waiting.push(resolve));
  }
}
