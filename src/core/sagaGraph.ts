/**
 * A saga definition as a graph, for people: the groups of steps in the order they run, what
 * each waits for, what undoes it, and where the point of no return is. The console draws it;
 * `orderly graph` prints it as Mermaid. Both come from the definition itself, never a copy.
 */
import type { SagaDefinition } from './saga.ts';

export type GraphStep = Readonly<{
  name: string;
  /** Reply meaning the step succeeded. */
  success: string;
  /** Reply meaning a business failure (compensate); absent when the step cannot fail. */
  failure: string | null;
  /** Reply meaning its compensation is done; absent when nothing undoes it. */
  compensated: string | null;
  /** At or after the pivot: retried until it succeeds, never compensated. */
  afterPivot: boolean;
}>;

export type SagaGraph = Readonly<{
  name: string;
  version: number;
  /** Steps that start together, group after group. */
  groups: readonly (readonly GraphStep[])[];
}>;

export function sagaGraph<C>(def: SagaDefinition<C>): SagaGraph {
  const groups: GraphStep[][] = [];
  def.steps.forEach((step, i) => {
    const node: GraphStep = {
      name: step.name,
      success: step.success,
      failure: step.failure ?? null,
      compensated: step.compensation?.done ?? null,
      afterPivot: i >= def.pivot,
    };
    const last = groups.at(-1);
    if (step.concurrent && last) last.push(node);
    else groups.push([node]);
  });
  return { name: def.name, version: def.version, groups };
}

/**
 * The graph as a Mermaid flowchart: the steps left to right, a business failure leading to the
 * compensations of what may have happened, run in reverse order, and the steps past the pivot
 * marked as retried until done.
 */
export function sagaMermaid(graph: SagaGraph): string {
  const id = (name: string) => name.replace(/[^A-Za-z0-9_]/g, '_');
  const all = (group: readonly GraphStep[], prefix = '') => group.map((s) => prefix + id(s.name)).join(' & ');
  const lines = ['flowchart LR', `  start(["${graph.name} started"])`];
  for (const group of graph.groups) {
    for (const step of group) {
      const note = step.afterPivot ? '<br/><i>retried until done</i>' : '';
      lines.push(`  ${id(step.name)}["${step.name}<br/>waits for ${step.success}${note}"]`);
    }
  }
  lines.push('  completed([completed])', '  failed([failed])');
  let previous = 'start';
  for (const group of graph.groups) {
    lines.push(`  ${previous} --> ${all(group)}`);
    previous = all(group);
  }
  lines.push(`  ${previous} --> completed`);
  const undoable = graph.groups.flat().filter((s) => s.compensated !== null);
  for (const step of [...undoable].reverse()) lines.push(`  undo_${id(step.name)}[["undo ${step.name}<br/>waits for ${step.compensated}"]]`);
  const chain = [...undoable].reverse().map((s) => `undo_${id(s.name)}`);
  if (chain.length > 0) lines.push(`  ${[...chain, 'failed'].join(' --> ')}`);
  for (const step of graph.groups.flat()) {
    if (step.failure === null) continue;
    // A failure undoes every undoable step there is: one of its group may still be running.
    lines.push(`  ${id(step.name)} -. ${step.failure} .-> ${chain[0] ?? 'failed'}`);
  }
  const pivot = graph.groups.flat().filter((s) => s.afterPivot).map((s) => id(s.name));
  if (pivot.length > 0) lines.push('  classDef pivot stroke-width:3px', `  class ${pivot.join(',')} pivot`);
  return `${lines.join('\n')}\n`;
}
