/**
 * Durable group commit for the embedded store, with the fsync off the event loop.
 *
 * The store's connection runs with `synchronous = NORMAL` and no automatic checkpoint: in WAL
 * mode a `COMMIT` then only appends the transaction's frames to the write-ahead log (tens of
 * microseconds, no fsync), while SQLite still syncs the WAL header when the WAL restarts after a
 * checkpoint (`OFF` would skip that sync, which can corrupt the database on power loss). {@link WalSync.sync} makes every frame appended so far durable with one `fsync` of the
 * WAL file on libuv's thread pool, and the store answers a transaction's callers only once the
 * fsync that started after its commit has finished: the same durability as `synchronous = FULL`
 * (nobody hears "committed" before the frames are on disk), while the event loop parses and
 * decides the next batch. The commits of one turn share one fsync (group commit); up to
 * {@link MAX_FSYNCS} fsyncs overlap, and commits beyond that share the next one.
 *
 * Checkpoints copy the WAL into the database file. They run with `synchronous = FULL` (the WAL
 * is synced before the copy, the database file before the WAL may be reused), on a connection of
 * a worker thread ({@link WalSync.checkpoint}), so the copy and its fsyncs stay off the loop too.
 * Under continuous writes such a checkpoint never catches up completely, so once the WAL holds
 * more than {@link FINISH_FRAMES} frames the store finishes one on its own connection.
 */
import { closeSync, fsync, fsyncSync, openSync } from 'node:fs';
import { KillpathError } from '@killpath/protocol';
import { dirname } from 'node:path';
import { Worker } from 'node:worker_threads';

/** Most WAL fsyncs running at once (libuv's pool has 4 threads by default: one stays free). */
export const MAX_FSYNCS = 3;

/** Commits between two background checkpoints. */
export const CHECKPOINT_EVERY = 200;

/** WAL frames (pages) past which the store finishes a checkpoint itself (about 40 MB at 4 KiB). */
export const FINISH_FRAMES = 10_000;

/** The worker's module, beside this one (`.ts` when running from source, `.js` when built). */
const WORKER_URL = new URL(
  import.meta.url.endsWith('.ts') ? './sqlite-checkpoint-worker.ts' : './sqlite-checkpoint-worker.js',
  import.meta.url,
);

/** An fsync with `node:fs`'s callback signature. */
export type FsyncFn = (fd: number, callback: (err: NodeJS.ErrnoException | null) => void) => void;

/** What `PRAGMA wal_checkpoint` answers: frames in the WAL and frames copied to the database. */
export interface CheckpointResult {
  busy: number;
  log: number;
  checkpointed: number;
}

/** The WAL of one database file: its fsync and its background checkpoints. */
export class WalSync {
  readonly #walPath: string;
  readonly #dbPath: string;
  #fd: number | null = null;
  #next: Promise<void> | null = null;
  #worker: Worker | null = null;
  #checkpointing = false;
  #commits = 0;
  #closed = false;

  readonly #fsyncFn: FsyncFn;
  readonly #onFailure: (err: KillpathError) => void;
  /** Set by the first failed fsync, for good: see {@link WalSync.failed}. */
  #failed: KillpathError | null = null;

  /**
   * @param dbPath the database file (its WAL is `<dbPath>-wal`)
   * @param fsyncFn the fsync to run (a test seam; default `node:fs` `fsync`)
   * @param onFailure called once, with the error, when the first fsync fails
   */
  constructor(dbPath: string, fsyncFn: FsyncFn = fsync, onFailure: (err: KillpathError) => void = () => {}) {
    this.#dbPath = dbPath;
    this.#fsyncFn = fsyncFn;
    this.#onFailure = onFailure;
    this.#walPath = `${dbPath}-wal`;
    // The WAL and the database file exist by now: make their directory entries durable once.
    syncDir(dirname(dbPath));
  }

  /**
   * Resolves once every frame appended to the WAL before this call is on disk: an fsync that
   * starts now. Up to {@link MAX_FSYNCS} run at once (overlapping fsyncs of one file often end
   * together, which halves a commit's wait on a busy disk); past that, callers share the next
   * one, which starts when one ends.
   */
  sync(): Promise<void> {
    if (this.#failed !== null) return Promise.reject(this.#failed);
    if (this.#inFlight < MAX_FSYNCS) return this.#start();
    this.#next ??= new Promise<void>((resolve, reject) => (this.#nextSettle = { resolve, reject }));
    return this.#next;
  }

  #inFlight = 0;
  /** Settles when every sync started so far has been answered (never rejects). */
  #answered: Promise<void> = Promise.resolve();
  #nextSettle: { resolve(): void; reject(err: unknown): void } | null = null;

  /**
   * The error every sync has rejected with since the first fsync failed, or null. After a failed
   * fsync the kernel may have dropped the dirty pages and a later fsync can succeed without them
   * (Linux), so nothing written since the last good fsync can be called durable again: the store
   * is failed for good and the process must restart to reload what is on disk.
   */
  get failed(): KillpathError | null {
    return this.#failed;
  }

  #fail(err: unknown): KillpathError {
    if (this.#failed === null) {
      const why = err instanceof Error ? err.message : String(err);
      this.#failed = new KillpathError(
        'unavailable',
        `the store's disk failed (fsync of ${this.#walPath}: ${why}); nothing written since can be called durable: the control plane must restart to reload from disk`,
      );
      this.#onFailure(this.#failed);
    }
    return this.#failed;
  }

