import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { readFileSync, readdirSync } from 'node:fs';
import { KillpathError } from '@killpath/protocol';
import { netnsExecArgv } from './netns.ts';

/** What to start: one agent command. */
export interface LaunchSpec {
  command: string;
  args: string[];
  /** The agent's whole environment (not merged with the launcher's); {@link LAUNCH_ID_ENV} is added. */
  env: NodeJS.ProcessEnv;
  cwd?: string;
  /**
   * `'inherit'` (default) shares the launcher's stdin/stdout/stderr; `'pipe'` exposes stdout and
   * stderr on the handle and gives the agent no stdin. The agent runs in its own session
   * (`setsid`), without a controlling terminal: Ctrl-C reaches only the launcher, which forwards
   * it with {@link AgentHandle.signal}.
   */
  stdio?: 'inherit' | 'pipe';
  /** Run inside this network namespace (see `AgentNetns`); needs root and iproute2. */
  netns?: string | null;
}

/** How the agent's leader process ended. */
export interface ExitInfo {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** The outcome of {@link AgentHandle.terminate}. */
export interface TerminateResult {
  /**
   * The strongest signal that had to be sent: `'SIGTERM'` when everything was gone within the
   * grace, `'SIGKILL'` when it had to escalate, `null` when nothing was alive at the call.
   */
  signal: 'SIGTERM' | 'SIGKILL' | null;
  /** Milliseconds from the `terminate()` call to the leader and every known descendant gone. */
  ms: number;
  /** Pids of descendants still alive after SIGKILL and the kill timeout (should be empty). */
  survivors: number[];
}

/** A started agent. */
export interface AgentHandle {
  /** Pid of the agent's leader, which is also its process group id. */
  readonly pid: number;
  /** Resolves when the leader exits (its descendants may outlive it; see `terminate`). */
  readonly exited: Promise<ExitInfo>;
  /** The agent's stdout when `stdio` is `'pipe'`, else null. */
  readonly stdout: NodeJS.ReadableStream | null;
  /** The agent's stderr when `stdio` is `'pipe'`, else null. */
  readonly stderr: NodeJS.ReadableStream | null;
  /** True until the leader's exit has been observed. */
  alive(): boolean;
  /**
   * SIGTERM to the agent's process group and to every known descendant that left it, then
   * SIGKILL to all of them after `graceMs` if any is still alive. Resolves once the leader has
   * exited and no known descendant is alive. Calling it again returns the same promise.
   * Safe after the leader exited on its own: it still sweeps what the agent left behind.
   */
  terminate(graceMs: number): Promise<TerminateResult>;
  /** Forwards a signal to the agent's whole process group; a no-op once the group is gone. */
  signal(sig: NodeJS.Signals): void;
}

/** Starts agents. Processes first; a container-orchestrator backend can implement the same. */
export interface ProcessBackend {
  readonly name: string;
  /** Starts the agent; throws a `KillpathError` when the command cannot be started at all. */
  start(spec: LaunchSpec): AgentHandle;
}

/**
 * Environment variable the local backend sets in every agent's environment to a fresh id per
 * launch. Descendants inherit it, so at `terminate()` a process that left both the group and
 * the parent tree (a daemonizing double fork) is still recognised by its `/proc/<pid>/environ`,
 * unless it cleared its environment on purpose.
 */
export const LAUNCH_ID_ENV = 'KILLPATH_LAUNCH_ID';

/** Options of {@link LocalProcessBackend}. */
export interface LocalProcessBackendOptions {
  /**
   * How often, in ms, to record the agent's descendants while it runs, so that a process that
   * double-forked away (its parent exited, it was re-parented to init and left the group) is
   * still known at `terminate()` time. Default 1000; 0 disables it.
   */
  trackEveryMs?: number;
  /** How long, in ms, to keep re-sending SIGKILL before reporting survivors. Default 5000. */
  killTimeoutMs?: number;
  /** /proc poll period while waiting for the group to go, in ms. Default 15. */
  pollMs?: number;
}

/**
 * Runs agents as local child processes, each in its own session and process group
 * (`detached: true`), so the group can be signalled as a whole and the agent is not in the
 * launcher's group.
 *
 * Descendants are found by walking `/proc/<pid>/stat` (parent pid tree plus process-group
 * membership, sampled every `trackEveryMs` and at terminate time) and `/proc/<pid>/environ`
 * ({@link LAUNCH_ID_ENV}, at terminate time). That is Linux-only: elsewhere the walk finds
 * nothing and only the process group is signalled, so a child that called `setsid()` escapes.
 * Even on Linux a descendant that both left the tree and cleared its environment is not
 * found; containing that needs a cgroup (a later backend) or a network namespace
 * (`AgentNetns.pids()` lists everything inside it).
 */
export class LocalProcessBackend implements ProcessBackend {
  readonly name = 'local';
  readonly #trackEveryMs: number;
  readonly #killTimeoutMs: number;
  readonly #pollMs: number;

