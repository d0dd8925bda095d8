import type { Clock, DeltaMessage, Directive, SnapshotMessage } from '@killpath/protocol';
import { PROTOCOL_VERSION, streamDirective, systemClock } from '@killpath/protocol';

/**
 * One SSE frame, serialised once and shared by every stream it goes to: its text, and its bytes
 * encoded on first use (as is, and as one HTTP/1.1 chunk), so a fan-out to N streams encodes
 * nothing N times.
 */
export class SseFrame {
  readonly text: string;
  #bytes: Buffer | null = null;
  #chunk: Buffer | null = null;

  constructor(type: string, data: unknown) {
    this.text = frame(type, data);
  }

  /** The frame's UTF-8 bytes. */
  get bytes(): Buffer {
    return (this.#bytes ??= Buffer.from(this.text, 'utf8'));
  }

  /** The frame as one chunk of a chunked HTTP/1.1 body: `size CRLF bytes CRLF`. */
  get chunk(): Buffer {
    if (this.#chunk === null) {
      const size = Buffer.from(`${this.bytes.length.toString(16)}\r\n`, 'latin1');
      this.#chunk = Buffer.concat([size, this.bytes, CRLF]);
    }
    return this.#chunk;
  }
}

const CRLF = Buffer.from('\r\n', 'latin1');

/** One worker's open stream, as the hub sees it. */
export interface StreamSink {
  readonly workerId: string;
  readonly tenant: string;
  /** The token the stream was opened with: a revocation closes it. */
  readonly tokenId?: string;
  /** When that token expires, in ms since the epoch (null: never): the stream is closed then. */
  readonly expiresAt?: number | null;
  /** Writes raw SSE text; returns false when the connection is backlogged past its limit. */
  write(text: string): boolean;
  /**
   * Writes a shared frame (same contract as `write`); a sink that can send its encoded bytes as
   * they are implements it, others get `write(frame.text)`.
   */
  writeFrame?(frame: SseFrame): boolean;
  close(): void;
}

function frame(type: string, data: unknown): string {
  return `event: ${type}\ndata: ${JSON.stringify(data)}\n\n`;
}

/**
 * Fans the switchboard out to every connected worker stream: a snapshot on attach, one delta
 * per rev, keep-alives carrying the current rev. Every rev bump reaches every stream (a
 * directive of another tenant travels as a bare rev step), so a worker can detect gaps.
 *
 * A keep-alive goes to every stream one interval after the last message every stream got: a
 * delta renews a worker's lease as a keep-alive does, so after a publish the next keep-alive is
 * due a full interval later, however often publishes come. A flip is not followed by a
 * keep-alive to the whole fleet while the fleet's reports come in (at 10,000 streams a round of
 * keep-alives costs as much as the flip's fan-out). The hub's timer still runs every interval
 * at least, to close streams whose token expired and to recheck vouching, and to send the
 * keep-alives when they are due. A stream whose token expired is closed by the first tick or
 * publish after its expiry, so within one interval of it, and gets no message past it.
 *
 * Attach is race-free: a sink is registered before its snapshot is read, deltas arriving
 * meanwhile are buffered and replayed past the snapshot's rev.
 */
export class StreamHub {
  readonly #live = new Set<StreamSink>();
  readonly #pending = new Map<StreamSink, ({ rev: number } & Change)[]>();
  readonly #clock: Clock;
  /** The next keep-alive's timer (a handle of the clock); null once closed. */
  #timer: unknown = null;
  /** When every live stream last got a message, a keep-alive or a delta (the clock's monotonic ms). */
  #lastMessage: number;
  #closed = false;
  readonly #keepaliveMs: number;
  readonly #now: () => number;
  #rev = 0;
  /** False while the switchboard view cannot vouch for what it holds: nothing is sent, no stream attaches. */
  #vouching = true;

