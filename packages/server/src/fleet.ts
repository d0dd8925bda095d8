import {
  coversRun,
  flagsOf,
  levelRank,
  ordersFor,
  type Directive,
  type FleetGroup,
  type FleetState,
  type FleetWorker,
  type HeartbeatReport,
  type Level,
  type Release,
  type RunIdentity,
  type RunReport,
} from '@killpath/protocol';
import type { PresenceRow } from './store/store.ts';

interface WorkerEntry {
  key: WorkerKey;
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
  /** What the worker declared when its stream opened (heartbeats may say otherwise later). */
  declared: { release: Release | null } | null;
  /** The highest level among its runs' states (`null`: all running), kept as the runs change. */
  top: Level | null;
  /**
   * The replica that published it, for a worker another replica holds (mirrored from the store);
   * null for this process's own (its stream or reports came here).
   */
  replica: string | null;
}

/**
 * A worker as the control plane keys it: its tenant, its agent and the id the agent gave it. A
 * worker id is the agent's own name for its worker, not a global one: the same id reported by
 * another tenant or another agent is another worker, and never reaches, reads or blocks this one.
 */
export type WorkerKey = string & { readonly __workerKey: true };

/** The key of worker `workerId` of `tenant`/`agent` (identifiers never hold a NUL). */
export function workerKey(tenant: string, agent: string, workerId: string): WorkerKey {
  return `${tenant}\u0000${agent}\u0000${workerId}` as WorkerKey;
}

/** The id part of a worker key (what the agent calls it, what records and views show). */
export function workerIdOf(key: WorkerKey): string {
  return key.slice(key.lastIndexOf('\u0000') + 1);
}

/** A worker's place in the fleet view's order: tenant, agent, worker id (code-unit order). */
export type FleetKey = readonly [tenant: string, agent: string, workerId: string];

/** What one `GET /v1/fleet` asks for (see {@link Fleet.page}). */
export interface FleetQuery {
  /** Only this tenant's workers (a tenant's people always; an admin's `tenant=`). */
  tenant?: string;
  agent?: string;
  state?: FleetState;
  /** Only workers hosting this run id. */
  run?: string;
  /** Workers after this key (the last one of the previous page). */
  after?: FleetKey;
  limit: number;
}

/** One page of the fleet view, before the route encodes its cursor. */
export interface FleetPageResult {
  workers: FleetWorker[];
  total: number;
  /** Key of the page's last worker when more match after it. */
  next: FleetKey | null;
  groups: FleetGroup[];
  states: Partial<Record<FleetState, number>>;
}

/**
 * The control plane's live view of its workers: who is connected, what they run, what rev
 * they have acknowledged and when they last reported. In memory: after a restart workers
 * reconnect and repopulate it within one heartbeat.
 */
export class Fleet {
  readonly #workers = new Map<WorkerKey, WorkerEntry>();
  /** The workers in view order, kept sorted as they come and go (no sort per request). */
  readonly #sorted: WorkerEntry[] = [];
  /** Workers per tenant and agent (`tenant agent` keys), kept as they come and go. */
  readonly #perAgent = new Map<string, number>();
  /** The workers of each worker id (any tenant and agent): a report finds its holders without a scan of the fleet. */
  readonly #byWorkerId = new Map<string, Set<WorkerEntry>>();
  /** The workers hosting each run id (any tenant), kept as runs are reported. */
  readonly #byRun = new Map<string, Set<WorkerEntry>>();
  readonly #now: () => number;
  /** A worker silent for longer than this is shown as `stale`. */
  readonly staleAfterMs: number;
  /** This process's workers changed since {@link Fleet.takeChanged} (what the presence sync publishes). */
  readonly #changed = new Set<WorkerEntry>();
  /** This process's workers that left the view since {@link Fleet.takeChanged} (published as tombstones). */
  #departed: WorkerEntry[] = [];
  /** A disconnected worker whose launcher reported its process ended leaves the view this long after. */
  readonly goneAfterMs: number;

  /** Workers one agent (tenant and agent) may have in the fleet view at once; more are refused. */
  static readonly MAX_WORKERS_PER_AGENT = 1000;

  /**
   * Most runs one page of the fleet view carries: a page ends before the worker that would pass
   * it (a page holds at least one worker, and a worker reports at most
   * `MAX_RUNS_PER_HEARTBEAT` runs), so a page stays a few hundred KB whatever the fleet.
   */
  static readonly MAX_PAGE_RUNS = 2000;

