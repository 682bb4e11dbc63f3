/**
 * A PGlite database in a worker thread, so the embedded services' SQL runs beside the main
 * thread instead of on it. Messages in: { id, sql, params?, exec? } or { id, close }; out:
 * { id, rows, rowCount } or { id, error: { message, code } }. PGlite runs one statement at a
 * time; the main thread keeps transactions exclusive.
 */
import { PGlite } from '@electric-sql/pglite';
import { parentPort, workerData } from 'node:worker_threads';

type Request = Readonly<{ id: number; sql?: string; params?: unknown[]; exec?: boolean; close?: boolean }>;

const port = parentPort;
if (!port) throw new Error('pglite worker: must run as a worker thread');
const db = await PGlite.create({ dataDir: (workerData as { dataDir: string }).dataDir });

port.on('message', (request: Request) => {
  void handle(request).then((reply) => port.postMessage(reply));
});
port.postMessage({ ready: true });

async function handle(request: Request): Promise<object> {
  try {
    if (request.close) {
      await db.close();
      return { id: request.id, rows: [], rowCount: 0 };
    }
    if (request.exec) {
      await db.exec(request.sql ?? '');
      return { id: request.id, rows: [], rowCount: 0 };
    }
    const result = await db.query(request.sql ?? '', request.params);
    return { id: request.id, rows: result.rows, rowCount: result.affectedRows ?? 0 };
  } catch (error) {
    const e = error as { message?: string; code?: string };
    return { id: request.id, error: { message: e.message ?? String(error), code: e.code } };
  }
}
