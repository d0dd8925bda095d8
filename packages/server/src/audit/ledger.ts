/**
 * The effect ledger's audit rule, the same for every store backend: which ledger rows an audit
 * record commits, the digest of a row, and how verification checks the rows a database holds
 * against the records that committed them.
 *
 * A permit row is written when its intent is granted and rewritten when its state moves on
 * (outcome, cool-off confirmed or cancelled, in doubt). Each group commit (each transaction)
 * that writes permit rows appends, per tenant, one chained audit record `ledger.committed`
 * listing `[permitId, digest]` for every row it wrote, as the row stands at that commit. So an
 * effect costs no hashed record of its own: a record per group commit instead of two per effect.
 *
 * Verification reads the chain in order (the newest record naming a row holds its current
 * digest) and then every row: a row whose digest differs from its newest record was changed, a
 * row some record names but the database lacks was deleted, and a row no record names was
 * inserted behind the control plane's back. Rows written before this rule (per-effect
 * `effect.intent` records, databases of schema 12 and older) are checked against their intent
 * record's run, agent, capability and class until a later write commits them whole.
 */
import { createHash } from 'node:crypto';
import type { AuditEventOf, AuditRecord } from '@killpath/protocol';
import type { AuditEvent } from './chain.ts';

/** The type of the audit record that commits the ledger rows of one group commit (per tenant). */
export const LEDGER_COMMITTED = 'ledger.committed';

/**
 * A permit row as every backend stores it (the columns of `permits`; PostgreSQL stores the same
 * text as SQLite, JSON values included), the form its digest is taken over.
 */
export interface LedgerRow {
  id: string;
  rev: number;
  run_id: string;
  tenant: string;
  agent: string;
  worker_id: string;
  capability: string;
  class: string;
  idempotency_key: string | null;
  args_digest: string | null;
  /** JSON text, as stored. */
  compensate: string | null;
  status: string;
  cool_off_ms: number;
  confirm_after: string | null;
  /** JSON text, as stored. */
  lineage: string;
  /** JSON text, as stored. */
  features: string;
  /** JSON text, as stored. */
  release: string | null;
  /** JSON text, as stored. */
  result: string | null;
  error: string | null;
  /** 0 or 1. */
  after_abort: number;
  /** ISO-8601 UTC with milliseconds, as stored. */
  intended_at: string;
  settled_at: string | null;
}

/** Tags the digest's input, so a later form of it can never collide with this one. */
const ROW_FORM = 'killpath-ledger-row/1';

/**
 * A row's digest: SHA-256 (base64url, unpadded) over `JSON.stringify` of an array of the form tag
 * and every column of {@link LedgerRow} in its declared order, values as stored (strings,
 * integers, null: their JSON text is the same in every engine). The stored bytes are what is
 * committed: a JSON column re-formatted on disk no longer matches.
 */
export function ledgerRowDigest(r: LedgerRow): string {
  return createHash('sha256')
    .update(
      JSON.stringify([
        ROW_FORM,
        r.id,
        r.rev,
        r.run_id,
        r.tenant,
        r.agent,
        r.worker_id,
        r.capability,
        r.class,
        r.idempotency_key,
        r.args_digest,
        r.compensate,
        r.status,
        r.cool_off_ms,
        r.confirm_after,
        r.lineage,
        r.features,
        r.release,
        r.result,
        r.error,
        r.after_abort,
        r.intended_at,
        r.settled_at,
      ]),
    )
    .digest('base64url');
}

/**
 * Collects the rows one transaction writes, as they stand at its end (a row written twice counts
 * once, in its last state), and turns them into its `ledger.committed` events. A backend keeps
 * one per transaction and appends {@link LedgerCommit.events} to the chain just before COMMIT.
 */
export class LedgerCommit {
  readonly #rows = new Map<string, LedgerRow>();

  /** Notes rows written (inserted or updated), in their state after the write. */
  add(rows: Iterable<LedgerRow>): void {
    for (const r of rows) this.#rows.set(r.id, r);
  }

