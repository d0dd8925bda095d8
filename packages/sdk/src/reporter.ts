import type {
  AckReport,
  HaltedReport,
  HeartbeatReport,
  JournalBatch,
  JournalEvent,
  OutcomeBatch,
  OutcomeReport,
  PermitOutcome,
  RunRegistration,
} from '@killpath/protocol';
import type { Clock } from './clock.ts';
import { splitBatches } from './control-calls.ts';
import { errorCode, errorMessage } from './journal.ts';
import type { JournalSink, ReportKind } from './journal.ts';
import { ReportChannel, type PendingReport, type ReportSource } from './report-channel.ts';
import type { Transport } from './transport.ts';
import { refusal } from './wire-answers.ts';

/** How many times a retried report (halted, journal, outcome) is sent before giving up, the first try included. */
const ATTEMPTS = 3;

/** Most journal events in one `POST /v1/journal`: a purged queue of thousands goes out in several. */
const JOURNAL_BATCH = 500;

/** Most outcomes in one `POST /v1/permits/outcomes` (the control plane takes up to 256). */
const OUTCOME_BATCH = 128;

/** Longest {@link Reporter.close} waits for outcome requests on the wire, in ms. */
const CLOSE_WAIT_MS = 5_000;

/** Codes worth retrying: the control plane was unreachable or failed, not the request. */
const RETRYABLE = new Set(['unavailable', 'internal', null]);

interface Retried {
  kind: ReportKind;
  url: string;
  body: unknown;
  attempts: number;
}

/**
 * Sends the worker's reports to the control plane, fire-and-forget: a failed POST becomes a
 * `report.failed` event, never an exception or an unhandled rejection. Acks are coalesced to
 * one per macrotask turn (the latest rev), and a halted report is its rev's ack: a halt that
 * settles as its delta is applied costs one report. Acks and halted reports go out one turn
 * later through the {@link ReportChannel} this worker shares with every worker of the process on
 * the same transport, control plane and token: together, as one request for many workers.
 * Journal events go in one batch per turn. Halted reports,
 * journal batches and permit outcomes that failed for a retryable reason are sent again by
 * {@link Reporter.retryFailed}, which the client calls on every heartbeat, up to three times in all.
 */
export class Reporter implements ReportSource {
  private readonly transport: Transport;
  private readonly base: string;
  private readonly workerId: string;
  private readonly workerPath: string;
  private readonly headers: Record<string, string>;
  private readonly clock: Clock;
  private readonly sink: JournalSink;
  private ackRev: number | null = null;
  /**
   * The latest rev a halted report on its way (or answered) acknowledges: the control plane takes
   * a halted report as the ack of its rev, so an ack of this rev or an older one is not sent.
   */
  private reportedRev = -1;
  private journalQueue: JournalEvent[] | null = null;
  /** False once the control plane answered 404 to an outcome batch: it predates the route. */
  private outcomeBatches = true;
  private failed: Retried[] = [];
  private closed = false;
  /** Halted reports waiting for the channel to take them at the end of the turn. */
  private haltedQueue: HaltedReport[] = [];
  private readonly channel: ReportChannel;

  /** @param base the control plane URL without a trailing slash */
  constructor(
    transport: Transport,
    base: string,
    workerId: string,
    headers: Record<string, string>,
    clock: Clock,
    sink: JournalSink,
  ) {
    this.transport = transport;
    this.base = base;
    this.workerId = workerId;
    this.workerPath = `${base}/v1/workers/${encodeURIComponent(workerId)}`;
    this.headers = headers;
    this.clock = clock;
    this.sink = sink;
    this.channel = ReportChannel.of(transport, base, headers);
  }

  /**
   * Acks `rev`; revs applied in the same turn are acked once, with the latest. A rev a halted
   * report already acknowledges (the one it settles, or an older one) is not acked again: a
   * worker whose stop settles as the delta is applied sends one request for it, not two.
   */
  ack(rev: number): void {
    if (rev <= this.reportedRev) return;
    this.queueAck(rev);
  }

  private queueAck(rev: number): void {
    this.ackRev = rev;
    this.channel.wake(this);
  }

  /**
   * The halted reports and the ack waiting since the turn began (the ack last: the latest rev),
   * for the {@link ReportChannel}; none once closed. A failed ack is a `report.failed`, as it was
   * on its own; a failed halted report is retried and its rev acked on its own (see {@link Reporter.halted}).
   */
  takeReports(): PendingReport[] {
    const halted = this.haltedQueue;
    const ackRev = this.ackRev;
    this.haltedQueue = [];
    this.ackRev = null;
    if (this.closed) return [];
    const out: PendingReport[] = halted.map((report) => {
      const item: Retried = { kind: 'halted', url: `${this.workerPath}/halted`, body: report, attempts: 1 };
      return {
        item: { kind: 'halted', workerId: this.workerId, ...report },
        sendAlone: () => void this.sendRetried(item, true),
        failed: (err) => this.retriedFailed(item, this.recordFailed('halted', err)),
      };
    });
    if (ackRev !== null) {
      const body: AckReport = { rev: ackRev };
      out.push({
        item: { kind: 'ack', workerId: this.workerId, rev: ackRev },
        sendAlone: () => void this.send('ack', `${this.workerPath}/ack`, body, undefined, undefined, true),
        failed: (err) => void this.recordFailed('ack', err),
      });
    }
    return out;
  }

