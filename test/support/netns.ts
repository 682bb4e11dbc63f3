/**
 * Hosts on one machine, for tests of what crosses a network: each host a network namespace of
 * its own with one address on a private /24, joined to this (the root) namespace by a veth pair
 * on a bridge that has the subnet's .254. A host can be cut off (its link set down: what it sends
 * and what is sent to it goes nowhere, its connections stay open and carry on once healed, as a
 * pulled cable or a partitioned switch does) and healed. Linux, root and iproute2 only; the
 * kernel here has no `netem` queueing discipline, so links have no added delay or loss.
 */
import { execFileSync, spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { randomBytes } from 'node:crypto';

export type Host = Readonly<{
  name: string;
  ip: string;
  /** Starts `command` inside the host's namespace. */
  spawn(command: string, args: readonly string[], options?: SpawnOptions): ChildProcess;
  /** Cuts the host off from every other host (and from this namespace). */
  cut(): void;
  heal(): void;
}>;

export type Network = Readonly<{
  /** This namespace's address on the network: what the hosts reach it at. */
  ip: string;
  hosts: ReadonlyMap<string, Host>;
  /** Kills what was spawned in the hosts and removes the namespaces, the links and the bridge. */
  cleanup(): void;
}>;

const ip = (...args: string[]) => execFileSync('ip', args, { stdio: ['ignore', 'ignore', 'pipe'] });

/** Why network namespaces cannot be made here, or undefined when they can. */
export function netnsUnavailable(): string | undefined {
  if (process.platform !== 'linux') return 'network namespaces are Linux only';
  if (process.getuid?.() !== 0) return 'making network namespaces needs root (CI runs as root)';
  const probe = `orderly-probe-${randomBytes(3).toString('hex')}`;
  try {
    ip('netns', 'add', probe);
    ip('netns', 'del', probe);
    return undefined;
  } catch (error) {
    return `ip netns add failed: ${(error as Error).message}`;
  }
}

export function makeNetwork(names: readonly string[]): Network {
  const tag = randomBytes(3).toString('hex');
  const used = execFileSync('ip', ['-4', '-o', 'addr', 'show'], { encoding: 'utf8' });
  const subnet = Array.from({ length: 100 }, (_, i) => `10.${100 + ((parseInt(tag, 16) + i) % 100)}.0`).find((s) => !used.includes(`${s}.`));
  if (subnet === undefined) throw new Error('no free 10.x.0.0/24 subnet for the test network');
  const bridge = `ob${tag}`;
  const spawned = new Set<ChildProcess>();
  const made: (() => void)[] = [];
  const cleanup = () => {
    for (const child of spawned) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    for (const undo of made.reverse()) {
      try {
        undo();
      } catch {
        // already gone
      }
    }
  };
  try {
    ip('link', 'add', bridge, 'type', 'bridge');
    made.push(() => ip('link', 'del', bridge));
    ip('addr', 'add', `${subnet}.254/24`, 'dev', bridge);
    ip('link', 'set', bridge, 'up');
    const hosts = new Map<string, Host>();
    names.forEach((name, i) => {
      const ns = `orderly-${tag}-${name}`;
      const link = `ov${tag}${i}`;
      const address = `${subnet}.${i + 1}`;
      ip('netns', 'add', ns);
      made.push(() => ip('netns', 'del', ns));
      ip('link', 'add', link, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns);
      made.push(() => ip('link', 'del', link));
      ip('link', 'set', link, 'master', bridge);
      ip('link', 'set', link, 'up');
      ip('-n', ns, 'addr', 'add', `${address}/24`, 'dev', 'eth0');
      ip('-n', ns, 'link', 'set', 'eth0', 'up');
      ip('-n', ns, 'link', 'set', 'lo', 'up');
      hosts.set(name, {
        name,
        ip: address,
        spawn(command, args, options = {}) {
          // `ip netns exec` enters the namespace and execs the command: the child's pid is the command's.
          const child = spawn('ip', ['netns', 'exec', ns, command, ...args], options);
          spawned.add(child);
          return child;
        },
        cut: () => ip('link', 'set', link, 'down'),
        heal: () => ip('link', 'set', link, 'up'),
      });
    });
    return { ip: `${subnet}.254`, hosts, cleanup };
  } catch (error) {
    cleanup();
    throw error;
  }
}
