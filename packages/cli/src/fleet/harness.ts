import { spawn, type ChildProcess } from 'node:child_process';
import { setPriority } from 'node:os';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { KillpathError } from '@killpath/protocol';
import type { ApiClient } from '../api.ts';

/** Niceness of the agent processes a harness starts (see {@link FleetHarness.start}). */
const AGENT_NICENESS = 10;

/** One agent process to start: its identity, the run ids it hosts and the features it declares. */
export interface AgentSpec {
  tenant: string;
  agent: string;
  runs: string[];
  features?: string[];
  /** Extra environment for this agent only (e.g. DEMO_PARENT_RUN, DEMO_RESUME). */
  env?: Record<string, string>;
}

/** One line an agent printed: an SDK event with its wall-clock time, or its ready line. */
export interface AgentEvent {
  k: 'ev';
  type: string;
  wall: number;
  at: number;
  rev?: number;
  runId?: string;
  capability?: string;
  class?: string;
  directiveId?: string | null;
  [key: string]: unknown;
}

/** A running agent process and everything it has printed so far. */
export interface AgentProcess {
  spec: AgentSpec;
  child: ChildProcess;
  pid: number;
  workerId: string | null;
  /** Run ids hosted, including the child run the demo agent starts. */
  runs: { runId: string; lineage: string[] }[];
  /** Run ids whose resume the control plane refused (agents started with DEMO_RESUME=1). */
  refused: string[];
  events: AgentEvent[];
  /** Every other JSON line it printed (a scenario agent's own observations), with their `wall`. */
  lines: Record<string, unknown>[];
  exited: Promise<number | null>;
  stderr: string[];
}

/** Options of {@link FleetHarness.start}. */
export interface HarnessOptions {
  api: ApiClient;
  agents: AgentSpec[];
  /** Extra environment for every agent (e.g. DEMO_PERIOD_MS, KILLPATH_LEASE_MS). */
  env?: Record<string, string>;
  /** Agent entry script; default the demo agent. */
  script?: string;
  /** The control plane URL the agents use, when not `api.url` (e.g. through a relay). */
  agentUrl?: string;
  /** How long to wait for every agent to be connected, in ms. Default 20000. */
  readyTimeoutMs?: number;
}

/** Path of the demo agent's entry point. */
export function demoAgentScript(): string {
  return fileURLToPath(import.meta.resolve('@killpath/demo-agent/agent'));
}

/**
 * Starts a fleet of real agent processes against a control plane (each in its own process
 * group, each with an agent token minted for its tenant and agent), collects their event
 * lines, and stops them all. Shared by `killpath demo`, the end-to-end tests and drills.
 */
export class FleetHarness {
  readonly agents: AgentProcess[];

  private constructor(agents: AgentProcess[]) {
    this.agents = agents;
  }

