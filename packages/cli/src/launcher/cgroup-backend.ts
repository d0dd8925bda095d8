import { randomUUID } from 'node:crypto';
import { KillpathError } from '@killpath/protocol';
import { AgentCgroup, cgroupSupport, type CgroupSupport } from './cgroup.ts';
import { startOrphanGuard, type OrphanGuard, type OrphanPolicy } from './orphan-guard.ts';
import {
  LAUNCH_ID_ENV,
  LocalProcessBackend,
  agentArgv,
  spawnAgent,
  type AgentHandle,
  type ExitInfo,
  type FreezeResult,
  type LaunchSpec,
  type ProcessBackend,
  type TerminateResult,
} from './process-backend.ts';
import { pollUntil, readStat, sendSignal, sleep } from './proc.ts';

/** Options of {@link CgroupProcessBackend}. */
export interface CgroupProcessBackendOptions {
  /** The cgroup under which each agent gets its own (`cgroupSupport().parent`: the launcher's own cgroup). */
  parent: string;
  /**
   * `kill` (default): a guard process kills the agent's cgroup if the launcher dies without
   * ending it; `keep`: the agent (and its cgroup) outlive the launcher.
   */
  orphanPolicy?: OrphanPolicy;
  /** How long, in ms, to wait for the cgroup to empty after `cgroup.kill` before reporting survivors. Default 5000. */
  killTimeoutMs?: number;
  /** Poll period of `cgroup.events` while waiting for the agent to go, in ms. Default 5. */
  pollMs?: number;
}

// The wrapper moves itself into the agent's cgroup, then execs the agent: the agent's first
// instruction already runs inside it, so no child it forks can be born outside (no window).
// When the move fails the agent is not started (exit 126 with the shell's own message).
const ENTER_CGROUP = 'echo $$ > "$1" || exit 126; shift; exec "$@"';

/** Exit code of the wrapper when it could not move itself into the agent's cgroup. */
export const EXIT_CGROUP_ENTER_FAILED = 126;

/**
 * Runs each agent in a cgroup v2 cgroup of its own (`killpath-<uuid>` under `parent`), in its
 * own session and process group as well. Whatever the agent does (setsid, double forks, a
 * cleared environment), every process it starts stays in the cgroup: `cgroup.procs` lists them
 * all, `cgroup.kill` ends them all at once, `cgroup.freeze` stops them all. The cgroup is
 * removed once the agent is gone. See `cgroupSupport()` for where it is available.
 */
export class CgroupProcessBackend implements ProcessBackend {
  readonly name = 'cgroup';
  readonly isolation = 'cgroup';
  readonly #opts: Required<CgroupProcessBackendOptions>;

  constructor(opts: CgroupProcessBackendOptions) {
    this.#opts = {
      parent: opts.parent,
      orphanPolicy: opts.orphanPolicy ?? 'kill',
      killTimeoutMs: opts.killTimeoutMs ?? 5_000,
      pollMs: opts.pollMs ?? 5,
    };
  }

  start(spec: LaunchSpec): AgentHandle {
    const id = randomUUID();
    let cg: AgentCgroup;
    try {
      cg = AgentCgroup.create(this.#opts.parent, `killpath-${id}`);
    } catch (err) {
      throw new KillpathError(
        'unavailable',
        `cannot create the agent's cgroup under ${this.#opts.parent}: ${(err as Error).message}`,
      );
    }
    // The guard watches from before the agent's first instruction.
    const guard = this.#opts.orphanPolicy === 'kill' ? startOrphanGuard({ cgroup: cg.dir }) : null;
    let started: ReturnType<typeof spawnAgent>;
    try {
      started = spawnAgent(
        spec,
        ['/bin/sh', '-c', ENTER_CGROUP, 'killpath-enter-cgroup', cg.procsFile, ...agentArgv(spec)],
        {
          ...spec.env,
          [LAUNCH_ID_ENV]: id,
        },
      );
    } catch (err) {
      guard?.release();
      void cg.remove();
      throw err;
    }
    return new CgroupAgentHandle(
      started.pid,
      cg,
      started.exited,
      started.child.stdout,
      started.child.stderr,
      this.#opts,
      guard,
    );
  }
}

const round1 = (ms: number) => Math.round(ms * 10) / 10;
const sorted = (pids: Iterable<number>) => [...pids].sort((a, b) => a - b);

class CgroupAgentHandle implements AgentHandle {
  readonly pid: number;
  readonly exited: Promise<ExitInfo>;
  readonly stdout: NodeJS.ReadableStream | null;
  readonly stderr: NodeJS.ReadableStream | null;
  readonly #cg: AgentCgroup;
  readonly #opts: Required<CgroupProcessBackendOptions>;
  readonly #guard: OrphanGuard | null;
  #leaderAlive = true;
  #frozen = false;
  #terminating: Promise<TerminateResult> | null = null;

  constructor(
    pid: number,
    cg: AgentCgroup,
    exited: Promise<ExitInfo>,
    stdout: NodeJS.ReadableStream | null,
    stderr: NodeJS.ReadableStream | null,
    opts: Required<CgroupProcessBackendOptions>,
    guard: OrphanGuard | null,
  ) {
    this.pid = pid;
    this.#cg = cg;
    this.exited = exited;
    this.stdout = stdout;
    this.stderr = stderr;
    this.#opts = opts;
    this.#guard = guard;
    void exited.then(() => {
      this.#leaderAlive = false;
    });
  }

