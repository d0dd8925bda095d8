import { wallNow, type Clock } from '@killpath/protocol';
import type { Fleet } from './fleet.ts';
import type { Logger } from './log.ts';
import type { PresenceStore } from './store/store.ts';

/** Default interval of the presence sync, in ms: what this replica's workers' changes wait at most before they are written. */
export const DEFAULT_PRESENCE_SYNC_MS = 500;
/** Rows written per transaction (a wave of heartbeats is written in slices; the loop runs between two). */
const WRITE_SLICE = 500;
/** Rows read per query when catching up. */
const READ_PAGE = 2000;
/**
 * A sync that comes due while workers' acks are still coming in (a flip's wave: one from every
 * worker of the fleet) waits until none came for this long, in ms…
 */
export const WAVE_QUIET_MS = 25;
/** …but at most this long past its due time, in ms. */
export const WAVE_MAX_WAIT_MS = 1000;
/** Tombstones older than this are deleted (every replica has long applied them). */
const TOMBSTONE_MS = 10 * 60_000;

/** Options of {@link PresenceSync}. */
export interface PresenceSyncOptions {
  store: PresenceStore;
  fleet: Fleet;
  clock: Clock;
  log: Logger;
  /** This replica's id: rows it writes carry it, rows that carry it are skipped when read back. */
  replica: string;
  /** Interval in ms (default {@link DEFAULT_PRESENCE_SYNC_MS}). */
  everyMs?: number;
}

/**
 * Keeps the fleet in the store and the store in the fleet, so `status`, the console and
 * escalation's laggard set see every replica's workers whichever replica answers. A heartbeat,
 * an ack or a connect only marks its worker changed (no write on the request's path); every
 * `everyMs` the changed workers are written in one transaction per slice, and the rows other
 * replicas wrote since the last presence version seen are read and applied.
 *
 * Staleness: another replica's worker shows here up to about two intervals (plus a write, and
 * during a flip's wave of acks up to {@link WAVE_MAX_WAIT_MS} more) after its change; a replica that dies leaves its workers connected in the others' view until its last
 * rows are `staleAfterMs` old, then `stale`. Safe because the kill path never reads it: permits
 * are decided in the store against the switchboard, each worker's gate is its own, and streams are
 * pushed by the replica that holds them. Escalation reads it for its laggard set, where a worker
 * missing for an interval only delays an escalation that its own lease already makes safe.
 */
export class PresenceSync {
  readonly #o: PresenceSyncOptions;
  readonly everyMs: number;
  #version = 0;
  #timer: unknown = null;
  #closed = false;
  #running: Promise<void> = Promise.resolve();
  #lastPurge = 0;

  constructor(o: PresenceSyncOptions) {
    this.#o = o;
    this.everyMs = o.everyMs ?? DEFAULT_PRESENCE_SYNC_MS;
  }

  /** Reads every replica's presence once, then syncs every interval. */
  async start(): Promise<void> {
    await this.sync();
  }

  /** Writes this replica's changes and reads the others' now (the timer calls it; tests may too). */
  sync(): Promise<void> {
    this.#running = this.#running.then(() => this.#sync());
    return this.#running;
  }

  async #sync(): Promise<void> {
    if (this.#timer !== null) this.#o.clock.clearTimeout(this.#timer);
    this.#timer = null;
    const { fleet, store, clock, replica } = this.#o;
    try {
      const fleetNow = fleet.clockNow();
      const wall = wallNow(clock);
      const rows = fleet.takeChanged(replica, (t) => wall - (fleetNow - t));
      for (let i = 0; i < rows.length; i += WRITE_SLICE)
        await store.putPresence(rows.slice(i, i + WRITE_SLICE));
      for (;;) {
        // Its own rows are left out: after a flip this replica just wrote its whole fleet.
        const page = await store.presenceSince(this.#version, READ_PAGE, replica);
        const now = fleet.clockNow();
        const at = wallNow(clock);
        fleet.applyRemote(page.rows, replica, (t) => now - (at - t));
        this.#version = page.version;
        if (page.rows.length < READ_PAGE) break;
      }
      if (wall - this.#lastPurge > TOMBSTONE_MS) {
        this.#lastPurge = wall;
        await store.purgePresence(wall - TOMBSTONE_MS);
      }
    } catch (err) {
      this.#o.log.warn('presence sync failed (other replicas see this one’s workers late)', {
        err: String(err),
      });
    } finally {
      if (!this.#closed) this.#arm(this.everyMs, this.#o.clock.now() + this.everyMs);
    }
  }

  /**
   * Sets the timer of the sync due at `due` (the clock's ms) to fire in `ms`. When it fires during
   * a wave of acks, the sync waits for the wave to go quiet ({@link WAVE_QUIET_MS}, at most
   * {@link WAVE_MAX_WAIT_MS} past `due`): after a flip at 10,000 workers, writing every acked
   * worker's row in the middle of the wave took the CPU that the wave's last reports were waiting
   * for (`npm run bench`).
   */
  #arm(ms: number, due: number): void {
    this.#timer = this.#o.clock.setTimeout(() => {
      this.#timer = null;
      if (this.#closed) return;
      const quiet = this.#o.fleet.sinceLastAck();
      if (quiet < WAVE_QUIET_MS && this.#o.clock.now() - due < WAVE_MAX_WAIT_MS)
        this.#arm(WAVE_QUIET_MS - quiet, due);
      else void this.sync();
    }, ms);
  }

  /** Stops syncing after one last write of what changed (streams closed at shutdown). */
  async close(): Promise<void> {
    if (this.#closed) return;
    await this.sync();
    this.#closed = true;
    if (this.#timer !== null) this.#o.clock.clearTimeout(this.#timer);
    this.#timer = null;
  }
}
