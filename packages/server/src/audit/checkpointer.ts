import { KillpathError, type AuditEventOf } from '@killpath/protocol';
import type { SignedCheckpoint } from '@killpath/protocol';
import type { Logger } from '../log.ts';
import type { AlertSink } from '../notify.ts';
import type { AuditStore, LeaseFence } from '../store/store.ts';
import { recordLeaf, rotateSigningKey, signCheckpoint, type SigningKey } from './checkpoint.ts';
import { MerkleFrontier } from './merkle.ts';

/** Actor of the records the checkpointer appends. */
export const CHECKPOINTER_ACTOR = 'killpath:checkpointer';

/** Options of {@link Checkpointer}. */
export interface CheckpointerOptions {
  store: AuditStore;
  key: SigningKey;
  /** Where the signing key lives, so {@link Checkpointer.rotate} can replace it. Null: not rotatable. */
  keyPath: string | null;
  alerts: AlertSink;
  log: Logger;
  /** Sign once this many records arrived since the last checkpoint. Default 1000. */
  everyRecords?: number;
  /** Sign when this long (ms) passed since the last checkpoint and records arrived. Default 60 000. */
  everyMs?: number;
  /** How often new records are read and hashed, in ms. Default 1000. */
  tickMs?: number;
  /** Wall clock in ms (tests). Default `Date.now`. */
  now?: () => number;
  /**
   * The leader lease's fence each checkpoint is stored under (the store refuses it from a holder
   * deposed meanwhile). Absent, or returning null: stored unfenced.
   */
  fence?: () => LeaseFence | null;
}

/** Records hashed per turn of the event loop while catching up. */
const BATCH = 100;

/**
 * Signs checkpoints of the audit log: every `everyRecords` records or `everyMs` ms (when there
 * are new records), it signs the log's size and RFC 6962 tree hash with the Ed25519 key, stores
 * the checkpoint (with an `audit.checkpoint` record, so the log itself lists its signed heads)
 * and sends it to the alert sink (webhooks), so copies live off this machine's disk.
 *
 * It keeps the tree's right edge ({@link MerkleFrontier}) and hashes each record once, reading
 * new records in batches between turns of the event loop: the kill path never waits on it.
 * On start it resumes from the latest stored checkpoint's frontier; a log shorter than that
 * checkpoint (truncated or restored) raises an alert and is hashed again from the first record.
 */
export class Checkpointer {
  readonly #o: Required<Omit<CheckpointerOptions, 'keyPath' | 'fence'>> &
    Pick<CheckpointerOptions, 'fence'> & { keyPath: string | null };
  #key: SigningKey;
  #origin = '';
  #frontier = new MerkleFrontier();
  #lastSeq = 0;
  /** Records other than `audit.checkpoint` hashed since the last checkpoint. */
  #pending = 0;
  #latest: SignedCheckpoint | null = null;
  #signedAt = 0;
  #timer: ReturnType<typeof setInterval> | null = null;
  #chain: Promise<unknown> = Promise.resolve();
  #stopped = false;
  #running = false;

