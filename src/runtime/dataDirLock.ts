import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { ConfigError } from '../config.ts';

/**
 * Makes sure one process at a time uses a data directory: two writers would corrupt the
 * embedded databases. The lock is SQLite's on `orderly.lock`, held in exclusive locking mode:
 * an fcntl lock, which the kernel drops the moment its holder dies (even while it lingers as a
 * zombie), so a restart right after `kill -9` finds it free; SQLite also sees it held by
 * another connection of this same process. `orderly.pid` only says who holds it, for the message.
 */
export function lockDataDir(dataDir: string): () => void {
  mkdirSync(dataDir, { recursive: true });
  const pidFile = join(dataDir, 'orderly.pid');
  const lock = new DatabaseSync(join(dataDir, 'orderly.lock'), { timeout: 0 });
  try {
    lock.exec('pragma locking_mode = exclusive');
    // Takes the exclusive lock now; in exclusive locking mode it is kept after the commit.
    lock.exec(`begin exclusive; create table if not exists holder (pid integer); delete from holder; insert into holder values (${process.pid}); commit`);
  } catch (error) {
    lock.close();
    if ((error as { errcode?: number }).errcode !== 5 /* SQLITE_BUSY */) throw error;
    const holder = readHolder(pidFile);
    const by = holder === process.pid ? 'this same process' : `another Orderly process${holder ? ` (pid ${holder})` : ''}`;
    throw new ConfigError(`${dataDir} is in use by ${by}. Stop it, or give this one its own ORDERLY_DATA_DIR.`);
  }
  writeFileSync(pidFile, String(process.pid));
  return () => {
    rmSync(pidFile, { force: true });
    // The lock file stays: deleting it could let a process waiting on the old file and one
    // creating a new file both think they hold the lock.
    lock.close();
  };
}

function readHolder(pidFile: string): number | undefined {
  try {
    const pid = Number(readFileSync(pidFile, 'utf8').trim());
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}