  /** The fleet's clock (monotonic ms): what its contact times are measured on. */
  clockNow(): number {
    return this.#now();
  }

  /** How many workers of `tenant`/`agent` the fleet holds. */
  countOf(tenant: string, agent: string): number {
    return this.#perAgent.get(agentKey(tenant, agent)) ?? 0;
  }

  constructor(now: () => number = () => performance.now(), staleAfterMs = 15_000, goneAfterMs = 10_000) {
    this.#now = now;
    this.staleAfterMs = staleAfterMs;
    this.goneAfterMs = goneAfterMs;
  }

  /**
   * The release a worker declared when its stream opened (else its latest reported one), for
   * deciding a permit's coverage; `null` when unknown or none.
   */
  declaredRelease(key: WorkerKey): Release | null {
    const w = this.#workers.get(key);
    return w?.declared?.release ?? w?.release ?? null;
  }

  /** True when the fleet holds the worker. */
  has(key: WorkerKey): boolean {
    return this.#workers.has(key);
  }

  /** The identities (tenant, agent) holding a worker named `workerId`, of `tenant` when given. */
  holders(workerId: string, tenant?: string): { tenant: string; agent: string; key: WorkerKey }[] {
    const out: { tenant: string; agent: string; key: WorkerKey }[] = [];
    for (const w of this.#byWorkerId.get(workerId) ?? [])
      if (tenant === undefined || w.tenant === tenant)
        out.push({ tenant: w.tenant, agent: w.agent, key: w.key });
    return out;
  }

  #entry(workerId: string, tenant: string, agent: string): WorkerEntry {
    const key = workerKey(tenant, agent, workerId);
    let w = this.#workers.get(key);
    if (!w) {
      w = {
        key,
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
        declared: null,
        top: null,
        replica: null,
      };
      this.#workers.set(key, w);
      let same = this.#byWorkerId.get(workerId);
      if (same === undefined) this.#byWorkerId.set(workerId, (same = new Set()));
      same.add(w);
      this.#sorted.splice(this.#position(keyOf(w)), 0, w);
      const g = agentKey(tenant, agent);
      this.#perAgent.set(g, (this.#perAgent.get(g) ?? 0) + 1);
    }
    return w;
  }

  #forget(w: WorkerEntry): void {
    this.#changed.delete(w);
    if (w.replica === null) this.#departed.push(w);
    this.#workers.delete(w.key);
    const same = this.#byWorkerId.get(w.workerId);
    same?.delete(w);
    if (same?.size === 0) this.#byWorkerId.delete(w.workerId);
    const i = this.#position(keyOf(w));
    if (this.#sorted[i] === w) this.#sorted.splice(i, 1);
    const g = agentKey(w.tenant, w.agent);
    const n = (this.#perAgent.get(g) ?? 1) - 1;
    if (n === 0) this.#perAgent.delete(g);
    else this.#perAgent.set(g, n);
    this.#setRuns(w, []);
  }

  /** A change of this process's own: the worker is its own from now on, and published at the next sync. */
  #mine(w: WorkerEntry): void {
    w.replica = null;
    this.#changed.add(w);
  }

