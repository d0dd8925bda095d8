import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

/** The `killpath` command of this package (a `killpath run` is started with it). */
export const KILLPATH_CLI = fileURLToPath(new URL('../../bin/killpath.js', import.meta.url));

/** One JSON line from the agent (stdout) or the launcher (stderr). */
export type Line = Record<string, unknown> & {
  wall?: number;
  ts?: string;
  k?: string;
  type?: string;
  msg?: string;
};

/** A `killpath run` process and everything it and its agent printed. */
export interface Launched {
  proc: ChildProcess;
  /** Agent lines (stdout). */
  out: Line[];
  /** Launcher log lines (stderr). */
  log: Line[];
  exited: Promise<number | null>;
  /** Resolves with the first agent line matching, or rejects after `ms`. */
  waitOut(pred: (l: Line) => boolean, ms?: number, what?: string): Promise<Line>;
  /** Same for launcher log lines. */
  waitLog(pred: (l: Line) => boolean, ms?: number, what?: string): Promise<Line>;
  stop(): Promise<void>;
}

function collect(stream: NodeJS.ReadableStream, into: Line[], raw: string[]): void {
  createInterface({ input: stream }).on('line', (line) => {
    raw.push(line);
    try {
      const v = JSON.parse(line) as unknown;
      if (typeof v === 'object' && v !== null) into.push(v as Line);
    } catch {
      // not a JSON line (a stack trace, a warning): kept in raw for the failure message
    }
  });
}

async function waitFor(
  lines: Line[],
  raw: string[],
  pred: (l: Line) => boolean,
  ms: number,
  what: string,
): Promise<Line> {
  const deadline = Date.now() + ms;
  for (;;) {
    const hit = lines.find(pred);
    if (hit) return hit;
    if (Date.now() > deadline)
      throw new Error(
        `timed out after ${ms} ms waiting for ${what}; last lines:\n${raw.slice(-15).join('\n')}`,
      );
    await new Promise((ok) => setTimeout(ok, 25));
  }
}

/**
 * Starts `killpath run … -- node <agentScript>` (kill grace 500 ms unless `extra` sets one),
 * with `env` for the launcher and its agent, and collects both one's JSON lines.
 */
export function launch(opts: {
  url: string;
  token: string;
  tenant: string;
  agent: string;
  agentScript: string;
  run?: string;
  netns?: boolean;
  extra?: string[];
  env?: Record<string, string>;
}): Launched {
  const args = [
    KILLPATH_CLI,
    'run',
    '--url',
    opts.url,
    '--token',
    opts.token,
    '--tenant',
    opts.tenant,
    '--agent',
    opts.agent,
    ...(opts.extra?.includes('--kill-grace') ? [] : ['--kill-grace', '500']),
  ];
  if (opts.run) args.push('--run', opts.run);
  if (opts.netns) args.push('--netns');
  args.push(...(opts.extra ?? []), '--', process.execPath, opts.agentScript);
  const proc = spawn(process.execPath, args, {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, ...opts.env },
  });
  const out: Line[] = [];
  const log: Line[] = [];
  const raw: string[] = [];
  collect(proc.stdout!, out, raw);
  collect(proc.stderr!, log, raw);
  const exited = new Promise<number | null>((ok) => proc.once('exit', (code) => ok(code)));
  return {
    proc,
    out,
    log,
    exited,
    waitOut: (pred, ms = 20_000, what = 'an agent line') => waitFor(out, raw, pred, ms, what),
    waitLog: (pred, ms = 20_000, what = 'a launcher line') => waitFor(log, raw, pred, ms, what),
    async stop() {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGTERM');
      await Promise.race([exited, new Promise((ok) => setTimeout(ok, 5000))]);
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
    },
  };
}

/** True while a process with this pid exists (a zombie counts as gone). */
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return true;
  }
}
