import { DatabaseSync, type StatementSync } from 'node:sqlite';
import { randomUUID } from 'node:crypto';
import {
  KillpathError,
  formatScope,
  type AuditRecord,
  type AuditVerdict,
  type Directive,
} from '@killpath/protocol';
import { chainRecord, verifyChain, type AuditEvent } from '../audit/chain.ts';
import { LedgerCommit } from '../audit/ledger.ts';
import { convergedIssue } from './convergence.ts';
import { changesOf } from './changes.ts';
import { InProcessDoorbell } from '../doorbell.ts';
import * as effects from './sqlite-effects.ts';
import * as ledgers from './sqlite-ledger.ts';
import * as drills from './sqlite-drills.ts';
import * as tokens from './sqlite-tokens.ts';
import * as auditLog from './sqlite-audit.ts';
import { toAudit, type AuditRow } from './sqlite-audit.ts';
import type { LogFindings, TreeClaim } from '../audit/log-verify.ts';
import type { AuditKeyInfo } from '@killpath/protocol';
import * as approvals from './sqlite-approvals.ts';
import * as owners from './sqlite-owners.ts';
import { migrateRunTenancy } from './sqlite-tenancy.ts';
import * as presence from './sqlite-presence.ts';
import * as telemetry from './sqlite-telemetry.ts';
import { WalSync, type FsyncFn } from './wal-sync.ts';
import { toRun, type RunRow } from './sqlite-rows.ts';
import { toDirective, toPolicy, toPolicyListing, type DirectiveRow, type PolicyRow } from './rows.ts';
import type {
  JournalEvent,
  LedgerEntry,
  PermitOutcome,
  RehearsalInput,
  RehearsalRecord,
} from '@killpath/protocol';
import type {
  AgentSurface,
  ApprovalQuery,
  ApprovalRecord,
  ApprovalUpdate,
  AuditQuery,
  DrillQuery,
  LastDrill,
  JournalRow,
  PermitDecision,
  PermitGrant,
  DirectiveInput,
  DirectiveQuery,
  HaltAck,
  IssueResult,
  Lease,
  LeaseFence,
  PresenceRow,
  ForwardedTelemetry,
  NewToken,
  PolicyVersion,
  RunRecord,
  Store,
  StoredCheckpoint,
  SwitchboardChange,
  TokenQuery,
  TokenRecord,
} from './store.ts';

/**
 * The schema version this code writes, kept in `meta.schema`. A database of an older version is
 * brought up to it in place (see `#migrate`); one of a newer version was written by a newer
 * killpath and is refused rather than misread.
 */
export const SCHEMA_VERSION = 15;

const SCHEMA = `
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
INSERT OR IGNORE INTO meta (key, value) VALUES ('rev', '0'), ('schema', '1');
CREATE TABLE IF NOT EXISTS directives (
  id TEXT PRIMARY KEY,
  rev INTEGER NOT NULL,
  level TEXT NOT NULL,
  scope TEXT NOT NULL,
  tenant TEXT,
  capabilities TEXT,
  rate TEXT,
  grace_ms INTEGER NOT NULL,
  drain TEXT NOT NULL,
  memory TEXT NOT NULL DEFAULT 'revert',
  reason TEXT NOT NULL,
  justification TEXT NOT NULL,
  actor TEXT NOT NULL,
  idempotency_key TEXT UNIQUE,
  idempotency_digest TEXT,
  issued_at TEXT NOT NULL,
  cleared_at TEXT,
  cleared_rev INTEGER,
  escalation TEXT NOT NULL DEFAULT '[]',
  escalated_from TEXT,
  releases TEXT NOT NULL DEFAULT '[]'
);
CREATE INDEX IF NOT EXISTS directives_active ON directives (cleared_rev) WHERE cleared_rev IS NULL;
CREATE TABLE IF NOT EXISTS tokens (
  id TEXT PRIMARY KEY,
  secret_hash TEXT NOT NULL UNIQUE,
  name TEXT NOT NULL,
  role TEXT NOT NULL,
  tenant TEXT NOT NULL,
  agent TEXT,
  created_at TEXT NOT NULL,
  revoked_at TEXT
);
CREATE TABLE IF NOT EXISTS runs (
  run_id TEXT NOT NULL,
  tenant TEXT NOT NULL,
  agent TEXT NOT NULL,
  parent_run_id TEXT,
  lineage TEXT NOT NULL,
  features TEXT NOT NULL,
  worker_id TEXT NOT NULL,
  started_at TEXT NOT NULL,
  PRIMARY KEY (tenant, run_id)
);
CREATE TABLE IF NOT EXISTS audit (
  seq INTEGER PRIMARY KEY,
  ts TEXT NOT NULL,
  type TEXT NOT NULL,
  actor TEXT NOT NULL,
  tenant TEXT,
  data TEXT NOT NULL,
  prev_hash TEXT NOT NULL,
  hash TEXT NOT NULL
);
`;

/** Schema version 4: the supervisor's policy versions (append-only; the latest is active). */
const POLICY_SCHEMA = `
CREATE TABLE IF NOT EXISTS policies (
  version INTEGER PRIMARY KEY,
  source TEXT NOT NULL,
  digest TEXT NOT NULL,
  actor TEXT NOT NULL,
  comment TEXT,
  rollback_of INTEGER,
  created_at TEXT NOT NULL
);
`;

