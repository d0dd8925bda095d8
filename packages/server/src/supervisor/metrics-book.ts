import type { RunTelemetry } from '@killpath/protocol';
import { C, N_COUNTERS, type SubjectSource } from '../policy/cel-env.ts';

/** Bucket resolution of sliding windows, in ms. */
export const BUCKET_MS = 1000;

/**
 * One subject's counters: totals since first seen, and per-second buckets in a ring long enough
 * for the longest window the policy asks for. A window of `W` ms sums the buckets of the last
 * `ceil(W / 1 s)` seconds, the current one included: a 60 s window covers between 59 and 60 s.
 */
export class SubjectMetrics implements SubjectSource {
  readonly kind: 'run' | 'agent' | 'tenant';
  readonly id: string;
  readonly tenant: string;
  agent: string;
  readonly totals = new Float64Array(N_COUNTERS);
  anomalyScore = 0;
  anomalyDetail: string | null = null;
  lastSeen = 0;
  #runIds: Set<string> | null;
  readonly #book: MetricsBook;
  #ring: Float64Array | null = null;
  #stamps: Float64Array | null = null;
  #slots = 0;

  constructor(book: MetricsBook, kind: SubjectMetrics['kind'], id: string, tenant: string, agent: string) {
    this.#book = book;
    this.kind = kind;
    this.id = id;
    this.tenant = tenant;
    this.agent = agent;
    this.#runIds = kind === 'run' ? null : new Set();
  }

  get runs(): number {
    return this.#runIds === null ? 1 : this.#runIds.size;
  }

  total(counter: number): number {
    return this.totals[counter]!;
  }