  /** The agent's cgroup directory (for logs and tests). */
  get cgroup(): string {
    return this.#cg.dir;
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
    return sorted(this.#cg.procs());
  }

  async freeze(): Promise<FreezeResult> {
    const t0 = performance.now();
    this.#frozen = true;
    const confirmed = await this.#cg.freeze(true, this.#opts.killTimeoutMs);
    return { ms: round1(performance.now() - t0), pids: this.processes(), confirmed };
  }

  async thaw(): Promise<FreezeResult> {
    const t0 = performance.now();
    if (!this.#frozen) return { ms: 0, pids: [], confirmed: true };
    this.#frozen = false;
    const confirmed = await this.#cg.freeze(false, this.#opts.killTimeoutMs);
    return { ms: round1(performance.now() - t0), pids: this.processes(), confirmed };
  }

  async holdForTrace<T>(fn: () => Promise<T>): Promise<T> {
    if (!this.#frozen) return fn();
    const pids = this.#cg.procs();
    for (const pid of pids) sendSignal(pid, 'SIGSTOP');
    await this.#cg.freeze(false, this.#opts.killTimeoutMs);
    // Wait for every process to show as stopped (bounded): then ptrace can attach.
    const deadline = performance.now() + this.#opts.killTimeoutMs;
    while (
      pids.some((pid) => !['T', 't', 'Z', 'X', undefined].includes(readStat(pid)?.state)) &&
      performance.now() < deadline
    )
      await sleep(1);
    try {
      return await fn();
    } finally {
      await this.#cg.freeze(true, this.#opts.killTimeoutMs);
      for (const pid of this.#cg.procs()) sendSignal(pid, 'SIGCONT');
    }
  }

  terminate(graceMs: number): Promise<TerminateResult> {
    this.#terminating ??= this.#terminate(Math.max(0, graceMs));
    return this.#terminating;
  }

  async #terminate(graceMs: number): Promise<TerminateResult> {
    const t0 = performance.now();
    const ended = new Set<number>();
    const look = (): number[] => {
      const pids = this.#cg.procs();
      for (const pid of pids) ended.add(pid);
      return pids;
    };
    // Gone: nothing (but zombies) left in the cgroup and the leader, our child, reaped.
    const gone = () => !this.#cg.populated() && !this.#leaderAlive;
    const finish = async (
      signal: TerminateResult['signal'],
      survivors: number[],
    ): Promise<TerminateResult> => {
      const ms = round1(performance.now() - t0);
      if (survivors.length === 0) {
        await this.#cg.remove();
        this.#guard?.release();
      }
      for (const pid of survivors) ended.delete(pid);
      return { signal, ms, survivors: sorted(survivors), ended: sorted(ended) };
    };
    let pids = look();
    if (pids.length === 0 && !this.#leaderAlive) return finish(null, []);
    // A frozen agent cannot run a SIGTERM handler without being thawed: straight to cgroup.kill
    // (a frozen cgroup is killed as it is: SIGKILL reaches frozen tasks).
    const frozen = this.#frozen;
    this.#frozen = false;
    if (graceMs > 0 && !frozen) {
      for (const pid of pids) sendSignal(pid, 'SIGTERM');
      const signalled = new Set(pids);
      const termed = await pollUntil(t0 + graceMs, this.#opts.pollMs, () => {
        if (gone()) return true;
        // A child forked during the grace gets its SIGTERM too.
        pids = look();
        for (const pid of pids) {
          if (signalled.has(pid)) continue;
          signalled.add(pid);
          sendSignal(pid, 'SIGTERM');
        }
        return false;
      });
      if (termed) return finish('SIGTERM', []);
    }
    look();
    this.#cg.kill();
    const killed = await pollUntil(performance.now() + this.#opts.killTimeoutMs, this.#opts.pollMs, gone);
    return finish('SIGKILL', killed ? [] : look());
  }
}

/** What `--isolation` asks for: `auto` (default) is a cgroup where one can be made, else the process group. */
export type IsolationChoice = 'auto' | 'cgroup' | 'process-group';

/**
 * The backend for `killpath run --isolation`: `cgroup` when asked for or `auto` and available;
 * `process-group` when asked for, or `auto` and cgroups are not available (`fallback` then says
 * why, for the launcher's log line).
 * @throws KillpathError `invalid_request` when `cgroup` was asked for and cannot be had
 */
export function chooseBackend(
  choice: IsolationChoice,
  orphanPolicy: OrphanPolicy,
  support: () => CgroupSupport = cgroupSupport,
): { backend: ProcessBackend; fallback: string | null } {
  if (choice === 'process-group')
    return { backend: new LocalProcessBackend({ orphanPolicy }), fallback: null };
  const s = support();
  if (s.ok) return { backend: new CgroupProcessBackend({ parent: s.parent, orphanPolicy }), fallback: null };
  if (choice === 'cgroup')
    throw new KillpathError('invalid_request', `--isolation cgroup is not available here: ${s.why}`);
  return { backend: new LocalProcessBackend({ orphanPolicy }), fallback: s.why };
}