  /**
   * @param keepaliveMs interval of keep-alives; workers' leases must be several times longer.
   * @param now wall clock in ms (default `Date.now`): streams whose token expired are closed on the next keep-alive.
   * @param clock times the keep-alives (default the system clock, whose timers never hold the process).
   */
  constructor(
    keepaliveMs: number,
    initialRev: number,
    now: () => number = Date.now,
    clock: Clock = systemClock,
  ) {
    this.#keepaliveMs = keepaliveMs;
    this.#rev = initialRev;
    this.#now = now;
    this.#clock = clock;
    this.#lastMessage = clock.now();
    this.#arm(keepaliveMs);
  }

  /**
   * The next tick in `ms`; after it, the next one when the next keep-alive is due, at most an
   * interval later (an interval while none is sent: the switchboard is not vouched for).
   */
  #arm(ms: number): void {
    this.#timer = this.#clock.setTimeout(() => {
      this.#tick();
      if (this.#closed) return;
      const due = this.#lastMessage + this.#keepaliveMs - this.#clock.now();
      this.#arm(due > 0 ? Math.min(due, this.#keepaliveMs) : this.#keepaliveMs);
    }, ms);
  }

  /** Streams currently receiving deltas. */
  get size(): number {
    return this.#live.size;
  }

  /** The last rev published. */
  get rev(): number {
    return this.#rev;
  }

  /** Moves the hub's rev up to `rev` without a delta (the rev the switchboard view started at). */
  startAt(rev: number): void {
    if (rev > this.#rev) this.#rev = rev;
  }

  /** Whether streams are served (see {@link StreamHub.vouch}). */
  get vouching(): boolean {
    return this.#vouching;
  }

  /**
   * Whether the switchboard behind the hub is vouched for. When it is not, every open stream is
   * closed and none attaches, and no keep-alive or delta is sent, so no worker's lease is renewed
   * from a switchboard that may be missing a flip; streams attach again once it is.
   */
  vouch(vouching: boolean): void {
    if (vouching === this.#vouching) return;
    this.#vouching = vouching;
    if (!vouching) for (const sink of [...this.#live, ...this.#pending.keys()]) this.#drop(sink);
  }

  /**
   * Registers a sink and sends it its snapshot. `read` loads the switchboard; it runs after the
   * sink is registered so no commit can fall between the snapshot and the first delta.
   */
  async attach(
    sink: StreamSink,
    read: () => Promise<{ rev: number; directives: Directive[] }>,
  ): Promise<void> {
    if (!this.#vouching) {
      sink.close();
      return;
    }
    this.#pending.set(sink, []);
    let board: { rev: number; directives: Directive[] };
    try {
      board = await read();
    } catch (err) {
      this.#pending.delete(sink);
      throw err;
    }
    const buffered = this.#pending.get(sink);
    if (buffered === undefined) return; // detached while reading
    this.#pending.delete(sink);
    const visible = board.directives.filter((d) => d.tenant === null || d.tenant === sink.tenant);
    const snap: SnapshotMessage = {
      type: 'snapshot',
      v: PROTOCOL_VERSION,
      rev: board.rev,
      directives: visible.map(streamDirective),
      keepaliveMs: this.#keepaliveMs,
    };
    sink.write(frame('snapshot', snap));
    for (const step of buffered) if (step.rev > board.rev) this.#send(sink, step.rev, step);
    this.#live.add(sink);
  }

  /** Removes a sink (its connection closed). */
  detach(sink: StreamSink): void {
    this.#live.delete(sink);
    this.#pending.delete(sink);
  }

  /** Publishes one rev step to every stream, synchronously. Call right after the commit. */
  publish(rev: number, change: Change): void {
    if (rev > this.#rev) this.#rev = rev;
    // A stream whose token expired gets nothing more, and is closed now.
    const now = this.#now();
    for (const [sink, buf] of this.#pending) {
      if (expired(sink, now)) this.#drop(sink);
      else buf.push({ rev, ...change });
    }
    // Serialise and encode each distinct frame once, not once per stream; every write is sent
    // here, before the caller goes on to anything else.
    const d = change.issued ?? change.cleared;
    const full = new SseFrame('delta', deltaOf(rev, change));
    const tenant = d === undefined ? null : d.tenant;
    const bare = tenant !== null ? new SseFrame('delta', { type: 'delta', rev }) : full;
    for (const sink of this.#live) {
      if (expired(sink, now) || !send(sink, tenant === null || tenant === sink.tenant ? full : bare))
        this.#drop(sink);
    }
    this.#lastMessage = this.#clock.now();
  }

  #send(sink: StreamSink, rev: number, change: Change): void {
    const d = change.issued ?? change.cleared;
    const visible = d === undefined || d.tenant === null || d.tenant === sink.tenant;
    const msg = visible ? deltaOf(rev, change) : { type: 'delta', rev };
    if (!sink.write(frame('delta', msg))) this.#drop(sink);
  }

  /** Closes every stream opened with `tokenId` (a revoked token); returns how many. */
  closeToken(tokenId: string): number {
    let n = 0;
    for (const sink of [...this.#live, ...this.#pending.keys()]) {
      if (sink.tokenId !== tokenId) continue;
      this.#drop(sink);
      n++;
    }
    return n;
  }

  /** Closes every stream whose token has expired at `now` (ms); returns how many. */
  closeExpired(now: number = this.#now()): number {
    let n = 0;
    for (const sink of [...this.#live, ...this.#pending.keys()]) {
      if (!expired(sink, now)) continue;
      this.#drop(sink);
      n++;
    }
    return n;
  }

  /** Asked before each keep-alive (see {@link StreamHub.checkVouching}). */
  #recheck: (() => void) | null = null;

  /**
   * `recheck` is called before each keep-alive, so a lapse of the switchboard's vouching is
   * noticed (and {@link StreamHub.vouch} told) before a keep-alive renews any worker's lease: after
   * a freeze, the keep-alive's timer may run before the overdue timer that would have said so.
   */
  checkVouching(recheck: () => void): void {
    this.#recheck = recheck;
  }

  /**
   * Closes expired streams, rechecks vouching, and sends a keep-alive to every stream when none
   * got a message for an interval.
   */
  #tick(): void {
    this.closeExpired();
    this.#recheck?.();
    if (!this.#vouching) return;
    const now = this.#clock.now();
    if (now - this.#lastMessage < this.#keepaliveMs) return;
    this.#lastMessage = now;
    const f = new SseFrame('keepalive', { type: 'keepalive', rev: this.#rev });
    for (const sink of this.#live) if (!send(sink, f)) this.#drop(sink);
  }

  #drop(sink: StreamSink): void {
    // A backlogged stream is worse than none: the worker's lease runs out and it reconnects for a fresh snapshot.
    this.detach(sink);
    sink.close();
  }

  /** Closes every stream and stops keep-alives. */
  close(): void {
    this.#closed = true;
    this.#clock.clearTimeout(this.#timer);
    for (const sink of [...this.#live, ...this.#pending.keys()]) sink.close();
    this.#live.clear();
    this.#pending.clear();
  }
}

/** Whether `sink`'s token has expired at `now` (wall ms). */
function expired(sink: StreamSink, now: number): boolean {
  return sink.expiresAt !== undefined && sink.expiresAt !== null && now >= sink.expiresAt;
}

function send(sink: StreamSink, f: SseFrame): boolean {
  return sink.writeFrame !== undefined ? sink.writeFrame(f) : sink.write(f.text);
}

/** One switchboard change: a directive issued (possibly replacing others at the same rev) or cleared. */
export interface Change {
  issued?: Directive;
  cleared?: Directive;
  replaced?: Directive[];
}

function deltaOf(rev: number, change: Change): DeltaMessage {
  return {
    type: 'delta',
    rev,
    ...(change.issued ? { issued: streamDirective(change.issued) } : {}),
    ...(change.cleared ? { cleared: change.cleared.id } : {}),
    ...(change.replaced && change.replaced.length > 0 ? { replaced: change.replaced.map((r) => r.id) } : {}),
  };
}
