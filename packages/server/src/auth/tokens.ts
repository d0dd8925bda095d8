import type { AuditEventOf } from '@killpath/protocol';
import { hash, randomBytes, randomUUID } from 'node:crypto';
import { KillpathError, type Principal, type Role } from '@killpath/protocol';
import type { AuditEvent } from '../audit/chain.ts';
import type { TokenStore, TokenRecord } from '../store/store.ts';

/** SHA-256 of a token secret, hex. Only this is stored. */
export function hashSecret(secret: string): string {
  // One-shot: every request authenticates, and a Hash object costs twice as much.
  return hash('sha256', secret, 'hex');
}

/** A fresh token secret: `kp_` and 32 random bytes, base64url. */
export function newSecret(): string {
  return `kp_${randomBytes(32).toString('base64url')}`;
}

/** What it takes to mint a token. `tenant` is `*` only for admins. */
export interface TokenSpec {
  role: Role;
  tenant: string;
  agent?: string | null;
  name?: string;
  /** When the token stops working (ISO 8601); absent or null: never. */
  expiresAt?: string | null;
  /** The one launcher id an agent token may act for; absent or null: none. */
  launcher?: string | null;
  /** The token that minted this one for a launcher (revoked with it); absent or null: none. */
  mintedBy?: string | null;
  /**
   * A fixed id instead of a random one: the bootstrap admin token's, so that replicas starting
   * at once on an empty database create it once (the others' inserts conflict on the id).
   */
  id?: string;
}

/**
 * Checks a token spec: an admin token spans every tenant and only an admin token does; only an
 * agent token is bound to an agent.
 * @throws KillpathError `invalid_request`
 */
export function checkTokenSpec(spec: TokenSpec): void {
  if (spec.tenant === '*' && spec.role !== 'admin') {
    throw new KillpathError('invalid_request', 'only admin tokens may span every tenant (--tenant *)');
  }
  if (spec.role === 'admin' && spec.tenant !== '*') {
    throw new KillpathError('invalid_request', 'admin tokens span every tenant; use --tenant "*"');
  }
  if (spec.agent && spec.role !== 'agent') {
    throw new KillpathError('invalid_request', 'only agent tokens are bound to an agent');
  }
  if (spec.launcher && (spec.role !== 'agent' || !spec.agent)) {
    throw new KillpathError('invalid_request', 'only an agent token of one agent is bound to a launcher');
  }
}

/** A new token's id and name, from its spec. */
function identify(spec: TokenSpec): { id: string; name: string } {
  const id = spec.id ?? `t_${randomUUID()}`;
  const name =
    spec.name ?? `${spec.role}:${spec.tenant}${spec.agent ? `/${spec.agent}` : ''}:${id.slice(2, 10)}`;
  return { id, name };
}

/** The `operator_action` record of a token's creation (never its secret). */
function createdEvent(
  actor: string,
  spec: TokenSpec,
  id: string,
  name: string,
  extra: Record<string, unknown> = {},
): AuditEvent {
  return {
    type: 'operator_action',
    actor,
    tenant: spec.tenant === '*' ? null : spec.tenant,
    data: {
      action: 'token.create',
      tokenId: id,
      name,
      role: spec.role,
      agent: spec.agent ?? null,
      expiresAt: spec.expiresAt ?? null,
      ...(spec.launcher ? { launcher: spec.launcher } : {}),
      ...extra,
    },
  };
}

/**
 * Mints a token and stores its hash; the secret is returned once and never again.
 * With `revoke` (a rotation), that token is revoked in the same transaction (`token.revoked`).
 * @throws KillpathError `invalid_request` for a non-admin token for every tenant, or an agent name on a non-agent token.
 */
export async function mintToken(
  store: TokenStore,
  spec: TokenSpec,
  actor: string,
  revoke?: { token: TokenRecord; reason: string },
): Promise<{ secret: string; record: TokenRecord }> {
  checkTokenSpec(spec);
  const secret = newSecret();
  const { id, name } = identify(spec);
  const events: AuditEvent[] = [
    createdEvent(actor, spec, id, name, revoke ? { replaces: revoke.token.id } : {}),
  ];
  if (revoke) events.push(...revokedEvents(revoke.token, actor, revoke.reason));
  const record = await store.createToken(
    {
      id,
      name,
      role: spec.role,
      tenant: spec.tenant,
      agent: spec.agent ?? null,
      expiresAt: spec.expiresAt ?? null,
      launcher: spec.launcher ?? null,
      mintedBy: spec.mintedBy ?? null,
    },
    hashSecret(secret),
    events,
    revoke ? { id: revoke.token.id, by: actor, reason: revoke.reason } : undefined,
  );
  return { secret, record };
}

