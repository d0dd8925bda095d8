import { KillpathError } from '@killpath/protocol';
import type { AuditEvent } from '../../audit/chain.ts';
import type { TreeClaim } from '../../audit/log-verify.ts';
import type {
  ApprovalRecord,
  ApprovalUpdate,
  AuditStore,
  DirectiveStore,
  DrillStore,
  FleetStore,
  PolicyStore,
  Store,
  TokenStore,
} from '../store.ts';
import { isConnectionError, openPool, redact, type PoolOptions, type Sql } from './connect.ts';
import { PgAudit } from './pg-audit.ts';
import { PgDirectives, activeDirectives } from './pg-directives.ts';
import { PgEffects } from './pg-effects.ts';
import { PgFleet } from './pg-fleet.ts';
import { PgDrills } from './pg-drills.ts';
import { PgPolicy } from './pg-policy.ts';
import { PgTokens } from './pg-tokens.ts';
import { checkSchema, migrate } from './schema.ts';
import { PgPresence } from './pg-presence.ts';
import { PgTelemetry } from './pg-telemetry.ts';
import { PgDoorbell } from './pg-doorbell.ts';

/**
 * SQLSTATE codes that say the database could not do the work now (a statement or lock timeout, a
 * serialisation failure or deadlock it broke, a shutdown, too many connections, the database
 * gone), not that the request was wrong.
 */
const NOT_NOW = new Set(['57014', '55P03', '40001', '40P01', '57P01', '57P02', '57P03', '53300', '3D000']);

/**
 * What a failed store call rejects with: the database unreachable or not answering in time
 * becomes `unavailable` (503 on the wire, one line in the CLI; callers retry or fail closed),
 * never an unexplained 500. Any other error (a constraint the request broke) passes as it is.
 */
export function storeError(err: unknown): unknown {
  if (err instanceof KillpathError) return err;
  const code = (err as { code?: unknown } | null)?.code;
  if (isConnectionError(err))
    return new KillpathError(
      'unavailable',
      `the PostgreSQL store is unreachable: ${(err as Error).message}`,
      {
        cause: err,
      },
    );
  if (typeof code === 'string' && NOT_NOW.has(code))
    return new KillpathError(
      'unavailable',
      `the PostgreSQL store could not answer now (${code}): ${(err as Error).message}`,
      { cause: err },
    );
  return err;
}

/** `concept` with every method's rejection passed through {@link storeError}. */
function guarded<T extends object>(concept: T): T {
  return new Proxy(concept, {
    get(target, name) {
      const v: unknown = Reflect.get(target, name, target);
      if (typeof v !== 'function') return v;
      return (...args: unknown[]): unknown => {
        let r: unknown;
        try {
          r = (v as (...a: unknown[]) => unknown).apply(target, args);
        } catch (err) {
          throw storeError(err);
        }
        return r instanceof Promise
          ? r.catch((err: unknown) => {
              throw storeError(err);
            })
          : r;
      };
    },
  });
}

/** Options of {@link PgStore.open}. */
export interface PgStoreOptions extends PoolOptions {
  /** Check the schema version at open (default true; `killpath migrate` opens without). */
  checkSchema?: boolean;
}

/**
 * The distributed store: the control plane's state in one PostgreSQL database that several
 * stateless `killpath serve` replicas share. Composed of one module per concept (each a
 * `*Store` interface of `store.ts`) over one pool; the rules that every replica must agree on
 * (one gapless rev in commit order, one audit chain, permits serialised with directive commits)
 * rest on the row locks of `tx.ts`.
 */
export class PgStore implements Store {
  readonly #sql: Sql;
  readonly #url: string;
  #doorbell: PgDoorbell | null = null;
  readonly #directives: DirectiveStore;
  readonly #permits: PgEffects;
  readonly #audit: AuditStore;
  readonly #tokens: TokenStore;
  readonly #fleet: FleetStore;
  readonly #drills: DrillStore;
  readonly #policy: PolicyStore;
  readonly #presence: PgPresence;
  readonly #telemetry: PgTelemetry;

