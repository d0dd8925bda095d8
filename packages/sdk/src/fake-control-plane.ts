import { HTTP_STATUS, KillpathError, toWire } from '@killpath/protocol';
import type {
  BatchAnswer,
  OutcomeBatch,
  PermitBatch,
  JournalBatch,
  JournalEvent,
  Permit,
  PermitOutcome,
  PermitRequest,
  PermitResponse,
  ResumeRequest,
} from '@killpath/protocol';
import type { Clock } from './clock.ts';
import { wallNow } from './clock.ts';
import { FakeTransport, type FakePost } from './fake-transport.ts';

/** One permit the fake control plane issued. */
export interface FakePermit {
  readonly request: PermitRequest;
  /** The permit as last answered (its `status` follows confirm and outcome). */
  permit: Permit;
  /** The reported outcome, or `null` while none came. */
  outcome: PermitOutcome | null;
  /** Clock time of the grant. */
  readonly grantedAt: number;
}

/**
 * A scripted control plane for the permit, journal and resume endpoints, on a
 * {@link FakeTransport} (it takes over `onPost`; other POSTs succeed with no body). It follows
 * the wire: permits are granted unless a halted run covers the request (`halted`, details
 * `{ directiveId, rev }`), irreversible ones cool off for {@link FakeControlPlane.coolOffMs}
 * when it is positive, a replayed idempotency key returns the landed result or is refused
 * `conflict` while its effect has no outcome, a confirmation before the cool-off ends is refused
 * `conflict`, and a halt during it `halted` (the permit is cancelled).
 */
export class FakeControlPlane {
  /** Cool-off of irreversible permits, in ms; 0 (the default) grants them at once. */
  coolOffMs = 0;
  /** When true every answered endpoint fails like an unreachable host (a `TypeError`, as `fetch` throws). */
  unreachable = false;
  /** Every permit issued, by id. */
  readonly permits = new Map<string, FakePermit>();
  /** Every journal event received, in order. */
  readonly journal: JournalEvent[] = [];
  /** Every resume request, in order. */
  readonly resumes: { runId: string; body: ResumeRequest }[] = [];
  private readonly transport: FakeTransport;
  private readonly clock: Clock;
  private readonly halted = new Map<string, string>();
  private readonly byKey = new Map<string, string>();
  private held: { promise: Promise<void>; release: () => void } | null = null;
  private seq = 0;
  private rev = 1;

  constructor(transport: FakeTransport, clock: Clock) {
    this.transport = transport;
    this.clock = clock;
    transport.onPost = (post) => this.answer(post);
  }

  /** Halts `runId` and its descendants at the control plane: their permits, confirmations and resumes are refused `halted`. */
  halt(runId: string, directiveId: string): void {
    this.rev += 1;
    this.halted.set(runId, directiveId);
  }

  /** Clears a halt set by {@link FakeControlPlane.halt}. */
  clear(runId: string): void {
    this.rev += 1;
    this.halted.delete(runId);
  }

  /**
   * Holds back the answers of permit requests made from now on (decided when asked, delivered
   * on release), to play a slow round trip. Returns the release.
   */
  holdPermits(): () => void {
    let release = (): void => {};
    const promise = new Promise<void>((resolve) => {
      release = resolve;
    });
    const held = { promise, release: () => release() };
    this.held = held;
    return () => {
      if (this.held === held) this.held = null;
      held.release();
    };
  }

  /** Outcomes reported, in order (those sent in a batch too). */
  outcomes(): { permitId: string; outcome: PermitOutcome }[] {
    return this.transport.posts.flatMap((p) => {
      if (p.url.endsWith('/outcome'))
        return [
          { permitId: decodeURIComponent(p.url.split('/').at(-2) ?? ''), outcome: p.body as PermitOutcome },
        ];
      if (p.url.endsWith('/v1/permits/outcomes'))
        return (p.body as OutcomeBatch).outcomes.map(({ permitId, ...outcome }) => ({ permitId, outcome }));
      return [];
    });
  }

  /** Permit requests received, in order (those sent in a batch too). */
  requests(): PermitRequest[] {
    return this.transport.posts.flatMap((p) => {
      if (p.url.endsWith('/v1/permits')) return [p.body as PermitRequest];
      if (p.url.endsWith('/v1/permits/batch')) return (p.body as PermitBatch).requests;
      return [];
    });
  }

  /** What the single-item route would answer, as one item of a batch answer. */
  private item(fn: () => unknown, created = false): BatchAnswer {
    try {
      const body = fn();
      return body === undefined ? { status: 204 } : { status: created ? 201 : 200, body };
    } catch (err) {
      const code = err instanceof KillpathError ? err.code : 'internal';
      return { status: HTTP_STATUS[code], body: toWire(err) };
    }
  }

