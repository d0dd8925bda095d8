import type { AuditEventOf } from '@killpath/protocol';
import { KillpathError, type Principal } from '@killpath/protocol';
import type { AlertSink } from '../notify.ts';
import type { Logger } from '../log.ts';
import type { PolicyVersion, PolicyStore } from '../store/store.ts';
import { DEFAULT_POLICY } from './default-policy.ts';
import { lineDiff, ruleChanges } from './diff.ts';
import { compilePolicy, type CompiledPolicy } from './policy.ts';

/** The answer to an apply or a rollback. */
export interface ApplyResult {
  /** The active version afterwards (unchanged for a dry run or an identical text). */
  version: number;
  /** True when a new version was stored. */
  created: boolean;
  dryRun: boolean;
  /** The text was identical to the active version's: nothing stored. */
  unchanged: boolean;
  /** Unified line diff from the previous active version. */
  diff: string;
  changes: { added: string[]; removed: string[]; changed: string[] };
  /** The rules of the (new) policy: name, mode and level. */
  rules: { name: string; mode: string; level: string; scope: string }[];
}

/**
 * The policy's versions: loads the active one from the store (installing the default policy
 * as version 1 on an empty store), applies new versions after validating them, rolls back by
 * storing an earlier version's text as a new version, and audits every change
 * (`policy.changed`, with the diff, the rule changes and who made it) in the same transaction.
 */
export class PolicyDesk {
  readonly #store: PolicyStore;
  readonly #alerts: AlertSink;
  readonly #log: Logger;
  #version: PolicyVersion;
  #policy: CompiledPolicy;
  /** The read in flight of {@link PolicyDesk.follow} (one at a time). */
  #following: Promise<boolean> | null = null;
  /** The newest stored version that did not compile here (logged and alerted once). */
  #refused = 0;

  private constructor(
    store: PolicyStore,
    alerts: AlertSink,
    log: Logger,
    version: PolicyVersion,
    policy: CompiledPolicy,
  ) {
    this.#store = store;
    this.#alerts = alerts;
    this.#log = log;
    this.#version = version;
    this.#policy = policy;
  }

  /**
   * Opens the desk on `store`. With `file`, its text becomes the active version unless it
   * already is (so restarting with the same `--policy` file stores nothing new).
   * @throws KillpathError `invalid_request` when `file` does not validate
   */
  static async open(
    store: PolicyStore,
    alerts: AlertSink,
    log: Logger,
    file?: { path: string; source: string },
  ): Promise<PolicyDesk> {
    let v = await store.getPolicy();
    if (v === null) {
      const system: Principal = {
        tokenId: 'killpath',
        name: 'killpath:default',
        role: 'admin',
        tenant: '*',
        agent: null,
      };
      // Replicas starting at once on one empty database: only the first install is kept (the
      // others' find version 1 taken, roll back in their audit callback, and read it).
      v = await putVersion(
        store,
        system,
        DEFAULT_POLICY,
        compilePolicy(DEFAULT_POLICY),
        null,
        null,
        'the default policy, installed on first start',
        undefined,
        undefined,
        1,
      ).catch(async (err: unknown) => {
        const installed = err instanceof InstalledMeanwhile ? await store.getPolicy() : null;
        if (installed === null) throw err;
        return installed;
      });
    }
    let compiled: CompiledPolicy;
    try {
      compiled = compilePolicy(v.source);
    } catch (err) {
      // A stored version that no longer compiles (an older server accepted what this one refuses): fall back, loudly.
      log.error(
        'the active policy does not compile with this version; running the default policy until a valid one is applied',
        { version: v.version, err: (err as Error).message },
      );
      compiled = compilePolicy(DEFAULT_POLICY);
    }
    const desk = new PolicyDesk(store, alerts, log, v, compiled);
    if (file !== undefined) {
      const who: Principal = {
        tokenId: 'serve',
        name: `serve --policy ${file.path}`.slice(0, 200),
        role: 'admin',
        tenant: '*',
        agent: null,
      };
      // Replicas starting at once with one file: the one whose version lost the race follows the
      // winner's and applies again (an identical text then stores nothing).
      for (let attempt = 1; ; attempt++) {
        try {
          await desk.apply(who, file.source, { comment: `applied at startup from ${file.path}` });
          break;
        } catch (err) {
          if (!(err instanceof KillpathError && err.code === 'conflict') || attempt === 5) throw err;
        }
      }
    }
    return desk;
  }