  /**
   * Takes over an open pool on the database at `url` (closed by {@link close}); see
   * {@link PgStore.open}. `url` is for the audit verification worker's own connection.
   */
  constructor(sql: Sql, url: string) {
    this.#sql = sql;
    this.#url = url;
    this.#directives = guarded(new PgDirectives(sql));
    this.#permits = guarded(new PgEffects(sql, activeDirectives));
    this.#audit = guarded(new PgAudit(sql, url));
    this.#tokens = guarded(new PgTokens(sql));
    this.#fleet = guarded(new PgFleet(sql));
    this.#drills = guarded(new PgDrills(sql));
    this.#policy = guarded(new PgPolicy(sql));
    this.#presence = guarded(new PgPresence(sql));
    this.#telemetry = guarded(new PgTelemetry(sql));
  }

  /**
   * Opens a pool on `url` and checks that the database is reachable and has this killpath's
   * schema (unless `options.checkSchema` is false).
   * @throws KillpathError `invalid_request` for a bad URL or a schema to migrate; `unavailable`
   *   when the database cannot be reached
   */
  static async open(url: string, options: PgStoreOptions = {}): Promise<PgStore> {
    const sql = openPool(url, options);
    try {
      if (options.checkSchema !== false) await checkSchema(sql);
      else await sql`SELECT 1`;
    } catch (err) {
      await sql.end({ timeout: 1 });
      if (err instanceof KillpathError) throw err;
      throw new KillpathError(
        'unavailable',
        `cannot reach PostgreSQL at ${redact(url)}: ${(err as Error).message}`,
        { cause: err },
      );
    }
    return new PgStore(sql, url);
  }

