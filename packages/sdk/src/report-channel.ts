import { KillpathError, type WorkerReportBatch, type WorkerReportItem } from '@killpath/protocol';
import { splitBatches } from './control-calls.ts';
import type { Transport } from './transport.ts';
import { refusal } from './wire-answers.ts';

/** Most reports in one `POST /v1/workers/reports` (the control plane takes up to 256). */
const MAX_REPORTS = 256;

/** Answers to a whole batch after which each of its reports is sent on its own route instead. */
const SEND_ALONE = new Set(['not_found', 'invalid_request', 'unsupported_media_type', 'payload_too_large']);

/** An ack or halted report waiting for the end of the turn, and how to send it without the batch. */
export interface PendingReport {
  /** The report as an item of `POST /v1/workers/reports`. */
  readonly item: WorkerReportItem;
  /** Sends it on its own route (`POST /v1/workers/{id}/ack` or `/halted`), failures handled there. */
  sendAlone(): void;
  /** The batch it went in failed, or the control plane refused this report: `err` says why. */
  failed(err: unknown): void;
}

/** A worker's reporter with reports waiting: the channel takes them at the end of the turn. */
export interface ReportSource {
  /** The reports waiting (none once closed); they are the channel's from here. */
  takeReports(): PendingReport[];
}

/**
 * The acks and halted reports of every worker in this process that shares a transport, a
 * control plane and a token, coalesced: each reporter wakes the channel when it has one, and one
 * event-loop turn later the channel sends what every woken reporter has, as one
 * `POST /v1/workers/reports` of up to 256 reports and about 48 KiB (more in several). After a
 * flip every worker of a host settles in the same turn or nearly, so a host of many workers sends
 * a few requests where it sent one per worker: the control plane's cost per report was mostly
 * the request's (see docs/architecture.md, "Where the time goes"). A lone report goes on its own
 * route as before, and so does every report to a control plane that answers the batch route 404
 * (it predates it) or refuses a batch as a whole (400, 413, 415): no report is lost to its neighbour.
 * Each report's answer is its own: a refused one fails only itself.
 */
export class ReportChannel {
  private readonly transport: Transport;
  private readonly url: string;
  private readonly headers: Record<string, string>;
  private readonly key: string;
  private readonly sources = new Set<ReportSource>();
  /** False once the control plane answered the batch route 404. */
  private batches = true;
  /** Holders that have not released it yet (see {@link ReportChannel.release}). */
  private holders = 0;

  private constructor(transport: Transport, base: string, headers: Record<string, string>, key: string) {
    this.transport = transport;
    this.url = `${base}/v1/workers/reports`;
    this.headers = headers;
    this.key = key;
  }

  /**
   * The channel of `transport`, control plane `base` and the token in `headers`, held by the
   * caller until it calls {@link ReportChannel.release}: one per such triple while any holder
   * keeps it. (The process's shared transport lives as long as the process: a channel kept past
   * its last worker would keep a closed client's token with it.)
   */
  static of(transport: Transport, base: string, headers: Record<string, string>): ReportChannel {
    let byTarget = channels.get(transport);
    if (byTarget === undefined) {
      byTarget = new Map();
      channels.set(transport, byTarget);
    }
    const key = `${base}\n${headers.authorization ?? ''}`;
    let channel = byTarget.get(key);
    if (channel === undefined) {
      channel = new ReportChannel(transport, base, headers, key);
      byTarget.set(key, channel);
    }
    channel.holders += 1;
    return channel;
  }

  /**
   * A holder of {@link ReportChannel.of} is done with it (its reporter closed). Once the last one
   * is, the channel is dropped: a later worker of that token gets a new one (which asks the batch
   * route again, should this one have learned it is missing). Reports already taken still go out.
   */
  release(): void {
    if (this.holders === 0) return;
    this.holders -= 1;
    if (this.holders > 0) return;
    const byTarget = channels.get(this.transport);
    if (byTarget?.get(this.key) === this) byTarget.delete(this.key);
  }

  /** `source` has reports: they go out at the end of this turn, with every other source's. */
  wake(source: ReportSource): void {
    if (this.sources.size === 0) setImmediate(() => this.flush());
    this.sources.add(source);
  }

  private flush(): void {
    const pending: PendingReport[] = [];
    for (const source of this.sources) for (const p of source.takeReports()) pending.push(p);
    this.sources.clear();
    if (pending.length === 1 || !this.batches) {
      for (const p of pending) p.sendAlone();
      return;
    }
    const { batches, alone } = splitBatches(pending, MAX_REPORTS, (p) => p.item);
    for (const p of alone) p.sendAlone();
    for (const batch of batches) {
      if (batch.length === 1) batch[0]!.sendAlone();
      else this.send(batch);
    }
  }

  private send(batch: PendingReport[]): void {
    const body: WorkerReportBatch = { reports: batch.map((p) => p.item) };
    let sent: Promise<unknown>;
    try {
      sent = this.transport.post(this.url, this.headers, body);
    } catch (err) {
      sent = Promise.reject(err);
    }
    sent.then(
      (answer) => {
        const answers = (answer as { answers?: unknown } | undefined)?.answers;
        batch.forEach((p, i) => {
          const a = (Array.isArray(answers) ? answers[i] : undefined) as
            { status?: unknown; body?: unknown } | undefined;
          // A report with no answer of its own (a 2xx from something that is not the control
          // plane, an answer cut short) is not known to be taken: it fails, and is retried.
          if (typeof a?.status !== 'number') {
            p.failed(
              new KillpathError('internal', `${this.url} answered without an answer for report ${i + 1}`),
            );
            return;
          }
          if (a.status < 200 || a.status >= 300) p.failed(refusal(a.status, a.body ?? null, this.url));
        });
      },
      (err: unknown) => {
        const code = (err as { code?: unknown } | null)?.code;
        if (code === 'not_found') this.batches = false;
        // Refused as a whole (no such route, a body this control plane does not take): each
        // report goes on its own route, which every control plane takes. Anything else (the
        // network, a 5xx, a 401) would fail each of them alike.
        if (typeof code === 'string' && SEND_ALONE.has(code)) for (const p of batch) p.sendAlone();
        else for (const p of batch) p.failed(err);
      },
    );
  }
}

const channels = new WeakMap<Transport, Map<string, ReportChannel>>();
