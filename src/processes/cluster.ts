import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { redact } from '../adapters/connect.ts';
import type { SagaStyle } from '../config.ts';
import { servicesOf } from '../wiring/serviceNames.ts';

export type ClusterOptions = Readonly<{
  storeUrl: string;
  /** None in the synchronous style. */
  busUrl: string | undefined;
  style: SagaStyle;
  replicas: number;
  port: number;
  host: string;
  namespace: string;
}>;

type Member = { name: string; args: string[]; child?: ChildProcess; restarts: number };

const CLI = fileURLToPath(new URL('../cli.ts', import.meta.url));

/**
 * V8's young generation (semi-spaces) grows with the allocation rate, up to 64 MB per
 * semi-space on Node 24's 64-bit builds (128 MB of new space, all of it resident once used):
 * under checkouts the order replica's new space reached 128 MB. With 8 MB semi-spaces its peak
 * RSS was 211 MB against 298 by default (Redis), 163–198 against 195–263 (PostgreSQL +
 * RabbitMQ), and its CPU per checkout no higher (docs/performance.md#memory). A
 * --max-semi-space-size in NODE_OPTIONS takes precedence.
 */
const SEMI_SPACE_FLAG = '--max-semi-space-size=8';

/**
 * A local cluster: the gateway on `port` and `replicas` processes of each service on the
 * ports after it, each a separate OS process. A process that dies is started again; Ctrl-C
 * stops them all.
 */
export async function runCluster(options: ClusterOptions): Promise<void> {
  const gatewayUrl = `http://${options.host}:${options.port}`;
  const members: Member[] = [];
  const services = servicesOf(options.style);
  const urls: Record<string, string[]> = Object.fromEntries(services.map((s) => [s, []]));
  let port = options.port;
  for (const service of services) {
    for (let i = 1; i <= options.replicas; i++) {
      const p = ++port;
      urls[service]!.push(`http://${options.host}:${p}`);
      members.push({
        name: `${service}-${i}`,
        restarts: 0,
        args: ['service', service, '--store', options.storeUrl, ...(options.busUrl ? ['--bus', options.busUrl] : []), '--gateway', gatewayUrl,
          '--port', String(p), '--host', options.host, '--replica', `${service}-${i}`, '--namespace', options.namespace],
      });
    }
  }
  members.unshift({
    name: 'gateway',
    restarts: 0,
    args: ['gateway', '--port', String(options.port), '--host', options.host,
      ...services.flatMap((s) => [`--${s}`, urls[s]!.join(',')])],
  });

  // The synchronous style's saga calls carry a secret; one made here unless one was given.
  const env = {
    ...process.env, SAGA_STYLE: options.style, ORDERLY_INTERNAL_TOKEN: process.env.ORDERLY_INTERNAL_TOKEN || randomBytes(16).toString('hex'),
    // A local cluster is a playground for the course's benchmark: its batch_init fixtures are on unless ORDERLY_FIXTURES=off.
    ORDERLY_FIXTURES: process.env.ORDERLY_FIXTURES || 'on',
    // The processes' output comes through here: readable when this writes to a terminal.
    LOG_FORMAT: process.env.LOG_FORMAT || (process.stderr.isTTY ? 'pretty' : 'json'),
  };
  const v8Flags = process.env.NODE_OPTIONS?.includes('--max-semi-space-size') ? [] : [SEMI_SPACE_FLAG];
  let stopping = false;
  const start = (member: Member) => {
    // A restart that comes due after Ctrl-C must not start a process nobody would stop.
    if (stopping) return;
    const child = spawn(process.execPath, [...v8Flags, CLI, ...member.args], { stdio: ['ignore', 'pipe', 'pipe'], env });
    member.child = child;
    for (const stream of [child.stdout, child.stderr]) {
      createInterface({ input: stream }).on('line', (line) => process.stderr.write(`[${member.name}] ${line}\n`));
    }
    child.on('exit', (code, signal) => {
      if (stopping) return;
      member.restarts++;
      const delay = Math.min(5_000, 250 * member.restarts);
      console.error(`orderly cluster: ${member.name} exited (${signal ?? `code ${code}`}); starting it again in ${delay} ms`);
      setTimeout(() => start(member), delay);
    });
  };
  for (const member of members) start(member);

  const bus = options.busUrl ? `bus ${redact(options.busUrl)}` : 'no bus (the order service calls the others over HTTP)';
  console.log(`Orderly cluster (${options.style}): store ${redact(options.storeUrl)}, ${bus}, namespace ${options.namespace}`);
  console.log(`  gateway   ${gatewayUrl}   (the course API; /readyz says when every service is ready)`);
  for (const service of services) console.log(`  ${service.padEnd(9)} ${urls[service]!.join('  ')}`);
  console.log(`  sagas     ${gatewayUrl}/sagas   (/sagas, /sagas/statistics, /sagas/<saga id>${options.style === 'choreography' ? ', from the tracker' : ''})`);
  console.log(`  console   ${gatewayUrl}/   (and ${gatewayUrl}/docs, ${gatewayUrl}/events; every process serves /metrics)`);
  console.log('Ctrl-C stops everything.');

  await new Promise<void>((resolve) => {
    const stop = () => {
      if (stopping) return;
      stopping = true;
      console.log('\nstopping the cluster…');
      const exits = members.map((m) => new Promise((r) => (m.child && m.child.exitCode === null && m.child.signalCode === null ? m.child.once('exit', r) : r(null))));
      for (const m of members) m.child?.kill('SIGTERM');
      // A process gives itself 10 s to stop; one still there after 15 s is killed.
      const deadline = setTimeout(() => {
        for (const m of members) if (m.child && m.child.exitCode === null && m.child.signalCode === null) m.child.kill('SIGKILL');
      }, 15_000);
      void Promise.all(exits).then(() => {
        clearTimeout(deadline);
        resolve();
      });
    };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
  });
}
