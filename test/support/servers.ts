/**
 * Private PostgreSQL, Redis, NATS (JetStream) and RabbitMQ servers for crash tests.
 *
 * Each start function launches a server of its own on a free port of 127.0.0.1, with its own data
 * directory under os.tmpdir(), and answers once a real client round trip succeeds. The handle can
 * stop it, SIGKILL it (a crash: the next start recovers from what reached the disk), start it again
 * on the same port and data, and clean it up. The machine's shared servers are never signalled: a
 * handle only ever signals the process it spawned (in a process group of its own) and that
 * process's descendants. Whatever a test forgets to clean up is killed and deleted when the test
 * process exits.
 *
 * Tests run as root here; PostgreSQL refuses root, so initdb and postgres run as the `postgres` OS
 * user, and RabbitMQ runs as the `rabbitmq` OS user (with its HOME, hence the shared Erlang cookie),
 * both through `setpriv`, which execs in place so the spawned pid is the server's own.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { chownSync, closeSync, fstatSync, mkdtempSync, openSync, readdirSync, readFileSync, readSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect as natsConnect } from '@nats-io/transport-node';
import { connect as amqpConnect } from 'amqplib';
import { Redis } from 'ioredis';
import pg from 'pg';
import { freePort } from './child.ts';

export type ServerHandle = Readonly<{
  /** postgres://postgres@127.0.0.1:PORT/postgres, redis://127.0.0.1:PORT, nats://127.0.0.1:PORT or amqp://guest:guest@127.0.0.1:PORT */
  url: string;
  port: number;
  /** Everything the server keeps (and its logs); deleted by cleanup(). */
  dataDir: string;
  /** Starts the server again on the same port and data; resolves once a client round trip succeeds. No-op if running. */
  start(): Promise<void>;
  /** Graceful shutdown (SIGKILL after 30 s); resolves once every server process is gone. No-op if not running. */
  stop(): Promise<void>;
  /** SIGKILLs every server process (postmaster and backends, beam.smp and its helpers...); resolves once they are gone. */
  kill(): Promise<void>;
  /** stop() and delete dataDir. Safe to call twice; the handle cannot start again afterwards. */
  cleanup(): Promise<void>;
  /** The last lines of the server's logs, for assertion messages. */
  logTail(lines?: number): string;
}>;

export type StartOptions = Readonly<{
  /** How long start() waits for the first successful round trip. */
  startTimeoutMs?: number;
}>;

const PG_BIN = '/usr/lib/postgresql/15/bin';
const NATS_SERVER = '/usr/sbin/nats-server';
const RABBITMQ_SERVER = '/usr/lib/rabbitmq/bin/rabbitmq-server';
const RABBITMQCTL = '/usr/lib/rabbitmq/bin/rabbitmqctl';
const STOP_TIMEOUT_MS = 30_000;
const PROBE_TIMEOUT_MS = 3_000;

export async function startPostgres(options: StartOptions = {}): Promise<ServerHandle> {
  const port = await freePort();
  const owner = osUser('postgres');
  const dataDir = makeDataDir('pg', owner);
  const pgdata = join(dataDir, 'pgdata');
  const url = `postgres://postgres@127.0.0.1:${port}/postgres`;
  try {
    await run([...asUser(owner), `${PG_BIN}/initdb`, '-D', pgdata, '-U', 'postgres', '-A', 'trust', '-E', 'UTF8', '--locale=C'], dataDir);
  } catch (error) {
    rmSync(dataDir, { recursive: true, force: true });
    throw error;
  }
  const settings = {
    listen_addresses: '127.0.0.1',
    port: String(port),
    unix_socket_directories: dataDir,
    fsync: 'on',
    synchronous_commit: 'on',
    full_page_writes: 'on',
    logging_collector: 'off',
  };
  return launch(options, {
    name: 'PostgreSQL',
    url,
    port,
    dataDir,
    argv: [...asUser(owner), `${PG_BIN}/postgres`, '-D', pgdata, ...Object.entries(settings).flatMap(([k, v]) => ['-c', `${k}=${v}`])],
    logFiles: [join(dataDir, 'server.log')],
    stopSignal: 'SIGINT', // fast shutdown
    async probe() {
      const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: PROBE_TIMEOUT_MS });
      client.on('error', () => {});
      try {
        await client.connect();
        await client.query('select 1');
      } finally {
        await client.end().catch(() => {});
      }
    },
  });
}