  constructor(o: CheckpointerOptions) {
    this.#o = {
      everyRecords: 1000,
      everyMs: 60_000,
      tickMs: 1000,
      now: Date.now,
      ...o,
    };
    this.#key = o.key;
  }

  /** The key checkpoints are signed with now. */
  get key(): SigningKey {
    return this.#key;
  }

  /** The latest checkpoint signed (or loaded), or null before the first. */
  get latest(): SignedCheckpoint | null {
    return this.#latest;
  }

  /** True between {@link Checkpointer.start} and {@link Checkpointer.stop}: this process signs checkpoints. */
  get signing(): boolean {
    return this.#running;
  }

  /**
   * Registers the key (it becomes the current one, the others retired), resumes the tree from the
   * stored frontier (whoever signed it), catches up and starts ticking. Started again after a
   * stop (a replica elected again), it resumes from the latest stored checkpoint; while running it
   * does nothing.
   */
  async start(): Promise<void> {
    if (this.#running) return;
    await this.#chain.catch(() => {});
    const { store } = this.#o;
    this.#stopped = false;
    this.#frontier = new MerkleFrontier();
    this.#lastSeq = 0;
    this.#pending = 0;
    this.#latest = null;
    this.#signedAt = 0;
    this.#origin = await store.logOrigin();
    await this.#registerKey('audit.key.created');
    const stored = await store.latestCheckpoint();
    const [head] = await store.listAudit({ desc: true, limit: 1 });
    const size = head?.seq ?? 0;
    if (stored !== null && stored.checkpoint.size > size) {
      this.#o.alerts.notify({
        kind: 'audit.inconsistent',
        summary: `the audit log has ${size} records but a stored checkpoint covers ${stored.checkpoint.size}: records were deleted from the end or an older copy of the database was restored`,
        tenant: null,
        directiveId: null,
        details: { records: size, checkpoint: stored.checkpoint },
      });
    } else if (stored !== null) {
      try {
        this.#frontier = MerkleFrontier.from(stored.checkpoint.size, stored.frontier);
        this.#lastSeq = stored.checkpoint.size;
        this.#latest = stored.checkpoint;
        this.#signedAt = Date.parse(stored.checkpoint.timestamp);
      } catch {
        this.#frontier = new MerkleFrontier();
      }
    }
    this.#publish();
    this.#running = true;
    try {
      await this.tick();
    } catch (err) {
      this.#running = false;
      throw err;
    }
    this.#timer = setInterval(() => void this.tick(), this.#o.tickMs);
    this.#timer.unref();
  }

  /**
   * Lists this process's key as known, not as the current one (a replica that does not sign
   * checkpoints): the consistency heads it signs ({@link Checkpointer.signHead}) then verify with
   * the listed keys. Does nothing when the key is listed already.
   */
  async listKey(): Promise<void> {
    const info = this.#key.info;
    await this.#o.store.listAuditKey(info, [
      {
        type: 'operator_action',
        actor: CHECKPOINTER_ACTOR,
        tenant: null,
        data: { action: 'audit.key.listed', keyId: info.keyId, algorithm: info.algorithm },
      },
    ]);
  }

  /** Reads and hashes new records and signs when a checkpoint is due. Calls are serialised; not running, does nothing. */
  tick(): Promise<void> {
    return this.#serial(async () => {
      if (!this.#running) return;
      await this.#pump();
      if (this.#stopped) return;
      const due =
        this.#pending >= this.#o.everyRecords ||
        (this.#pending > 0 && this.#o.now() - this.#signedAt >= this.#o.everyMs);
      if (due) await this.#sign();
    });
  }

  /** Hashes every record written so far and signs a checkpoint of them now (when there are new ones, or `force`). */
  checkpointNow(force = false): Promise<SignedCheckpoint> {
    return this.#serial(async () => {
      this.#mustSign();
      await this.#pump();
      if (force || this.#latest === null || this.#pending > 0) await this.#sign();
      return this.#latest!;
    });
  }

  /**
   * Signs the log as it is now without storing it (the head of a consistency answer). The tree is
   * the signer's own; a caller verifying a kept checkpoint gets the head from the verification.
   */
  signHead(size: number, rootHash: string, origin = this.#origin): SignedCheckpoint {
    return signCheckpoint(this.#key, {
      origin,
      size,
      rootHash,
      timestamp: new Date(this.#o.now()).toISOString(),
    });
  }

  /**
   * Replaces the signing key: a new Ed25519 key is written over the key file (mode 0600), the
   * old public key stays listed as retired (so checkpoints it signed still verify), the change is
   * audited, and a checkpoint is signed with the new key at once.
   * @throws Error when this checkpointer has no key file
   */
  rotate(
    actor: string,
    reason: string,
  ): Promise<{ previous: string; current: string; checkpoint: SignedCheckpoint }> {
    return this.#serial(async () => {
      this.#mustSign();
      if (this.#o.keyPath === null) throw new Error('this control plane has no signing key file to rotate');
      const previous = this.#key.info.keyId;
      this.#key = rotateSigningKey(this.#o.keyPath, new Date(this.#o.now()));
      await this.#registerKey('audit.key.rotated', actor, { previous, reason });
      await this.#pump();
      await this.#sign();
      return { previous, current: this.#key.info.keyId, checkpoint: this.#latest! };
    });
  }

  /**
   * Stops ticking; with `final`, signs what arrived since the last checkpoint first. Without it
   * (a deposed leader), a tick in progress signs nothing more. Not running: does nothing.
   */
  async stop(final = true): Promise<void> {
    if (this.#timer !== null) clearInterval(this.#timer);
    this.#timer = null;
    if (final && this.#running && !this.#stopped) await this.tick().catch(() => {});
    this.#stopped = true;
    this.#running = false;
    await this.#chain.catch(() => {});
  }

  /** Refuses to sign on a process that is not the signer (another replica holds the leader lease). */
  #mustSign(): void {
    if (!this.#running)
      throw new KillpathError(
        'conflict',
        'this control plane does not sign audit checkpoints now: the replica holding the leader lease does (send the request to it)',
      );
  }

  #serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.#chain.then(fn, fn);
    this.#chain = run.catch((err: unknown) => {
      this.#o.log.error('audit checkpoint failed', { err: err instanceof Error ? err.message : String(err) });
    });
    return run;
  }

  async #registerKey(
    action: string,
    actor = CHECKPOINTER_ACTOR,
    extra: Record<string, unknown> = {},
  ): Promise<void> {
    const info = this.#key.info;
    await this.#o.store.putAuditKey(info, [
      {
        type: 'operator_action',
        actor,
        tenant: null,
        data: { action, keyId: info.keyId, algorithm: info.algorithm, ...extra },
      },
    ]);
  }

  async #pump(): Promise<void> {
    while (!this.#stopped) {
      const records = await this.#o.store.listAudit({ afterSeq: this.#lastSeq, limit: BATCH });
      for (const r of records) {
        this.#frontier.push(recordLeaf(r));
        this.#lastSeq = r.seq;
        if (r.type !== 'audit.checkpoint') this.#pending += 1;
      }
      if (records.length < BATCH) return;
      await new Promise((ok) => setImmediate(ok));
    }
  }

  async #sign(): Promise<void> {
    const checkpoint = this.signHead(this.#frontier.size, this.#frontier.root().toString('hex'));
    const fence = this.#o.fence?.() ?? null;
    await this.#o.store.putCheckpoint(
      { checkpoint, frontier: this.#frontier.toJSON() },
      [
        {
          type: 'audit.checkpoint',
          actor: CHECKPOINTER_ACTOR,
          tenant: null,
          data: {
            size: checkpoint.size,
            rootHash: checkpoint.rootHash,
            keyId: checkpoint.keyId,
            signature: checkpoint.signature,
            signedAt: checkpoint.timestamp,
          },
        } satisfies AuditEventOf<'audit.checkpoint'>,
      ],
      fence,
    );
    this.#latest = checkpoint;
    this.#signedAt = this.#o.now();
    this.#pending = 0;
    this.#publish();
    this.#o.alerts.notify({
      kind: 'audit.checkpoint',
      summary: `audit checkpoint: ${checkpoint.size} records, root ${checkpoint.rootHash.slice(0, 16)}…, key ${checkpoint.keyId}`,
      tenant: null,
      directiveId: null,
      details: { checkpoint },
    });
  }

  #publish(): void {
    this.#o.alerts.checkpoint = this.#latest;
  }
}