  /** Moves another collection's rows into this one (a nested write that succeeded). */
  merge(other: LedgerCommit): void {
    this.add(other.#rows.values());
    other.clear();
  }

  clear(): void {
    this.#rows.clear();
  }

  get size(): number {
    return this.#rows.size;
  }

  /** One `ledger.committed` event per tenant, listing `[permitId, digest]` in write order; empties this. */
  events(): AuditEvent[] {
    const byTenant = new Map<string, [string, string][]>();
    for (const r of this.#rows.values()) {
      let rows = byTenant.get(r.tenant);
      if (rows === undefined) byTenant.set(r.tenant, (rows = []));
      rows.push([r.id, ledgerRowDigest(r)]);
    }
    this.#rows.clear();
    return [...byTenant].map(
      ([tenant, rows]) =>
        ({
          type: LEDGER_COMMITTED,
          actor: 'control-plane',
          tenant,
          data: { rows },
        }) satisfies AuditEventOf<'ledger.committed'>,
    );
  }
}

/** What {@link LedgerCheck.check} found. */
export interface LedgerFindings {
  ok: boolean;
  /** Ledger rows read. */
  rows: number;
  /** The lowest seq of a record whose rows do not match (or the chain's length, for an inserted row), or null. */
  firstBad: number | null;
  /** One sentence per problem (at most 20, then a count), naming rows and records. */
  problems: string[];
}

const MAX_PROBLEMS = 20;

/**
 * Verifies ledger rows against the chain: feed it every audit record in seq order
 * ({@link see}), then every row the database holds ({@link check}). Memory grows with the
 * number of rows (one digest each).
 */
export class LedgerCheck {
  /** permitId → `seq digest` of the newest record naming it. */
  readonly #committed = new Map<string, string>();
  /** permitId → the intent record of a row written before `ledger.committed` existed. */
  readonly #legacy = new Map<string, { seq: number; tenant: string | null; data: Record<string, unknown> }>();
  #records = 0;

  /** Takes one audit record (in seq order). */
  see(r: AuditRecord): void {
    this.#records = r.seq;
    if (r.type === LEDGER_COMMITTED) {
      const rows = r.data.rows;
      if (!Array.isArray(rows)) return;
      for (const entry of rows) {
        if (!Array.isArray(entry) || typeof entry[0] !== 'string' || typeof entry[1] !== 'string') continue;
        this.#committed.set(entry[0], `${r.seq} ${entry[1]}`);
      }
    } else if (r.type === 'effect.intent' && typeof r.data.permitId === 'string') {
      this.#legacy.set(r.data.permitId, { seq: r.seq, tenant: r.tenant, data: r.data });
    }
  }

  /** Checks every row the database holds (any order), after every record was seen; once. */
  check(rows: Iterable<LedgerRow>): LedgerFindings {
    const problems: string[] = [];
    let more = 0;
    let firstBad: number | null = null;
    const bad = (seq: number, text: string): void => {
      firstBad = firstBad === null ? seq : Math.min(firstBad, seq);
      if (problems.length < MAX_PROBLEMS) problems.push(text);
      else more++;
    };
    let n = 0;
    for (const row of rows) {
      n++;
      const name = `ledger row ${row.id} (tenant ${row.tenant}, run ${row.run_id})`;
      const at = this.#committed.get(row.id);
      // What is left in the maps once every row was taken was deleted.
      this.#committed.delete(row.id);
      const intent = this.#legacy.get(row.id);
      this.#legacy.delete(row.id);
      if (at !== undefined) {
        const space = at.indexOf(' ');
        const seq = Number(at.slice(0, space));
        if (ledgerRowDigest(row) !== at.slice(space + 1))
          bad(seq, `${name} does not match audit record #${seq}, which committed it: it was changed`);
        continue;
      }
      if (intent === undefined) {
        bad(this.#records, `${name} is in no audit record: it was written behind the control plane's back`);
        continue;
      }
      const d = intent.data;
      if (
        intent.tenant !== row.tenant ||
        d.runId !== row.run_id ||
        d.agent !== row.agent ||
        d.capability !== row.capability ||
        d.class !== row.class
      )
        bad(intent.seq, `${name} does not match its intent record #${intent.seq}: it was changed`);
    }
    for (const [permitId, at] of this.#committed) {
      this.#legacy.delete(permitId);
      const seq = Number(at.slice(0, at.indexOf(' ')));
      bad(seq, `ledger row ${permitId}, committed by audit record #${seq}, is missing: it was deleted`);
    }
    for (const [permitId, intent] of this.#legacy)
      bad(
        intent.seq,
        `ledger row ${permitId}, granted in audit record #${intent.seq}, is missing: it was deleted`,
      );
    if (more > 0) problems.push(`… and ${more} more ledger problem(s)`);
    return { ok: firstBad === null, rows: n, firstBad, problems };
  }
}