/** The records of a revocation: the operator's action and `token.revoked` (never the secret). */
export function revokedEvents(t: TokenRecord, actor: string, reason: string): AuditEvent[] {
  const tenant = t.tenant === '*' ? null : t.tenant;
  const what = { tokenId: t.id, name: t.name, role: t.role, agent: t.agent, reason };
  return [
    { type: 'operator_action', actor, tenant, data: { action: 'token.revoke', ...what } },
    {
      type: 'token.revoked',
      actor,
      tenant,
      data: { ...what, tenant: t.tenant, revokedBy: actor },
    } satisfies AuditEventOf<'token.revoked'>,
  ];
}

/** Options of {@link Authenticator}. */
export interface AuthenticatorOptions {
  /** Wall clock in ms since the epoch (default `Date.now`): expiry is judged on it. */
  now?: () => number;
  /**
   * A cached principal is checked against the store again after this long, in ms (default
   * 5000). Revocation lives in the store; the cache is only a cache: a revocation this process
   * did not make (another replica, a restored file) takes effect within this bound.
   */
  revalidateMs?: number;
}

interface Cached {
  principal: Principal;
  /** Expiry in ms since the epoch, or null. */
  expiresAt: number | null;
  checkedAt: number;
}

/** Default of {@link AuthenticatorOptions.revalidateMs}. */
export const DEFAULT_REVALIDATE_MS = 5000;

/**
 * Resolves bearer tokens to principals, caching by hash so the hot paths (stream connects,
 * reports) do not hit the store on every request. A revoked token answers 401 "token revoked"
 * and an expired one 401 "token expired": a revocation through this process drops its entry at
 * once ({@link Authenticator.invalidate}); expiry is checked on every request against the clock.
 */
export class Authenticator {
  readonly #store: TokenStore;
  readonly #cache = new Map<string, Cached>();
  readonly #now: () => number;
  readonly #revalidateMs: number;

  constructor(store: TokenStore, opts: AuthenticatorOptions = {}) {
    this.#store = store;
    this.#now = opts.now ?? Date.now;
    this.#revalidateMs = opts.revalidateMs ?? DEFAULT_REVALIDATE_MS;
  }

  /** The clock expiry is judged on (ms since the epoch). */
  now(): number {
    return this.#now();
  }

  /**
   * The hash of the token in `header` when this process has authenticated it and not seen it
   * revoked or expired since (it is in the cache), else null: who a request is, for admission,
   * before it is authenticated. Reads no store.
   */
  knownCaller(header: string | undefined): string | null {
    const m = header === undefined ? null : /^bearer +(\S+) *$/i.exec(header);
    if (m === null) return null;
    const hash = hashSecret(m[1]!);
    return this.#cache.has(hash) ? hash : null;
  }

  /**
   * The principal behind an `Authorization` header value.
   * @throws KillpathError `unauthenticated` when the header is missing or malformed, or the token is unknown, revoked or expired.
   */
  async authenticate(header: string | undefined): Promise<Principal> {
    // The scheme name is case-insensitive (RFC 9110 §11.1); the token is not.
    const m = header === undefined ? null : /^bearer +(\S+) *$/i.exec(header);
    if (m === null) {
      throw new KillpathError('unauthenticated', 'missing bearer token (Authorization: Bearer <token>)');
    }
    const hash = hashSecret(m[1]!);
    const now = this.#now();
    const hit = this.#cache.get(hash);
    if (hit !== undefined && now - hit.checkedAt < this.#revalidateMs) {
      if (hit.expiresAt !== null && now >= hit.expiresAt) {
        this.#cache.delete(hash);
        throw new KillpathError('unauthenticated', 'token expired');
      }
      return hit.principal;
    }
    const rec = await this.#store.findToken(hash);
    if (!rec) {
      this.#cache.delete(hash);
      throw new KillpathError('unauthenticated', 'unknown token');
    }
    if (rec.revokedAt !== null) {
      this.#cache.delete(hash);
      throw new KillpathError('unauthenticated', 'token revoked');
    }
    const expiresAt = rec.expiresAt === null ? null : Date.parse(rec.expiresAt);
    if (expiresAt !== null && now >= expiresAt) {
      this.#cache.delete(hash);
      throw new KillpathError('unauthenticated', 'token expired');
    }
    const principal: Principal = {
      tokenId: rec.id,
      name: rec.name,
      role: rec.role,
      tenant: rec.tenant,
      agent: rec.agent,
      ...(rec.expiresAt === null ? {} : { expiresAt: rec.expiresAt }),
      ...(rec.launcher === null ? {} : { launcher: rec.launcher }),
    };
    this.#cache.set(hash, { principal, expiresAt, checkedAt: now });
    return principal;
  }

  /** Drops every cached principal of `tokenId` (after a revocation): its next request reads the store. */
  invalidate(tokenId: string): void {
    for (const [hash, c] of this.#cache) if (c.principal.tokenId === tokenId) this.#cache.delete(hash);
  }
}