  private answer(post: FakePost): unknown {
    const path = new URL(post.url).pathname;
    if (path === '/v1/permits') {
      const held = this.held;
      if (held === null) return this.permit(post.body as PermitRequest);
      try {
        const answer = this.permit(post.body as PermitRequest);
        return held.promise.then(() => answer);
      } catch (err) {
        return held.promise.then(() => Promise.reject(err));
      }
    }
    if (path === '/v1/permits/batch') {
      this.reachable();
      const answers = (post.body as PermitBatch).requests.map((r) => this.item(() => this.permit(r), true));
      const held = this.held;
      return held === null ? { answers } : held.promise.then(() => ({ answers }));
    }
    if (path === '/v1/permits/outcomes') {
      this.reachable();
      return {
        answers: (post.body as OutcomeBatch).outcomes.map(({ permitId, ...o }) =>
          this.item(() => this.outcome(permitId, o)),
        ),
      };
    }
    let m = /^\/v1\/permits\/([^/]+)\/confirm$/.exec(path);
    if (m !== null) return this.confirm(decodeURIComponent(m[1] ?? ''));
    m = /^\/v1\/permits\/([^/]+)\/outcome$/.exec(path);
    if (m !== null) return this.outcome(decodeURIComponent(m[1] ?? ''), post.body as PermitOutcome);
    if (path === '/v1/journal') {
      this.reachable();
      this.journal.push(...(post.body as JournalBatch).events);
      return undefined;
    }
    m = /^\/v1\/runs\/([^/]+)\/resume$/.exec(path);
    if (m !== null) return this.resume(decodeURIComponent(m[1] ?? ''), post.body as ResumeRequest);
    return FakeTransport.accept(post);
  }

  private permit(req: PermitRequest): PermitResponse {
    this.reachable();
    this.refuseIfHalted(req.runId, req.lineage);
    const keyed = req.idempotencyKey === null ? null : `${req.runId}\u0000${req.idempotencyKey}`;
    const earlier = keyed === null ? undefined : this.permits.get(this.byKey.get(keyed) ?? '');
    if (earlier !== undefined) {
      if (earlier.outcome === null) {
        throw new KillpathError(
          'conflict',
          `idempotency key ${req.idempotencyKey ?? ''}: earlier effect has no outcome`,
        );
      }
      return {
        permit: { ...earlier.permit, status: earlier.outcome.status },
        replay: true,
        ...(earlier.outcome.status === 'landed' && 'result' in earlier.outcome
          ? { result: earlier.outcome.result }
          : {}),
      };
    }
    this.seq += 1;
    const cooling = req.class === 'irreversible' && this.coolOffMs > 0;
    const permit: Permit = {
      id: `p${this.seq}`,
      rev: this.rev,
      runId: req.runId,
      capability: req.capability,
      class: req.class,
      idempotencyKey: req.idempotencyKey,
      status: cooling ? 'cooling_off' : 'granted',
      confirmAfter: cooling ? new Date(wallNow(this.clock) + this.coolOffMs).toISOString() : null,
      coolOffMs: cooling ? this.coolOffMs : 0,
    };
    this.permits.set(permit.id, { request: req, permit, outcome: null, grantedAt: this.clock.now() });
    if (keyed !== null) this.byKey.set(keyed, permit.id);
    return { permit: { ...permit }, replay: false };
  }

  private confirm(id: string): PermitResponse {
    this.reachable();
    const p = this.permits.get(id);
    if (p === undefined) throw new KillpathError('not_found', `no permit ${id}`);
    try {
      this.refuseIfHalted(p.request.runId, p.request.lineage);
    } catch (err) {
      p.permit = { ...p.permit, status: 'cancelled' };
      throw err;
    }
    if (this.clock.now() < p.grantedAt + p.permit.coolOffMs)
      throw new KillpathError('conflict', `permit ${id} is cooling off`);
    p.permit = { ...p.permit, status: 'granted' };
    return { permit: { ...p.permit }, replay: false };
  }

  private outcome(id: string, outcome: PermitOutcome): undefined {
    this.reachable();
    const p = this.permits.get(id);
    if (p === undefined) throw new KillpathError('not_found', `no permit ${id}`);
    p.outcome = outcome;
    p.permit = { ...p.permit, status: outcome.status };
    return undefined;
  }

  private resume(runId: string, body: ResumeRequest): { runId: string; lineage: string[] } {
    this.reachable();
    this.resumes.push({ runId, body });
    this.refuseIfHalted(runId, body.lineage);
    return { runId, lineage: body.lineage };
  }

  private refuseIfHalted(runId: string, lineage: readonly string[]): void {
    for (const id of [runId, ...lineage]) {
      const directiveId = this.halted.get(id);
      if (directiveId !== undefined) {
        throw new KillpathError('halted', `run ${runId} is halted by ${directiveId}`, {
          details: { directiveId, rev: this.rev },
        });
      }
    }
  }

  private reachable(): void {
    if (this.unreachable) throw new TypeError('fetch failed');
  }
}
