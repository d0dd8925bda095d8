import { existsSync, readFileSync, renameSync, rmSync, writeFileSync, chmodSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { KillpathError, type Principal } from '@killpath/protocol';
import type { Logger } from '../log.ts';
import type { TokenStore, TokenRecord } from '../store/store.ts';
import { requireAct, requireHuman } from './policy.ts';
import { hashSecret, mintToken, revokedEvents, type Authenticator, type TokenSpec } from './tokens.ts';

/** Longest lifetime a token may be given, in ms (ten years). */
export const MAX_TOKEN_TTL_MS = 10 * 366 * 86_400_000;

/** Default lifetime of an agent token minted for an operator's launcher, in ms (8 h: a shift). */
export const LAUNCHER_TOKEN_TTL_MS = 8 * 3_600_000;

/** Longest lifetime of an agent token minted for an operator's launcher, in ms (24 h). */
export const MAX_LAUNCHER_TOKEN_TTL_MS = 24 * 3_600_000;

/** What a new token asks for: the spec plus a lifetime (`ttlMs`) or an end (`expiresAt`), not both. */
export interface TokenRequest extends Omit<TokenSpec, 'expiresAt'> {
  ttlMs?: number | undefined;
  expiresAt?: string | undefined;
}

/**
 * The token lifecycle behind the API: mint (with an expiry), list (never a secret), revoke, and
 * rotate the admin token written at first start. A revocation is committed to the store with
 * its audit records, then takes effect at once in this process: the principal cache forgets
 * the token and every stream opened with it (worker, launcher) is closed, so its next request
 * and its reconnect answer 401 "token revoked".
 */
export class TokenDesk {
  readonly #store: TokenStore;
  readonly #auth: Authenticator;
  readonly #log: Logger;
  readonly #closeStreams: (tokenId: string) => number;
  readonly #adminTokenFile: string | null;
  readonly #claimLauncher: (who: { tenant: string; agent: string }, launcherId: string) => Promise<void>;

  constructor(deps: {
    store: TokenStore;
    auth: Authenticator;
    log: Logger;
    /** Closes every open stream of a token; returns how many. */
    closeStreams: (tokenId: string) => number;
    /** `<dataDir>/admin.token`, which `rotateAdmin` replaces; null when this control plane has none. */
    adminTokenFile?: string | null;
    /**
     * Claims launcher id `launcherId` of the tenant for the agent (the first agent to use an id
     * owns it); throws `conflict` when another agent owns it. Absent: launcher tokens are not offered.
     */
    claimLauncher?: (who: { tenant: string; agent: string }, launcherId: string) => Promise<void>;
  }) {
    this.#store = deps.store;
    this.#auth = deps.auth;
    this.#log = deps.log;
    this.#closeStreams = deps.closeStreams;
    this.#adminTokenFile = deps.adminTokenFile ?? null;
    this.#claimLauncher =
      deps.claimLauncher ??
      (() => Promise.reject(new KillpathError('conflict', 'this control plane mints no launcher tokens')));
  }

  /**
   * Mints the agent token a launcher hands its agent, for a person who may not mint tokens: an
   * operator of the agent's tenant (or an admin) starting a replacement session. The token is
   * an agent token of `tenant/agent`, bound to `launcherId` (it opens that launcher's stream
   * and reports for it, no other's), and short-lived: `ttlMs` (default
   * {@link LAUNCHER_TOKEN_TTL_MS}, at most {@link MAX_LAUNCHER_TOKEN_TTL_MS}). The launcher id
   * is claimed for the agent first. Audited as `operator_action` `token.create` naming the
   * person, the agent, the launcher and the expiry (never the secret).
   * @throws KillpathError `forbidden` for an agent, a viewer or an operator of the tenant who may
   *   not act; `not_found` for another tenant's operator; `conflict` when another agent of the
   *   tenant owns the launcher id
   */
  async mintForLauncher(
    p: Principal,
    launcherId: string,
    req: { tenant: string; agent: string; ttlMs?: number | undefined },
  ): Promise<{ secret: string; record: TokenRecord }> {
    requireHuman(p);
    if (p.role === 'viewer')
      throw new KillpathError(
        'forbidden',
        'viewers may not start launchers (an operator or admin token may)',
      );
    requireAct(p, req.tenant, `tenant ${req.tenant}`);
    const ttlMs = req.ttlMs ?? LAUNCHER_TOKEN_TTL_MS;
    if (ttlMs > MAX_LAUNCHER_TOKEN_TTL_MS)
      throw new KillpathError('invalid_request', 'a launcher token lives at most 24 h');
    await this.#claimLauncher({ tenant: req.tenant, agent: req.agent }, launcherId);
    return mintToken(
      this.#store,
      {
        role: 'agent',
        tenant: req.tenant,
        agent: req.agent,
        launcher: launcherId,
        mintedBy: p.tokenId,
        name: `launcher:${launcherId} for ${req.tenant}/${req.agent} by ${p.name}`.slice(0, 200),
        expiresAt: this.#expiry(ttlMs, undefined),
      },
      p.name,
    );
  }

  /**
   * Mints a token (admins only); the secret is in the answer once.
   * @throws KillpathError `forbidden` for a non-admin, `invalid_request` for a bad spec or expiry
   */
  async create(p: Principal, req: TokenRequest): Promise<{ secret: string; record: TokenRecord }> {
    if (p.role !== 'admin') throw new KillpathError('forbidden', 'only admins mint tokens');
    const { ttlMs, expiresAt: end, ...spec } = req;
    return mintToken(this.#store, { ...spec, expiresAt: this.#expiry(ttlMs, end) }, p.name);
  }

  /**
   * Ends the agent token minted for launcher `launcherId` (`mintForLauncher`), at the launcher's
   * own request when it exits: asked with that token itself, so a token outlives its launcher by
   * no more than a failed request. Audited as `token.revoked` by `launcher:<id>`; the token's
   * streams are closed.
   * @throws KillpathError `forbidden` for a token not minted for a launcher, `not_found` for
   *   another launcher's id, `conflict` when it was already revoked
   */
  async endLauncherToken(p: Principal, launcherId: string): Promise<TokenRecord> {
    if (p.launcher === undefined)
      throw new KillpathError(
        'forbidden',
        'only a token minted for a launcher (POST /v1/launchers/{id}/token) ends with it',
      );
    if (p.launcher !== launcherId) throw new KillpathError('not_found', `launcher ${launcherId} not found`);
    const actor = `launcher:${launcherId}`;
    const reason = 'the launcher it was minted for ended';
    const revoked = await this.#store.revokeToken(p.tokenId, actor, reason, (r) =>
      revokedEvents(r, actor, reason).filter((e) => e.type === 'token.revoked'),
    );
    if (revoked === null) throw new KillpathError('conflict', `token ${p.tokenId} was already revoked`);
    this.#takeEffect(revoked);
    return revoked;
  }

  /** The expiry of a new token, from a lifetime or an end, checked against the clock. */
  #expiry(ttlMs: number | undefined, end: string | undefined): string | null {
    if (ttlMs !== undefined && end !== undefined)
      throw new KillpathError('invalid_request', 'give a lifetime (ttl) or an end (expiresAt), not both');
    const now = this.#auth.now();
    if (ttlMs !== undefined) return new Date(now + ttlMs).toISOString();
    if (end === undefined) return null;
    const at = Date.parse(end);
    if (Number.isNaN(at)) throw new KillpathError('invalid_request', `expiresAt "${end}" is not a time`);
    if (at <= now)
      throw new KillpathError('invalid_request', `expiresAt ${end} is not in the future (a token must live)`);
    if (at - now > MAX_TOKEN_TTL_MS)
      throw new KillpathError('invalid_request', 'a token lives at most ten years');
    return new Date(at).toISOString();
  }

  /** Tokens the principal may manage (admins: all; operators: their tenant's), oldest first, without secrets. */
  async list(p: Principal): Promise<TokenRecord[]> {
    requireHuman(p);
    if (p.role === 'viewer') throw new KillpathError('forbidden', 'viewers may not list tokens');
    return this.#store.listTokens(p.tenant === '*' ? {} : { tenant: p.tenant });
  }

  /**
   * Revokes a token at once (admins: any; operators: their tenant's non-admin tokens), audited
   * (`operator_action`, `token.revoked`); its cached principal is dropped and its streams closed.
   * @throws KillpathError `not_found` for a token the principal may not see, `conflict` when already revoked
   */
  async revoke(
    p: Principal,
    id: string,
    reason: string,
  ): Promise<{ token: TokenRecord; streamsClosed: number }> {
    requireHuman(p);
    const t = await this.#store.getToken(id);
    if (t === null || (p.tenant !== '*' && t.tenant !== p.tenant))
      throw new KillpathError('not_found', `token ${id} not found`);
    requireAct(p, t.tenant === '*' ? null : t.tenant, `token ${id}`);
    if (p.role === 'viewer') throw new KillpathError('forbidden', 'viewers may not revoke tokens');
    const revoked = await this.#store.revokeToken(id, p.name, reason, (r) =>
      revokedEvents(r, p.name, reason),
    );
    if (revoked === null) {
      const now = await this.#store.getToken(id);
      throw new KillpathError('conflict', `token ${id} was already revoked at ${now?.revokedAt ?? '?'}`);
    }
    let streamsClosed = this.#takeEffect(revoked);
    // The launcher tokens it minted go with it: revoking a person's token ends what it started.
    const cascade = `the token that minted it (${id}) was revoked: ${reason}`;
    for (const t of await this.#store.listTokens(mintedTokensQuery(revoked))) {
      if (t.mintedBy !== id || t.revokedAt !== null) continue;
      const minted = await this.#store.revokeToken(t.id, p.name, cascade, (r) =>
        revokedEvents(r, p.name, cascade),
      );
      if (minted !== null) streamsClosed += this.#takeEffect(minted);
    }
    return { token: revoked, streamsClosed };
  }

  #takeEffect(t: TokenRecord): number {
    this.#auth.invalidate(t.id);
    const closed = this.#closeStreams(t.id);
    this.#log.info('token revoked', {
      tokenId: t.id,
      name: t.name,
      role: t.role,
      by: t.revokedBy,
      streamsClosed: closed,
    });
    return closed;
  }

  /**
   * Replaces the admin token of `admin.token`: mints a new admin token and revokes the file's old
   * one in one transaction, and rewrites the file (mode 0600, by rename, so it is never partly
   * written nor readable by others). The new secret is written to a temporary file before the
   * commit, so a failure leaves the old token working.
   * @throws KillpathError `forbidden` for a non-admin, `conflict` when this control plane has no admin.token file
   */
  async rotateAdmin(
    p: Principal,
    reason: string,
  ): Promise<{ secret: string; record: TokenRecord; revoked: string | null; file: string }> {
    if (p.role !== 'admin') throw new KillpathError('forbidden', 'only admins rotate the admin token');
    const file = this.#adminTokenFile;
    if (file === null)
      throw new KillpathError('conflict', 'this control plane keeps no admin.token file to rotate');
    const oldSecret = existsSync(file) ? readFileSync(file, 'utf8').trim() : '';
    const old = oldSecret === '' ? null : await this.#store.findToken(hashSecret(oldSecret));
    const tmp = `${file}.${randomBytes(6).toString('hex')}.tmp`;
    // Proves the directory writable before the commit: a rotation that could not write the file
    // would revoke the only admin token the operator holds.
    writeFileSync(tmp, '', { mode: 0o600 });
    let minted: { secret: string; record: TokenRecord };
    try {
      minted = await mintToken(
        this.#store,
        { role: 'admin', tenant: '*', name: 'bootstrap-admin' },
        p.name,
        old !== null && old.revokedAt === null ? { token: old, reason } : undefined,
      );
      try {
        writeFileSync(tmp, `${minted.secret}\n`, { mode: 0o600 });
        chmodSync(tmp, 0o600);
        renameSync(tmp, file);
      } catch (err) {
        // Committed: the secret is still in the answer, so the caller is not locked out.
        this.#log.error('admin token rotated but admin.token could not be rewritten', {
          file,
          err: (err as NodeJS.ErrnoException).code ?? String(err),
        });
      }
    } finally {
      rmSync(tmp, { force: true });
    }
    const revoked = old !== null && old.revokedAt === null ? old.id : null;
    if (revoked !== null) {
      const now = await this.#store.getToken(revoked);
      if (now !== null) this.#takeEffect(now);
    }
    this.#log.info('admin token rotated', { tokenId: minted.record.id, revoked, by: p.name });
    return { ...minted, revoked, file };
  }
}

/** Where the tokens a token minted live: an operator's in its tenant; an admin's in any. */
function mintedTokensQuery(t: TokenRecord): { tenant?: string } {
  return t.tenant === '*' ? {} : { tenant: t.tenant };
}