  /**
   * The doorbell of this database (`LISTEN killpath_rev` on connections of its own, see
   * {@link PgDoorbell}); each `listen` opens its own and closes it with its handle.
   */
  doorbell(): PgDoorbell {
    return (this.#doorbell ??= new PgDoorbell(this.#url));
  }

  /** The pool (for the view's listener and tests); closed with the store. */
  get sql(): Sql {
    return this.#sql;
  }

  // DirectiveStore
  rev: Store['rev'] = () => this.#directives.rev();
  switchboard: Store['switchboard'] = () => this.#directives.switchboard();
  changesSince: Store['changesSince'] = (rev, limit) => this.#directives.changesSince(rev, limit);
  issueDirective: Store['issueDirective'] = (input, audit) => this.#directives.issueDirective(input, audit);
  clearDirective: Store['clearDirective'] = (id, audit) => this.#directives.clearDirective(id, audit);
  getDirective: Store['getDirective'] = (id) => this.#directives.getDirective(id);
  listDirectives: Store['listDirectives'] = (q) => this.#directives.listDirectives(q);
  countDirectives: Store['countDirectives'] = (q) => this.#directives.countDirectives(q);
  directiveSuccessors: Store['directiveSuccessors'] = (id) => this.#directives.directiveSuccessors(id);

  // PermitStore
  grantPermits: Store['grantPermits'] = (r) => this.#permits.grantPermits(r);
  confirmPermit: Store['confirmPermit'] = (id, owner, now) => this.#permits.confirmPermit(id, owner, now);
  settlePermit: Store['settlePermit'] = (id, owner, outcome) =>
    this.#permits.settlePermit(id, owner, outcome);
  markInDoubt: Store['markInDoubt'] = (owner, workerIds, reason) =>
    this.#permits.markInDoubt(owner, workerIds, reason);
  appendJournal: Store['appendJournal'] = (tenant, workerId, events) =>
    this.#permits.appendJournal(tenant, workerId, events);
  checkResume: Store['checkResume'] = (run, actor) => this.#permits.checkResume(run, actor);
  recordHalted: Store['recordHalted'] = (entries) => this.#permits.recordHalted(entries);
  ledger: Store['ledger'] = (tenant, runId) => this.#permits.ledger(tenant, runId);
  effectsPage: Store['effectsPage'] = (q) => this.#permits.effectsPage(q);
  eventsPage: Store['eventsPage'] = (q) => this.#permits.eventsPage(q);
  compensationsPage: Store['compensationsPage'] = (q) => this.#permits.compensationsPage(q);
  permittedFrom: Store['permittedFrom'] = (q) => this.#permits.permittedFrom(q);

  // TelemetryStore (store/pg/pg-telemetry.ts)
  forwardTelemetry: Store['forwardTelemetry'] = (batches) => this.#telemetry.forwardTelemetry(batches);
  telemetryAfter: Store['telemetryAfter'] = (afterId, since, limit) =>
    this.#telemetry.telemetryAfter(afterId, since, limit);
  pruneTelemetry: Store['pruneTelemetry'] = (before) => this.#telemetry.pruneTelemetry(before);

  // PresenceStore and LeaseStore (store/pg/pg-presence.ts)
  putPresence: Store['putPresence'] = (rows) => this.#presence.putPresence(rows);
  presenceSince: Store['presenceSince'] = (version, limit, exceptReplica) =>
    this.#presence.presenceSince(version, limit, exceptReplica);
  purgePresence: Store['purgePresence'] = (before) => this.#presence.purgePresence(before);
  recordAcks: Store['recordAcks'] = (acks) => this.#presence.recordAcks(acks);
  retractAck: Store['retractAck'] = (id, worker, at) => this.#presence.retractAck(id, worker, at);
  acksOf: Store['acksOf'] = (id) => this.#presence.acksOf(id);
  revCommittedAt: Store['revCommittedAt'] = (rev) => this.#presence.revCommittedAt(rev);
  acquireLease: Store['acquireLease'] = (name, holder, ttlMs, now) =>
    this.#presence.acquireLease(name, holder, ttlMs, now);
  releaseLease: Store['releaseLease'] = (name, holder) => this.#presence.releaseLease(name, holder);
  getLease: Store['getLease'] = (name) => this.#presence.getLease(name);

  // AuditStore
  appendAudit: Store['appendAudit'] = (events: AuditEvent[]) => this.#audit.appendAudit(events);
  listAudit: Store['listAudit'] = (q) => this.#audit.listAudit(q);
  countAudit: Store['countAudit'] = (q, cap, upTo) => this.#audit.countAudit(q, cap, upTo);
  verifyAudit: Store['verifyAudit'] = () => this.#audit.verifyAudit();
  logOrigin: Store['logOrigin'] = () => this.#audit.logOrigin();
  putCheckpoint: Store['putCheckpoint'] = (c, audit, fence) => this.#audit.putCheckpoint(c, audit, fence);
  latestCheckpoint: Store['latestCheckpoint'] = () => this.#audit.latestCheckpoint();
  auditKeys: Store['auditKeys'] = () => this.#audit.auditKeys();
  putAuditKey: Store['putAuditKey'] = (key, audit) => this.#audit.putAuditKey(key, audit);
  listAuditKey: Store['listAuditKey'] = (key, audit) => this.#audit.listAuditKey(key, audit);
  verifyLog: Store['verifyLog'] = (kept: TreeClaim | null) => this.#audit.verifyLog(kept);

  // TokenStore
  createToken: Store['createToken'] = (t, secretHash, audit, revoke) =>
    this.#tokens.createToken(t, secretHash, audit, revoke);
  findToken: Store['findToken'] = (secretHash) => this.#tokens.findToken(secretHash);
  getToken: Store['getToken'] = (id) => this.#tokens.getToken(id);
  listTokens: Store['listTokens'] = (q) => this.#tokens.listTokens(q);
  revokeToken: Store['revokeToken'] = (id, by, reason, audit) =>
    this.#tokens.revokeToken(id, by, reason, audit);
  countTokens: Store['countTokens'] = () => this.#tokens.countTokens();

  // FleetStore
  registerRun: Store['registerRun'] = (r) => this.#fleet.registerRun(r);
  getRun: Store['getRun'] = (tenant, runId) => this.#fleet.getRun(tenant, runId);
  findRuns: Store['findRuns'] = (runId) => this.#fleet.findRuns(runId);
  runFamily: Store['runFamily'] = (tenant, runId) => this.#fleet.runFamily(tenant, runId);
  bindLauncher: Store['bindLauncher'] = (tenant, launcherId, agent, at) =>
    this.#fleet.bindLauncher(tenant, launcherId, agent, at);
  launcherOwner: Store['launcherOwner'] = (tenant, launcherId) =>
    this.#fleet.launcherOwner(tenant, launcherId);
  noteCapabilities: Store['noteCapabilities'] = (tenant, agent, caps, at, audit) =>
    this.#fleet.noteCapabilities(tenant, agent, caps, at, audit);
  agentSurfaces: Store['agentSurfaces'] = (tenant) => this.#fleet.agentSurfaces(tenant);

  // DrillStore
  recordDrill: Store['recordDrill'] = (input, recordedBy, audit) =>
    this.#drills.recordDrill(input, recordedBy, audit);
  listDrills: Store['listDrills'] = (q) => this.#drills.listDrills(q);
  countDrills: Store['countDrills'] = (q) => this.#drills.countDrills(q);
  getDrill: Store['getDrill'] = (id) => this.#drills.getDrill(id);
  lastDrills: Store['lastDrills'] = (tenant) => this.#drills.lastDrills(tenant);

  // PolicyStore
  putPolicy: Store['putPolicy'] = (p, audit) => this.#policy.putPolicy(p, audit);
  getPolicy: Store['getPolicy'] = (version) => this.#policy.getPolicy(version);
  listPolicies: Store['listPolicies'] = (limit) => this.#policy.listPolicies(limit);
  countPolicies: Store['countPolicies'] = () => this.#policy.countPolicies();
  createApproval: Store['createApproval'] = (a, audit) => this.#policy.createApproval(a, audit);
  getApproval: Store['getApproval'] = (id) => this.#policy.getApproval(id);
  listApprovals: Store['listApprovals'] = (q) => this.#policy.listApprovals(q);
  countApprovals: Store['countApprovals'] = (q) => this.#policy.countApprovals(q);
  updateApproval<T>(id: string, fn: (a: ApprovalRecord | null) => ApprovalUpdate<T>): Promise<T> {
    return this.#policy.updateApproval(id, fn);
  }

  #closing: Promise<void> | null = null;

  /**
   * Ends the pool: outcomes queued for their group commit are committed first, queries in flight
   * finish (up to 5 s), then its connections close.
   */
  close(): Promise<void> {
    this.#closing ??= this.#permits.drain().then(() => this.#sql.end({ timeout: 5 }));
    return this.#closing;
  }
}

/**
 * Applies the schema to the database at `url` (what `killpath migrate --store URL` runs): every
 * migration after the stored version, in one transaction; several at once take turns.
 * @returns the versions before and after, and the migrations applied (none when it was current)
 * @throws KillpathError `invalid_request` for a bad URL or a database newer than this killpath;
 *   `unavailable` when the database cannot be reached
 */
export async function migrateStore(
  url: string,
  options: PoolOptions = {},
): Promise<{ from: number; to: number; applied: { version: number; name: string }[] }> {
  const sql = openPool(url, { max: 1, ...options });
  try {
    const r = await migrate(sql);
    return { from: r.from, to: r.to, applied: r.applied.map((m) => ({ version: m.version, name: m.name })) };
  } catch (err) {
    if (err instanceof KillpathError) throw err;
    throw new KillpathError(
      'unavailable',
      `cannot migrate PostgreSQL at ${redact(url)}: ${(err as Error).message}`,
      {
        cause: err,
      },
    );
  } finally {
    await sql.end({ timeout: 1 });
  }
}
