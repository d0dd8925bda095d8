import {
  coversRun,
  levelRank,
  type Directive,
  type FleetWorker,
  type HeartbeatReport,
  type Level,
  type Release,
  type RunIdentity,
  type RunReport,
} from '@killpath/protocol';
import { flagsFor, covering } from './ladder.ts';

interface WorkerEntry {
  workerId: string;
  tenant: string;
  agent: string;
  features: string[];
  connected: boolean;
  pid: number | null;
  ackedRev: number;
  lastContact: number | null;
  /** When it last sent a heartbeat (null: not yet; connecting and acks are contact, not heartbeats). */
  lastHeartbeat: number | null;
  /** When its launcher reported its process ended; null while it is not known gone. */
  goneAt: number | null;
  runs: RunReport[];
  launcher: string | null;
  release: Release | null;
}

/**
 * The control plane's live view of its workers: who is connected, what they run, what rev
 * they have acknowledged and when they last reported. In memory: after a restart workers
 * reconnect and repopulate it within one heartbeat.
 */
export class Fleet {
  readonly #workers = new Map<string, WorkerEntry>();
  readonly #now: () => number;
  /** A worker silent for longer than this is shown as `stale`. */
  readonly staleAfterMs: number;
  /** A disconnected worker whose launcher reported its process ended leaves the view this long after. */
  readonly goneAfterMs: number;

  /** Workers one agent (tenant and agent) may have in the fleet view at once; more are refused. */
  static readonly MAX_WORKERS_PER_AGENT = 1000;

  /** How many workers of `tenant`/`agent` the fleet holds. */
  countOf(tenant: string, agent: string): number {
    let n = 0;
    for (const w of this.#workers.values()) if (w.tenant === tenant && w.agent === agent) n++;
    return n;
  }

  constructor(now: () => number = () => performance.now(), staleAfterMs = 15_000, goneAfterMs = 10_000) {
    this.#now = now;
    this.staleAfterMs = staleAfterMs;
    this.goneAfterMs = goneAfterMs;
  }

  /** The worker's tenant and agent if known. */
  identity(workerId: string): { tenant: string; agent: string } | null {
    const w = this.#workers.get(workerId);
    return w ? { tenant: w.tenant, agent: w.agent } : null;
  }

  #entry(workerId: string, tenant: string, agent: string): WorkerEntry {
    let w = this.#workers.get(workerId);
    if (!w) {
      w = {
        workerId,
        tenant,
        agent,
        features: [],
        connected: false,
        pid: null,
        ackedRev: 0,
        lastContact: null,
        lastHeartbeat: null,
        goneAt: null,
        runs: [],
        launcher: null,
        release: null,
      };
      this.#workers.set(workerId, w);
    }
    return w;
  }

  /** A worker opened its stream, declaring the features its runs use and the release it runs. */
  connected(
    workerId: string,
    tenant: string,
    agent: string,
    features: string[],
    release: Release | null = null,
  ): void {
    const w = this.#entry(workerId, tenant, agent);
    w.connected = true;
    w.features = features;
    w.release = release;
    w.lastContact = this.#now();
  }

  /** A worker's stream closed. */
  disconnected(workerId: string): void {
    const w = this.#workers.get(workerId);
    if (w) w.connected = false;
  }

  /** Records a heartbeat. */
  heartbeat(workerId: string, tenant: string, agent: string, hb: HeartbeatReport): void {
    const w = this.#entry(workerId, tenant, agent);
    w.pid = hb.pid;
    w.features = hb.features;
    w.runs = hb.runs;
    if (hb.launcher !== undefined) w.launcher = hb.launcher;
    if (hb.release !== undefined) w.release = hb.release;
    w.ackedRev = Math.max(w.ackedRev, hb.rev);
    w.lastContact = this.#now();
    w.lastHeartbeat = w.lastContact;
    w.goneAt = null;
  }

