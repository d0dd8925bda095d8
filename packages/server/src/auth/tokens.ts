import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { KillpathError, type Principal, type Role } from '@killpath/protocol';
import type { Store, TokenRecord } from '../store/store.ts';

/** SHA-256 of a token secret, hex. Only this is stored. */
export function hashSecret(secret: string): string {
  return createHash('sha256').update(secret).digest('hex');
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
}

/**
 * Mints a token and stores its hash; the secret is returned once and never again.
 * @throws KillpathError `invalid_request` for a non-admin token for every tenant, or an agent name on a non-agent token.
 */
export async function mintToken(
  store: Store,
  spec: TokenSpec,
  actor: string,
): Promise<{ secret: string; record: TokenRecord }> {
  if (spec.tenant === '*' && spec.role !== 'admin') {
    throw new KillpathError('invalid_request', 'only admin tokens may span every tenant (--tenant *)');
  }
  if (spec.role === 'admin' && spec.tenant !== '*') {
    throw new KillpathError('invalid_request', 'admin tokens span every tenant; use --tenant "*"');
  }
  if (spec.agent && spec.role !== 'agent') {
    throw new KillpathError('invalid_request', 'only agent tokens are bound to an agent');
  }
  const secret = newSecret();
  const id = `t_${randomUUID()}`;
  const name =
    spec.name ?? `${spec.role}:${spec.tenant}${spec.agent ? `/${spec.agent}` : ''}:${id.slice(2, 10)}`;
  const record = await store.createToken(
    { id, name, role: spec.role, tenant: spec.tenant, agent: spec.agent ?? null },
    hashSecret(secret),
    [
      {
        type: 'operator_action',
        actor,
        tenant: spec.tenant === '*' ? null : spec.tenant,
        data: { action: 'token.create', tokenId: id, name, role: spec.role, agent: spec.agent ?? null },
      },
    ],
  );
  return { secret, record };
}

/**
 * Resolves bearer tokens to principals, caching by hash so the hot paths (stream connects,
 * reports) do not hit the store. Tokens cannot be revoked yet, so the cache never goes stale.
 */
export class Authenticator {
  readonly #store: Store;
  readonly #cache = new Map<string, Principal>();

  constructor(store: Store) {
    this.#store = store;
  }

  /**
   * The principal behind an `Authorization` header value.
   * @throws KillpathError `unauthenticated` when the header is missing, malformed or unknown.
   */
  async authenticate(header: string | undefined): Promise<Principal> {
    // The scheme name is case-insensitive (RFC 9110 §11.1); the token is not.
    const m = header === undefined ? null : /^bearer +(\S+) *$/i.exec(header);
    if (m === null) {
      throw new KillpathError('unauthenticated', 'missing bearer token (Authorization: Bearer <token>)');
    }
    const hash = hashSecret(m[1]!);
    const hit = this.#cache.get(hash);
    if (hit) return hit;
    const rec = await this.#store.findToken(hash);
    if (!rec) throw new KillpathError('unauthenticated', 'unknown token');
    const p: Principal = {
      tokenId: rec.id,
      name: rec.name,
      role: rec.role,
      tenant: rec.tenant,
      agent: rec.agent,
    };
    this.#cache.set(hash, p);
    return p;
  }
}