  /**
   * Reports that the effects covered by one directive have settled. The report also acks its
   * rev, so a pending ack for that rev or an older one is dropped, and so is one asked for later
   * (see {@link Reporter.ack}); should the report fail, its rev is acked on its own. It is sent
   * one event-loop turn later: in a process hosting many workers, every stream's delta is
   * applied before any request is built.
   */
  halted(report: HaltedReport): void {
    if (this.ackRev !== null && this.ackRev <= report.rev) this.ackRev = null;
    this.reportedRev = Math.max(this.reportedRev, report.rev);
    if (this.closed) return;
    this.haltedQueue.push(report);
    this.channel.wake(this);
  }

  /**
   * Journals one run-scoped event (`POST /v1/journal`). Events of one event-loop turn go out
   * together, in order, in batches of at most 500.
   */
  journal(event: JournalEvent): void {
    if (this.closed) return;
    if (this.journalQueue !== null) {
      this.journalQueue.push(event);
      return;
    }
    this.journalQueue = [event];
    setImmediate(() => {
      const events = this.journalQueue ?? [];
      this.journalQueue = null;
      for (let i = 0; i < events.length; i += JOURNAL_BATCH) {
        const body: JournalBatch = { workerId: this.workerId, events: events.slice(i, i + JOURNAL_BATCH) };
        void this.sendRetried({ kind: 'journal', url: `${this.base}/v1/journal`, body, attempts: 1 });
      }
    });
  }

  /**
   * Reports how a permitted effect ended, off the effect's critical path (its caller never waits
   * for it). With no outcome request in flight it goes at once, as
   * `POST /v1/permits/{id}/outcome`; outcomes reported while one is in flight wait for it and then
   * go together as `POST /v1/permits/outcomes` (at most 128 and about 48 KiB a request), so a busy
   * worker sends one request for many effects. One that never arrives leaves the permit open, and
   * the control plane marks it in doubt. {@link Reporter.close} sends what is still waiting.
   */
  outcome(permitId: string, outcome: PermitOutcome): void {
    if (this.closed) return;
    this.outcomeQueue.push({ permitId, ...outcome });
    if (!this.outcomeInFlight) this.sendOutcomes();
  }

  private outcomeQueue: OutcomeReport[] = [];
  private outcomeInFlight = false;

  /** Sends every waiting outcome; when those requests end, the ones that came meanwhile follow. */
  private sendOutcomes(): void {
    const all = this.outcomeQueue;
    this.outcomeQueue = [];
    if (all.length === 0) {
      this.outcomeInFlight = false;
      return;
    }
    this.outcomeInFlight = true;
    const sent: Promise<void>[] = [];
    if (all.length === 1 || !this.outcomeBatches) for (const o of all) sent.push(this.outcomeAlone(o));
    else {
      // Capped by count and by UTF-8 size (a result in another script is 2 to 4 bytes a
      // character); an outcome too big to share a batch goes alone, as does a batch of one.
      const { batches, alone } = splitBatches(all, OUTCOME_BATCH, (o) => o);
      for (const o of alone) sent.push(this.outcomeAlone(o));
      for (const batch of batches) {
        if (batch.length === 1) for (const o of batch) sent.push(this.outcomeAlone(o));
        else sent.push(this.outcomeBatch(batch));
      }
    }
    for (const p of sent) {
      this.outcomeSends.add(p);
      void p.then(() => this.outcomeSends.delete(p));
    }
    void Promise.all(sent).then(() => {
      if (!this.closed) this.sendOutcomes();
    });
  }

  /** Outcome requests on the wire, which {@link Reporter.close} waits for. */
  private readonly outcomeSends = new Set<Promise<void>>();

  private outcomeAlone({ permitId, ...outcome }: OutcomeReport): Promise<void> {
    const url = `${this.base}/v1/permits/${encodeURIComponent(permitId)}/outcome`;
    return this.sendRetried({ kind: 'outcome', url, body: outcome, attempts: 1 });
  }

