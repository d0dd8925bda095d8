/**
 * DDL of the concepts pg-core owns, one list per concept (schema migration 1). Text columns that
 * are ordered or compared (ids, ISO times, tenants) use the "C" collation, so order is byte order
 * as on SQLite, whatever the database's default collation.
 */

/** Directives and their revs (the rev row itself is in `tx.ts`). */
export const DIRECTIVES_DDL: readonly string[] = [
  `CREATE TABLE directives (
    id text COLLATE "C" PRIMARY KEY,
    rev bigint NOT NULL,
    level text NOT NULL,
    scope text NOT NULL,
    tenant text COLLATE "C",
    capabilities text,
    rate text,
    grace_ms bigint NOT NULL,
    drain text NOT NULL,
    memory text NOT NULL,
    reason text NOT NULL,
    justification text NOT NULL,
    actor text NOT NULL,
    idempotency_key text COLLATE "C",
    idempotency_digest text,
    issued_at text COLLATE "C" NOT NULL,
    cleared_at text COLLATE "C",
    cleared_rev bigint,
    escalation text NOT NULL,
    escalated_from text COLLATE "C",
    releases text NOT NULL,
    break_glass text
  )`,
  // Keys arrive scoped to the issuing principal (`<token id>:<key>`): unique across replicas.
  `CREATE UNIQUE INDEX directives_idempotency_key ON directives (idempotency_key) WHERE idempotency_key IS NOT NULL`,
  `CREATE INDEX directives_rev ON directives (rev)`,
  `CREATE INDEX directives_active ON directives (rev) WHERE cleared_rev IS NULL`,
  `CREATE INDEX directives_cleared_rev ON directives (cleared_rev) WHERE cleared_rev IS NOT NULL`,
  `CREATE INDEX directives_escalated_from ON directives (escalated_from) WHERE escalated_from IS NOT NULL`,
];

/** The audit chain's records, signed checkpoints and their keys (the chain head is in `tx.ts`). */
export const AUDIT_DDL: readonly string[] = [
  `CREATE TABLE audit (
    seq bigint PRIMARY KEY,
    ts text NOT NULL,
    type text COLLATE "C" NOT NULL,
    actor text NOT NULL,
    tenant text COLLATE "C",
    data text NOT NULL,
    prev_hash text NOT NULL,
    hash text NOT NULL
  )`,
  `CREATE TABLE checkpoints (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    size bigint NOT NULL,
    root_hash text NOT NULL,
    origin text NOT NULL,
    signed_at text NOT NULL,
    key_id text NOT NULL,
    signature text NOT NULL,
    frontier text NOT NULL
  )`,
  `CREATE INDEX checkpoints_size ON checkpoints (size)`,
  `CREATE TABLE audit_keys (
    key_id text PRIMARY KEY,
    public_key text NOT NULL,
    created_at text COLLATE "C" NOT NULL,
    retired_at text,
    ord bigint GENERATED ALWAYS AS IDENTITY
  )`,
  // The checkpoint origin (`killpath/<log id>`), made once with the database.
  `INSERT INTO meta (key, value) VALUES ('log_id', gen_random_uuid()::text)`,
];

/** API tokens by the SHA-256 of their secret. */
export const TOKENS_DDL: readonly string[] = [
  `CREATE TABLE tokens (
    id text COLLATE "C" PRIMARY KEY,
    secret_hash text NOT NULL UNIQUE,
    name text NOT NULL,
    role text NOT NULL,
    tenant text COLLATE "C" NOT NULL,
    agent text,
    created_at text COLLATE "C" NOT NULL,
    expires_at text,
    revoked_at text,
    revoked_by text,
    revoke_reason text,
    launcher text,
    minted_by text
  )`,
  `CREATE INDEX tokens_minted_by ON tokens (minted_by) WHERE minted_by IS NOT NULL`,
];

/** Policy versions (append-only) and approval requests. */
export const POLICY_DDL: readonly string[] = [
  `CREATE TABLE policies (
    version bigint PRIMARY KEY,
    source text NOT NULL,
    digest text NOT NULL,
    actor text NOT NULL,
    comment text,
    rollback_of bigint,
    created_at text NOT NULL
  )`,
  `CREATE TABLE approvals (
    id text COLLATE "C" PRIMARY KEY,
    action text COLLATE "C" NOT NULL,
    rule text NOT NULL,
    tenant text COLLATE "C",
    target text COLLATE "C" NOT NULL,
    target_rev bigint,
    summary text NOT NULL,
    requested_by text NOT NULL,
    requested_token text NOT NULL,
    reason text NOT NULL,
    created_at text COLLATE "C" NOT NULL,
    expires_at text COLLATE "C" NOT NULL,
    needed bigint NOT NULL,
    approver_role text NOT NULL,
    contact text,
    approvals text NOT NULL,
    state text COLLATE "C" NOT NULL,
    completed_at text,
    outcome text,
    payload text
  )`,
  `CREATE INDEX approvals_created ON approvals (created_at)`,
];

/** Rehearsal records. */
export const DRILLS_DDL: readonly string[] = [
  `CREATE TABLE drills (
    seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id text COLLATE "C" NOT NULL UNIQUE,
    recorded_at text NOT NULL,
    recorded_by text NOT NULL,
    spec_name text NOT NULL,
    spec_digest text NOT NULL,
    mode text NOT NULL,
    compact boolean NOT NULL,
    result text NOT NULL,
    started_at text NOT NULL,
    finished_at text COLLATE "C" NOT NULL,
    agents jsonb NOT NULL,
    scenarios text NOT NULL,
    audit_seq bigint NOT NULL
  )`,
];