export async function startRedis(options: StartOptions = {}): Promise<ServerHandle> {
  const port = await freePort();
  const dataDir = makeDataDir('redis');
  const url = `redis://127.0.0.1:${port}`;
  return launch(options, {
    name: 'Redis',
    url,
    port,
    dataDir,
    argv: ['redis-server', '--port', String(port), '--bind', '127.0.0.1', '--dir', dataDir, '--appendonly', 'yes', '--appendfsync', 'always', '--save', '', '--daemonize', 'no'],
    logFiles: [join(dataDir, 'server.log')],
    stopSignal: 'SIGTERM',
    async probe() {
      const redis = new Redis(url, { lazyConnect: true, connectTimeout: PROBE_TIMEOUT_MS, maxRetriesPerRequest: 0, retryStrategy: () => null, enableOfflineQueue: false });
      redis.on('error', () => {});
      try {
        await redis.connect();
        const pong = await redis.ping();
        if (pong !== 'PONG') throw new Error(`PING answered ${pong}`);
      } finally {
        redis.disconnect();
      }
    },
  });
}

export async function startNats(options: StartOptions = {}): Promise<ServerHandle> {
  const port = await freePort();
  const dataDir = makeDataDir('nats');
  const url = `nats://127.0.0.1:${port}`;
  return launch(options, {
    name: 'NATS',
    url,
    port,
    dataDir,
    argv: [NATS_SERVER, '-a', '127.0.0.1', '-p', String(port), '-js', '-sd', dataDir],
    logFiles: [join(dataDir, 'server.log')],
    stopSignal: 'SIGTERM',
    async probe() {
      const nc = await natsConnect({ servers: url, reconnect: false, timeout: PROBE_TIMEOUT_MS });
      try {
        await (await jetstreamManager(nc)).getAccountInfo();
      } finally {
        await nc.close().catch(() => {});
      }
    },
  });
}

export type RabbitMqHandle = ServerHandle &
  Readonly<{
    /** orderly-test-PORT@localhost */
    nodeName: string;
    /**
     * Flushes the node's metadata store (Mnesia: queues, exchanges, bindings) to disk. RabbitMQ 3.10
     * answers declare-ok before Mnesia's log reaches the file (it sits in the log's write cache for up
     * to ~2 s), so a SIGKILL just after a declaration can make a durable queue, and the confirmed
     * messages in it, vanish. Call this after declaring when the test is about something else.
     */
    syncMetadata(): Promise<void>;
  }>;

/**
 * A second RabbitMQ node (orderly-test-PORT@localhost) beside the shared rabbit@localhost: its own
 * AMQP and distribution ports, Mnesia, logs, config and an empty plugin list, all under dataDir; it
 * registers with the shared epmd and uses the shared Erlang cookie. kill() SIGKILLs this node's
 * beam.smp (and the helpers under it), never the shared node's.
 */
