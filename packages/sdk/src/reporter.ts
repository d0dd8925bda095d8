import type {
  AckReport,
  HaltedReport,
  HeartbeatReport,
  JournalBatch,
  JournalEvent,
  PermitOutcome,
  RunRegistration,
} from '@killpath/protocol';
import type { Clock } from './clock.ts';
import { errorCode, errorMessage } from './journal.ts';
import type { JournalSink, ReportKind } from './journal.ts';
import type { Transport } from './transport.ts';

/** How many times a retried report (halted, journal, outcome) is sent before giving up, the first try included. */
const ATTEMPTS = 3;

/** Most journal events in one `POST /v1/journal`: a purged queue of thousands goes out in several. */
const JOURNAL_BATCH = 500;

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
 * one per macrotask turn (the latest rev), journal events to one batch per turn. Halted reports,
 * journal batches and permit outcomes that failed for a retryable reason are sent again by
 * {@link Reporter.retryFailed}, which the client calls on every heartbeat, up to three times in all.
 */
export class Reporter {
  private readonly transport: Transport;
  private readonly base: string;
  private readonly workerId: string;
  private readonly workerPath: string;
  private readonly headers: Record<string, string>;
  private readonly clock: Clock;
  private readonly sink: JournalSink;
  private ackRev: number | null = null;
  private journalQueue: JournalEvent[] | null = null;
  private failed: Retried[] = [];
  private closed = false;

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
  }

  /** Acks `rev`; revs applied in the same turn are acked once, with the latest. */
  ack(rev: number): void {
    const scheduled = this.ackRev !== null;
    this.ackRev = rev;
    if (scheduled) return;
    setImmediate(() => {
      const latest = this.ackRev;
      this.ackRev = null;
      if (latest === null) return;
      const body: AckReport = { rev: latest };
      this.send('ack', `${this.workerPath}/ack`, body);
    });
  }

  /**
   * Reports that the effects covered by one directive have settled. The report also acks its
   * rev, so a pending ack for that rev or an older one is dropped. It is sent one event-loop
   * turn later: in a process hosting many workers, every stream's delta is applied before any
   * request is built.
   */
  halted(report: HaltedReport): void {
    if (this.ackRev !== null && this.ackRev <= report.rev) this.ackRev = null;
    setImmediate(() =>
      this.sendRetried({ kind: 'halted', url: `${this.workerPath}/halted`, body: report, attempts: 1 }),
    );
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
        this.sendRetried({ kind: 'journal', url: `${this.base}/v1/journal`, body, attempts: 1 });
      }
    });
  }

  /** Reports how a permitted effect ended (`POST /v1/permits/{id}/outcome`), at once. */
  outcome(permitId: string, outcome: PermitOutcome): void {
    const url = `${this.base}/v1/permits/${encodeURIComponent(permitId)}/outcome`;
    this.sendRetried({ kind: 'outcome', url, body: outcome, attempts: 1 });
  }

  /** Sends a heartbeat; `onAnswer` gets the control plane's answer (its settings for this worker). */
  heartbeat(report: HeartbeatReport, onAnswer?: (body: unknown) => void): void {
    this.send('heartbeat', `${this.workerPath}/heartbeat`, report, undefined, onAnswer);
  }

  /** Registers a run so operators can target it by id. */
  registerRun(registration: RunRegistration): void {
    this.send('run', `${this.base}/v1/runs`, registration);
  }

  /** Sends again the reports that failed for a retryable reason. */
  retryFailed(): void {
    const due = this.failed;
    this.failed = [];
    for (const item of due) this.sendRetried({ ...item, attempts: item.attempts + 1 });
  }

  /** Drops pending work; later calls send nothing. */
  close(): void {
    this.closed = true;
    this.ackRev = null;
    this.journalQueue = null;
    this.failed = [];
  }

  private sendRetried(item: Retried): void {
    this.send(item.kind, item.url, item.body, (code) => {
      if (item.attempts < ATTEMPTS && RETRYABLE.has(code)) this.failed.push(item);
    });
  }

  private send(
    kind: ReportKind,
    url: string,
    body: unknown,
    onFail?: (code: string | null) => void,
    onOk?: (answer: unknown) => void,
  ): void {
    if (this.closed) return;
    const fail = (err: unknown): void => {
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
      if (!this.closed) onFail?.(code);
    };
    try {
      const p = this.transport.post(url, this.headers, body);
      if (onOk === undefined) p.catch(fail);
      else
        p.then((answer) => {
          if (this.closed) return;
          try {
            onOk(answer);
          } catch {
            // The answer is advice; a bad one must not break reporting.
          }
        }, fail);
    } catch (err) {
      fail(err);
    }
  }
}