  /**
   * One batch of outcomes, retried as a whole when the request fails (an outcome settles its
   * permit once: a second copy changes nothing). An item the control plane refused is a
   * `report.failed` of its own; one it failed to store (5xx) is sent again on its own.
   */
  private outcomeBatch(outcomes: OutcomeReport[], attempts = 1): Promise<void> {
    const body: OutcomeBatch = { outcomes };
    const url = `${this.base}/v1/permits/outcomes`;
    return this.send(
      'outcome',
      url,
      body,
      (code) => {
        if (code === 'not_found' && this.outcomeBatches) {
          // A control plane without the batch route: these and later outcomes go one by one.
          this.outcomeBatches = false;
          for (const o of outcomes) void this.outcomeAlone(o);
          return;
        }
        if (attempts < ATTEMPTS && RETRYABLE.has(code))
          this.failed.push({ kind: 'outcome', url, body, attempts });
      },
      (answer) => {
        const answers = (answer as { answers?: { status?: unknown; body?: unknown }[] } | undefined)?.answers;
        outcomes.forEach((o, i) => {
          const a = Array.isArray(answers) ? answers[i] : undefined;
          const status = typeof a?.status === 'number' ? a.status : 0;
          if (status >= 200 && status < 300) return;
          const err = refusal(status, a?.body ?? null, url);
          this.recordFailed('outcome', err);
          if (status >= 500) void this.outcomeAlone(o);
        });
      },
    );
  }

  /** Sends a heartbeat; `onAnswer` gets the control plane's answer (its settings for this worker). */
  heartbeat(report: HeartbeatReport, onAnswer?: (body: unknown) => void): void {
    void this.send('heartbeat', `${this.workerPath}/heartbeat`, report, undefined, onAnswer);
  }

  /** Registers a run so operators can target it by id. */
  registerRun(registration: RunRegistration): void {
    void this.send('run', `${this.base}/v1/runs`, registration);
  }

  /** Sends again the reports that failed for a retryable reason. */
  retryFailed(): void {
    const due = this.failed;
    this.failed = [];
    for (const item of due) {
      if (item.url.endsWith('/v1/permits/outcomes'))
        void this.outcomeBatch((item.body as OutcomeBatch).outcomes, item.attempts + 1);
      else void this.sendRetried({ ...item, attempts: item.attempts + 1 });
    }
  }

  /**
   * Sends the outcomes still waiting (they are never dropped) and drops other pending work;
   * later calls send nothing. Resolves once every outcome request has been answered or failed,
   * or after {@link CLOSE_WAIT_MS} on the client's clock.
   */
  close(): Promise<void> {
    if (!this.closed) {
      this.outcomeInFlight = false;
      this.sendOutcomes();
      this.channel.release();
    }
    this.closed = true;
    this.ackRev = null;
    this.haltedQueue = [];
    this.journalQueue = null;
    this.failed = [];
    if (this.outcomeSends.size === 0) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const timer = this.clock.setTimeout(resolve, CLOSE_WAIT_MS);
      void Promise.all(this.outcomeSends).then(() => {
        this.clock.clearTimeout(timer);
        resolve();
      });
    });
  }

  /** Sends `item`; a failure queues it for a retry. `taken`: see {@link Reporter.send}. */
  private sendRetried(item: Retried, taken = false): Promise<void> {
    return this.send(
      item.kind,
      item.url,
      item.body,
      (code) => this.retriedFailed(item, code),
      undefined,
      taken,
    );
  }

  /** `item` failed with `code`: it is queued for {@link Reporter.retryFailed} when worth it. */
  private retriedFailed(item: Retried, code: string | null): void {
    if (this.closed) return;
    if (item.attempts < ATTEMPTS && RETRYABLE.has(code)) this.failed.push(item);
    // The report was to ack its rev: the ack goes on its own, as it would have without it.
    if (item.kind === 'halted') this.queueAck(Math.max(this.ackRev ?? -1, (item.body as HaltedReport).rev));
  }

  /** Journals `report.failed` for `err`; returns its code. */
  private recordFailed(kind: ReportKind, err: unknown): string | null {
    const code = errorCode(err);
    try {
      this.sink.record({
        type: 'report.failed',
        report: kind,
        message: errorMessage(err),
        code,
        at: this.clock.now(),
      });
    } catch {
      // A throwing sink must not turn a failed report into an unhandled rejection.
    }
    return code;
  }

  /**
   * POSTs one report. Nothing is sent once the reporter is closed, unless `taken`: a report the
   * {@link ReportChannel} took before the close, whose batch was refused whole and which now
   * goes on its own route, is still on its way, as a report sent alone before the close is.
   */
  private send(
    kind: ReportKind,
    url: string,
    body: unknown,
    onFail?: (code: string | null) => void,
    onOk?: (answer: unknown) => void,
    taken = false,
  ): Promise<void> {
    if (this.closed && !taken) return Promise.resolve();
    const fail = (err: unknown): void => {
      const code = this.recordFailed(kind, err);
      if (!this.closed) onFail?.(code);
    };
    try {
      const p = this.transport.post(url, this.headers, body);
      if (onOk === undefined) return p.then(() => undefined, fail);
      return p.then((answer) => {
        if (this.closed) return;
        try {
          onOk(answer);
        } catch {
          // The answer is advice; a bad one must not break reporting.
        }
      }, fail);
    } catch (err) {
      fail(err);
      return Promise.resolve();
    }
  }
}