  /**
   * Takes this process's workers changed since the last call, as presence rows of `replica`
   * (times turned into wall time by `toWall`), tombstones of those that left the view included.
   */
  takeChanged(replica: string, toWall: (monotonic: number) => number): PresenceRow[] {
    const wall = (t: number | null) => (t === null ? null : Math.round(toWall(t)));
    const rows: PresenceRow[] = [];
    for (const w of this.#changed)
      rows.push({
        tenant: w.tenant,
        agent: w.agent,
        workerId: w.workerId,
        replica,
        connected: w.connected,
        pid: w.pid,
        features: w.features,
        runs: w.runs,
        launcher: w.launcher,
        release: w.release,
        declared: w.declared,
        ackedRev: w.ackedRev,
        lastContactAt: wall(w.lastContact),
        lastHeartbeatAt: wall(w.lastHeartbeat),
        goneAt: wall(w.goneAt),
        removed: false,
      });
    for (const w of this.#departed)
      rows.push({
        tenant: w.tenant,
        agent: w.agent,
        workerId: w.workerId,
        replica,
        connected: false,
        pid: w.pid,
        features: [],
        runs: [],
        launcher: w.launcher,
        release: null,
        declared: null,
        ackedRev: w.ackedRev,
        lastContactAt: wall(w.lastContact),
        lastHeartbeatAt: wall(w.lastHeartbeat),
        goneAt: wall(w.goneAt),
        removed: true,
      });
    this.#changed.clear();
    this.#departed = [];
    return rows;
  }

  /**
   * Applies presence other replicas published (rows of `self` are this process's own and are
   * skipped; so is a row for a worker whose stream this process holds: its own view is the live
   * one). A remote worker counts as connected only while its replica keeps refreshing it (see
   * {@link Fleet.staleAfterMs}). `toMonotonic` turns wall times into this fleet's clock.
   */
  applyRemote(rows: readonly PresenceRow[], self: string, toMonotonic: (wall: number) => number): void {
    const mono = (t: number | null) => (t === null ? null : toMonotonic(t));
    for (const r of rows) {
      if (r.replica === self) continue;
      const key = workerKey(r.tenant, r.agent, r.workerId);
      const held = this.#workers.get(key);
      if (held !== undefined && held.replica === null && held.connected) continue;
      if (r.removed) {
        if (held !== undefined) this.#forget(held);
        continue;
      }
      const w = held ?? this.#entry(r.workerId, r.tenant, r.agent);
      this.#changed.delete(w);
      w.replica = r.replica;
      w.connected = r.connected;
      w.pid = r.pid;
      w.features = r.features;
      this.#setRuns(w, r.runs);
      w.launcher = r.launcher;
      w.release = r.release;
      w.declared = r.declared;
      w.ackedRev = r.ackedRev;
      w.lastContact = mono(r.lastContactAt);
      w.lastHeartbeat = mono(r.lastHeartbeatAt);
      w.goneAt = mono(r.goneAt);
    }
  }

  /** Connected: its stream is open here, or (another replica's) its replica published it within {@link Fleet.staleAfterMs}. */
  #open(w: WorkerEntry, now: number): boolean {
    if (!w.connected) return false;
    return w.replica === null || (w.lastContact !== null && now - w.lastContact <= this.staleAfterMs);
  }

  /** Index in {@link Fleet.#sorted} of the first worker whose key is not below `k`. */
  #position(k: FleetKey): number {
    let lo = 0;
    let hi = this.#sorted.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (compareKeys(keyOf(this.#sorted[mid]!), k) < 0) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  /** Replaces a worker's runs, keeping the run index and its top level. */
  #setRuns(w: WorkerEntry, runs: RunReport[]): void {
    const before = new Set(w.runs.map((r) => r.runId));
    const after = new Set(runs.map((r) => r.runId));
    for (const id of before) {
      if (after.has(id)) continue;
      const hosts = this.#byRun.get(id);
      hosts?.delete(w);
      if (hosts?.size === 0) this.#byRun.delete(id);
    }
    for (const id of after) {
      if (before.has(id)) continue;
      let hosts = this.#byRun.get(id);
      if (!hosts) this.#byRun.set(id, (hosts = new Set()));
      hosts.add(w);
    }
    w.runs = runs;
    w.top = topLevel(runs);
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
    this.#mine(w);
    w.connected = true;
    w.features = features;
    w.release = release;
    w.declared = { release };
    w.lastContact = this.#now();
  }

  /** A worker's stream closed. */
  disconnected(key: WorkerKey): void {
    const w = this.#workers.get(key);
    if (w) {
      this.#mine(w);
      w.connected = false;
    }
  }

  /** Records a heartbeat. */
  heartbeat(workerId: string, tenant: string, agent: string, hb: HeartbeatReport): void {
    const w = this.#entry(workerId, tenant, agent);
    this.#mine(w);
    w.pid = hb.pid;
    w.features = hb.features;
    this.#setRuns(w, hb.runs);
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
      if (startedBy(w, l) && (pid === null || w.pid === pid) && w.goneAt === null) {
        w.goneAt = now;
        this.#changed.add(w);
      }
  }

  /** Records an ack of `rev`. */
  ack(key: WorkerKey, rev: number): void {
    const w = this.#workers.get(key);
    if (!w) return;
    this.#mine(w);
    w.ackedRev = Math.max(w.ackedRev, rev);
    w.lastContact = this.#lastAck = this.#now();
  }

  /** When the last ack or halted report came, on the fleet's clock. */
  #lastAck = Number.NEGATIVE_INFINITY;

