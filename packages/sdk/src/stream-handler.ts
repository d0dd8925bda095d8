import { KillpathError, PROTOCOL_VERSION, protocolMajor } from '@killpath/protocol';
import type { StreamMessage } from '@killpath/protocol';
import type { Clock } from './clock.ts';
import type { Logger } from './connect-options.ts';
import type { Heartbeat } from './heartbeat.ts';
import { errorCode, errorMessage } from './journal.ts';
import type { SdkEvent } from './journal.ts';
import type { Lease } from './lease.ts';
import type { Mirror, MirrorChange } from './mirror.ts';
import type { Readiness } from './readiness.ts';
import type { Reporter } from './reporter.ts';
import { stopsInFlight } from './run.ts';
import type { RunRegistry } from './run-registry.ts';
import type { StreamLoopHooks } from './stream-loop.ts';
import { STALE } from './verdict.ts';
import type { DenyVerdict } from './verdict.ts';

/** The parts of the client the stream drives. */
export interface StreamParts {
  readonly clock: Clock;
  readonly lease: Lease;
  readonly mirror: Mirror;
  readonly runs: RunRegistry;
  readonly reporter: Reporter;
  readonly heartbeat: Heartbeat;
  readonly readiness: Readiness;
  readonly logger: Logger;
  /** Clock time the client was created (for `sinceContactMs` before any contact). */
  readonly createdAt: number;
  record(event: SdkEvent): void;
  /** True once the client is closing: messages are ignored. */
  closed(): boolean;
  /** Stops the stream loop for good. */
  dropStream(): void;
  /** The control plane URL the stream is on (the replica, when there are several). */
  streamUrl(): string;
}

/**
 * What the worker does with its push stream: snapshots, deltas and keep-alives applied to the
 * mirror in rev order (a gap, a delta before the snapshot or a stale keep-alive closes the gate
 * and resyncs), the lease renewed by contact, what follows each change (gate tables, aborts,
 * stops, ack), the lease's expiry, a stream refused for good, and a control plane of a newer
 * protocol. Internal: the client owns one and hands it to its `StreamLoop` as hooks.
 */
export class StreamHandler implements StreamLoopHooks {
  /** True while a stream is open and has delivered its snapshot. */
  streamLive = false;
  /** The lease expired and no snapshot came since: messages still queued on the old stream renew nothing. */
  private leaseLapsed = false;
  /** The highest rev this worker has applied, on any stream. */
  private seenRev = 0;
  /**
   * Set while the mirror stands on a snapshot older than {@link seenRev} (a replica that has not
   * caught up yet): the gate stays closed until the mirror reaches `rev`. A replica that never
   * does (a store restored from a backup) keeps this worker closed: fail closed, said once.
   */
  private behind: { rev: number } | null = null;
  private saidBehind = false;
  private readonly host: StreamParts;
  private readonly clock: Clock;
  private readonly lease: Lease;
  private readonly mirror: Mirror;
  private readonly runs: RunRegistry;
  private readonly reporter: Reporter;
  private readonly heartbeat: Heartbeat;
  private readonly readiness: Readiness;
  private readonly logger: Logger;
  private readonly createdAt: number;

  constructor(host: StreamParts) {
    this.host = host;
    this.clock = host.clock;
    this.lease = host.lease;
    this.mirror = host.mirror;
    this.runs = host.runs;
    this.reporter = host.reporter;
    this.heartbeat = host.heartbeat;
    this.readiness = host.readiness;
    this.logger = host.logger;
    this.createdAt = host.createdAt;
  }

  /** Handles one stream message (see {@link StreamLoopHooks.onMessage}). */
  onMessage(msg: StreamMessage, fresh: boolean): 'ok' | 'resync' {
    if (this.host.closed()) return 'ok';
    // One reading of the clock for the whole message: its lease check and its renewal (a freeze
    // between the two must not make the thaw look like contact).
    const now = this.clock.now();
    // After the lease expired, what is still queued on the same stream may be as old as the
    // silence (a process frozen, thawed; a stalled network): it renews nothing. A fresh stream's
    // snapshot must come first, before any effect.
    // The expiry timer may not have run yet: a thawed process handles queued I/O first.
    if (!fresh && this.lease.overdue(now)) this.leaseLapsed = true;
    if (this.leaseLapsed && !fresh)
      return this.resync('the lease expired on this stream: a fresh snapshot first');
    switch (msg.type) {
      case 'snapshot': {
        const major = protocolMajor(msg.v);
        if (major !== null && major > PROTOCOL_VERSION) return this.newerProtocol(msg.v);
        this.leaseLapsed = false;
        if (fresh) {
          this.streamLive = true;
          this.host.record({
            type: 'stream.connected',
            rev: msg.rev,
            url: this.host.streamUrl(),
            at: this.clock.now(),
          });
        }
        // A snapshot replaces the mirror whatever its rev (another replica's may be behind or
        // ahead). Behind what this worker saw, it may lack a stop the worker already enforces:
        // the gate stays closed until this stream brings the mirror back to that rev.
        this.behind = msg.rev < this.seenRev ? { rev: this.seenRev } : null;
        if (this.behind !== null) {
          this.host.record({ type: 'stream.behind', rev: msg.rev, seenRev: this.seenRev, at: now });
          if (!this.saidBehind) {
            this.saidBehind = true;
            this.logger.warn(
              `control plane at ${this.host.streamUrl()} is at rev ${msg.rev}, behind rev ${this.seenRev} this worker applied: every check denies until it catches up (a store restored from a backup: restart this worker)`,
            );
          }
        }
        this.applied(this.mirror.replace(msg), now);
        this.readiness.connected();
        this.heartbeat.first();
        return 'ok';
      }
      case 'delta':
        if (fresh) return this.resync(`delta at rev ${msg.rev} before the snapshot`);
        if (msg.rev !== this.mirror.rev + 1) {
          return this.resync(`rev gap: expected ${this.mirror.rev + 1}, got ${msg.rev}`);
        }
        this.applied(this.mirror.applyDelta(msg), now);
        return 'ok';
      case 'keepalive':
        // Before the snapshot there is nothing to compare with, and no lease to renew.
        if (fresh) return 'ok';
        if (msg.rev !== this.mirror.rev)
          return this.resync(`keepalive at rev ${msg.rev}, mirror at ${this.mirror.rev}`);
        if (now >= this.lease.deadline) {
          // Contact is back after the gate closed: queued tasks may start again.
          this.renew(now);
          this.runs.wake();
        } else {
          this.renew(now);
        }
        return 'ok';
      default:
        return 'ok';
    }
  }