export async function startRabbitMq(options: StartOptions = {}): Promise<RabbitMqHandle> {
  const port = await freePort();
  let distPort = await freePort();
  while (distPort === port) distPort = await freePort();
  const owner = osUser('rabbitmq');
  const dataDir = makeDataDir('rabbitmq', owner);
  const nodeName = `orderly-test-${port}@localhost`;
  const url = `amqp://guest:guest@127.0.0.1:${port}`;
  const file = (name: string, text: string) => {
    writeFileSync(join(dataDir, name), text);
    if (owner) chownSync(join(dataDir, name), owner.uid, owner.gid);
    return join(dataDir, name);
  };
  const env: NodeJS.ProcessEnv = {
    ...Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('RABBITMQ_'))),
    HOME: owner?.home ?? process.env.HOME, // where the shared .erlang.cookie lives
    // Our own (empty) env file, so /etc/rabbitmq/rabbitmq-env.conf, which names the shared node, is not read.
    RABBITMQ_CONF_ENV_FILE: file('rabbitmq-env.conf', ''),
    RABBITMQ_NODENAME: nodeName,
    RABBITMQ_NODE_IP_ADDRESS: '127.0.0.1',
    RABBITMQ_NODE_PORT: String(port),
    RABBITMQ_DIST_PORT: String(distPort),
    RABBITMQ_MNESIA_BASE: join(dataDir, 'mnesia'),
    RABBITMQ_LOG_BASE: join(dataDir, 'log'),
    RABBITMQ_CONFIG_FILE: file('rabbitmq.conf', `listeners.tcp.1 = 127.0.0.1:${port}\nloopback_users.guest = true\ndisk_free_limit.absolute = 50MB\n`),
    RABBITMQ_ADVANCED_CONFIG_FILE: join(dataDir, 'advanced.config'), // absent on purpose
    RABBITMQ_ENABLED_PLUGINS_FILE: file('enabled_plugins', '[].\n'), // no plugins, no management
    ERL_EPMD_ADDRESS: '127.0.0.1',
    ERL_FLAGS: '-kernel inet_dist_use_interface {127,0,0,1}',
  };
  const handle = await launch(options, {
    name: `RabbitMQ node ${nodeName}`,
    url,
    port,
    dataDir,
    argv: [...asUser(owner), RABBITMQ_SERVER],
    env,
    logFiles: [join(dataDir, 'server.log'), join(dataDir, 'log', `${nodeName}.log`)],
    stopSignal: 'SIGTERM', // the script traps it and stops the node
    defaultStartTimeoutMs: 60_000,
    async probe() {
      const connection = await amqpConnect(url, { timeout: PROBE_TIMEOUT_MS });
      connection.on('error', () => {});
      await connection.close();
    },
    // Make sure the node we hold is the one we started: its beam.smp is in our tree and wrote our pid file.
    afterStart(rootPid) {
      const beams = processTree(rootPid).filter((p) => p.comm === 'beam.smp');
      const written = readFileSync(join(dataDir, 'mnesia', `${nodeName}.pid`), 'utf8').trim();
      if (beams.length !== 1 || String(beams[0]?.pid) !== written) {
        throw new Error(`${nodeName}: expected one beam.smp under pid ${rootPid} matching pid file ${written}, found ${JSON.stringify(beams)}`);
      }
    },
  });
  async function syncMetadata(): Promise<void> {
    const answer = await run([...asUser(owner), RABBITMQCTL, '-n', nodeName, 'eval', 'mnesia:sync_log().'], dataDir, env);
    if (answer.trim() !== 'ok') throw new Error(`${nodeName}: mnesia:sync_log() answered ${answer}`);
  }
  return Object.freeze({ ...handle, nodeName, syncMetadata });
}

// --- Process management --------------------------------------------------------------------

type ServerSpec = Readonly<{
  name: string;
  url: string;
  port: number;
  dataDir: string;
  argv: readonly string[];
  env?: NodeJS.ProcessEnv;
  /** The first one receives the server's stdout and stderr; all are tailed in error messages. */
  logFiles: readonly [string, ...string[]];
  stopSignal: NodeJS.Signals;
  defaultStartTimeoutMs?: number;
  /** One real client round trip; throws while the server is not ready. */
  probe(): Promise<void>;
  afterStart?(rootPid: number): void;
}>;

type Running = { child: ChildProcess; exited: Promise<void> };

/** Handles not cleaned up yet, killed and deleted if the test process exits without cleanup(). */
const live = new Set<{ running: Running | undefined; dataDir: string }>();
process.once('exit', () => {
  for (const entry of live) {
    if (entry.running && isAlive(entry.running.child)) killTree(entry.running.child.pid);
    rmSync(entry.dataDir, { recursive: true, force: true });
  }
});