/** Options of {@link SqliteStore}. */
export interface SqliteStoreOptions {
  /** The WAL's fsync (a test seam); default `node:fs` `fsync`. */
  fsync?: FsyncFn;
  /**
   * Called once when the WAL's fsync fails: the store is failed for good from then on (every
   * write rejects with this `unavailable` error) and the process should exit so a supervisor
   * restarts it and it reloads from disk.
   */
  onDiskFailure?: (err: KillpathError) => void;
}

/**
 * The embedded store on Node's built-in `node:sqlite`: WAL, one file, durable like
 * `synchronous=FULL` with the fsync off the event loop (see {@link WalSync}): a transaction's
 * caller is answered once the WAL holding it is on disk. SQLite allows one writer at a time and
 * this process is that writer, so every transaction is serialisable; `BEGIN IMMEDIATE` takes the
 * write lock up front.
 */
export class SqliteStore implements Store {
  readonly #db: DatabaseSync;
  readonly #stmts: Record<string, StatementSync>;
  readonly #doorbell = new InProcessDoorbell();
  /** The WAL's fsync and checkpoints for a file database; null for `:memory:` (nothing to sync). */
  readonly #wal: WalSync | null = null;
  /** The database file, or null for `:memory:` (verified on the caller's thread: tests only). */
  readonly #path: string | null;

