import { createServer, type AddressInfo } from 'node:net';
import type { FastifyInstance } from 'fastify';
import { ConfigError, loadConfig, type Config } from './config.ts';
import { givesMemoryBackAfterBulkRequests } from './http/memoryAfterBulk.ts';
import { createLogger } from './runtime/log.ts';
import { startTracing } from './observability/tracing.ts';
import { startEmbedded, type Step } from './wiring/embedded.ts';

/** `npm start`: the whole system in one process, on the embedded store and bus. */
async function main(): Promise<void> {
  const config = loadConfig();
  const log = createLogger(config.logLevel, config.logFormat);
  // Before anything is created: a taken port leaves no data directory behind.
  await portIsFree(config);
  const tracing = await startTracing({ serviceName: 'orderly', endpoint: config.otlpEndpoint, sampling: config.traceSampling });
  const system = await startEmbedded(config, log, slowStep);
  givesMemoryBackAfterBulkRequests(system.app);
  await system.app.listen({ host: config.host, port: config.port }).catch(async (error: unknown) => {
    await system.close();
    if ((error as { code?: string }).code === 'EADDRINUSE') throw portTaken(config);
    throw error;
  });
  const { address, everywhere } = boundAddress(system.app);
  // On a terminal the line below says it; a log collector gets it as JSON.
  if (!process.stderr.isTTY) log.info({ address, dataDir: config.dataDir, store: config.embeddedStore, recovered: system.recovered }, 'orderly is running');
  const resuming = system.recovered ? `; resuming ${system.recovered} unfinished messages` : '';
  console.log(`Orderly is running on ${everywhere ? `every address of this machine, port ${config.port} (${config.host}); from here ` : ''}${address} (${config.sagaStyle}, ${config.embeddedStore === 'sqlite' ? 'SQLite' : 'PGlite'} data in ${config.dataDir}${resuming}). Ctrl-C stops it.`);
  console.log(`Console ${address}/   API docs ${address}/docs   Metrics ${address}/metrics`);
  if (tracing) console.log(`Traces go to ${config.otlpEndpoint}/v1/traces (OTLP/HTTP).`);
  for (const line of accessLines(config)) console.log(line);

  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    console.log(`\nStopping Orderly (${signal})…`);
    // Everything is durable: a stop that hangs is cut short rather than left hanging.
    setTimeout(() => {
      console.error('orderly: still stopping after 10 s; exiting now (nothing committed is lost)');
      process.exit(1);
    }, 10_000).unref();
    system.close().then(() => tracing?.shutdown()).then(
      () => {
        console.log(`Orderly stopped; its data is kept in ${config.dataDir}.`);
        process.exit(0);
      },
      (error: unknown) => {
        log.error({ err: error }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));
}

/** The address the server really bound: on 0.0.0.0 or ::, every address (reached from here on loopback). */
function boundAddress(app: FastifyInstance): { address: string; everywhere: boolean } {
  const bound = app.server.address() as AddressInfo;
  const everywhere = bound.address === '0.0.0.0' || bound.address === '::';
  const host = everywhere ? '127.0.0.1' : bound.family === 'IPv6' ? `[${bound.address}]` : bound.address;
  return { address: `http://${host}:${bound.port}`, everywhere };
}

/** Who may do what, as start-up says it (docs/security.md). */
function accessLines(config: Config): string[] {
  const keys = config.apiTokens.length;
  return [
    keys === 0
      ? 'Shop API: open to anyone who reaches this port (set ORDERLY_API_TOKEN to require a key).'
      : `Shop API: needs one of the ${keys} key${keys > 1 ? 's' : ''} of ORDERLY_API_TOKEN as a bearer token.`,
    config.adminToken === undefined
      ? 'Operator routes (console data, /sagas, /events, /metrics, /admin/…): this machine only; set ORDERLY_ADMIN_TOKEN to reach them from elsewhere.'
      : 'Operator routes (console data, /sagas, /events, /metrics, /admin/…): need ORDERLY_ADMIN_TOKEN (the console asks for it).',
    config.fixtures === false ? 'Fixtures (batch_init): off.' : 'Fixtures (batch_init, which replaces entities "0" … "n-1"): on; ORDERLY_FIXTURES=off turns them off.',
  ];
}

/** Says what a start-up step is doing once it takes longer than a second, and how long it took. */
const slowStep: Step = async (label, run) => {
  const started = performance.now();
  const notice = setTimeout(() => console.log(`${label}…`), 1000);
  try {
    return await run();
  } finally {
    clearTimeout(notice);
    const seconds = (performance.now() - started) / 1000;
    if (seconds >= 1) console.log(`${label}: done in ${seconds.toFixed(1)} s`);
  }
};

/** Fails fast when the port is taken (the system binds it for good once started). */
function portIsFree(config: Config): Promise<void> {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once('error', (error: NodeJS.ErrnoException) => reject(error.code === 'EADDRINUSE' ? portTaken(config) : error));
    probe.listen({ host: config.host, port: config.port, exclusive: true }, () => probe.close(() => resolve()));
  });
}

function portTaken(config: Config): ConfigError {
  return new ConfigError(`Port ${config.port} on ${config.host} is already in use: stop what uses it, or start with PORT=<another port> (for example PORT=${config.port + 1} npm start).`);
}

main().catch((error: unknown) => {
  if (error instanceof ConfigError) {
    console.error(`orderly: ${error.message}`);
    process.exit(2);
  }
  console.error('orderly: failed to start:', error);
  process.exit(1);
});
