/**
 * Shared fleet state and leases on PostgreSQL: workers' presence (one row per worker, stamped
 * with a presence version bumped on one counter row, so versions are in commit order and a
 * reader that resumes after version V misses nothing), acknowledgements of stops, and named
 * leases with a fencing epoch. The lease row is read `FOR SHARE` by a fenced commit (after the rev
 * row, before the audit head: the lock order of `tx.ts`), so a takeover waits for a commit in
 * progress and a deposed holder's later commit sees the new epoch and is refused.
 */
import { KillpathError } from '@killpath/protocol';
import { toHaltAck, toPresenceRow, type HaltAckRow, type PresenceDbRow } from '../rows.ts';
import type { HaltAck, Lease, LeaseFence, LeaseStore, PresenceRow, PresenceStore } from '../store.ts';
import type { Sql, Tx } from './connect.ts';

/** DDL of presence, acknowledgements and leases (schema migration 2). */
/** An acknowledgement counts unless withdrawn at or after it was taken (ISO 8601 instants, compared byte-wise). */
const COUNTS = '(withdrawn_at IS NULL OR at COLLATE "C" > withdrawn_at COLLATE "C")';

/**
 * Version 4: a withdrawn acknowledgement stays as its withdrawal, so one written after it (taken
 * before it, on another replica) does not count.
 */
export const HALT_ACK_WITHDRAWALS_DDL: readonly string[] = [
  'ALTER TABLE halt_acks ADD COLUMN withdrawn_at text',
];

export const PRESENCE_DDL: readonly string[] = [
  `CREATE TABLE presence_version (
    id smallint PRIMARY KEY CHECK (id = 1),
    version bigint NOT NULL
  )`,
  `INSERT INTO presence_version (id, version) VALUES (1, 0)`,
  `CREATE TABLE presence (
    tenant text COLLATE "C" NOT NULL,
    agent text COLLATE "C" NOT NULL,
    worker_id text COLLATE "C" NOT NULL,
    replica text NOT NULL,
    version bigint NOT NULL,
    written_at bigint NOT NULL,
    removed boolean NOT NULL DEFAULT false,
    state text NOT NULL,
    PRIMARY KEY (tenant, agent, worker_id)
  )`,
  `CREATE INDEX presence_by_version ON presence (version)`,
  `CREATE TABLE halt_acks (
    directive_id text COLLATE "C" NOT NULL,
    tenant text COLLATE "C" NOT NULL,
    agent text COLLATE "C" NOT NULL,
    worker_id text COLLATE "C" NOT NULL,
    rev bigint NOT NULL,
    runs text NOT NULL,
    at text NOT NULL,
    replica text NOT NULL,
    PRIMARY KEY (directive_id, tenant, agent, worker_id)
  )`,
  `CREATE TABLE leases (
    name text COLLATE "C" PRIMARY KEY,
    holder text NOT NULL,
    epoch bigint NOT NULL,
    expires_at bigint NOT NULL
  )`,
];

interface LeaseRow {
  name: string;
  holder: string;
  epoch: string;
  expires_at: string;
}

function toLease(r: LeaseRow): Lease {
  return { name: r.name, holder: r.holder, epoch: Number(r.epoch), expiresAt: Number(r.expires_at) };
}

/**
 * Inside the caller's directive transaction, after the rev row: refuses (`conflict`) a fenced
 * write whose lease has passed to another holder or epoch, holding the lease row `FOR SHARE` until
 * the commit so no takeover slips in between the check and the commit.
 */
export async function checkFence(tx: Tx, fence: LeaseFence): Promise<void> {
  const [r] = await tx<LeaseRow[]>`SELECT * FROM leases WHERE name = ${fence.lease} FOR SHARE`;
  if (r === undefined || r.holder !== fence.holder || Number(r.epoch) !== fence.epoch)
    throw new KillpathError(
      'conflict',
      `lease ${fence.lease} is no longer held by ${fence.holder} at epoch ${fence.epoch} (now ${r ? `${r.holder} at epoch ${r.epoch}` : 'nobody'}): a deposed holder's write is refused`,
    );
}