  windowed(counter: number, ms: number): number {
    const ring = this.#ring;
    const stamps = this.#stamps;
    if (ring === null || stamps === null) return 0;
    const now = Math.floor(this.#book.now / BUCKET_MS);
    const from = now - Math.min(this.#slots, Math.ceil(ms / BUCKET_MS)) + 1;
    let sum = 0;
    for (let i = 0; i < this.#slots; i++) {
      const s = stamps[i]!;
      if (s >= from && s <= now) sum += ring[i * N_COUNTERS + counter]!;
    }
    return sum;
  }

  /** Adds increments at the book's current time. */
  add(delta: Float64Array, runId: string): void {
    this.lastSeen = this.#book.now;
    this.#runIds?.add(runId);
    for (let c = 0; c < N_COUNTERS; c++) this.totals[c]! += delta[c]!;
    const slots = Math.ceil(this.#book.retentionMs / BUCKET_MS) + 1;
    if (this.#ring === null || this.#slots !== slots) {
      this.#slots = slots;
      this.#ring = new Float64Array(slots * N_COUNTERS);
      this.#stamps = new Float64Array(slots).fill(-1);
    }
    const sec = Math.floor(this.#book.now / BUCKET_MS);
    const i = sec % slots;
    const base = i * N_COUNTERS;
    if (this.#stamps![i] !== sec) {
      this.#stamps![i] = sec;
      this.#ring.fill(0, base, base + N_COUNTERS);
    }
    for (let c = 0; c < N_COUNTERS; c++) this.#ring[base + c]! += delta[c]!;
  }

  /** Forgets a run of an agent or tenant (pruned). */
  forgetRun(runId: string): void {
    this.#runIds?.delete(runId);
  }
}

/** The last totals one worker reported for one run, to turn totals into increments. */
interface Reported {
  totals: Float64Array;
  run: SubjectMetrics;
}

/** What one run update touched. */
export interface Touched {
  run: SubjectMetrics;
  agent: SubjectMetrics;
  tenant: SubjectMetrics;
  /** Something changed (a counter moved or the anomaly score rose). */
  changed: boolean;
}

/**
 * The supervisor's telemetry: per run, agent and tenant. Workers report cumulative totals per
 * run; the book keeps each worker's last totals and turns a report into increments (a total
 * that went down means the worker started counting afresh: the report is all new). Increments
 * are stamped with the book's clock at arrival, so windows are on the control plane's time.
 */
export class MetricsBook {
  /** The book's clock in ms (set by the caller before each ingest and evaluation). */
  now = 0;
  /** How far back windows reach, in ms. */
  retentionMs: number;
  readonly runs = new Map<string, SubjectMetrics>();
  readonly agents = new Map<string, SubjectMetrics>();
  readonly tenants = new Map<string, SubjectMetrics>();
  readonly #reported = new Map<string, Reported>();
  readonly #delta = new Float64Array(N_COUNTERS);

  constructor(retentionMs = 60_000) {
    this.retentionMs = retentionMs;
  }

  /** Forgets every subject and every worker's last totals (a replica that takes the leader lease starts afresh). */
  clear(): void {
    this.runs.clear();
    this.agents.clear();
    this.tenants.clear();
    this.#reported.clear();
  }

  /** Applies one run's totals from one worker of `tenant`/`agent`. */
  ingest(workerId: string, tenant: string, agent: string, t: RunTelemetry): Touched {
    const runKey = `${tenant}\u0000${t.runId}`;
    let run = this.runs.get(runKey);
    if (run === undefined)
      this.runs.set(runKey, (run = new SubjectMetrics(this, 'run', t.runId, tenant, agent)));
    const agentKey = `${tenant}/${agent}`;
    let ag = this.agents.get(agentKey);
    if (ag === undefined)
      this.agents.set(agentKey, (ag = new SubjectMetrics(this, 'agent', agent, tenant, agent)));
    let tn = this.tenants.get(tenant);
    if (tn === undefined)
      this.tenants.set(tenant, (tn = new SubjectMetrics(this, 'tenant', tenant, tenant, '')));
    const key = `${workerId}\u0000${runKey}`;
    let prev = this.#reported.get(key);
    if (prev === undefined) this.#reported.set(key, (prev = { totals: new Float64Array(N_COUNTERS), run }));
    const cur = this.#delta;
    cur[C.steps] = t.steps;
    cur[C.tokens] = t.tokens;
    cur[C.cost_usd] = t.costUsd;
    cur[C.tool_calls] = t.toolCalls;
    cur[C.tool_errors] = t.toolErrors;
    cur[C.auth_denials] = t.authDenials;
    cur[C.schema_violations] = t.schemaViolations;
    cur[C.anomalies] = t.anomalies;
    cur[C.revoked_denials] = t.revokedDenials ?? 0;
    let restarted = false;
    for (let c = 0; c < N_COUNTERS; c++) if (cur[c]! < prev.totals[c]!) restarted = true;
    let changed = false;
    for (let c = 0; c < N_COUNTERS; c++) {
      const v = cur[c]!;
      const d = restarted ? v : v - prev.totals[c]!;
      prev.totals[c] = v;
      cur[c] = d;
      if (d !== 0) changed = true;
    }
    if (changed) {
      run.add(cur, t.runId);
      ag.add(cur, t.runId);
      tn.add(cur, t.runId);
    } else {
      run.lastSeen = this.now;
    }
    if (t.anomalyScore > run.anomalyScore) {
      changed = true;
      run.anomalyScore = t.anomalyScore;
      ag.anomalyScore = Math.max(ag.anomalyScore, t.anomalyScore);
      tn.anomalyScore = Math.max(tn.anomalyScore, t.anomalyScore);
    }
    if (t.anomalyDetail !== null) run.anomalyDetail = t.anomalyDetail;
    return { run, agent: ag, tenant: tn, changed };
  }

  /** Forgets runs not heard from for `idleMs`; returns their keys (`tenant\0runId`). */
  prune(idleMs: number): string[] {
    const gone: string[] = [];
    for (const [key, run] of this.runs) {
      if (this.now - run.lastSeen <= idleMs) continue;
      this.runs.delete(key);
      gone.push(key);
      this.agents.get(`${run.tenant}/${run.agent}`)?.forgetRun(run.id);
      this.tenants.get(run.tenant)?.forgetRun(run.id);
    }
    if (gone.length > 0) {
      const dead = new Set(gone);
      for (const [key, r] of this.#reported)
        if (dead.has(`${r.run.tenant}\u0000${r.run.id}`)) this.#reported.delete(key);
    }
    return gone;
  }
}
