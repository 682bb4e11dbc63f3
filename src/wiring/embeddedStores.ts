import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { openPglite } from '../adapters/pglite/client.ts';
import { openSqlStore } from '../adapters/sql/store.ts';
import { openSqliteStore } from '../adapters/sqlite/store.ts';
import { ConfigError, type EmbeddedStore } from '../config.ts';
import type { Store } from '../ports/store.ts';
import { SERVICES, type ServiceName } from './serviceWiring.ts';

export type EmbeddedStores = Readonly<{ stores: Readonly<Record<ServiceName, Store>>; close(): Promise<void> }>;

/** Where each kind of embedded store keeps a service's data under the data directory. */
const layouts: Readonly<Record<EmbeddedStore, { name: string; path(dataDir: string, service: string): string }>> = {
  sqlite: { name: 'SQLite', path: (dataDir, service) => join(dataDir, `${service}.sqlite`) },
  pglite: { name: 'PGlite', path: (dataDir, service) => join(dataDir, service) },
};

/**
 * The stores of the services `names` on `kind`, under `dataDir`. Data of the other kind there
 * (a data directory made by a version whose default was the other one) stops the start with
 * what to do: it is never silently ignored.
 */
export async function openEmbeddedStores(kind: EmbeddedStore, dataDir: string, names: readonly ServiceName[]): Promise<EmbeddedStores> {
  checkLayout(kind, dataDir);
  // Only the services of `names` have a store (the tracker runs in choreography alone).
  const stores = {} as Record<ServiceName, Store>;
  if (kind === 'sqlite') {
    for (const name of names) stores[name] = openSqliteStore(layouts.sqlite.path(dataDir, name), name);
    return { stores, close: async () => { for (const store of Object.values(stores)) await store.close(); } };
  }
  const databases = await Promise.all(names.map((name) => openPglite(layouts.pglite.path(dataDir, name))));
  for (const [i, name] of names.entries()) stores[name] = await openSqlStore(databases[i]!, name);
  return {
    stores,
    async close() {
      for (const store of Object.values(stores)) await store.close();
      for (const db of databases) await db.close();
    },
  };
}

function checkLayout(kind: EmbeddedStore, dataDir: string): void {
  for (const other of Object.keys(layouts) as EmbeddedStore[]) {
    if (other === kind) continue;
    const found = SERVICES.filter((service) => existsSync(layouts[other].path(dataDir, service)));
    if (found.length === 0) continue;
    const what = found.map((service) => layouts[other].path(dataDir, service).slice(dataDir.length + 1)).join(', ');
    throw new ConfigError(
      `${dataDir} holds ${layouts[other].name} data (${what}), and this start uses ${layouts[kind].name}. ` +
      `To keep using that data, start with ORDERLY_EMBEDDED_STORE=${other}; to start afresh on ${layouts[kind].name}, give a new ORDERLY_DATA_DIR.`,
    );
  }
}
