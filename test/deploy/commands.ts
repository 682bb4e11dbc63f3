import { SERVICES } from '../../src/wiring/serviceWiring.ts';
import { cliGrammar } from './sources.ts';

/**
 * What is wrong with a container's command as src/cli.ts would read it (nothing: []): `node
 * src/cli.ts`, one of its commands (a service it knows for `service`), then only flags its
 * parseArgs declares, each string flag with a value. run.test.ts starts them for real too.
 */
export function acceptedByCli(command: readonly string[]): string[] {
  const { commands, flags } = cliGrammar();
  const [node, cli, name, ...rest] = command;
  const problems: string[] = [];
  if (node !== 'node' || cli !== 'src/cli.ts') problems.push(`starts with ${node} ${cli}, not node src/cli.ts`);
  if (!name || !commands.has(name)) problems.push(`${name} is not a command of src/cli.ts (${[...commands].join(', ')})`);
  let positionals = rest;
  if (name === 'service') {
    const [service, ...after] = rest;
    if (!service || !(SERVICES as readonly string[]).includes(service)) problems.push(`${service} is not a service (${SERVICES.join(', ')})`);
    positionals = after;
  }
  for (let i = 0; i < positionals.length; i++) {
    const arg = positionals[i] ?? '';
    const flag = /^--([\w-]+)$/.exec(arg)?.[1];
    const type = flag === undefined ? undefined : flags.get(flag);
    if (type === undefined) {
      problems.push(`${arg} is not a flag src/cli.ts declares`);
      continue;
    }
    if (type === 'string') {
      const value = positionals[++i];
      if (value === undefined || value.startsWith('--')) problems.push(`--${flag} has no value`);
    }
  }
  return problems;
}
