import type { Clock, Directive } from '@killpath/protocol';
import { systemClock } from '@killpath/protocol';
import type { Doorbell } from './doorbell.ts';
import type { Logger } from './log.ts';
import type { DirectiveStore, SwitchboardChange } from './store/store.ts';

/** What a view reads: the switchboard once at start, then the rev log. */
export type ViewSource = Pick<DirectiveStore, 'switchboard' | 'changesSince'>;

/** Options of {@link SwitchboardView}. */
export interface SwitchboardViewOptions {
  /** Rings when some process committed (default: none; then only local commits and {@link SwitchboardView.catchUp} move the view). */
  doorbell?: Doorbell;
  /** Monotonic time and timers for the poll and for vouching (default the system clock). */
  clock?: Clock;
  /**
   * Half the workers' lease, in ms: the view vouches for what it holds only while its last
   * successful read of the store is at most this old and its doorbell has not been down longer
   * (default 1,500: half the SDK's default 3 s lease). Ignored with an in-process doorbell,
   * which always vouches.
   */
  vouchMs?: number;
  /**
   * Interval of the safety-net poll, in ms (default a third of `vouchMs`, so a poll answered in
   * time keeps the view vouching even when nothing rings; none with an in-process doorbell).
   */
  pollMs?: number;
  /** Most changes read at once (default 1,000). */
  batch?: number;
  log?: Logger;
}

/** Called with each change the view applies, synchronously, in rev order, each rev once. */
export type ChangeListener = (change: SwitchboardChange) => void;

/**
 * The one in-memory switchboard of this process: the active directives and the rev they hold at.
 * It is built from the store at {@link SwitchboardView.start} and moves only by applying the
 * store's changes in rev order (`changesSince`), never skipping a rev: a change that does not
 * follow the view's rev is not applied, the view reads the store instead; a change it already
 * holds is ignored. A commit of this process takes the same path
 * ({@link SwitchboardView.committed}): applied at once when it is the next rev (no read),
 * otherwise read. A doorbell says when another process committed; a poll is the safety net.
 *
 * Every reader of the switchboard in the control plane (the hub's deltas, fleet flags, launcher
 * orders, escalation, `ControlPlane.active()`) reads this view or listens to its changes.
 *
 * Vouching: a view whose doorbell is another process's (PostgreSQL) vouches for its switchboard
 * only while its last successful read is at most `vouchMs` old and its doorbell has not been down
 * for longer; past that it says so ({@link SwitchboardView.onVouch}), and vouches again after a
 * successful catch-up with the doorbell listening.
 */
export class SwitchboardView {
  readonly #source: ViewSource;
  readonly #doorbell: Doorbell | null;
  readonly #clock: Clock;
  readonly #log: Logger | null;
  readonly #batch: number;
  readonly #vouchMs: number | null;
  readonly #pollMs: number | null;
  readonly #active = new Map<string, Directive>();
  #sorted: Directive[] | null = [];
  #rev = 0;
  readonly #listeners: ChangeListener[] = [];
  readonly #vouchListeners: ((vouching: boolean) => void)[] = [];
  /** The read under way, if any (reads run one at a time). */
  #reading: Promise<void> | null = null;
  /** A ring came while a read was under way: read again when it ends (it may have started before the commit). */
  #again = false;
  #listener: { close(): Promise<void> } | null = null;
  #listening = false;
  /** Since when the doorbell is down (monotonic ms), null while it listens. */
  #downSince: number | null = null;
  /** When the last read the store answered began (monotonic ms): what the view holds is at least that fresh. */
  #lastRead: number;
  #vouching = true;
  #vouchTimer: unknown = null;
  #pollTimer: unknown = null;
  #stopped = false;
  #stopping: Promise<void> | null = null;