  /**
   * A launcher reported its agent process ended (`process.exited`, `process.killed`): the
   * workers it started with that pid (any, when the pid is unknown) leave the view once
   * disconnected for {@link Fleet.goneAfterMs}, instead of staying `stale` for good.
   */
  processGone(l: LauncherKey, pid: number | null): void {
    const now = this.#now();
    for (const w of this.#workers.values())
      if (startedBy(w, l) && (pid === null || w.pid === pid) && w.goneAt === null) w.goneAt = now;
  }

  /** Records an ack of `rev`. */
  ack(workerId: string, rev: number): void {
    const w = this.#workers.get(workerId);
    if (!w) return;
    w.ackedRev = Math.max(w.ackedRev, rev);
    w.lastContact = this.#now();
  }

  /** Forgets workers that have been disconnected and silent for `ms`. */
  prune(ms: number): void {
    const now = this.#now();
    for (const [id, w] of this.#workers) {
      if (!w.connected && (w.lastContact === null || now - w.lastContact > ms || this.#left(w, now)))
        this.#workers.delete(id);
    }
  }

  /**
   * A worker registered a run (`POST /v1/runs`): the fleet knows it before the next heartbeat, so
   * a worker that hangs right after starting a run still counts as covered by a halt of it.
   */
  addRun(workerId: string, run: { runId: string; parentRunId: string | null; lineage: string[] }): void {
    const w = this.#workers.get(workerId);
    if (!w || w.runs.some((r) => r.runId === run.runId)) return;
    w.runs = [
      ...w.runs,
      {
        runId: run.runId,
        parentRunId: run.parentRunId,
        lineage: run.lineage,
        state: 'running',
        effects: 0,
        denied: 0,
        inFlight: 0,
      },
    ];
  }

  /**
   * A worker reported `runs` settled under a directive of `level`: the fleet shows them so at
   * once, without waiting for the next heartbeat (which then reports the worker's own view).
   */
  markRuns(workerId: string, runs: readonly string[], level: Level): void {
    const w = this.#workers.get(workerId);
    if (!w) return;
    const ids = new Set(runs);
    w.runs = w.runs.map((r) =>
      ids.has(r.runId) && (r.state === 'running' || levelRank(r.state) < levelRank(level))
        ? { ...r, state: level }
        : r,
    );
  }

  /** Run identities of the runs `workerId` hosts (registered ones included); empty when unknown. */
  identitiesOf(workerId: string): RunIdentity[] {
    const w = this.#workers.get(workerId);
    return w ? identities(w) : [];
  }

  /**
   * Run identities of the workers a launcher started (for its orders): only workers of the
   * launcher's own tenant and agent count, whatever id another identity reports.
   */
  runsOfLauncher(l: LauncherKey): RunIdentity[] {
    const out: RunIdentity[] = [];
    for (const w of this.#workers.values()) if (startedBy(w, l)) out.push(...identities(w));
    return out;
  }

  /**
   * What the deadman needs of a worker: identity, whether its stream is open, the runs it hosts
   * (registered ones included), its pid and launcher; `null` when unknown.
   */
  /**
   * True when a freeze covers one of the worker's runs: its silence is ordered (its launcher
   * froze the process), not a hang, so the deadman leaves it alone.
   */
  frozen(workerId: string, active: readonly Directive[]): boolean {
    const w = this.#workers.get(workerId);
    return w !== undefined && covering(active, identities(w), ['freeze']) !== null;
  }

  watchInfo(workerId: string): {
    tenant: string;
    agent: string;
    connected: boolean;
    pid: number | null;
    launcher: string | null;
    runs: string[];
  } | null {
    const w = this.#workers.get(workerId);
    return w
      ? {
          tenant: w.tenant,
          agent: w.agent,
          connected: w.connected,
          pid: w.pid,
          launcher: w.launcher,
          runs: w.runs.map((r) => r.runId),
        }
      : null;
  }

  /** Ids of the workers a launcher started (of its own tenant and agent). */
  workersOfLauncher(l: LauncherKey): string[] {
    const out: string[] = [];
    for (const w of this.#workers.values()) if (startedBy(w, l)) out.push(w.workerId);
    return out;
  }

  /** The launcher that started `workerId`, if known. */
  launcherOf(workerId: string): LauncherKey | null {
    const w = this.#workers.get(workerId);
    return w?.launcher ? { tenant: w.tenant, agent: w.agent, launcherId: w.launcher } : null;
  }

  /**
   * Workers that host a run `d` covers and owe it an acknowledgement: connected ones (a worker
   * whose event loop is stuck still holds its stream), and ones heard from at or after `since`
   * (the flip, on this fleet's clock) that have disconnected since. A worker that was already
   * gone at the flip cannot answer and is not counted (its lease fails it closed).
   */
  coveredBy(d: Directive, since?: number): { workerId: string; ackedRev: number; launcher: string | null }[] {
    const out: { workerId: string; ackedRev: number; launcher: string | null }[] = [];
    for (const w of this.#workers.values()) {
      const owes = w.connected || (since !== undefined && w.lastContact !== null && w.lastContact >= since);
      if (owes && identities(w).some((r) => coversRun(d, r)))
        out.push({ workerId: w.workerId, ackedRev: w.ackedRev, launcher: w.launcher });
    }
    return out;
  }

  /**
   * Connected workers with their release and the identities a directive may cover: their runs,
   * and the worker itself (so an idle worker that would start new runs counts). What a directive
   * records at its commit and what a resume's release check looks at. A worker whose stream has
   * closed is not in it: if it comes back, it connects like any new worker (held while the
   * directive is active; free after a resume, which acknowledged or replaced its release).
   */
  live(): LiveWorker[] {
    const out: LiveWorker[] = [];
    for (const w of this.#workers.values()) {
      if (!w.connected) continue;
      out.push({
        workerId: w.workerId,
        tenant: w.tenant,
        agent: w.agent,
        release: w.release,
        identities: [...identities(w), ownIdentity(w)],
      });
    }
    return out.sort((a, b) => a.workerId.localeCompare(b.workerId));
  }

  /** Gone (its launcher said so) and disconnected for long enough to leave the view. */
  #left(w: WorkerEntry, now: number): boolean {
    return w.goneAt !== null && !w.connected && now - w.goneAt > this.goneAfterMs;
  }

  /** Workers visible to `tenant` (all when undefined), with the flags `active` directives put on them. */
  list(tenant: string | undefined, currentRev: number, active: readonly Directive[] = []): FleetWorker[] {
    const now = this.#now();
    const out: FleetWorker[] = [];
    for (const w of this.#workers.values()) {
      if (tenant !== undefined && w.tenant !== tenant) continue;
      if (this.#left(w, now)) continue;
      const ago = w.lastContact === null ? null : Math.round(now - w.lastContact);
      let top: Level | null = null;
      for (const r of w.runs) {
        if (r.state !== 'running' && (top === null || levelRank(r.state) > levelRank(top))) top = r.state;
      }
      const stale = !w.connected && (ago === null || ago > this.staleAfterMs);
      out.push({
        workerId: w.workerId,
        tenant: w.tenant,
        agent: w.agent,
        features: w.features,
        connected: w.connected,
        pid: w.pid,
        observedRev: Math.min(w.ackedRev, currentRev),
        ackedRev: w.ackedRev,
        lastHeartbeatAgoMs: w.lastHeartbeat === null ? null : Math.round(now - w.lastHeartbeat),
        state: stale ? 'stale' : (top ?? 'running'),
        flags: flagsFor(active, identities(w)),
        launcher: w.launcher,
        release: w.release ?? {},
        runs: w.runs,
      });
    }
    return out.sort(
      (a, b) =>
        a.tenant.localeCompare(b.tenant) ||
        a.agent.localeCompare(b.agent) ||
        a.workerId.localeCompare(b.workerId),
    );
  }
}

/** A live worker as a resume's release check sees it (see {@link Fleet.live}). */
export interface LiveWorker {
  workerId: string;
  tenant: string;
  agent: string;
  release: Release | null;
  identities: RunIdentity[];
}

/** A launcher as its orders are keyed: its id inside its tenant, and the agent that owns it. */
export interface LauncherKey {
  tenant: string;
  agent: string;
  launcherId: string;
}

function startedBy(w: WorkerEntry, l: LauncherKey): boolean {
  return w.launcher === l.launcherId && w.tenant === l.tenant && w.agent === l.agent;
}

function identities(w: WorkerEntry): RunIdentity[] {
  return w.runs.map((r) => ({
    tenant: w.tenant,
    agent: w.agent,
    runId: r.runId,
    lineage: r.lineage,
    features: w.features,
    release: w.release,
  }));
}

/** The worker's own identity: a run id no `run:` scope can name, as the SDK's worker identity. */
function ownIdentity(w: WorkerEntry): RunIdentity {
  return {
    tenant: w.tenant,
    agent: w.agent,
    runId: `worker/${w.workerId}`,
    lineage: [],
    features: w.features,
    release: w.release,
  };
}