  /** The active version and its compiled policy. */
  get active(): { version: number; policy: CompiledPolicy } {
    return { version: this.#version.version, policy: this.#policy };
  }

  /** The active version as stored. */
  get current(): PolicyVersion {
    return this.#version;
  }

  /**
   * Follows the store: when its latest version is newer than this desk's (another replica applied,
   * rolled back or approved one), loads and compiles it and makes it the active one here, as a
   * local apply would. One small read (the latest version's number) when nothing changed; one read
   * at a time. A version that does not compile (it was validated when applied, so a newer server's
   * text on an older one) is logged and alerted once and the current one kept.
   * @returns true when the active version changed
   * @throws what the store throws (unavailable): the current version stays active
   */
  follow(): Promise<boolean> {
    this.#following ??= this.#follow().finally(() => (this.#following = null));
    return this.#following;
  }

  async #follow(): Promise<boolean> {
    const [latest] = await this.#store.listPolicies(1);
    if (latest === undefined || latest.version <= this.#version.version || latest.version === this.#refused)
      return false;
    const v = await this.#store.getPolicy(latest.version);
    if (v === null || v.version <= this.#version.version) return false;
    let next: CompiledPolicy;
    try {
      next = compilePolicy(v.source);
    } catch (err) {
      this.#refused = v.version;
      const message = (err as Error).message;
      this.#log.error(
        'a policy version stored by another replica does not compile here: keeping the current one',
        {
          version: v.version,
          current: this.#version.version,
          err: message,
        },
      );
      this.#alerts.notify({
        kind: 'policy.changed',
        summary: `policy v${v.version} (applied by ${v.actor}) does not compile on this replica: it keeps running v${this.#version.version}`,
        tenant: null,
        directiveId: null,
        details: { version: v.version, current: this.#version.version, actor: v.actor, err: message },
      });
      return false;
    }
    const prev = this.#version;
    this.#version = v;
    this.#policy = next;
    this.#log.info('policy followed from the store', {
      version: v.version,
      previous: prev.version,
      actor: v.actor,
    });
    return true;
  }

  /**
   * Validates `source` and installs it as a new version (audited `policy.changed`, alerted).
   * `dryRun` validates and diffs without storing. An identical text stores nothing. The diff is
   * against the store's latest version (followed first); a version stored by another replica
   * between that read and this commit makes it a conflict, never a silent overwrite.
   * @throws KillpathError `invalid_request` (details: every problem found), `conflict` (see above)
   */
  async apply(
    p: Principal,
    source: string,
    opts: { comment?: string | null; dryRun?: boolean; rollbackOf?: number } = {},
  ): Promise<ApplyResult> {
    const next = compilePolicy(source);
    await this.follow();
    const prev = this.#version;
    const diff = lineDiff(prev.source, source);
    const changes = ruleChanges(this.#policy, next);
    const rules = next.rules.map((r) => ({
      name: r.name,
      mode: r.mode,
      level: r.action.level,
      scope: r.action.scope,
    }));
    const unchanged = next.digest === prev.digest && opts.rollbackOf === undefined;
    if (opts.dryRun || unchanged)
      return {
        version: prev.version,
        created: false,
        dryRun: opts.dryRun ?? false,
        unchanged,
        diff,
        changes,
        rules,
      };
    const v = await putVersion(
      this.#store,
      p,
      source,
      next,
      prev,
      opts.rollbackOf ?? null,
      opts.comment ?? null,
      diff,
      changes,
      prev.version + 1,
    ).catch(async (err: unknown) => {
      if (!(err instanceof InstalledMeanwhile)) throw err;
      await this.follow().catch(() => false);
      throw new KillpathError(
        'conflict',
        `the policy changed meanwhile (v${prev.version} was not the latest version when this one was stored): apply again over the current version`,
      );
    });
    this.#version = v;
    this.#policy = next;
    this.#log.info('policy changed', {
      version: v.version,
      previous: prev.version,
      actor: p.name,
      ...changes,
    });
    this.#alerts.notify({
      kind: 'policy.changed',
      summary: `policy v${v.version} applied by ${p.name}${opts.rollbackOf !== undefined ? ` (rollback to v${opts.rollbackOf})` : ''}: ${describe(changes)}`,
      tenant: null,
      directiveId: null,
      details: {
        version: v.version,
        previous: prev.version,
        actor: p.name,
        comment: v.comment,
        rollbackOf: v.rollbackOf,
        ...changes,
      },
    });
    return { version: v.version, created: true, dryRun: false, unchanged: false, diff, changes, rules };
  }

  /**
   * Rolls back to `version`: its text becomes a new version (history stays append-only).
   * @throws KillpathError `not_found` for an unknown version, `conflict` when it is the active one
   */
  async rollback(p: Principal, version: number, comment: string): Promise<ApplyResult> {
    await this.follow();
    const old = await this.#store.getPolicy(version);
    if (old === null) throw new KillpathError('not_found', `policy version ${version} not found`);
    if (old.digest === this.#version.digest)
      throw new KillpathError(
        'conflict',
        `policy version ${version} has the same text as the active version ${this.#version.version}`,
      );
    return this.apply(p, old.source, { comment, rollbackOf: version });
  }

  /** Versions newest first (without text). */
  history(limit: number): Promise<Omit<PolicyVersion, 'source'>[]> {
    return this.#store.listPolicies(limit);
  }

  /** How many versions the history holds. */
  count(): Promise<number> {
    return this.#store.countPolicies();
  }

  /** One version with its text. */
  get(version: number): Promise<PolicyVersion | null> {
    return this.#store.getPolicy(version);
  }
}