  /**
   * Opens (creating if needed) the database at `path` (`:memory:` for tests), or takes over an
   * open connection (a test that tampers with records keeps its own handle on that connection).
   */
  constructor(path: string | DatabaseSync, options: SqliteStoreOptions = {}) {
    this.#db = typeof path === 'string' ? new DatabaseSync(path) : path;
    this.#path = this.#db.location() || null;
    this.#db.exec('PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA busy_timeout = 5000;');
    this.#db.exec(SCHEMA);
    const stored = this.schemaVersion();
    if (stored > SCHEMA_VERSION) {
      this.#db.close();
      throw new KillpathError(
        'invalid_request',
        `the database ${this.#path ?? ':memory:'} has schema version ${stored}, newer than this killpath's ${SCHEMA_VERSION}: run a newer killpath on it`,
      );
    }
    this.#migrate();
    if (this.#path !== null) {
      // Commits append to the WAL; WalSync fsyncs it off the event loop before anyone is answered.
      // NORMAL, not OFF: in WAL mode NORMAL does no fsync at commit either, but it still syncs the
      // WAL header when a checkpoint lets the WAL restart (without it an out-of-order write after
      // the restart can corrupt the database on power loss: SQLite ticket ff5be73dee) and syncs
      // at checkpoints this connection runs.
      this.#db.exec('PRAGMA synchronous = NORMAL; PRAGMA wal_autocheckpoint = 0;');
      this.#wal = new WalSync(this.#path, options.fsync, options.onDiskFailure);
    }
    const p = (sql: string) => this.#db.prepare(sql);
    this.#stmts = {
      rev: p(`SELECT value FROM meta WHERE key = 'rev'`),
      bumpRev: p(`UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'rev' RETURNING value`),
      active: p(`SELECT * FROM directives WHERE cleared_rev IS NULL ORDER BY rev`),
      byId: p(`SELECT * FROM directives WHERE id = ?`),
      issuedIn: p(`SELECT * FROM directives WHERE rev > ? AND rev <= ? ORDER BY rev`),
      clearedIn: p(
        `SELECT * FROM directives WHERE cleared_rev > ? AND cleared_rev <= ? ORDER BY cleared_rev, rev`,
      ),
      byKey: p(`SELECT * FROM directives WHERE idempotency_key = ?`),
      insertDirective: p(`INSERT INTO directives
        (id, rev, level, scope, tenant, capabilities, rate, grace_ms, drain, memory, reason, justification, actor, idempotency_key, idempotency_digest, issued_at, escalation, escalated_from, releases, break_glass)
        VALUES ($id, $rev, $level, $scope, $tenant, $capabilities, $rate, $grace_ms, $drain, $memory, $reason, $justification, $actor, $idempotency_key, $idempotency_digest, $issued_at, $escalation, $escalated_from, $releases, $break_glass)`),
      clear: p(`UPDATE directives SET cleared_at = ?, cleared_rev = ? WHERE id = ? AND cleared_rev IS NULL`),
      countTokens: p(`SELECT COUNT(*) AS n FROM tokens`),
      insertRun:
        p(`INSERT OR IGNORE INTO runs (run_id, tenant, agent, parent_run_id, lineage, features, worker_id, started_at)
        VALUES (?, ?, ?, ?, ?, ?, ?, ?)`),
      runById: p(`SELECT * FROM runs WHERE tenant = ? AND run_id = ?`),
      runsById: p(`SELECT * FROM runs WHERE run_id = ? ORDER BY tenant`),
      auditHead: p(`SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1`),
      insertAudit: p(
        `INSERT INTO audit (seq, ts, type, actor, tenant, data, prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
      ),
      auditAll: p(`SELECT * FROM audit ORDER BY seq`),
    };
  }

  /**
   * Brings an older database up to this version. Version 1 had no `memory` column on
   * directives and no effect journal; version 2 had no `escalation`/`escalated_from` columns.
   * Each is added in place; old rows keep their meaning (no escalation steps of their own).
   * Version 3 had no policy table (version 4 adds it; an empty table means the default policy).
   * Version 4 had no rehearsal records nor capability surfaces (version 5 adds both tables, empty).
   * Version 5 stored no request digest beside an idempotency key (version 6 adds the column; an
   * old key without one converges as before).
   * Version 6 had no token expiry nor revocation details (version 7 adds the columns; old tokens never expire).
   * Version 7 had no signed checkpoints (version 8 adds `checkpoints` and `audit_keys`, empty, and
   * a log id for the checkpoints' origin; the signer then covers the old records too).
   * Version 8 had no releases: version 9 adds `directives.releases` (old directives recorded
   * none, so their resume checks no release) and `permits.release` (old permits had none).
   * Version 9 kept no break-glass attestation with a directive nor approval requests (version 10
   * adds the column, null for old rows, and the approvals table, empty).
   * Version 10 had no launcher owners (version 11 adds the table, empty: each launcher id is
   * bound again at its next use).
   * Version 11 keyed runs by run id alone (version 12 keys runs, permit idempotency keys and
   * halted runs by tenant too; see `migrateRunTenancy`).
   * Version 12 kept workers' presence, acknowledgements and leases in memory only (version 13 adds
   * `presence`, `halt_acks` and `leases`, empty; see `PRESENCE_SCHEMA`).
   * Version 13 had no forwarded telemetry (version 14 adds `telemetry`, empty; see `TELEMETRY_SCHEMA`).
   * Version 14 deleted a withdrawn acknowledgement (version 15 adds `halt_acks.withdrawn_at`, so a
   * withdrawal that lands before the acknowledgement it withdraws still withdraws it).
   */
  #migrate(): void {
    const cols = this.#db.prepare('PRAGMA table_info(directives)').all() as { name: string }[];
    if (!cols.some((c) => c.name === 'memory'))
      this.#db.exec(`ALTER TABLE directives ADD COLUMN memory TEXT NOT NULL DEFAULT 'revert'`);
    if (!cols.some((c) => c.name === 'escalation')) {
      this.#db.exec(
        `ALTER TABLE directives ADD COLUMN escalation TEXT NOT NULL DEFAULT '[]'; ALTER TABLE directives ADD COLUMN escalated_from TEXT`,
      );
    }
    if (!cols.some((c) => c.name === 'idempotency_digest'))
      this.#db.exec(`ALTER TABLE directives ADD COLUMN idempotency_digest TEXT`);
    if (!cols.some((c) => c.name === 'releases'))
      this.#db.exec(`ALTER TABLE directives ADD COLUMN releases TEXT NOT NULL DEFAULT '[]'`);
    if (!cols.some((c) => c.name === 'break_glass'))
      this.#db.exec(`ALTER TABLE directives ADD COLUMN break_glass TEXT`);
    this.#db.exec(effects.EFFECTS_SCHEMA);
    const permitCols = this.#db.prepare('PRAGMA table_info(permits)').all() as { name: string }[];
    if (!permitCols.some((c) => c.name === 'release'))
      this.#db.exec(`ALTER TABLE permits ADD COLUMN release TEXT`);
    this.#db.exec(POLICY_SCHEMA);
    this.#db.exec(drills.DRILLS_SCHEMA);
    tokens.migrateTokens(this.#db);
    this.#db.exec(auditLog.CHECKPOINT_SCHEMA);
    auditLog.ensureLogId(this.#db);
    this.#db.exec(approvals.APPROVALS_SCHEMA);
    this.#db.exec(owners.OWNERS_SCHEMA);
    migrateRunTenancy(this.#db);
    // For changesSince (a view catching up by rev): indexes only, so no schema version of their own.
    this.#db.exec(
      `CREATE INDEX IF NOT EXISTS directives_rev ON directives (rev);
       CREATE INDEX IF NOT EXISTS directives_cleared_rev ON directives (cleared_rev) WHERE cleared_rev IS NOT NULL;`,
    );
    this.#db.exec(presence.PRESENCE_SCHEMA);
    const ackCols = this.#db.prepare('PRAGMA table_info(halt_acks)').all() as { name: string }[];
    if (!ackCols.some((c) => c.name === 'withdrawn_at'))
      this.#db.exec(`ALTER TABLE halt_acks ADD COLUMN withdrawn_at TEXT`);
    this.#db.exec(telemetry.TELEMETRY_SCHEMA);
    this.#db.prepare(`UPDATE meta SET value = ? WHERE key = 'schema'`).run(String(SCHEMA_VERSION));
  }

  /** The schema version recorded in the database (`meta.schema`; 1 on a database that predates it). */
  schemaVersion(): number {
    const row = this.#db.prepare(`SELECT value FROM meta WHERE key = 'schema'`).get() as
      { value: string } | undefined;
    return row ? Number(row.value) : 1;
  }

  /** The context the effect-journal functions run in (same connection, transactions and chain). */
  get #ctx(): effects.EffectsContext {
    return {
      db: this.#db,
      stmt: (sql) => this.#stmt(sql),
      tx: (fn) => this.#tx(fn),
      audit: (events) => void this.#appendAudit(events),
      ledger: (rows) => this.#opLedger.add(rows),
      rev: () => this.#rev(),
      activeDirectives: () => (this.#stmts.active!.all() as unknown as DirectiveRow[]).map(toDirective),
    };
  }

  /** Statements prepared once for this connection, by SQL text (fixed texts only: no values inside). */
  readonly #prepared = new Map<string, StatementSync>();

  #stmt(sql: string): StatementSync {
    let s = this.#prepared.get(sql);
    if (s === undefined) {
      s = this.#db.prepare(sql);
      this.#prepared.set(sql, s);
    }
    return s;
  }

  /** The context the drill and surface functions run in. */
  get #drillCtx(): drills.DrillsContext {
    return { db: this.#db, tx: (fn) => this.#tx(fn), audit: (events) => this.#appendAudit(events) };
  }

  async recordDrill(
    input: RehearsalInput,
    recordedBy: string,
    audit: (r: Omit<RehearsalRecord, 'auditSeq'>) => AuditEvent[],
  ): Promise<RehearsalRecord> {
    return drills.recordDrill(this.#drillCtx, input, recordedBy, audit);
  }

  async listDrills(q: DrillQuery): Promise<RehearsalRecord[]> {
    return drills.listDrills(this.#drillCtx, q);
  }

  async countDrills(q: Omit<DrillQuery, 'limit' | 'before'>): Promise<number> {
    return drills.countDrills(this.#drillCtx, q);
  }

  async getDrill(id: string): Promise<RehearsalRecord | null> {
    return drills.getDrill(this.#drillCtx, id);
  }

  async lastDrills(tenant?: string): Promise<LastDrill[]> {
    return drills.lastDrills(this.#drillCtx, tenant);
  }

  async noteCapabilities(
    tenant: string,
    agent: string,
    caps: readonly string[],
    at: Date,
    audit?: (added: string[]) => AuditEvent[],
  ): Promise<string[]> {
    return drills.noteCapabilities(this.#drillCtx, tenant, agent, caps, at, audit);
  }

  async agentSurfaces(tenant?: string): Promise<AgentSurface[]> {
    return drills.agentSurfaces(this.#drillCtx, tenant);
  }

  async bindLauncher(tenant: string, launcherId: string, agent: string, at: Date): Promise<string> {
    return owners.bindLauncher({ db: this.#db, tx: (fn) => this.#tx(fn) }, tenant, launcherId, agent, at);
  }

  async launcherOwner(tenant: string, launcherId: string): Promise<string | null> {
    return owners.launcherOwner({ db: this.#db, tx: (fn) => this.#tx(fn) }, tenant, launcherId);
  }

  async grantPermits(requests: PermitGrant[]): Promise<PermitDecision[]> {
    return effects.grantPermits(this.#ctx, requests);
  }

  async confirmPermit(id: string, owner: effects.PermitOwner, now: Date): Promise<PermitDecision> {
    return effects.confirmPermit(this.#ctx, id, owner, now);
  }

  async settlePermit(
    id: string,
    owner: effects.PermitOwner,
    outcome: PermitOutcome,
  ): Promise<LedgerEntry | null> {
    return effects.settlePermit(this.#ctx, id, owner, outcome);
  }

  async appendJournal(tenant: string, workerId: string, events: JournalEvent[]): Promise<void> {
    await effects.appendJournal(this.#ctx, tenant, workerId, events);
  }

  async checkResume(run: RunRecord, actor: string): Promise<Directive | null> {
    return effects.checkResume(this.#ctx, run, actor);
  }

  async recordHalted(
    entries: { tenant: string; runId: string; directiveId: string; at: string }[],
  ): Promise<void> {
    await effects.recordHalted(this.#ctx, entries);
  }

  async ledger(tenant: string, runId: string): Promise<{ effects: LedgerEntry[]; events: JournalRow[] }> {
    return effects.ledger(this.#ctx, tenant, runId);
  }

  async markInDoubt(
    owner: { tenant: string; agent: string },
    workerIds: string[],
    reason: string,
  ): Promise<LedgerEntry[]> {
    return effects.markInDoubt(this.#ctx, owner, workerIds, reason);
  }

  async directiveSuccessors(id: string): Promise<Directive[]> {
    return (
      this.#db
        .prepare('SELECT * FROM directives WHERE escalated_from = ? ORDER BY rev')
        .all(id) as unknown as DirectiveRow[]
    ).map(toDirective);
  }

  async runFamily(tenant: string, runId: string): Promise<RunRecord[]> {
    return ledgers.runFamily(this.#db, tenant, runId);
  }

  async effectsPage(q: { tenant: string; runIds: string[]; limit: number; cursor: string | null }) {
    return ledgers.effectsPage(this.#db, q);
  }

  async eventsPage(q: { tenant: string; runIds: string[]; limit: number; cursor: string | null }) {
    return ledgers.eventsPage(this.#db, q);
  }

  async compensationsPage(q: { tenant?: string; runIds?: string[]; limit: number; cursor: string | null }) {
    return ledgers.compensationsPage(this.#db, q);
  }

  async permittedFrom(q: Parameters<Store['permittedFrom']>[0]) {
    return ledgers.permittedFrom(this.#db, q);
  }

  /**
   * Runs `fn` in a write transaction, with group commit: every `fn` queued during one turn of the
   * event loop runs, in order, inside one `BEGIN IMMEDIATE … COMMIT` (one fsync for the lot), each
   * inside its own savepoint so a throw rolls back that one alone. The promise settles after the
   * commit, so nobody is answered before their write is durable. Order is kept: a directive
   * queued before a permit grant is visible to it (guarantee 1).
   */
  #tx<T>(fn: () => T): Promise<T> {
    const failed = this.#wal?.failed ?? null;
    if (failed !== null) return Promise.reject(failed);
    return new Promise<T>((resolve, reject) => {
      this.#queued.push({ fn, resolve: resolve as (v: unknown) => void, reject });
      if (this.#queued.length === 1) setImmediate(this.#flush);
    });
  }

  #queued: { fn: () => unknown; resolve: (v: unknown) => void; reject: (err: unknown) => void }[] = [];
  /** Permit rows the running operation wrote; moved to {@link #groupLedger} when it succeeds. */
  readonly #opLedger = new LedgerCommit();
  /** Permit rows the group commit wrote: one `ledger.committed` record per tenant before COMMIT. */
  readonly #groupLedger = new LedgerCommit();

  readonly #flush = (): void => {
    const batch = this.#queued;
    if (batch.length === 0) return;
    this.#queued = [];
    const failed = this.#wal?.failed ?? null;
    if (failed !== null) {
      for (const op of batch) op.reject(failed);
      return;
    }
    const results: ({ ok: true; value: unknown } | { ok: false; err: unknown })[] = [];
    try {
      this.#db.exec('BEGIN IMMEDIATE');
    } catch (err) {
      for (const op of batch) op.reject(err);
      return;
    }
    try {
      // Prepared once: `exec` would compile both statements again for every operation.
      const savepoint = this.#stmt('SAVEPOINT op');
      const release = this.#stmt('RELEASE op');
      for (const op of batch) {
        savepoint.run();
        try {
          results.push({ ok: true, value: op.fn() });
          release.run();
          this.#groupLedger.merge(this.#opLedger);
        } catch (err) {
          this.#db.exec('ROLLBACK TO op; RELEASE op');
          this.#opLedger.clear();
          results.push({ ok: false, err });
        }
      }
      // The ledger rows of the whole group: one chained record per tenant, not one per effect.
      if (this.#groupLedger.size > 0) this.#appendAudit(this.#groupLedger.events());
      this.#db.exec('COMMIT');
    } catch (err) {
      this.#opLedger.clear();
      this.#groupLedger.clear();
      if (this.#db.isTransaction) this.#db.exec('ROLLBACK');
      for (const op of batch) op.reject(err);
      return;
    }
    const answer = (): void =>
      batch.forEach((op, i) => {
        const r = results[i]!;
        if (r.ok) op.resolve(r.value);
        else op.reject(r.err);
      });
    if (this.#wal === null) {
      answer();
      return;
    }
    // Durable before anyone hears of it: answered when the WAL fsync after this commit ends.
    this.#wal.committed(this.#finishCheckpoint);
    this.#wal.sync().then(answer, (err: unknown) => {
      for (const op of batch) op.reject(err);
    });
  };

  /**
   * Finishes a checkpoint the worker could not (writes went on meanwhile), on this connection
   * between two group commits, so the WAL can start over; `synchronous=NORMAL` syncs the WAL
   * before the copy and the database file after it, as `FULL` would.
   */
  readonly #finishCheckpoint = (): void => {
    if (!this.#db.isOpen || this.#db.isTransaction) return;
    this.#db.prepare('PRAGMA wal_checkpoint(PASSIVE)').get();
  };

  #rev(): number {
    return Number((this.#stmts.rev!.get() as { value: string }).value);
  }

  #appendAudit(events: AuditEvent[]): AuditRecord[] {
    let head = (this.#stmts.auditHead!.get() as { seq: number; hash: string } | undefined) ?? null;
    const out: AuditRecord[] = [];
    for (const e of events) {
      const rec = chainRecord(head, e, new Date().toISOString());
      this.#stmts.insertAudit!.run(
        rec.seq,
        rec.ts,
        rec.type,
        rec.actor,
        rec.tenant,
        JSON.stringify(rec.data),
        rec.prevHash,
        rec.hash,
      );
      out.push(rec);
      head = rec;
    }
    return out;
  }

  async rev(): Promise<number> {
    return this.#rev();
  }

  async switchboard(): Promise<{ rev: number; directives: Directive[] }> {
    return this.#tx(() => ({
      rev: this.#rev(),
      directives: (this.#stmts.active!.all() as unknown as DirectiveRow[]).map(toDirective),
    }));
  }

  async changesSince(rev: number, limit: number): Promise<SwitchboardChange[]> {
    return this.#tx(() => {
      const to = Math.min(this.#rev(), rev + Math.max(0, Math.floor(limit)));
      if (to <= rev) return [];
      const issued = (this.#stmts.issuedIn!.all(rev, to) as unknown as DirectiveRow[]).map(toDirective);
      const cleared = (this.#stmts.clearedIn!.all(rev, to) as unknown as DirectiveRow[]).map(toDirective);
      return changesOf(rev, to, issued, cleared);
    });
  }

  /** Rings once each directive commit of this store is durable (this process alone writes the file). */
  doorbell(): InProcessDoorbell {
    return this.#doorbell;
  }

  async issueDirective(input: DirectiveInput, audit: (r: IssueResult) => AuditEvent[]): Promise<IssueResult> {
    const r = await this.#issueDirective(input, audit);
    if (r.created) this.#doorbell.ring(r.directive.rev);
    return r;
  }

  #issueDirective(input: DirectiveInput, audit: (r: IssueResult) => AuditEvent[]): Promise<IssueResult> {
    return this.#tx(() => {
      if (input.fence) presence.checkFence(this.#db, input.fence);
      const prior =
        input.idempotencyKey === null
          ? undefined
          : (this.#stmts.byKey!.get(input.idempotencyKey) as DirectiveRow | undefined);
      const scopeText = formatScope(input.scope);
      const active = (this.#stmts.active!.all() as unknown as DirectiveRow[]).map(toDirective);
      // Whether it converges is the domain's rule (guarantee 7); this backend only looks up and commits.
      let result = convergedIssue(
        input,
        prior ? { directive: toDirective(prior), keyDigest: prior.idempotency_digest ?? null } : null,
        active,
      );
      if (result === null) {
        const rev = Number((this.#stmts.bumpRev!.get() as { value: string }).value);
        const id = `d_${randomUUID()}`;
        this.#stmts.insertDirective!.run({
          $id: id,
          $rev: rev,
          $level: input.level,
          $scope: scopeText,
          $tenant: input.tenant,
          $capabilities: input.capabilities === null ? null : JSON.stringify([...input.capabilities].sort()),
          $rate: input.rate === null ? null : JSON.stringify(input.rate),
          $grace_ms: input.graceMs,
          $drain: input.drain,
          $memory: input.memory,
          $reason: input.reason,
          $justification: input.justification,
          $actor: input.actor,
          $idempotency_key: input.idempotencyKey,
          $idempotency_digest: input.idempotencyDigest ?? null,
          $issued_at: new Date().toISOString(),
          $escalation: JSON.stringify(input.escalation),
          $escalated_from: input.escalatedFrom,
          $releases: JSON.stringify(input.releases),
          $break_glass: input.breakGlass ? JSON.stringify(input.breakGlass) : null,
        });
        const replaced: Directive[] = [];
        const ids = new Set(input.replaces?.(active) ?? []);
        for (const old of active) {
          if (!ids.has(old.id)) continue;
          this.#stmts.clear!.run(new Date().toISOString(), rev, old.id);
          replaced.push(toDirective(this.#stmts.byId!.get(old.id) as unknown as DirectiveRow));
        }
        result = {
          directive: toDirective(this.#stmts.byId!.get(id) as unknown as DirectiveRow),
          created: true,
          converged: null,
          replaced,
        };
      }
      this.#appendAudit(audit(result));
      return result;
    });
  }

  async clearDirective(id: string, audit: (d: Directive) => AuditEvent[]): Promise<Directive | null> {
    const d = await this.#clearDirective(id, audit);
    if (d !== null) this.#doorbell.ring(d.clearedRev!);
    return d;
  }

  #clearDirective(id: string, audit: (d: Directive) => AuditEvent[]): Promise<Directive | null> {
    return this.#tx(() => {
      const row = this.#stmts.byId!.get(id) as DirectiveRow | undefined;
      if (!row || row.cleared_rev !== null) return null;
      const rev = Number((this.#stmts.bumpRev!.get() as { value: string }).value);
      this.#stmts.clear!.run(new Date().toISOString(), rev, id);
      const d = toDirective(this.#stmts.byId!.get(id) as unknown as DirectiveRow);
      this.#appendAudit(audit(d));
      return d;
    });
  }

  async getDirective(id: string): Promise<Directive | null> {
    const row = this.#stmts.byId!.get(id) as DirectiveRow | undefined;
    return row ? toDirective(row) : null;
  }

  async listDirectives(q: DirectiveQuery): Promise<Directive[]> {
    const { where, params } = directiveFilter(q);
    const sql = `SELECT * FROM directives ${where} ORDER BY rev DESC LIMIT ?`;
    params.push(q.limit ?? 500);
    return (this.#db.prepare(sql).all(...params) as unknown as DirectiveRow[]).map(toDirective);
  }

  async countDirectives(q: Omit<DirectiveQuery, 'limit'>): Promise<number> {
    const { where, params } = directiveFilter(q);
    const r = this.#db.prepare(`SELECT COUNT(*) AS n FROM directives ${where}`).get(...params) as {
      n: number;
    };
    return Number(r.n);
  }

  /** The context the token functions run in. */
  get #tokensCtx(): tokens.TokensContext {
    return { db: this.#db, tx: (fn) => this.#tx(fn), audit: (events) => void this.#appendAudit(events) };
  }

  async createToken(
    t: NewToken,
    secretHash: string,
    audit: AuditEvent[],
    revoke?: { id: string; by: string; reason: string },
  ): Promise<TokenRecord> {
    return tokens.createToken(this.#tokensCtx, t, secretHash, audit, revoke);
  }

  async findToken(secretHash: string): Promise<TokenRecord | null> {
    return tokens.findToken(this.#tokensCtx, secretHash);
  }

  async getToken(id: string): Promise<TokenRecord | null> {
    return tokens.getToken(this.#tokensCtx, id);
  }

  async listTokens(q: TokenQuery): Promise<TokenRecord[]> {
    return tokens.listTokens(this.#tokensCtx, q);
  }

  async revokeToken(
    id: string,
    by: string,
    reason: string,
    audit: (t: TokenRecord) => AuditEvent[],
  ): Promise<TokenRecord | null> {
    return tokens.revokeToken(this.#tokensCtx, id, by, reason, audit);
  }

  async createApproval(
    a: ApprovalRecord,
    audit: (a: ApprovalRecord) => AuditEvent[],
  ): Promise<ApprovalRecord> {
    return approvals.createApproval(this.#tokensCtx, a, audit);
  }

  async getApproval(id: string): Promise<ApprovalRecord | null> {
    return approvals.getApproval(this.#tokensCtx, id);
  }

  async listApprovals(q: ApprovalQuery): Promise<ApprovalRecord[]> {
    return approvals.listApprovals(this.#tokensCtx, q);
  }

  async countApprovals(q: Omit<ApprovalQuery, 'limit'>): Promise<number> {
    return approvals.countApprovals(this.#tokensCtx, q);
  }

  async updateApproval<T>(id: string, fn: (a: ApprovalRecord | null) => ApprovalUpdate<T>): Promise<T> {
    return approvals.updateApproval(this.#tokensCtx, id, fn);
  }

  async countTokens(): Promise<number> {
    return Number((this.#stmts.countTokens!.get() as { n: number }).n);
  }

  async registerRun(r: RunRecord): Promise<RunRecord> {
    await this.#tx(() =>
      this.#stmts.insertRun!.run(
        r.runId,
        r.tenant,
        r.agent,
        r.parentRunId,
        JSON.stringify(r.lineage),
        JSON.stringify(r.features),
        r.workerId,
        r.startedAt,
      ),
    );
    return (await this.getRun(r.tenant, r.runId))!;
  }

  async getRun(tenant: string, runId: string): Promise<RunRecord | null> {
    const r = this.#stmts.runById!.get(tenant, runId) as RunRow | undefined;
    return r ? toRun(r) : null;
  }

  async findRuns(runId: string): Promise<RunRecord[]> {
    return (this.#stmts.runsById!.all(runId) as unknown as RunRow[]).map(toRun);
  }

  async appendAudit(events: AuditEvent[]): Promise<AuditRecord[]> {
    if (events.length === 0) return [];
    return this.#tx(() => this.#appendAudit(events));
  }

  async listAudit(q: AuditQuery): Promise<AuditRecord[]> {
    const where: string[] = ['seq > ?'];
    const params: (string | number)[] = [q.afterSeq ?? 0];
    if (q.beforeSeq !== undefined) {
      where.push('seq < ?');
      params.push(q.beforeSeq);
    }
    if (q.tenant !== undefined) {
      where.push('(tenant IS NULL OR tenant = ?)');
      params.push(q.tenant);
    }
    if (q.types !== undefined && q.types.length > 0) {
      where.push(`type IN (${q.types.map(() => '?').join(', ')})`);
      params.push(...q.types);
    }
    params.push(q.limit ?? 200);
    const sql = `SELECT * FROM audit WHERE ${where.join(' AND ')} ORDER BY seq ${q.desc ? 'DESC' : 'ASC'} LIMIT ?`;
    return (this.#db.prepare(sql).all(...params) as unknown as AuditRow[]).map(toAudit);
  }

  async countAudit(
    q: Pick<AuditQuery, 'tenant' | 'types'>,
    cap: number,
    upTo?: number,
  ): Promise<{ count: number; exact: boolean }> {
    const where: string[] = [];
    const params: (string | number)[] = [];
    if (q.tenant !== undefined) {
      where.push('(tenant IS NULL OR tenant = ?)');
      params.push(q.tenant);
    }
    if (q.types !== undefined && q.types.length > 0) {
      where.push(`type IN (${q.types.map(() => '?').join(', ')})`);
      params.push(...q.types);
    }
    // seq runs 1, 2, 3… with no gap (the chain links each record to the one before).
    const head = Number(
      (this.#db.prepare('SELECT COALESCE(MAX(seq), 0) AS n FROM audit').get() as { n: number }).n,
    );
    const max = upTo === undefined ? head : Math.max(0, Math.min(head, upTo));
    if (where.length === 0) return { count: max, exact: true };
    // No index serves a tenant's or a type's share: scan only the newest `cap` records (a range
    // of the primary key), so a long chain costs no more than that; older ones are not counted.
    const from = Math.max(0, max - cap);
    const r = this.#db
      .prepare(`SELECT COUNT(*) AS n FROM audit WHERE seq > ? AND seq <= ? AND ${where.join(' AND ')}`)
      .get(from, max, ...params) as { n: number };
    return { count: Number(r.n), exact: from === 0 };
  }

  async verifyAudit(): Promise<AuditVerdict> {
    const rows = this.#stmts.auditAll!.iterate() as Iterable<AuditRow>;
    function* records(): Iterable<AuditRecord> {
      for (const r of rows) yield toAudit(r);
    }
    return verifyChain(records());
  }

  async logOrigin(): Promise<string> {
    return auditLog.logOrigin(this.#db);
  }

  async putCheckpoint(c: StoredCheckpoint, audit: AuditEvent[], fence?: LeaseFence | null): Promise<void> {
    await this.#tx(() => {
      if (fence) presence.checkFence(this.#db, fence);
      auditLog.insertCheckpoint(this.#db, c);
      this.#appendAudit(audit);
    });
  }

  async latestCheckpoint(): Promise<StoredCheckpoint | null> {
    return auditLog.latestCheckpoint(this.#db);
  }

  async auditKeys(): Promise<AuditKeyInfo[]> {
    return auditLog.auditKeys(this.#db);
  }

  async putAuditKey(key: AuditKeyInfo, audit: AuditEvent[]): Promise<boolean> {
    return this.#tx(() => {
      const changed = auditLog.putAuditKey(this.#db, key, new Date().toISOString());
      if (changed) this.#appendAudit(audit);
      return changed;
    });
  }

  async listAuditKey(key: AuditKeyInfo, audit: AuditEvent[]): Promise<boolean> {
    return this.#tx(() => {
      const added = auditLog.listAuditKey(this.#db, key, new Date().toISOString());
      if (added) this.#appendAudit(audit);
      return added;
    });
  }

  async verifyLog(kept: TreeClaim | null): Promise<LogFindings> {
    if (this.#path === null) return auditLog.verifyStoredLog(this.#db, kept);
    return auditLog.verifyInWorker(this.#path, kept);
  }

  async putPolicy(
    p: Omit<PolicyVersion, 'version' | 'createdAt'>,
    audit: (v: PolicyVersion) => AuditEvent[],
  ): Promise<PolicyVersion> {
    return this.#tx(() => {
      const createdAt = new Date().toISOString();
      const row = this.#db
        .prepare(
          `INSERT INTO policies (version, source, digest, actor, comment, rollback_of, created_at)
          VALUES ((SELECT COALESCE(MAX(version), 0) + 1 FROM policies), ?, ?, ?, ?, ?, ?) RETURNING version`,
        )
        .get(p.source, p.digest, p.actor, p.comment, p.rollbackOf, createdAt) as { version: number };
      const v: PolicyVersion = { ...p, version: Number(row.version), createdAt };
      this.#appendAudit(audit(v));
      return v;
    });
  }

  async getPolicy(version?: number): Promise<PolicyVersion | null> {
    const r = (
      version === undefined
        ? this.#db.prepare('SELECT * FROM policies ORDER BY version DESC LIMIT 1').get()
        : this.#db.prepare('SELECT * FROM policies WHERE version = ?').get(version)
    ) as PolicyRow | undefined;
    return r ? toPolicy(r) : null;
  }

  async countPolicies(): Promise<number> {
    const r = this.#db.prepare('SELECT COUNT(*) AS n FROM policies').get() as { n: number };
    return Number(r.n);
  }

  async listPolicies(limit: number): Promise<Omit<PolicyVersion, 'source'>[]> {
    const rows = this.#db
      .prepare(
        'SELECT version, digest, actor, comment, rollback_of, created_at FROM policies ORDER BY version DESC LIMIT ?',
      )
      .all(limit) as unknown as Omit<PolicyRow, 'source'>[];
    return rows.map(toPolicyListing);
  }

  /** The context the presence, acknowledgement and lease functions run in. */
  get #presenceCtx(): presence.PresenceContext {
    return { db: this.#db, tx: (fn) => this.#tx(fn) };
  }

  async forwardTelemetry(batches: Omit<ForwardedTelemetry, 'id'>[]): Promise<void> {
    return telemetry.forwardTelemetry(this.#presenceCtx, batches);
  }

  async telemetryAfter(afterId: number, since: number, limit: number): Promise<ForwardedTelemetry[]> {
    return telemetry.telemetryAfter(this.#presenceCtx, afterId, since, limit);
  }

  async pruneTelemetry(before: number): Promise<number> {
    return telemetry.pruneTelemetry(this.#presenceCtx, before);
  }

  async putPresence(rows: PresenceRow[]): Promise<number> {
    return presence.putPresence(this.#presenceCtx, rows, Date.now());
  }

  async presenceSince(
    version: number,
    limit: number,
    exceptReplica?: string,
  ): Promise<{ rows: PresenceRow[]; version: number }> {
    return presence.presenceSince(this.#presenceCtx, version, limit, exceptReplica);
  }

  async purgePresence(before: number): Promise<number> {
    return presence.purgePresence(this.#presenceCtx, before);
  }

  async recordAcks(acks: HaltAck[]): Promise<void> {
    return presence.recordAcks(this.#presenceCtx, acks);
  }

  async retractAck(
    directiveId: string,
    worker: { tenant: string; agent: string; workerId: string },
    at: string,
  ): Promise<boolean> {
    return presence.retractAck(this.#presenceCtx, directiveId, worker, at);
  }

  async acksOf(directiveId: string): Promise<HaltAck[]> {
    return presence.acksOf(this.#presenceCtx, directiveId);
  }

  async revCommittedAt(rev: number): Promise<string | null> {
    return presence.revCommittedAt(this.#presenceCtx, rev);
  }

  async acquireLease(name: string, holder: string, ttlMs: number, now: number): Promise<Lease> {
    return presence.acquireLease(this.#presenceCtx, name, holder, ttlMs, now);
  }

  async releaseLease(name: string, holder: string): Promise<boolean> {
    return presence.releaseLease(this.#presenceCtx, name, holder);
  }

  async getLease(name: string): Promise<Lease | null> {
    return presence.getLease(this.#presenceCtx, name);
  }

  async close(): Promise<void> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  #closing: Promise<void> | null = null;

  async #close(): Promise<void> {
    if (!this.#db.isOpen) return;
    // Writes already queued for the next group commit are committed, not dropped.
    if (this.#queued.length > 0) this.#flush();
    if (this.#wal !== null) {
      await this.#wal.close();
      // The last connection checkpoints on close: synced like every other checkpoint.
      if (this.#db.isOpen) this.#db.exec('PRAGMA synchronous = FULL');
    }
    if (this.#db.isOpen) this.#db.close();
  }
}

/** The WHERE clause (with its parameters) of a directive list or count. */
function directiveFilter(q: Omit<DirectiveQuery, 'limit'>): { where: string; params: (string | number)[] } {
  const where: string[] = [];
  const params: (string | number)[] = [];
  if (q.active === true) where.push('cleared_rev IS NULL');
  if (q.active === false) where.push('cleared_rev IS NOT NULL');
  if (q.tenant !== undefined) {
    where.push('(tenant IS NULL OR tenant = ?)');
    params.push(q.tenant);
  }
  return { where: where.length ? `WHERE ${where.join(' AND ')}` : '', params };
}
