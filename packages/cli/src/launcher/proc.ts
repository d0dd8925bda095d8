import { readFileSync, readdirSync } from 'node:fs';

/** One row of /proc/<pid>/stat, the fields the launcher needs. */
export interface ProcStat {
  pid: number;
  /** `R`, `S`, `D`, `T` (stopped), `t`, `Z` (zombie), … */
  state: string;
  ppid: number;
  pgrp: number;
  /** Start time since boot in clock ticks; with the pid it identifies a process across pid reuse. */
  start: string;
}

/** Parses one `/proc/<pid>/stat` text; null when it is not one. */
export function parseStat(pid: number, text: string): ProcStat | null {
  // comm (field 2) may hold spaces and parentheses: split after its last ')'.
  const close = text.lastIndexOf(')');
  if (close < 0) return null;
  const rest = text.slice(close + 2).split(' ');
  const state = rest[0];
  const start = rest[19];
  if (state === undefined || start === undefined) return null;
  return { pid, state, ppid: Number(rest[1]), pgrp: Number(rest[2]), start };
}

/** `/proc/<pid>/stat` of one process, or null once it is gone (or outside Linux). */
export function readStat(pid: number): ProcStat | null {
  try {
    return parseStat(pid, readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return null;
  }
}

/** Every process on the machine; empty where /proc does not exist. */
export function procTable(): ProcStat[] {
  let names: string[];
  try {
    names = readdirSync('/proc');
  } catch {
    return [];
  }
  const rows: ProcStat[] = [];
  for (const name of names) {
    const pid = Number(name);
    if (!Number.isInteger(pid) || pid <= 0) continue;
    const row = readStat(pid);
    if (row) rows.push(row);
  }
  return rows;
}

/** Sends `sig` to a pid (negative: a process group); a process already gone or not ours is left alone. */
export function sendSignal(target: number, sig: NodeJS.Signals): void {
  try {
    process.kill(target, sig);
  } catch {
    // ESRCH: already gone. EPERM: not ours to signal (pid reused by another user); leave it.
  }
}

/** Resolves after `ms` of real time (the launcher polls /proc and cgroup files). */
export const sleep = (ms: number): Promise<void> => new Promise<void>((resolve) => setTimeout(resolve, ms));

/**
 * The wait both backends' `terminate()` loops share (the SIGTERM grace, then the wait after the
 * kill): sleeps `pollMs` (the last sleep cut short at `deadline`, never under 1 ms), then asks
 * `settled` (which looks again, and may signal what it finds), until `settled` says yes or
 * `deadline` (a `performance.now()` time) passes. Resolves true when settled, false when the
 * deadline passed first.
 */
export async function pollUntil(deadline: number, pollMs: number, settled: () => boolean): Promise<boolean> {
  while (performance.now() < deadline) {
    await sleep(Math.min(pollMs, Math.max(1, deadline - performance.now())));
    if (settled()) return true;
  }
  return false;
}
