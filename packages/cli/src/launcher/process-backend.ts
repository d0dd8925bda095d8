import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { KillpathError } from '@killpath/protocol';
import { netnsExecArgv } from './netns.ts';
import { startOrphanGuard, type OrphanGuard, type OrphanPolicy } from './orphan-guard.ts';
import { pollUntil, procTable, readStat, sendSignal, sleep, type ProcStat } from './proc.ts';

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
  /** Pids of every process of the agent this call ended (the leader included), sorted. */
  ended: number[];
}

/** The outcome of {@link AgentHandle.freeze} or {@link AgentHandle.thaw}. */
export interface FreezeResult {
  /** Milliseconds from the call until the kernel confirmed every process stopped (or running again). */
  ms: number;
  /** The processes frozen (or thawed), sorted. */
  pids: number[];
  /** False when the confirmation did not come within the backend's timeout. */
  confirmed: boolean;
}

/**
 * How an agent's processes are held together: its own cgroup (nothing escapes; Linux with a
 * writable cgroup v2 hierarchy), or its process group plus a /proc sweep for descendants.
 */
export type Isolation = 'cgroup' | 'process-group';

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
  /** Pids of the agent's live processes now (leader and descendants the backend can see), sorted. */
  processes(): number[];
  /**
   * Stops every process of the agent at once so that not one more instruction runs (cgroup:
   * `cgroup.freeze`; process group: SIGSTOP to the group and every known descendant), keeping
   * its memory for evidence. Resolves once the kernel confirms it. Idempotent while frozen.
   */
  freeze(): Promise<FreezeResult>;
  /** Undoes {@link AgentHandle.freeze}; a no-op when not frozen. */
  thaw(): Promise<FreezeResult>;
  /** True between a {@link AgentHandle.freeze} and the next thaw or terminate. */
  frozen(): boolean;
  /**
   * Runs `fn` with the frozen agent's processes in a state a debugger can attach to (ptrace
   * cannot stop a task the cgroup freezer holds): on the cgroup backend every process gets a
   * SIGSTOP and the cgroup is thawed so that it takes effect (a thawed task handles the pending
   * stop before it returns to user space: no instruction of the agent runs), then frozen again
   * and continued. On the process-group backend the processes are SIGSTOPped already.
   */
  holdForTrace<T>(fn: () => Promise<T>): Promise<T>;
}

/** Starts agents. Processes first; a container-orchestrator backend can implement the same. */
export interface ProcessBackend {
  readonly name: string;
  /** What holds the agent's processes together (see {@link Isolation}). */
  readonly isolation: Isolation;
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
  /**
   * `kill` (default): a guard process SIGKILLs the agent's process group if the launcher dies
   * without ending it (descendants that left the group survive); `keep`: the agent outlives it.
   */
  orphanPolicy?: OrphanPolicy;
}

/**
 * Spawns `argv` in its own session and process group with `spec`'s environment and stdio; the
 * shared part of both backends.
 * @throws KillpathError `invalid_request` when the command cannot be started at all
 */