  /**
   * Ms since a worker last acked a rev or reported halted (Infinity before any): small while a
   * flip's wave of reports is still coming in, which bookkeeping can wait out
   * ({@link PresenceSync}).
   */
  sinceLastAck(): number {
    return this.#now() - this.#lastAck;
  }

  /** Forgets workers that have been disconnected and silent for `ms`. */
  prune(ms: number): void {
    const now = this.#now();
    for (const w of [...this.#workers.values()]) {
      if (!this.#open(w, now) && (w.lastContact === null || now - w.lastContact > ms || this.#left(w, now)))
        this.#forget(w);
    }
  }

  /**
   * A worker registered a run (`POST /v1/runs`): the fleet knows it before the next heartbeat, so
   * a worker that hangs right after starting a run still counts as covered by a halt of it.
   */
  addRun(key: WorkerKey, run: { runId: string; parentRunId: string | null; lineage: string[] }): void {
    const w = this.#workers.get(key);
    if (!w || w.runs.some((r) => r.runId === run.runId)) return;
    this.#changed.add(w);
    this.#setRuns(w, [
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
    ]);
  }

  /**
   * A worker reported `runs` settled under a directive of `level`: the fleet shows them so at
   * once, without waiting for the next heartbeat (which then reports the worker's own view).
   */
  markRuns(key: WorkerKey, runs: readonly string[], level: Level): void {
    const w = this.#workers.get(key);
    if (!w) return;
    const ids = new Set(runs);
    this.#changed.add(w);
    w.runs = w.runs.map((r) =>
      ids.has(r.runId) && (r.state === 'running' || levelRank(r.state) < levelRank(level))
        ? { ...r, state: level }
        : r,
    );
    w.top = topLevel(w.runs);
  }