/** {@link PresenceStore} and {@link LeaseStore} over one pool. */
export class PgPresence implements PresenceStore, LeaseStore {
  readonly #sql: Sql;

  constructor(sql: Sql) {
    this.#sql = sql;
  }

  async putPresence(rows: PresenceRow[]): Promise<number> {
    return this.#sql.begin(async (tx) => {
      const [v] = await tx<{ version: string }[]>`
        UPDATE presence_version SET version = version + 1 WHERE id = 1 RETURNING version`;
      const version = Number(v!.version);
      if (rows.length === 0) return version;
      const now = Date.now();
      const values = rows.map((r) => {
        const { tenant, agent, workerId, replica, removed, ...state } = r;
        return {
          tenant,
          agent,
          worker_id: workerId,
          replica,
          version,
          written_at: now,
          removed,
          state: JSON.stringify(state),
        };
      });
      await tx`
        INSERT INTO presence ${tx(values, 'tenant', 'agent', 'worker_id', 'replica', 'version', 'written_at', 'removed', 'state')}
        ON CONFLICT (tenant, agent, worker_id) DO UPDATE SET replica = EXCLUDED.replica,
          version = EXCLUDED.version, written_at = EXCLUDED.written_at, removed = EXCLUDED.removed,
          state = EXCLUDED.state`;
      return version;
    }) as Promise<number>;
  }

  async presenceSince(
    version: number,
    limit: number,
    exceptReplica?: string,
  ): Promise<{ rows: PresenceRow[]; version: number }> {
    // The latest version first, then the rows up to it: writes take their version under the
    // presence_version row's lock and commit in that order, so every row of a version at or
    // below it is visible to the next statement.
    let head: number | null = null;
    if (exceptReplica !== undefined) {
      const [v] = await this.#sql<{ version: string }[]>`SELECT version FROM presence_version WHERE id = 1`;
      head = Number(v?.version ?? 0);
    }
    const found =
      head === null
        ? await this.#sql<PresenceDbRow[]>`
            SELECT * FROM presence WHERE version > ${version} ORDER BY version, tenant, agent, worker_id LIMIT ${limit}`
        : await this.#sql<PresenceDbRow[]>`
            SELECT * FROM presence WHERE version > ${version} AND version <= ${head} AND replica <> ${exceptReplica!}
            ORDER BY version, tenant, agent, worker_id LIMIT ${limit}`;
    let last = version;
    const rows = found.map((r) => {
      last = Math.max(last, Number(r.version));
      return toPresenceRow(r);
    });
    // A page must not end inside a version: the next read starts after it.
    if (found.length === limit && found.length > 0) {
      const seen = new Set(rows.map((r) => `${r.tenant}\u0000${r.agent}\u0000${r.workerId}`));
      const tail = await this.#sql<PresenceDbRow[]>`
        SELECT * FROM presence WHERE version = ${last} ORDER BY tenant, agent, worker_id`;
      for (const r of tail)
        if (r.replica !== exceptReplica && !seen.has(`${r.tenant}\u0000${r.agent}\u0000${r.worker_id}`))
          rows.push(toPresenceRow(r));
    } else if (head !== null) last = Math.max(last, head);
    return { rows, version: last };
  }

  async purgePresence(before: number): Promise<number> {
    const r = await this.#sql`DELETE FROM presence WHERE removed AND written_at < ${before}`;
    return r.count;
  }

  async recordAcks(acks: HaltAck[]): Promise<void> {
    if (acks.length === 0) return;
    // One row per directive and worker: the last report of a batch wins, as on SQLite.
    const byKey = new Map<string, HaltAck>();
    for (const a of acks)
      byKey.set(`${a.directiveId}\u0000${a.tenant}\u0000${a.agent}\u0000${a.workerId}`, a);
    const values = [...byKey.values()].map((a) => ({
      directive_id: a.directiveId,
      tenant: a.tenant,
      agent: a.agent,
      worker_id: a.workerId,
      rev: a.rev,
      runs: JSON.stringify(a.runs),
      at: a.at,
      replica: a.replica,
    }));
    await this.#sql`
      INSERT INTO halt_acks ${this.#sql(values, 'directive_id', 'tenant', 'agent', 'worker_id', 'rev', 'runs', 'at', 'replica')}
      ON CONFLICT (directive_id, tenant, agent, worker_id) DO UPDATE SET rev = EXCLUDED.rev,
        runs = EXCLUDED.runs, at = EXCLUDED.at, replica = EXCLUDED.replica`;
  }

  async retractAck(
    directiveId: string,
    w: { tenant: string; agent: string; workerId: string },
    at: string,
  ): Promise<boolean> {
    // The row stays as the withdrawal (an acknowledgement written later, taken before it, loses).
    const [r] = await this.#sql<{ counted: boolean }[]>`
      WITH before AS (
        SELECT 1 FROM halt_acks WHERE directive_id = ${directiveId} AND tenant = ${w.tenant}
          AND agent = ${w.agent} AND worker_id = ${w.workerId} AND ${this.#sql.unsafe(COUNTS)}
      )
      INSERT INTO halt_acks (directive_id, tenant, agent, worker_id, rev, runs, at, replica, withdrawn_at)
      VALUES (${directiveId}, ${w.tenant}, ${w.agent}, ${w.workerId}, 0, '[]', '', '', ${at})
      ON CONFLICT (directive_id, tenant, agent, worker_id) DO UPDATE SET withdrawn_at =
        GREATEST(COALESCE(halt_acks.withdrawn_at, '') COLLATE "C", EXCLUDED.withdrawn_at COLLATE "C")
      RETURNING EXISTS (SELECT 1 FROM before) AS counted`;
    return r?.counted === true;
  }

  async acksOf(directiveId: string): Promise<HaltAck[]> {
    const rows = await this.#sql<
      HaltAckRow[]
    >`SELECT * FROM halt_acks WHERE directive_id = ${directiveId} AND ${this.#sql.unsafe(COUNTS)}
      ORDER BY tenant, agent, worker_id`;
    return rows.map(toHaltAck);
  }

  async revCommittedAt(rev: number): Promise<string | null> {
    const [r] = await this.#sql<{ at: string }[]>`
      SELECT issued_at AS at FROM directives WHERE rev = ${rev}
      UNION ALL SELECT cleared_at AS at FROM directives WHERE cleared_rev = ${rev} AND cleared_at IS NOT NULL
      LIMIT 1`;
    return r?.at ?? null;
  }

  async acquireLease(name: string, holder: string, ttlMs: number, now: number): Promise<Lease> {
    const until = now + ttlMs;
    // One statement: insert at epoch 1, renew (same holder, epoch kept), or take over an expired
    // lease (next epoch); an unexpired lease of another holder is left as it is.
    const [taken] = await this.#sql<LeaseRow[]>`
      INSERT INTO leases (name, holder, epoch, expires_at) VALUES (${name}, ${holder}, 1, ${until})
      ON CONFLICT (name) DO UPDATE SET
        epoch = CASE WHEN leases.holder = EXCLUDED.holder THEN leases.epoch ELSE leases.epoch + 1 END,
        holder = EXCLUDED.holder,
        expires_at = EXCLUDED.expires_at
      WHERE leases.holder = EXCLUDED.holder OR leases.expires_at <= ${now}
      RETURNING *`;
    if (taken !== undefined) return toLease(taken);
    return (await this.getLease(name))!;
  }

  async releaseLease(name: string, holder: string): Promise<boolean> {
    const r = await this.#sql`
      UPDATE leases SET expires_at = 0 WHERE name = ${name} AND holder = ${holder} AND expires_at > 0`;
    return r.count > 0;
  }

  async getLease(name: string): Promise<Lease | null> {
    const [r] = await this.#sql<LeaseRow[]>`SELECT * FROM leases WHERE name = ${name}`;
    return r ? toLease(r) : null;
  }
}