async function launch(options: StartOptions, spec: ServerSpec): Promise<ServerHandle> {
  const state: { running: Running | undefined; dataDir: string } = { running: undefined, dataDir: spec.dataDir };
  let cleaned = false;
  live.add(state);
  const startTimeoutMs = options.startTimeoutMs ?? spec.defaultStartTimeoutMs ?? 30_000;
  const logTail = (lines = 30) => spec.logFiles.map((file) => `--- ${file}\n${tail(file, lines)}`).join('\n');

  async function start(): Promise<void> {
    if (cleaned) throw new Error(`${spec.name}: start() after cleanup()`);
    if (state.running && isAlive(state.running.child)) return;
    const [command, ...args] = spec.argv;
    if (!command) throw new Error(`${spec.name}: empty command`);
    const log = openSync(spec.logFiles[0], 'a');
    let child: ChildProcess;
    try {
      // detached: a process group of its own, so nothing we send can reach the shared servers' groups.
      child = spawn(command, args, { cwd: spec.dataDir, env: spec.env ?? process.env, detached: true, stdio: ['ignore', log, log] });
    } finally {
      closeSync(log);
    }
    let spawnError: Error | undefined;
    const exited = new Promise<void>((resolve) => {
      child.once('exit', () => resolve());
      child.once('error', (error) => {
        spawnError = error;
        resolve();
      });
    });
    child.unref(); // a forgotten server must not keep the test process alive; the exit hook kills it
    state.running = { child, exited };

    const deadline = Date.now() + startTimeoutMs;
    let lastError: unknown;
    for (;;) {
      if (!isAlive(child)) {
        const how = spawnError ? spawnError.message : `exited with ${child.exitCode ?? child.signalCode}`;
        throw new Error(`${spec.name} ${how} before accepting connections; last log lines:\n${logTail()}`);
      }
      if (Date.now() > deadline) {
        await kill();
        throw new Error(`${spec.name} did not accept connections on ${spec.url} within ${startTimeoutMs} ms (last error: ${String(lastError)}); last log lines:\n${logTail()}`);
      }
      try {
        await withTimeout(spec.probe(), PROBE_TIMEOUT_MS + 1_000);
        break;
      } catch (error) {
        lastError = error;
      }
      await sleep(100);
    }
    try {
      spec.afterStart?.(child.pid);
    } catch (error) {
      await kill();
      throw error;
    }
  }

  async function stop(): Promise<void> {
    const running = state.running;
    if (!running) return;
    running.child.ref(); // we wait for its exit now
    if (isAlive(running.child)) {
      const members = processTree(running.child.pid).map((p) => p.pid);
      signal(running.child.pid, spec.stopSignal);
      if (!(await settlesWithin(running.exited, STOP_TIMEOUT_MS))) return kill();
      // The servers wait for their children before exiting; this only confirms it (nothing is signalled now that the root is reaped).
      await waitGone(members, spec.name);
    }
    await running.exited;
    state.running = undefined;
  }

  async function kill(): Promise<void> {
    const running = state.running;
    if (!running) return;
    running.child.ref(); // we wait for its exit now
    const victims = isAlive(running.child) ? killTree(running.child.pid) : [];
    await running.exited;
    await waitGone(victims, spec.name);
    state.running = undefined;
  }

  async function cleanup(): Promise<void> {
    if (cleaned) return;
    await stop();
    cleaned = true;
    rmSync(spec.dataDir, { recursive: true, force: true });
    live.delete(state);
  }

  try {
    await start();
  } catch (error) {
    await cleanup();
    throw error;
  }
  return Object.freeze({ url: spec.url, port: spec.port, dataDir: spec.dataDir, start, stop, kill, cleanup, logTail });
}

/** Still ours to signal: not reaped yet, so its pid (and process group id) cannot have been reused. */
function isAlive(child: ChildProcess): child is ChildProcess & { pid: number } {
  return child.pid !== undefined && child.exitCode === null && child.signalCode === null;
}

type Proc = Readonly<{ pid: number; ppid: number; pgrp: number; state: string; comm: string }>;

function processes(): Proc[] {
  const found: Proc[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    let stat: string;
    try {
      stat = readFileSync(`/proc/${name}/stat`, 'utf8');
    } catch {
      continue; // gone meanwhile
    }
    const close = stat.lastIndexOf(')');
    const [state = '?', ppid, pgrp] = stat.slice(close + 2).split(' ');
    found.push({ pid: Number(name), ppid: Number(ppid), pgrp: Number(pgrp), state, comm: stat.slice(stat.indexOf('(') + 1, close) });
  }
  return found;
}

/** The root, its process group and all their descendants (PostgreSQL's backends call setsid, so the group alone is not enough). */
function processTree(root: number): Proc[] {
  const all = processes();
  const members = new Map(all.filter((p) => p.pid === root || p.pgrp === root).map((p) => [p.pid, p]));
  for (let grew = true; grew; ) {
    grew = false;
    for (const p of all) {
      if (!members.has(p.pid) && members.has(p.ppid)) {
        members.set(p.pid, p);
        grew = true;
      }
    }
  }
  return [...members.values()];
}

/**
 * SIGKILLs the tree under `root` (our own child, not reaped yet). Every member is first frozen
 * with SIGSTOP, so none can fork a process we would miss, then all are killed. Returns their pids.
 */