  /** Run identities of the runs the worker hosts (registered ones included); empty when unknown. */
  identitiesOf(key: WorkerKey): RunIdentity[] {
    const w = this.#workers.get(key);
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
  frozen(key: WorkerKey, active: readonly Directive[]): boolean {
    const w = this.#workers.get(key);
    return w !== undefined && ordersFor(active, identities(w)).freeze !== null;
  }

  watchInfo(key: WorkerKey): {
    workerId: string;
    tenant: string;
    agent: string;
    connected: boolean;
    /** Its stream or reports came to this process (the deadman watches only those). */
    local: boolean;
    pid: number | null;
    launcher: string | null;
    runs: string[];
  } | null {
    const w = this.#workers.get(key);
    return w
      ? {
          workerId: w.workerId,
          tenant: w.tenant,
          agent: w.agent,
          connected: this.#open(w, this.#now()),
          local: w.replica === null,
          pid: w.pid,
          launcher: w.launcher,
          runs: w.runs.map((r) => r.runId),
        }
      : null;
  }

  /** Keys of the workers a launcher started (of its own tenant and agent). */
  workersOfLauncher(l: LauncherKey): WorkerKey[] {
    const out: WorkerKey[] = [];
    for (const w of this.#workers.values()) if (startedBy(w, l)) out.push(w.key);
    return out;
  }

  /** The launcher that started the worker, if known. */
  launcherOf(key: WorkerKey): LauncherKey | null {
    const w = this.#workers.get(key);
    return w?.launcher ? { tenant: w.tenant, agent: w.agent, launcherId: w.launcher } : null;
  }

  /**
   * Workers that host a run `d` covers and owe it an acknowledgement: connected ones (a worker
   * whose event loop is stuck still holds its stream), and ones heard from at or after `since`
   * (the flip, on this fleet's clock) that have disconnected since. A worker that was already
   * gone at the flip cannot answer and is not counted (its lease fails it closed).
   */
  coveredBy(
    d: Directive,
    since?: number,
  ): { key: WorkerKey; workerId: string; ackedRev: number; launcher: string | null }[] {
    const out: { key: WorkerKey; workerId: string; ackedRev: number; launcher: string | null }[] = [];
    const now = this.#now();
    for (const w of this.#workers.values()) {
      const owes =
        this.#open(w, now) || (since !== undefined && w.lastContact !== null && w.lastContact >= since);
      if (owes && identities(w).some((r) => coversRun(d, r)))
        out.push({ key: w.key, workerId: w.workerId, ackedRev: w.ackedRev, launcher: w.launcher });
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
    const now = this.#now();
    for (const w of this.#workers.values()) {
      if (!this.#open(w, now)) continue;
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
    for (const w of this.#sorted) {
      if (tenant !== undefined && w.tenant !== tenant) continue;
      if (this.#left(w, now)) continue;
      out.push(this.#view(w, now, currentRev, active));
    }
    return out;
  }

  /**
   * One page of the fleet view: the workers matching `q` after `q.after`, at most `q.limit` of
   * them and at most {@link Fleet.MAX_PAGE_RUNS} runs (at least one worker), with the count of
   * all that match and the counts by tenant/agent and by state of every worker `q.tenant`
   * leaves visible. One pass over the kept order: no sort, and only the page is built.
   */
  page(q: FleetQuery, currentRev: number, active: readonly Directive[] = []): FleetPageResult {
    const now = this.#now();
    const hosts = q.run === undefined ? null : (this.#byRun.get(q.run) ?? new Set<WorkerEntry>());
    const start = q.after === undefined ? 0 : this.#position(q.after);
    const groups = new Map<string, FleetGroup>();
    const states: Partial<Record<FleetState, number>> = {};
    const workers: FleetWorker[] = [];
    let pageRuns = 0;
    let last: WorkerEntry | null = null;
    let full = q.limit === 0;
    let next: FleetKey | null = null;
    let total = 0;
    for (let i = 0; i < this.#sorted.length; i++) {
      const w = this.#sorted[i]!;
      if (q.tenant !== undefined && w.tenant !== q.tenant) continue;
      if (this.#left(w, now)) continue;
      const state = this.#state(w, now);
      const gk = agentKey(w.tenant, w.agent);
      let g = groups.get(gk);
      if (!g) groups.set(gk, (g = { tenant: w.tenant, agent: w.agent, workers: 0, runs: 0, states: {} }));
      g.workers++;
      g.runs += w.runs.length;
      g.states[state] = (g.states[state] ?? 0) + 1;
      states[state] = (states[state] ?? 0) + 1;
      if (q.agent !== undefined && w.agent !== q.agent) continue;
      if (q.state !== undefined && state !== q.state) continue;
      if (hosts !== null && !hosts.has(w)) continue;
      total++;
      if (i < start || (i === start && q.after !== undefined && compareKeys(keyOf(w), q.after) === 0))
        continue;
      if (!full && last !== null && pageRuns + w.runs.length > Fleet.MAX_PAGE_RUNS) full = true;
      if (full) {
        // More match after the page: the next one starts after its last worker.
        if (next === null && last !== null) next = keyOf(last);
        continue;
      }
      workers.push(this.#view(w, now, currentRev, active));
      last = w;
      pageRuns += w.runs.length;
      if (workers.length >= q.limit) full = true;
    }
    return { workers, total, next, groups: [...groups.values()], states };
  }

  #state(w: WorkerEntry, now: number): FleetState {
    const stale = !this.#open(w, now) && (w.lastContact === null || now - w.lastContact > this.staleAfterMs);
    return stale ? 'stale' : (w.top ?? 'running');
  }

  #view(w: WorkerEntry, now: number, currentRev: number, active: readonly Directive[]): FleetWorker {
    return {
      workerId: w.workerId,
      tenant: w.tenant,
      agent: w.agent,
      features: w.features,
      connected: this.#open(w, now),
      pid: w.pid,
      observedRev: Math.min(w.ackedRev, currentRev),
      ackedRev: w.ackedRev,
      lastHeartbeatAgoMs: w.lastHeartbeat === null ? null : Math.round(now - w.lastHeartbeat),
      state: this.#state(w, now),
      flags: flagsOf(active, identities(w)),
      launcher: w.launcher,
      release: w.release ?? {},
      runs: w.runs,
    };
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

function keyOf(w: WorkerEntry): FleetKey {
  return [w.tenant, w.agent, w.workerId];
}

function compareKeys(a: FleetKey, b: FleetKey): number {
  for (let i = 0; i < 3; i++) if (a[i] !== b[i]) return a[i]! < b[i]! ? -1 : 1;
  return 0;
}

function agentKey(tenant: string, agent: string): string {
  return `${tenant} ${agent}`;
}

function topLevel(runs: readonly RunReport[]): Level | null {
  let top: Level | null = null;
  for (const r of runs)
    if (r.state !== 'running' && (top === null || levelRank(r.state) > levelRank(top))) top = r.state;
  return top;
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
