/** The latency below which `p` percent of `sorted` (ascending, in ms) fall, to 0.1 ms; NaN when there is none. */
export function percentile(sorted: readonly number[], p: number): number {
  const value = sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
  return value === undefined ? NaN : Number(value.toFixed(1));
}