function killTree(root: number): number[] {
  const frozen = new Set<number>();
  for (let round = 0; round < 10; round++) {
    const found = processTree(root).filter((p) => !frozen.has(p.pid) && p.state !== 'Z');
    if (found.length === 0) break;
    for (const p of found) {
      signal(p.pid, 'SIGSTOP');
      frozen.add(p.pid);
    }
  }
  for (const pid of frozen) signal(pid, 'SIGKILL');
  return [...frozen];
}

/**
 * Waits until none of `pids` runs any more: gone, or a zombie not reaped yet (orphans go to PID 1) whose
 * threads have all exited too. A multithreaded process (beam.smp) shows its leader as a zombie while
 * the other threads still hold its files, listening sockets included.
 */
async function waitGone(pids: readonly number[], name: string): Promise<void> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const left = pids.filter(isRunning);
    if (left.length === 0) return;
    if (Date.now() > deadline) throw new Error(`${name}: processes ${left.join(', ')} still running 10 s after the server stopped`);
    await sleep(20);
  }
}

function isRunning(pid: number): boolean {
  let threads: string[];
  try {
    threads = readdirSync(`/proc/${pid}/task`);
  } catch {
    return false;
  }
  return threads.some((tid) => {
    try {
      const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
      return !'ZX'.includes(stat[stat.lastIndexOf(')') + 2] ?? 'X');
    } catch {
      return false;
    }
  });
}

function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ESRCH') throw error;
  }
}

/** Whether `promise` settles within `ms` (the timer is cleared either way). */
async function settlesWithin(promise: Promise<unknown>, ms: number): Promise<boolean> {
  const controller = new AbortController();
  const timer = sleep(ms, false, { signal: controller.signal }).catch(() => false);
  try {
    return await Promise.race([promise.then(() => true, () => true), timer]);
  } finally {
    controller.abort();
  }
}

async function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  const controller = new AbortController();
  const timer = sleep(ms, undefined, { signal: controller.signal }).then(() => {
    throw new Error(`no answer within ${ms} ms`);
  });
  timer.catch(() => {});
  try {
    return await Promise.race([promise, timer]);
  } finally {
    controller.abort();
  }
}

// --- Files and OS users --------------------------------------------------------------------

type OsUser = Readonly<{ uid: number; gid: number; home: string; name: string }>;

/** The OS user to run a server as, when we are root (it refuses root, or needs that user's files); undefined otherwise. */
function osUser(name: string): OsUser | undefined {
  if (process.getuid?.() !== 0) return undefined;
  const line = readFileSync('/etc/passwd', 'utf8').split('\n').find((l) => l.startsWith(`${name}:`));
  const [, , uid, gid, , home] = line?.split(':') ?? [];
  if (uid === undefined || gid === undefined || home === undefined) throw new Error(`No OS user ${name} in /etc/passwd`);
  return { uid: Number(uid), gid: Number(gid), home, name };
}

function asUser(user: OsUser | undefined): string[] {
  return user ? ['setpriv', `--reuid=${user.uid}`, `--regid=${user.gid}`, '--init-groups', '--'] : [];
}

function makeDataDir(kind: string, owner?: OsUser): string {
  const dir = mkdtempSync(join(tmpdir(), `orderly-${kind}-`)); // mode 0700, as PostgreSQL demands
  if (owner) chownSync(dir, owner.uid, owner.gid);
  return dir;
}

/** Runs a command to completion; resolves with its stdout. */
async function run(argv: readonly string[], cwd: string, env: NodeJS.ProcessEnv = process.env): Promise<string> {
  const [command, ...args] = argv;
  if (!command) throw new Error('empty command');
  try {
    return (await promisify(execFile)(command, args, { cwd, env, encoding: 'utf8' })).stdout;
  } catch (error) {
    const { stderr, stdout, message } = error as { stderr?: string; stdout?: string; message: string };
    throw new Error(`${argv.join(' ')} failed: ${message}\n${stdout ?? ''}${stderr ?? ''}`);
  }
}

function tail(file: string, lines: number): string {
  let fd: number;
  try {
    fd = openSync(file, 'r');
  } catch {
    return '(no log)';
  }
  try {
    const size = fstatSync(fd).size;
    const length = Math.min(size, 32_768);
    const buffer = Buffer.alloc(length);
    readSync(fd, buffer, 0, length, size - length);
    return buffer.toString('utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } finally {
    closeSync(fd);
  }
}
