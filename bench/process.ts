import type { ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';

/** What the benches read of a process they started (Linux: /proc). */

export type Memory = Readonly<{ rssMb: number; peakMb: number }>;

/** Waits for the first answer of a route that reads a store (an unknown user: 404). */
export async function firstAnswer(child: ChildProcess, url: string): Promise<void> {
  for (;;) {
    if (child.exitCode !== null) throw new Error(`orderly exited with ${child.exitCode}`);
    try {
      const res = await fetch(`${url}/payment/find_user/0`);
      await res.arrayBuffer();
      if (res.status < 500) return;
    } catch {
      // not listening yet
    }
    await sleep(20);
  }
}

/** Resident memory now (VmRSS) and at its peak (VmHWM). */
export function memory(child: ChildProcess): Memory {
  const status = readFileSync(`/proc/${child.pid}/status`, 'utf8');
  const kb = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN);
  return { rssMb: Math.round(kb('VmRSS') / 1024), peakMb: Math.round(kb('VmHWM') / 1024) };
}

/** User and system CPU time of the process so far, from /proc/<pid>/stat (clock ticks of 10 ms). */
export function cpuMs(child: ChildProcess): number {
  const fields = readFileSync(`/proc/${child.pid}/stat`, 'utf8').replace(/^.*\) /s, '').split(' ');
  return (Number(fields[11]) + Number(fields[12])) * 10;
}