  constructor(opts: LocalProcessBackendOptions = {}) {
    this.#trackEveryMs = opts.trackEveryMs ?? 1_000;
    this.#killTimeoutMs = opts.killTimeoutMs ?? 5_000;
    this.#pollMs = opts.pollMs ?? 15;
  }

  start(spec: LaunchSpec): AgentHandle {
    const launchId = randomUUID();
    const [command, ...args] = spec.netns
      ? netnsExecArgv(spec.netns, spec.command, spec.args)
      : [spec.command, ...spec.args];
    const child = spawn(command as string, args, {
      detached: true,
      env: { ...spec.env, [LAUNCH_ID_ENV]: launchId },
      ...(spec.cwd === undefined ? {} : { cwd: spec.cwd }),
      stdio: spec.stdio === 'pipe' ? ['ignore', 'pipe', 'pipe'] : 'inherit',
    });
    // Without a listener a spawn failure would be an uncaught 'error' event.
    child.on('error', () => {});
    if (child.pid === undefined) {
      throw new KillpathError(
        'invalid_request',
        `cannot start ${JSON.stringify(spec.command)}: not found or not executable`,
      );
    }
    const exited = new Promise<ExitInfo>((resolve) => {
      child.once('exit', (code, signal) => resolve({ code, signal }));
    });
    return new LocalAgentHandle(child.pid, launchId, exited, child.stdout, child.stderr, {
      trackEveryMs: this.#trackEveryMs,
      killTimeoutMs: this.#killTimeoutMs,
      pollMs: this.#pollMs,
    });
  }
}

/** One row of /proc/<pid>/stat, the fields this module needs. */
interface ProcStat {
  pid: number;
  state: string;
  ppid: number;
  pgrp: number;
  /** Start time since boot in clock ticks; with the pid it identifies a process across pid reuse. */
  start: string;
}

function parseStat(pid: number, text: string): ProcStat | null {
  // comm (field 2) may hold spaces and parentheses: split after its last ')'.
  const close = text.lastIndexOf(')');
  if (close < 0) return null;
  const rest = text.slice(close + 2).split(' ');
  const state = rest[0];
  const start = rest[19];
  if (state === undefined || start === undefined) return null;
  return { pid, state, ppid: Number(rest[1]), pgrp: Number(rest[2]), start };
}

function readStat(pid: number): ProcStat | null {
  try {
    return parseStat(pid, readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return null;
  }
}

/** Every process on the machine; empty where /proc does not exist. */
function procTable(): ProcStat[] {
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

/** True when the process's environment holds `marker` (`NAME=value`); false if unreadable. */
function hasMarker(pid: number, marker: string): boolean {
  try {
    return readFileSync(`/proc/${pid}/environ`, 'latin1').split('\0').includes(marker);
  } catch {
    return false;
  }
}

function sendSignal(target: number, sig: NodeJS.Signals): void {
  try {
    process.kill(target, sig);
  } catch {
    // ESRCH: already gone. EPERM: not ours to signal (pid reused by another user); leave it.
  }
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

class LocalAgentHandle implements AgentHandle {
  readonly pid: number;
  readonly exited: Promise<ExitInfo>;
  readonly stdout: NodeJS.ReadableStream | null;
  readonly stderr: NodeJS.ReadableStream | null;
  readonly #opts: Required<LocalProcessBackendOptions>;
  /** Descendants seen so far: pid → start time (guards against signalling a reused pid). */
  #known = new Map<number, string>();
  /** `KILLPATH_LAUNCH_ID=<id>` as it appears in a descendant's environ. */
  readonly #marker: string;
  #leaderAlive = true;
  #tracker: NodeJS.Timeout | null = null;
  #terminating: Promise<TerminateResult> | null = null;

  constructor(
    pid: number,
    launchId: string,
    exited: Promise<ExitInfo>,
    stdout: NodeJS.ReadableStream | null,
    stderr: NodeJS.ReadableStream | null,
    opts: Required<LocalProcessBackendOptions>,
  ) {
    this.pid = pid;
    this.#marker = `${LAUNCH_ID_ENV}=${launchId}`;
    this.exited = exited;
    this.stdout = stdout;
    this.stderr = stderr;
    this.#opts = opts;
    void exited.then(() => {
      this.#leaderAlive = false;
      this.#stopTracking();
    });
    if (opts.trackEveryMs > 0) {
      this.#tracker = setInterval(() => this.#scan(), opts.trackEveryMs);
      this.#tracker.unref();
    }
  }

  alive(): boolean {
    return this.#leaderAlive;
  }

  signal(sig: NodeJS.Signals): void {
    sendSignal(-this.pid, sig);
  }

  terminate(graceMs: number): Promise<TerminateResult> {
    this.#terminating ??= this.#terminate(Math.max(0, graceMs));
    return this.#terminating;
  }

  #stopTracking(): void {
    if (this.#tracker) clearInterval(this.#tracker);
    this.#tracker = null;
  }

  /**
   * Finds every live descendant: members of the agent's process group (orphans of the group are
   * re-parented away from the tree but keep their group), descendants seen by earlier scans that
   * are still the same process (they may have been re-parented to init after a double fork), and
   * the children, to a fixed point, of the leader and of all of those. Remembers the result.
   * `deep` also reads every process's environ for the launch marker (heavier: done at the
   * start of each terminate phase, not on every poll).
   */
  #scan(deep = false): Map<number, ProcStat> {
    const table = procTable();
    const byPid = new Map(table.map((row) => [row.pid, row]));
    const children = new Map<number, ProcStat[]>();
    for (const row of table) {
      const list = children.get(row.ppid);
      if (list) list.push(row);
      else children.set(row.ppid, [row]);
    }
    const live = new Map<number, ProcStat>();
    // Once reaped, the leader's pid may belong to someone else: it is a root only while alive.
    const queue: number[] = this.#leaderAlive ? [this.pid] : [];
    const add = (row: ProcStat | undefined) => {
      if (!row || row.pid === this.pid || row.state === 'Z' || live.has(row.pid)) return;
      live.set(row.pid, row);
      queue.push(row.pid);
    };
    for (const row of table)
      if (row.pgrp === this.pid || (deep && hasMarker(row.pid, this.#marker))) add(row);
    for (const [pid, start] of this.#known) {
      const row = byPid.get(pid);
      if (row?.start === start) add(row);
    }
    while (queue.length > 0) for (const row of children.get(queue.pop() as number) ?? []) add(row);
    this.#known = new Map([...live.values()].map((row) => [row.pid, row.start]));
    return live;
  }

  /** Signals the group and every live descendant outside it. */
  #signalAll(sig: NodeJS.Signals, rows: Iterable<ProcStat>): void {
    sendSignal(-this.pid, sig);
    for (const row of rows) if (row.pgrp !== this.pid) sendSignal(row.pid, sig);
  }

  async #terminate(graceMs: number): Promise<TerminateResult> {
    const t0 = performance.now();
    this.#stopTracking();
    const elapsed = () => Math.round((performance.now() - t0) * 10) / 10;
    // The leader is our child: its exit (and reaping) shows up as the 'exit' event. Descendants
    // are judged from /proc, where a zombie counts as gone (init may be slow to reap, or never).
    const gone = (live: Map<number, ProcStat>) => !this.#leaderAlive && live.size === 0;
    let live = this.#scan(true);
    if (gone(live)) return { signal: null, ms: elapsed(), survivors: [] };

    // SIGTERM, then wait out the grace, rescanning so children forked meanwhile are known too.
    if (graceMs > 0) {
      this.#signalAll('SIGTERM', live.values());
      const deadline = t0 + graceMs;
      while (performance.now() < deadline) {
        await sleep(Math.min(this.#opts.pollMs, Math.max(1, deadline - performance.now())));
        live = this.#scan();
        if (gone(live)) return { signal: 'SIGTERM', ms: elapsed(), survivors: [] };
      }
    }

    // SIGKILL everything known, again after each poll: a fork may race the previous round.
    const killDeadline = performance.now() + this.#opts.killTimeoutMs;
    live = this.#scan(true);
    for (;;) {
      this.#signalAll('SIGKILL', live.values());
      await sleep(this.#opts.pollMs);
      live = this.#scan();
      if (gone(live)) return { signal: 'SIGKILL', ms: elapsed(), survivors: [] };
      if (performance.now() > killDeadline) {
        return { signal: 'SIGKILL', ms: elapsed(), survivors: [...live.keys()] };
      }
    }
  }
}
