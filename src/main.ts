import { ConfigError, loadConfig } from './config.ts';
import { createLogger } from './runtime/log.ts';
import { startEmbedded } from './wiring/embedded.ts';

/** `npm start`: the whole system in one process, on the embedded store and bus. */
async function main(): Promise<void> {
  const config = loadConfig();
  const log = createLogger(config.logLevel);
  const system = await startEmbedded(config, log);
  const address = await system.app.listen({ host: config.host, port: config.port }).catch(async (error: unknown) => {
    await system.close();
    if ((error as { code?: string }).code === 'EADDRINUSE') {
      throw new ConfigError(`Port ${config.port} on ${config.host} is already in use: stop what uses it, or start with PORT=<another port>.`);
    }
    throw error;
  });
  log.info({ address, dataDir: config.dataDir, recovered: system.recovered }, 'orderly is running');
  console.log(`Orderly is running on ${address} (data in ${config.dataDir}${system.recovered ? `, resuming ${system.recovered} unfinished messages` : ''}). Ctrl-C stops it.`);
  if (config.adminToken === undefined) console.log('Admin routes (/admin/…) answer on this machine only; set ORDERLY_ADMIN_TOKEN to reach them from elsewhere with a bearer token.');

  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    console.log(`\n${signal}: stopping…`);
    // Everything is durable: a stop that hangs is cut short rather than left hanging.
    setTimeout(() => {
      console.error('orderly: still stopping after 10 s; exiting now');
      process.exit(1);
    }, 10_000).unref();
    system.close().then(
      () => process.exit(0),
      (error: unknown) => {
        log.error({ err: error }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));
}

main().catch((error: unknown) => {
  if (error instanceof ConfigError) {
    console.error(`orderly: ${error.message}`);
    process.exit(2);
  }
  console.error('orderly: failed to start:', error);
  process.exit(1);
});
