import { spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';

/** A free TCP port on 127.0.0.1. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => (typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port'))));
    });
  });
}

/** `npm start` as a child process (the same Node, the same entry point), ready once /healthz answers. */
export async function startOrderly(env: Readonly<Record<string, string>>, port: number): Promise<ChildProcess> {
  const child = spawn(process.execPath, ['src/main.ts'], { env: orderlyEnv(env, port), stdio: ['ignore', 'pipe', 'pipe'] });
  await untilHealthy(child, port);
  return child;
}

/**
 * `npm start` as a grandchild whose parent never reaps it (a shell that spawns it, then
 * becomes `sleep`): killed, it stays a zombie until `parent` is stopped, as a process whose
 * supervisor has not yet collected it does. Ready once /healthz answers.
 */
export async function startUnreaped(env: Readonly<Record<string, string>>, port: number): Promise<Readonly<{ pid: number; parent: ChildProcess }>> {
  const parent = spawn('/bin/sh', ['-c', `"$0" src/main.ts & echo "pid $!"; exec sleep 3600`, process.execPath], { env: orderlyEnv(env, port), stdio: ['ignore', 'pipe', 'pipe'] });
  const pid = await new Promise<number>((resolve, reject) => {
    let first = '';
    const onData = (chunk: Buffer) => {
      first += chunk.toString();
      const match = /^pid (\d+)\n/.exec(first);
      if (!match) return;
      parent.stdout?.off('data', onData);
      resolve(Number(match[1]));
    };
    parent.stdout?.on('data', onData);
    parent.once('exit', () => reject(new Error(`the shell exited: ${first}`)));
  });
  await untilHealthy(parent, port);
  return { pid, parent };
}

function orderlyEnv(env: Readonly<Record<string, string>>, port: number): NodeJS.ProcessEnv {
  return { ...process.env, LOG_LEVEL: 'warn', ...env, PORT: String(port) };
}

/** Waits until /healthz on `port` answers; fails with the output of `child` if it exits or takes over 60 s. */
async function untilHealthy(child: ChildProcess, port: number): Promise<void> {
  // Both streams, so that a start that hangs says how far it got.
  let output = '';
  const keep = (chunk: Buffer) => {
    output = (output + chunk.toString()).slice(-4000);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  for (let i = 0; i < 600; i++) {
    if (child.exitCode !== null) throw new Error(`orderly exited with ${child.exitCode}: ${output}`);
    try {
      const res = await fetch(`http://127.0.0.1:${port}/healthz`);
      if (res.ok) return;
    } catch {
      // not listening yet
    }
    await sleep(100);
  }
  child.kill('SIGKILL');
  throw new Error(`orderly did not answer /healthz within 60 s; its output: ${output || '(none)'}`);
}

/** Stops a child with `signal` and waits for it to exit. */
export async function stop(child: ChildProcess, signal: NodeJS.Signals): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill(signal);
  await exited;
}