  #start(): Promise<void> {
    if (this.#failed !== null) return Promise.reject(this.#failed);
    this.#inFlight += 1;
    // A sync that ends after another failed is refused too: the failed one may have lost pages.
    const p = this.#fsync().then(
      () => {
        if (this.#failed !== null) throw this.#failed;
      },
      (err: unknown) => {
        throw this.#fail(err);
      },
    );
    // Answered in the order the fsyncs started (the store's commits' order, so hub deltas go out
    // in rev order), while the fsyncs themselves still overlap; checked again once it is its turn.
    const inOrder = this.#answered
      .then(() => p)
      .then(() => {
        if (this.#failed !== null) throw this.#failed;
      });
    this.#answered = inOrder.catch(() => {});
    const done = (): void => {
      this.#inFlight -= 1;
      const waiting = this.#nextSettle;
      if (waiting === null) return;
      this.#next = null;
      this.#nextSettle = null;
      this.#start().then(waiting.resolve, waiting.reject);
    };
    p.then(done, done);
    return inOrder;
  }

  /** Resolves once nothing is being synced (for close). */
  async idle(): Promise<void> {
    while (this.#inFlight > 0) await new Promise((resolve) => setImmediate(resolve));
  }

  #fsync(): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      let fd: number;
      try {
        fd = this.#walFd();
      } catch (err) {
        reject(err instanceof Error ? err : new Error(String(err)));
        return;
      }
      this.#fsyncFn(fd, (err) => (err ? reject(err) : resolve()));
    });
  }

  /**
   * The WAL's descriptor, opened once: while the store's connection is open SQLite keeps the
   * same file (it is reset and overwritten in place, never replaced), so no stat per sync.
   */
  #walFd(): number {
    this.#fd ??= openSync(this.#walPath, 'r');
    return this.#fd;
  }

  /**
   * Counts a commit; every {@link CHECKPOINT_EVERY} commits a checkpoint runs in the worker.
   * `finish` is called with its result when the WAL still holds more than {@link FINISH_FRAMES}
   * frames it could not copy (writes went on meanwhile).
   */
  committed(finish: () => void): void {
    this.#commits += 1;
    if (this.#commits < CHECKPOINT_EVERY || this.#checkpointing || this.#closed) return;
    this.#commits = 0;
    this.#checkpointing = true;
    void this.checkpoint()
      .then((r) => {
        if (r.log > FINISH_FRAMES && !this.#closed) finish();
      })
      .catch(() => {
        // A failed background checkpoint leaves the WAL longer, nothing else: the next one retries.
      })
      .finally(() => (this.#checkpointing = false));
  }

  /**
   * One `PRAGMA wal_checkpoint(PASSIVE)` on the worker's own connection (`synchronous = FULL`).
   * Rejects if the worker errors or exits first (the next call starts a new worker), so a dead
   * worker never leaves a checkpoint pending and the WAL growing.
   */
  checkpoint(): Promise<CheckpointResult> {
    return new Promise((resolve, reject) => {
      if (this.#worker === null) {
        const started = new Worker(WORKER_URL, { workerData: { path: this.#dbPath } });
        started.unref();
        const gone = (): void => {
          if (this.#worker === started) this.#worker = null;
        };
        started.on('error', gone);
        started.on('exit', gone);
        this.#worker = started;
      }
      const w = this.#worker;
      const settle = (): void => {
        w.off('message', onMessage);
        w.off('error', onError);
        w.off('exit', onExit);
      };
      const onMessage = (m: { ok: true; result: CheckpointResult } | { ok: false; error: string }): void => {
        settle();
        if (m.ok) resolve(m.result);
        else reject(new Error(m.error));
      };
      const onError = (err: Error): void => {
        settle();
        reject(err);
      };
      const onExit = (code: number): void => {
        settle();
        reject(new Error(`the checkpoint worker exited (code ${code}) before it answered`));
      };
      w.on('message', onMessage);
      w.on('error', onError);
      w.on('exit', onExit);
      w.postMessage('checkpoint');
    });
  }

  /** Waits for the last fsync, stops the worker and closes the WAL descriptor. */
  async close(): Promise<void> {
    this.#closed = true;
    await this.idle();
    await this.#worker?.terminate();
    this.#worker = null;
    if (this.#fd !== null) closeSync(this.#fd);
    this.#fd = null;
  }
}

/** fsync of a directory (some platforms refuse it; the file syncs still hold). */
function syncDir(dir: string): void {
  let fd: number | null = null;
  try {
    fd = openSync(dir, 'r');
    fsyncSync(fd);
  } catch {
    // Not supported here.
  } finally {
    if (fd !== null) closeSync(fd);
  }
}