  constructor(source: ViewSource, opts: SwitchboardViewOptions = {}) {
    this.#source = source;
    this.#doorbell = opts.doorbell ?? null;
    this.#clock = opts.clock ?? systemClock;
    this.#log = opts.log ?? null;
    this.#batch = opts.batch ?? 1000;
    const remote = this.#doorbell !== null && !this.#doorbell.inProcess;
    this.#vouchMs = remote ? (opts.vouchMs ?? 1500) : null;
    this.#pollMs = remote
      ? (opts.pollMs ?? Math.max(1, Math.floor(this.#vouchMs! / 3)))
      : (opts.pollMs ?? null);
    this.#lastRead = this.#clock.now();
  }

  /** The rev the view holds. */
  get rev(): number {
    return this.#rev;
  }

  /** The active directives, in rev order. The array is shared until the next change: do not modify it. */
  active(): readonly Directive[] {
    return (this.#sorted ??= [...this.#active.values()].sort((a, b) => a.rev - b.rev));
  }

  /** The active directive `id`, or undefined. */
  get(id: string): Directive | undefined {
    return this.#active.get(id);
  }

  /** Whether directive `id` is active. */
  has(id: string): boolean {
    return this.#active.has(id);
  }

  /** The switchboard as the view holds it (what a stream's snapshot carries). */
  snapshot(): { rev: number; directives: Directive[] } {
    return { rev: this.#rev, directives: [...this.active()] };
  }

  /** Whether the view vouches for what it holds (see the class's comment); always true for an embedded store. */
  get vouching(): boolean {
    return this.#vouching;
  }

  /**
   * Re-checks vouching against the clock now (telling the vouch listeners of a change) and returns
   * it: for a caller about to vouch (a keep-alive) that must not wait for the view's own timer.
   */
  recheck(): boolean {
    this.#evaluate();
    return this.#vouching;
  }

  /** Listens to every change applied from now on (synchronously, in rev order). Returns the unsubscribe function. */
  onChange(fn: ChangeListener): () => void {
    this.#listeners.push(fn);
    return () => {
      const i = this.#listeners.indexOf(fn);
      if (i >= 0) this.#listeners.splice(i, 1);
    };
  }

  /** Listens to the view starting or ceasing to vouch for its switchboard. */
  onVouch(fn: (vouching: boolean) => void): void {
    this.#vouchListeners.push(fn);
  }

  /**
   * Builds the view from the store's switchboard, then listens to the doorbell (each (re)listen
   * catches up) and starts the poll. Listeners hear only changes after the switchboard read here.
   */
  async start(): Promise<void> {
    const began = this.#clock.now();
    const board = await this.#source.switchboard();
    this.#active.clear();
    for (const d of board.directives) this.#active.set(d.id, d);
    this.#sorted = null;
    this.#rev = board.rev;
    this.#lastRead = began;
    if (this.#doorbell !== null) {
      this.#listener = await this.#doorbell.listen({
        ring: (rev) => this.#ring(rev),
        listening: () => this.#relistened(),
        lost: (reason) => this.#lost(reason),
      });
    }
    this.#schedulePoll();
    this.#armVouch();
  }

  /** Stops listening and polling; resolves once the doorbell's listener is closed (every call, the same). */
  stop(): Promise<void> {
    if (this.#stopping !== null) return this.#stopping;
    this.#stopped = true;
    if (this.#pollTimer !== null) this.#clock.clearTimeout(this.#pollTimer);
    if (this.#vouchTimer !== null) this.#clock.clearTimeout(this.#vouchTimer);
    this.#pollTimer = this.#vouchTimer = null;
    const l = this.#listener;
    this.#listener = null;
    this.#stopping = l === null ? Promise.resolve() : l.close();
    return this.#stopping;
  }

  /**
   * A change this process committed: applied at once when it is the view's next rev (true), or
   * already held (true); false when the view must read up to it first ({@link SwitchboardView.reach}).
   */
  committed(change: SwitchboardChange): boolean {
    if (change.rev <= this.#rev) return true;
    return this.#apply(change);
  }

  /** Resolves once the view holds rev `rev` or later, reading the store as needed. */
  async reach(rev: number): Promise<void> {
    let idle = 0;
    while (this.#rev < rev) {
      const before = this.#rev;
      await this.catchUp();
      if (this.#rev === before && ++idle >= 3)
        throw new Error(`the store did not give rev ${rev} (it answers up to ${this.#rev})`);
    }
  }

  /**
   * Reads every change after the view's rev and applies them in order; one read at a time (a
   * call during a read returns that read, which then reads once more). Rejects when the store
   * cannot be read (the view stays as it was; vouching lapses if that lasts).
   */
  catchUp(): Promise<void> {
    if (this.#reading !== null) {
      this.#again = true;
      return this.#reading;
    }
    const reading = this.#read().finally(() => {
      this.#reading = null;
    });
    this.#reading = reading;
    return reading;
  }

  async #read(): Promise<void> {
    do {
      this.#again = false;
      for (;;) {
        const from = this.#rev;
        // What the answer shows is as old as the read's start, not its arrival: an answer delayed
        // past half a lease (a slow network, a stalled process) must not be vouched for.
        const began = this.#clock.now();
        let changes: SwitchboardChange[];
        try {
          changes = await this.#source.changesSince(from, this.#batch);
        } catch (err) {
          this.#log?.warn('switchboard view: reading the store failed', { err: String(err), rev: from });
          this.#evaluate();
          throw err;
        }
        this.#lastRead = Math.max(this.#lastRead, began);
        let gap = false;
        for (const c of changes) {
          if (c.rev <= this.#rev) continue; // applied meanwhile (a local commit)
          if (!this.#apply(c)) {
            gap = true;
            break;
          }
        }
        if (gap) {
          if (this.#rev === from) throw new Error(`the store's changes after rev ${from} have a gap`);
          continue;
        }
        if (changes.length < this.#batch) break;
      }
    } while (this.#again && !this.#stopped);
    if (this.#listening || this.#doorbell === null) this.#downSince = null;
    this.#evaluate();
  }

  /** Applies `c` if it is the next rev; false (nothing applied) on a gap. */
  #apply(c: SwitchboardChange): boolean {
    if (c.rev !== this.#rev + 1) return false;
    for (const old of c.replaced ?? []) this.#active.delete(old.id);
    if (c.cleared !== undefined) this.#active.delete(c.cleared.id);
    if (c.issued !== undefined && c.issued.clearedRev === null) this.#active.set(c.issued.id, c.issued);
    if (c.issued !== undefined || c.cleared !== undefined || (c.replaced?.length ?? 0) > 0)
      this.#sorted = null;
    this.#rev = c.rev;
    for (const fn of this.#listeners) {
      try {
        fn(c);
      } catch (err) {
        this.#log?.error('switchboard view: a change listener threw', { err: String(err), rev: c.rev });
      }
    }
    return true;
  }

  #ring(rev: number | null): void {
    if (this.#stopped || (rev !== null && rev <= this.#rev)) return;
    // A commit of this process rings before its caller applies the commit's own result: give the
    // caller its turn first, so a local commit costs no read.
    setImmediate(() => {
      if (this.#stopped || (rev !== null && rev <= this.#rev)) return;
      this.catchUp().catch(() => {});
    });
  }

  #relistened(): void {
    this.#listening = true;
    if (this.#stopped) return;
    // Rings may have been missed while the listener was down: read everything after our rev.
    this.catchUp().catch(() => {});
  }

  #lost(reason: string): void {
    this.#listening = false;
    this.#downSince ??= this.#clock.now();
    this.#log?.warn('switchboard view: doorbell down', { reason, rev: this.#rev });
    this.#armVouch();
  }

  #schedulePoll(): void {
    if (this.#pollMs === null || this.#stopped) return;
    this.#pollTimer = this.#clock.setTimeout(() => {
      this.#pollTimer = null;
      if (this.#stopped) return;
      this.catchUp()
        .catch(() => {})
        .finally(() => this.#schedulePoll());
    }, this.#pollMs);
  }

  /** Re-checks vouching now and arms the timer for when it would lapse. */
  #evaluate(): void {
    if (this.#vouchMs === null || this.#stopped) return;
    const now = this.#clock.now();
    const readOk = now - this.#lastRead < this.#vouchMs;
    const bellOk = this.#downSince === null || now - this.#downSince < this.#vouchMs;
    const vouching = readOk && bellOk && (this.#vouching || this.#downSince === null);
    if (vouching !== this.#vouching) {
      this.#vouching = vouching;
      if (vouching) this.#log?.info('switchboard view: caught up, vouching again', { rev: this.#rev });
      else
        this.#log?.warn('switchboard view: cannot vouch for the switchboard (store or doorbell down)', {
          rev: this.#rev,
          sinceReadMs: Math.round(now - this.#lastRead),
        });
      for (const fn of this.#vouchListeners) {
        try {
          fn(vouching);
        } catch (err) {
          this.#log?.error('switchboard view: a vouch listener threw', { err: String(err) });
        }
      }
    }
    this.#armVouch();
  }

  #armVouch(): void {
    if (this.#vouchMs === null || this.#stopped) return;
    if (this.#vouchTimer !== null) this.#clock.clearTimeout(this.#vouchTimer);
    const now = this.#clock.now();
    const due = Math.min(
      this.#lastRead + this.#vouchMs,
      this.#downSince === null ? Infinity : this.#downSince + this.#vouchMs,
    );
    this.#vouchTimer = this.#vouching
      ? this.#clock.setTimeout(() => this.#evaluate(), Math.max(0, due - now))
      : null;
  }
}
