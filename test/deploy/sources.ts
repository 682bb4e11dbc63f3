/**
 * What the deployment files are checked against, read from the source itself so that the
 * checks follow the code: the variables src/config.ts and src/cli.ts read, the commands and
 * flags src/cli.ts takes, and the rendered manifests.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parseAllDocuments } from 'yaml';
import { loadConfig } from '../../src/config.ts';

export const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const CLI_SOURCE = readFileSync(new URL('../../src/cli.ts', import.meta.url), 'utf8');

/** The variables loadConfig reads: it is run on an environment that records every name asked for. */
export function configVariables(values: Readonly<Record<string, string>> = {}): ReadonlySet<string> {
  const read = new Set<string>();
  loadConfig(new Proxy(values, {
    get(target, name) {
      if (typeof name === 'string') read.add(name);
      return typeof name === 'string' ? target[name] : undefined;
    },
  }));
  return read;
}

/**
 * The variables src/cli.ts itself reads for `command` (beyond loadConfig's): those read in the
 * command's own `case`, and those read before the switch into a constant that the case uses.
 */
export function cliVariables(command: string): ReadonlySet<string> {
  const common = between(CLI_SOURCE, 'const env = process.env;', 'switch (command)');
  const start = CLI_SOURCE.indexOf(`case '${command}':`);
  if (start < 0) throw new Error(`src/cli.ts has no command ${command}`);
  const rest = CLI_SOURCE.slice(start + 1);
  const end = rest.search(/\n\s*(case '|default:)/);
  const body = rest.slice(0, end < 0 ? undefined : end);
  const names = new Set(envNames(body));
  for (const line of common.split('\n')) {
    const match = /^\s*const (\w+) = (.*)$/.exec(line);
    if (match?.[1] && new RegExp(`\\b${match[1]}\\b`).test(body)) for (const name of envNames(match[2] ?? '')) names.add(name);
  }
  return names;
}

/** Everything a process started with `args` (after `node src/cli.ts`) reads from its environment. */
export function variablesOf(args: readonly string[]): ReadonlySet<string> {
  return new Set([...configVariables(), ...cliVariables(args[0] ?? '')]);
}

/** The commands src/cli.ts answers (its `case` labels) and the flags its parseArgs declares. */
export function cliGrammar(): Readonly<{ commands: ReadonlySet<string>; flags: ReadonlyMap<string, 'string' | 'boolean'> }> {
  const commands = new Set([...CLI_SOURCE.matchAll(/^\s*case '([a-z-]+)':/gm)].map((m) => m[1] ?? ''));
  if (CLI_SOURCE.includes("command === 'dead-letters'")) commands.add('dead-letters');
  const options = between(CLI_SOURCE, 'options: {', '\n    },\n  });');
  const flags = new Map([...options.matchAll(/(\w+): \{ type: '(string|boolean)' \}/g)].map((m) => [m[1] ?? '', m[2] as 'string' | 'boolean']));
  return { commands, flags };
}

function envNames(text: string): string[] {
  return [...text.matchAll(/\benv\.([A-Z][A-Z0-9_]*)/g)].map((m) => m[1] ?? '');
}

function between(text: string, from: string, to: string): string {
  const a = text.indexOf(from);
  const b = text.indexOf(to, a);
  if (a < 0 || b < 0) throw new Error(`src/cli.ts no longer has ${JSON.stringify(from)} … ${JSON.stringify(to)}: update test/deploy/sources.ts`);
  return text.slice(a + from.length, b);
}

export type K8sObject = Readonly<{ apiVersion: string; kind: string; metadata: { name: string; labels?: Record<string, string> }; spec?: unknown; data?: Record<string, string> }>;

export const OVERLAYS = ['dev', 'prod'] as const;

/** An overlay rendered by the installed kubectl, as its objects. */
export function render(path: string): K8sObject[] {
  const text = execFileSync('kubectl', ['kustomize', path], { cwd: ROOT, encoding: 'utf8' });
  return parseAllDocuments(text).map((doc) => doc.toJS() as K8sObject).filter(Boolean);
}