async function putVersion(
  store: PolicyStore,
  p: Principal,
  source: string,
  next: CompiledPolicy,
  prev: PolicyVersion | null,
  rollbackOf: number | null,
  comment: string | null,
  diff = lineDiff('', source),
  changes = ruleChanges(null, next),
  onlyAsVersion?: number,
): Promise<PolicyVersion> {
  return store.putPolicy({ source, digest: next.digest, actor: p.name, comment, rollbackOf }, (v) => {
    if (onlyAsVersion !== undefined && v.version !== onlyAsVersion) throw new InstalledMeanwhile();
    return [
      {
        type: 'policy.changed',
        actor: p.name,
        tenant: null,
        data: {
          version: v.version,
          previous: prev?.version ?? null,
          digest: v.digest,
          previousDigest: prev?.digest ?? null,
          role: p.role,
          tokenId: p.tokenId,
          comment,
          rollbackOf,
          rules: next.rules.map((r) => `${r.name}:${r.mode}:${r.action.level}@${r.action.scope}`),
          ...changes,
          diff,
        },
      } satisfies AuditEventOf<'policy.changed'>,
    ];
  });
}

/** Another process stored a policy version first (a replica's default install lost the race). */
class InstalledMeanwhile extends Error {}

function describe(c: { added: string[]; removed: string[]; changed: string[] }): string {
  const parts = [
    c.added.length ? `added ${c.added.join(', ')}` : '',
    c.removed.length ? `removed ${c.removed.join(', ')}` : '',
    c.changed.length ? `changed ${c.changed.join(', ')}` : '',
  ].filter(Boolean);
  return parts.length ? parts.join('; ') : 'rules unchanged (limits, deadman or params may differ)';
}