  /** Mints tokens, spawns every agent and waits until each has applied its first snapshot. */
  static async start(opts: HarnessOptions): Promise<FleetHarness> {
    const script = opts.script ?? demoAgentScript();
    const tokens = new Map<string, string>();
    for (const a of opts.agents) {
      const key = `${a.tenant}/${a.agent}`;
      if (tokens.has(key)) continue;
      const r = await opts.api.post<{ token: string }>('/v1/tokens', {
        role: 'agent',
        tenant: a.tenant,
        agent: a.agent,
        name: `agent:${key}`,
      });
      tokens.set(key, r.token);
    }
    const procs: AgentProcess[] = [];
    const readies: Promise<void>[] = [];
    for (const spec of opts.agents) {
      const child = spawn(process.execPath, [script], {
        detached: true,
        stdio: ['ignore', 'pipe', 'pipe'],
        env: {
          ...process.env,
          KILLPATH_URL: opts.agentUrl ?? opts.api.url,
          KILLPATH_TOKEN: tokens.get(`${spec.tenant}/${spec.agent}`)!,
          KILLPATH_TENANT: spec.tenant,
          KILLPATH_AGENT: spec.agent,
          KILLPATH_FEATURES: (spec.features ?? []).join(','),
          DEMO_RUNS: spec.runs.join(','),
          ...opts.env,
          ...spec.env,
        },
      });
      // The fleet shares this machine with its control plane, which a real deployment runs on
      // hosts of its own: agents run at a lower CPU priority so that dozens of busy agents cannot
      // starve the control plane and the operator's requests behind their own traffic.
      if (child.pid !== undefined) {
        try {
          setPriority(child.pid, AGENT_NICENESS);
        } catch {
          // Not permitted here: the fleet runs at normal priority.
        }
      }
      const proc: AgentProcess = {
        spec,
        child,
        pid: child.pid!,
        workerId: null,
        runs: [],
        refused: [],
        events: [],
        lines: [],
        stderr: [],
        exited: new Promise((ok) => child.once('exit', (code) => ok(code))),
      };
      let markReady!: () => void;
      let failReady!: (e: Error) => void;
      readies.push(
        new Promise<void>((ok, fail) => {
          markReady = ok;
          failReady = fail;
        }),
      );
      createInterface({ input: child.stdout! }).on('line', (line) => {
        let msg: {
          k?: string;
          workerId?: string;
          refused?: string[];
          runs?: { runId: string; lineage: string[] }[];
        } | null;
        try {
          msg = JSON.parse(line) as typeof msg;
        } catch {
          return;
        }
        if (typeof msg !== 'object' || msg === null) return;
        if (msg.k === 'ev') proc.events.push(msg as AgentEvent);
        else if (msg.k !== 'ready') proc.lines.push(msg);
        else {
          proc.workerId = msg.workerId ?? null;
          proc.runs = msg.runs ?? [];
          proc.refused = msg.refused ?? [];
          markReady();
        }
      });
      createInterface({ input: child.stderr! }).on('line', (line) => {
        if (proc.stderr.length < 200) proc.stderr.push(line);
      });
      void proc.exited.then((code) =>
        failReady(
          new Error(
            `agent ${spec.tenant}/${spec.agent} (pid ${proc.pid}) exited with ${code} before it was ready: ${proc.stderr.join(' | ')}`,
          ),
        ),
      );
      procs.push(proc);
    }
    const harness = new FleetHarness(procs);
    const timeout = opts.readyTimeoutMs ?? 20_000;
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        Promise.all(readies),
        new Promise((_, fail) => {
          timer = setTimeout(
            () => fail(new KillpathError('unavailable', `agents not ready after ${timeout} ms`)),
            timeout,
          );
        }),
      ]);
    } catch (err) {
      await harness.stop();
      throw err;
    } finally {
      clearTimeout(timer);
    }
    return harness;
  }

  /** Starts more agents into this fleet (same control plane, same options). */
  async add(opts: HarnessOptions): Promise<AgentProcess[]> {
    const more = await FleetHarness.start(opts);
    this.agents.push(...more.agents);
    return more.agents;
  }

  /** Every agent's events from `index` on (use the length before an action as a cursor). */
  eventCount(): number[] {
    return this.agents.map((a) => a.events.length);
  }

  /** How many of its agent processes have not exited. */
  get running(): number {
    return this.agents.filter((a) => a.child.exitCode === null && a.child.signalCode === null).length;
  }

  /**
   * Stops every agent: SIGTERM to its process group, SIGKILL after `graceMs`. Resolves when
   * all have exited.
   */
  async stop(graceMs = 2000): Promise<void> {
    const signal = (a: AgentProcess, sig: NodeJS.Signals) => {
      try {
        process.kill(-a.pid, sig);
      } catch {
        // already gone
      }
    };
    const live = this.agents.filter((a) => a.child.exitCode === null && a.child.signalCode === null);
    for (const a of live) signal(a, 'SIGTERM');
    const timer = setTimeout(() => {
      for (const a of live) signal(a, 'SIGKILL');
    }, graceMs);
    await Promise.all(live.map((a) => a.exited));
    clearTimeout(timer);
  }
}
