/**
 * `node bench/hop.ts`: what one message between two processes costs on this machine, before any
 * work is done: a child process echoes one byte over loopback TCP, 20,000 times, and the CPU
 * time both processes used is divided by the messages. Every hop of a checkout (gateway to
 * service, service to store and to broker) pays at least this; batching is what spreads it.
 */
import { fork } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { fileURLToPath } from 'node:url';

const ROUND_TRIPS = 20_000;

if (process.argv[2] === 'echo') {
  const server = createServer((socket) => socket.on('data', (data) => socket.write(data)));
  server.listen(0, '127.0.0.1', () => process.send?.((server.address() as { port: number }).port));
} else {
  const child = fork(fileURLToPath(import.meta.url), ['echo']);
  const port = await new Promise<number>((resolve) => child.once('message', (m) => resolve(m as number)));
  const socket = connect(port, '127.0.0.1').setNoDelay(true);
  await new Promise((resolve) => socket.once('connect', resolve));
  /** utime + stime of the echoing child, µs (Linux /proc). */
  const childCpuUs = () => {
    const fields = readFileSync(`/proc/${child.pid}/stat`, 'utf8').replace(/^.*\) /s, '').split(' ');
    return (Number(fields[11]) + Number(fields[12])) * 10_000;
  };
  const cpu = process.cpuUsage();
  const childBefore = childCpuUs();
  const started = performance.now();
  let n = 0;
  await new Promise<void>((resolve) => {
    socket.on('data', () => (++n === ROUND_TRIPS ? resolve() : socket.write('x')));
    socket.write('x');
  });
  const us = (performance.now() - started) * 1000;
  const { user, system } = process.cpuUsage(cpu);
  console.log(`${ROUND_TRIPS} round trips: ${(us / ROUND_TRIPS).toFixed(1)} µs each; CPU per message received and answered: `
    + `${((user + system) / ROUND_TRIPS).toFixed(1)} µs here, ${((childCpuUs() - childBefore) / ROUND_TRIPS).toFixed(1)} µs in the echoing process`);
  socket.destroy();
  child.kill();
}