export function spawnAgent(
  spec: LaunchSpec,
  argv: string[],
  env: NodeJS.ProcessEnv,
): { child: ChildProcess; pid: number; exited: Promise<ExitInfo> } {
  const [command, ...args] = argv;
  const child = spawn(command as string, args, {
    detached: true,
    env,
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
  return { child, pid: child.pid, exited };
}

/** The agent's argv, through `ip netns exec` when it runs in a network namespace. */
export function agentArgv(spec: LaunchSpec): string[] {
  return spec.netns ? netnsExecArgv(spec.netns, spec.command, spec.args) : [spec.command, ...spec.args];
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
 * found; containing that needs the cgroup backend (`CgroupProcessBackend`) or a network
 * namespace (`AgentNetns.pids()` lists everything inside it).
 */
export class LocalProcessBackend implements ProcessBackend {
  readonly name = 'local';
  readonly isolation = 'process-group';
  readonly #opts: Required<LocalProcessBackendOptions>;

  constructor(opts: LocalProcessBackendOptions = {}) {
    this.#opts = {
      trackEveryMs: opts.trackEveryMs ?? 1_000,
      killTimeoutMs: opts.killTimeoutMs ?? 5_000,
      pollMs: opts.pollMs ?? 15,
      orphanPolicy: opts.orphanPolicy ?? 'kill',
    };
  }

  start(spec: LaunchSpec): AgentHandle {
    const launchId = randomUUID();
    const { child, pid, exited } = spawnAgent(spec, agentArgv(spec), {
      ...spec.env,
      [LAUNCH_ID_ENV]: launchId,
    });
    const guard = this.#opts.orphanPolicy === 'kill' ? startOrphanGuard({ processGroup: pid }) : null;
    return new LocalAgentHandle(pid, launchId, exited, child.stdout, child.stderr, this.#opts, guard);
  }
}

/** True when the process's environment holds `marker` (`NAME=value`); false if unreadable. */
function hasMarker(pid: number, marker: string): boolean {
  try {
    return readFileSync(`/proc/${pid}/environ`, 'latin1').split('\0').includes(marker);
  } catch {
    return false;
  }
}

const round1 = (ms: number) => Math.round(ms * 10) / 10;

class LocalAgentHandle implements AgentHandle {
  readonly pid: number;
  readonly exited: Promise<ExitInfo>;
  readonly stdout: NodeJS.ReadableStream | null;
  readonly stderr: NodeJS.ReadableStream | null;
  readonly #opts: Required<LocalProcessBackendOptions>;
  readonly #guard: OrphanGuard | null;
  /** Descendants seen so far: pid → start time (guards against signalling a reused pid). */
  #known = new Map<number, string>();
  /** `KILLPATH_LAUNCH_ID=<id>` as it appears in a descendant's environ. */
  readonly #marker: string;
  #leaderAlive = true;
  #frozen = false;
  #tracker: NodeJS.Timeout | null = null;
  #terminating: Promise<TerminateResult> | null = null;

  constructor(
    pid: number,
    launchId: string,
    exited: Promise<ExitInfo>,
    stdout: NodeJS.ReadableStream | null,
    stderr: NodeJS.ReadableStream | null,
    opts: Required<LocalProcessBackendOptions>,
    guard: OrphanGuard | null,
  ) {
    this.pid = pid;
    this.#marker = `${LAUNCH_ID_ENV}=${launchId}`;
    this.exited = exited;
    this.stdout = stdout;
    this.stderr = stderr;
    this.#opts = opts;
    this.#guard = guard;
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

  frozen(): boolean {
    return this.#frozen;
  }

  signal(sig: NodeJS.Signals): void {
    sendSignal(-this.pid, sig);
  }

  processes(): number[] {
    const live = [...this.#scan(true).keys()];
    if (this.#leaderAlive) live.push(this.pid);
    return live.sort((a, b) => a - b);
  }

  /** SIGSTOP to the group and every known descendant, again for any found later, until all are stopped. */
  async freeze(): Promise<FreezeResult> {
    const t0 = performance.now();
    this.#frozen = true;
    const deadline = t0 + this.#opts.killTimeoutMs;
    for (;;) {
      const live = this.#scan(true);
      this.#signalAll('SIGSTOP', live.values());
      const rows = [...live.values()];
      const leader = this.#leaderAlive ? readStat(this.pid) : null;
      if (leader) rows.push(leader);
      const running = rows.filter((r) => r.state !== 'T' && r.state !== 'Z' && r.state !== 'X');
      if (running.length === 0 || performance.now() > deadline)
        return {
          ms: round1(performance.now() - t0),
          pids: rows.map((r) => r.pid).sort((a, b) => a - b),
          confirmed: running.length === 0,
        };
      await sleep(1);
    }
  }

  async thaw(): Promise<FreezeResult> {
    const t0 = performance.now();
    if (!this.#frozen) return { ms: 0, pids: [], confirmed: true };
    this.#frozen = false;
    const live = this.#scan(true);
    this.#signalAll('SIGCONT', live.values());
    const pids = [...live.keys()];
    if (this.#leaderAlive) pids.push(this.pid);
    return { ms: round1(performance.now() - t0), pids: pids.sort((a, b) => a - b), confirmed: true };
  }

  holdForTrace<T>(fn: () => Promise<T>): Promise<T> {
    return fn();
  }

  terminate(graceMs: number): Promise<TerminateResult> {
    this.#terminating ??= this.#terminate(Math.max(0, graceMs)).then((r) => {
      this.#guard?.release();
      return r;
    });
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
    const elapsed = () => round1(performance.now() - t0);
    // The leader is our child: its exit (and reaping) shows up as the 'exit' event. Descendants
    // are judged from /proc, where a zombie counts as gone (init may be slow to reap, or never).
    const gone = (live: Map<number, ProcStat>) => !this.#leaderAlive && live.size === 0;
    const ended = new Set<number>();
    const result = (signal: TerminateResult['signal'], survivors: number[]): TerminateResult => {
      for (const pid of survivors) ended.delete(pid);
      return { signal, ms: elapsed(), survivors, ended: [...ended].sort((a, b) => a - b) };
    };
    const note = (live: Map<number, ProcStat>) => {
      for (const pid of live.keys()) ended.add(pid);
      if (this.#leaderAlive) ended.add(this.pid);
    };
    let live = this.#scan(true);
    note(live);
    if (gone(live)) return result(null, []);
    // A frozen agent cannot run a SIGTERM handler without being thawed: it gets SIGKILL at once.
    const frozen = this.#frozen;
    this.#frozen = false;

    const rescan = (): boolean => {
      live = this.#scan();
      note(live);
      return gone(live);
    };
    // SIGTERM, then wait out the grace, rescanning so children forked meanwhile are known too.
    if (graceMs > 0 && !frozen) {
      this.#signalAll('SIGTERM', live.values());
      if (await pollUntil(t0 + graceMs, this.#opts.pollMs, rescan)) return result('SIGTERM', []);
    }

    // SIGKILL everything known, again after each poll: a fork may race the previous round.
    const killDeadline = performance.now() + this.#opts.killTimeoutMs;
    live = this.#scan(true);
    note(live);
    this.#signalAll('SIGKILL', live.values());
    const killed = await pollUntil(killDeadline, this.#opts.pollMs, () => {
      if (rescan()) return true;
      this.#signalAll('SIGKILL', live.values());
      return false;
    });
    return result('SIGKILL', killed ? [] : [...live.keys()]);
  }
}