  /**
   * Everything that follows a mirror change, synchronously: gate tables, journal, aborts, what
   * the new stop directives stop (timers, staged memory, queues), halt tracking, ack.
   */
  private applied(change: MirrorChange, contactAt: number): void {
    this.seenRev = Math.max(this.seenRev, change.rev);
    this.renew(contactAt);
    const recompile = change.source === 'snapshot' || change.issued.length > 0 || change.cleared.length > 0;
    if (recompile) this.runs.recompileAll();
    const at = this.clock.now();
    this.host.record({
      type: 'rev.applied',
      rev: change.rev,
      source: change.source,
      issued: change.issued.map((e) => e.directive.id),
      cleared: change.cleared,
      at,
    });
    if (recompile) this.runs.enforce(this.runs.values(), change.issued, change.rev, at);
    this.runs.wake();
    this.reporter.ack(change.rev);
  }

  /**
   * Contact at `now` renews the lease; the gate opens with it unless the mirror is behind what
   * this worker saw (see {@link behind}), which keeps it closed (in-flight effects are not
   * aborted for that: the lease itself is live).
   */
  private renew(now: number): void {
    this.lease.renew(now);
    const behind = this.behind;
    if (behind === null) return;
    if (this.mirror.rev >= behind.rev) {
      this.behind = null;
      this.host.record({ type: 'stream.caught_up', rev: this.mirror.rev, at: now });
      return;
    }
    this.lease.suspend();
  }

  /**
   * The control plane speaks a newer major protocol than this SDK reads: nothing it sends can be
   * trusted to mean what this SDK thinks, so the worker fails closed for good. One log line names
   * both versions; the gate is closed with a deny that says why (every check, every effect); the
   * in-flight writes are aborted and the runs stopped as at a lease expiry; the stream is
   * dropped, heartbeats stop, `ready` rejects with `unavailable` (details
   * `{ reason: 'protocol_version', server, sdk }`).
   */
  private newerProtocol(v: unknown): 'ok' {
    const server = String(v);
    const why = `the control plane speaks protocol v${server}, newer than this SDK's v${PROTOCOL_VERSION}: upgrade @killpath/sdk`;
    this.logger.warn(`${why}; every check denies until then`);
    const verdict: DenyVerdict = Object.freeze({ kind: 'deny', reason: 'stale', directive: null, note: why });
    this.lease.refuse(verdict);
    this.streamLive = false;
    this.host.dropStream();
    this.runs.stopAll(verdict);
    this.onFatal(
      new KillpathError('unavailable', why, {
        details: { reason: 'protocol_version', server: v, sdk: PROTOCOL_VERSION },
      }),
    );
    return 'ok';
  }

  /** The mirror is known to be behind: close the gate now and reconnect for a fresh snapshot. */
  private resync(reason: string): 'resync' {
    this.lease.suspend();
    this.streamLive = false;
    this.host.record({ type: 'stream.resync', reason, at: this.clock.now() });
    return 'resync';
  }

  /** Lease ran out: every run is treated as halted: its in-flight writes and model calls are aborted, its signal too. */
  expire(): void {
    this.leaseLapsed = true;
    let writes = 0;
    for (const state of this.runs.values()) {
      for (const effect of state.inFlight) if (stopsInFlight(effect) && !effect.aborted) writes += 1;
    }
    this.host.record({
      type: 'lease.expired',
      sinceContactMs: this.lease.sinceContactMs(this.createdAt),
      aborted: writes,
      at: this.clock.now(),
    });
    this.runs.stopAll(STALE);
  }

  /** The stream is gone (see {@link StreamLoopHooks.onDrop}). */
  onDrop(): void {
    this.streamLive = false;
  }

  /** The stream failed; the loop retries in `retryInMs` (see {@link StreamLoopHooks.onError}). */
  onError(err: unknown, retryInMs: number): void {
    this.streamError(err, false, retryInMs);
    if (!this.host.closed()) this.readiness.unreachable(err);
  }

  private streamError(err: unknown, fatal: boolean, retryInMs: number | null): void {
    this.host.record({
      type: 'stream.error',
      message: errorMessage(err),
      code: errorCode(err),
      fatal,
      retryInMs,
      at: this.clock.now(),
    });
  }

  /** The stream was refused for good: surface it, stop heartbeats, keep failing closed. */
  onFatal(err: unknown): void {
    this.lease.suspend();
    this.heartbeat.stop();
    this.streamError(err, true, null);
    this.readiness.fail(
      err instanceof KillpathError
        ? err
        : new KillpathError(errorCode(err) ?? 'internal', errorMessage(err), { cause: err }),
    );
  }
}
