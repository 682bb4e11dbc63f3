/**
 * Known kinds of bug, put back on purpose so that the simulator (src/sim) can show it finds
 * each one. Production never sets them: only the simulator's `--bug` option and its tests do,
 * through `setMutations`. Each is read in one place, where the real code would go wrong.
 */
export const MUTATIONS = ['noInboxDedup', 'forwardCompensations', 'ackBeforeCommit', 'refundTwice', 'ttlAfterCapture', 'staleRetry'] as const;
export type Mutation = (typeof MUTATIONS)[number];

/** Which bugs are on (all off unless the simulator turned them on). */
export const mutations: Readonly<Record<Mutation, boolean>> = {
  noInboxDedup: false, forwardCompensations: false, ackBeforeCommit: false, refundTwice: false, ttlAfterCapture: false, staleRetry: false,
};

export function setMutations(on: readonly Mutation[]): void {
  const all = mutations as Record<Mutation, boolean>;
  for (const m of MUTATIONS) all[m] = on.includes(m);
}

export const isMutation = (name: string): name is Mutation => (MUTATIONS as readonly string[]).includes(name);
