import { randomUUID } from 'node:crypto';
import { KillpathError, isIdentifier } from '@killpath/protocol';
import type {
  HeartbeatReport,
  LocalRule,
  Release,
  ResumeRequest,
  RunIdentity,
  RunReport,
} from '@killpath/protocol';
import { systemClock, wallNow } from './clock.ts';
import type { Clock } from './clock.ts';
import { consoleLogger, resolveOptions } from './connect-options.ts';
import type { ConnectOptions, Logger } from './connect-options.ts';
import { ControlCalls, asResumeAnswer, refusal } from './control-calls.ts';
import { sharedNodeHttpTransport } from './node-http-transport.ts';
import { HaltTracker } from './halt-tracker.ts';
import { CapabilitySurface, Heartbeat } from './heartbeat.ts';
import { nullSink } from './journal.ts';
import type { JournalSink, SdkEvent } from './journal.ts';
import { Lease } from './lease.ts';
import { localHaltEntry } from './local-halt.ts';
import { Mirror } from './mirror.ts';
import { Queue } from './queue.ts';
import { Readiness } from './readiness.ts';
import type { QueueHost, QueueOptions, TaskHandler } from './queue.ts';
import { Replicas, spread } from './replicas.ts';
import { Reporter } from './reporter.ts';
import { MAX_SURFACE, Run, RunState } from './run.ts';
import type { RunHandle, RunHost, StartRunOptions } from './run.ts';
import { RunRegistry } from './run-registry.ts';
import type { MemoryCommitter } from './staged-memory.ts';
import type { QueueControl } from './stop-fanout.ts';
import { StreamHandler } from './stream-handler.ts';
import { StreamLoop } from './stream-loop.ts';
import { ThrottleSlots } from './throttle-slots.ts';
import { STALE } from './verdict.ts';
import type { MemorySchema } from './memory-schema.ts';
import { Telemetry } from './telemetry.ts';

/** Options for {@link Client.resumeRun}. */
export interface ResumeRunOptions {
  /** The run's parent, when it is a child run (its lineage is sent to the control plane). */
  parent?: RunHandle;
  /** Where this run's staged memory writes are committed; default the client's `memory` option. */
  memory?: MemoryCommitter;
  /** The capabilities the run is granted (see `StartRunOptions.capabilities`). Default all. */
  capabilities?: readonly string[];
  /** The schema the run's memory writes must follow; default the client's `memorySchema` option. */
  memorySchema?: MemorySchema;
}

/**
 * Connects a worker to the control plane. Returns at once: the client opens the stream in the
 * background and every check denies `stale` until the first snapshot is applied (await
 * {@link Client.ready} to wait for it).
 * @throws KillpathError `invalid_request` for a malformed url, tenant, agent, feature or timing
 */
export function connect(options: ConnectOptions): Client {
  return new Client(options);
}

/**
 * A connected worker: the push stream, the local mirror of the switchboard, the lease, the
 * heartbeat and the runs it hosts. Create it with {@link connect}; stop it with {@link Client.close}.
 */
export class Client {
  /** This worker's id. */
  readonly workerId: string;
  /**
   * Resolves when the first snapshot is applied. While it is pending the client retries (logging
   * "control plane unreachable at URL, retrying" once, then once a minute) and keeps the process
   * alive, so `await client.ready` at the top of an agent waits for the control plane instead of
   * letting Node end the process. Rejects with a `KillpathError` when the stream is refused for
   * good (`unauthenticated`, `forbidden`), when the client is closed first, or when
   * `readyTimeoutMs` passed without a snapshot (`unavailable`, naming the URL and the last
   * error). An unobserved rejection is not reported as unhandled. Checks deny `stale` meanwhile.
   */
  readonly ready: Promise<void>;
  private readonly readiness: Readiness;
  private readonly logger: Logger;
  private readonly tenant: string;
  private readonly agent: string;
  private readonly features: readonly string[];
  /** The release this worker declared (connect option or environment), or `null`. */
  readonly release: Readonly<Release> | null;
  private readonly telemetry: Telemetry | null;
  private readonly memorySchema: MemorySchema | null;
  private readonly clock: Clock;
  private readonly sink: JournalSink;
  private readonly lease: Lease;
  private readonly mirror = new Mirror();
  private readonly runs: RunRegistry;
  private readonly reporter: Reporter;
  private readonly loop: StreamLoop;
  private readonly halts: HaltTracker;
  private readonly host: RunHost;
  private readonly calls: ControlCalls;
  private readonly committer: MemoryCommitter | null;
  private readonly queues = new Map<string, QueueControl>();
  private readonly queueHost: QueueHost;
  private readonly createdAt: number;
  private readonly stream: StreamHandler;
  private closing: Promise<void> | null = null;
  private readonly heartbeat: Heartbeat;
  private readonly launcherId: string | null;
  private readonly throttleSlots: ThrottleSlots;
  private effectSeq = 0;
  /** Capabilities this worker's runs declared or checked (see `RunHost.capabilities`). */
  private readonly surface = new CapabilitySurface();

  /** @internal Use {@link connect}. */
  constructor(options: ConnectOptions) {
    const settings = resolveOptions(options);
    this.workerId = settings.workerId;
    this.tenant = settings.tenant;
    this.agent = settings.agent;
    this.features = settings.features;
    this.release = settings.release;
    this.memorySchema = options.memorySchema ?? null;
    this.launcherId = settings.launcherId;
    this.clock = options.clock ?? systemClock;
    this.sink = options.sink ?? nullSink;
    this.createdAt = this.clock.now();
    this.throttleSlots = new ThrottleSlots(this.clock);
    this.lease = new Lease(this.clock, settings.leaseMs, () => this.stream.expire());
    const headers = Object.freeze({ authorization: `Bearer ${options.token}` });
    // node:http by default: a fraction of fetch's cost per report and per stream message.
    // One per process (for a set of CAs): a host's workers share its pool and their reports' batches.
    const wire = options.transport ?? sharedNodeHttpTransport(settings.ca);
    // Several replicas: one stream at a time, starting where this worker's id points (a fleet spreads).
    const replicas =
      settings.bases.length > 1
        ? new Replicas(wire, settings.bases, spread(this.workerId, settings.bases.length))
        : null;
    const transport = replicas ?? wire;
    this.logger = options.logger ?? consoleLogger;
    if (settings.warning !== null) this.logger.warn(settings.warning);
    this.reporter = new Reporter(transport, settings.base, this.workerId, headers, this.clock, this.sink);
    this.calls = new ControlCalls(transport, settings.base, headers);
    this.telemetry =
      settings.telemetryMs > 0
        ? new Telemetry(
            transport,
            settings.base,
            headers,
            this.workerId,
            this.clock,
            this.sink,
            settings.telemetryMs,
          )
        : null;
    this.committer = options.memory ?? null;
    // A run id no `run:` scope can name (identifiers have no '/'): only global, tenant, agent and feature scopes cover it.
    const workerIdentity: RunIdentity = Object.freeze({
      tenant: this.tenant,
      agent: this.agent,
      runId: `worker/${this.workerId}`,
      lineage: Object.freeze([]),
      features: this.features,
      release: this.release,
    });
    this.halts = new HaltTracker({
      now: () => this.clock.now(),
      settled: (report) => {
        this.reporter.halted(report);
        this.record({ type: 'halt.settled', ...report, at: this.clock.now() });
      },
    });
    const mirror = () => this.mirror;
    this.host = {
      clock: this.clock,
      lease: this.lease,
      capabilities: this.surface.names,
      workerId: this.workerId,
      get rev() {
        return mirror().rev;
      },
      calls: this.calls,
      record: (event) => this.record(event),
      journal: (event) => this.reporter.journal(event),
      outcome: (permitId, outcome) => this.reporter.outcome(permitId, outcome),
      nextEffectId: () => ++this.effectSeq,
      startRun: (opts) => this.startRun(opts),
      endRun: (state) => this.endRun(state),
      runDrained: (state) => this.runDrained(state),
      throttleSlot: (state, throttle) => this.throttleSlots.reserve(state.coverage.runId, throttle),
      counted: (state) => this.telemetry?.mark(state),
      localLimits: () => this.heartbeat.limits,
      haltLocally: (state, rule, value, limit) => this.haltLocally(state, rule, value, limit),
    };
    this.runs = new RunRegistry(this.mirror, workerIdentity, this.host, this.queues, this.halts);
    this.queueHost = {
      clock: this.clock,
      lease: this.lease,
      record: (event) => this.record(event),
      journal: (event) => this.reporter.journal(event),
      ownerOf: (run) => this.runs.ownerOf(run),
      workerIdentity,
      workerTable: () => this.runs.workerTable,
    };
    this.heartbeat = new Heartbeat(
      {
        clock: this.clock,
        reporter: this.reporter,
        record: (event) => this.record(event),
        report: () => this.heartbeatReport(),
        closed: () => this.closing !== null,
      },
      settings.heartbeatMs,
      settings.limits,
    );

    this.readiness = new Readiness(
      this.clock,
      this.logger,
      settings.bases.join(', '),
      settings.readyTimeoutMs,
    );
    this.ready = this.readiness.promise;
    this.stream = new StreamHandler({
      clock: this.clock,
      lease: this.lease,
      mirror: this.mirror,
      runs: this.runs,
      reporter: this.reporter,
      heartbeat: this.heartbeat,
      readiness: this.readiness,
      logger: this.logger,
      createdAt: this.createdAt,
      record: (event) => this.record(event),
      closed: () => this.closing !== null,
      dropStream: () => void this.loop.close(),
      streamUrl: () => replicas?.current ?? settings.base,
    });

    // A stream silent for two leases (no keep-alive even) is dead: drop it and reconnect.
    this.loop = new StreamLoop(
      transport,
      settings.streamUrl,
      headers,
      this.clock,
      {
        onMessage: (msg, fresh) => this.stream.onMessage(msg, fresh),
        onDrop: () => this.stream.onDrop(),
        onError: (err, retryInMs) => this.stream.onError(err, retryInMs),
        onFatal: (err) => this.stream.onFatal(err),
      },
      Math.max(2 * settings.leaseMs, 5000),
    );
    this.loop.start();
    this.heartbeat.start();
  }

  /** Rev of the local mirror; 0 before the first snapshot. */
  get rev(): number {
    return this.mirror.rev;
  }

  /** True while a stream is open and has delivered its snapshot. */
  get connected(): boolean {
    return this.stream.streamLive && this.closing === null;
  }

  /** Milliseconds until the gate closes for lack of contact; 0 when it is closed. */
  leaseRemainingMs(): number {
    return this.lease.remainingMs();
  }

  /**
   * Starts a run on this worker and registers it with the control plane (fire-and-forget; a
   * failure is journaled as `report.failed`). The run's lineage is the parent's lineage plus the
   * parent's id, so a `run:R` directive covers every descendant of R, across processes.
   * @throws KillpathError `invalid_request` for a bad id, a closed client or a worker that already
   * hosts `MAX_RUNS_PER_HEARTBEAT` (500) runs (details.reason `worker_full`: start another worker),
   * `conflict` for a run id already on this worker
   */
  startRun(options: StartRunOptions = {}): Run {
    const runId = options.runId ?? randomUUID();
    const lineage = this.newRunLineage(runId, options.parent ?? null);
    const run = this.createRun(runId, lineage, options);
    this.reporter.registerRun({
      runId,
      parentRunId: run.parentRunId,
      lineage: [...lineage],
      features: [...this.features],
      workerId: this.workerId,
    });
    return run;
  }

  /**
   * Brings back a run that existed before (after a worker restart, a redeploy, a replay from a
   * checkpoint): the control plane decides (`POST /v1/runs/{id}/resume`), never a cached state.
   * Resolves with the run, its lineage as the control plane recorded it; rejects with `halted`
   * when the run or a scope above it is halted (the control plane audits `resume.refused`) and
   * no run is created, with `unavailable` when the control plane cannot be reached. Effects of
   * the resumed run that reuse idempotency keys are replays: one that landed is not run again.
   * @throws nothing synchronously; `invalid_request` for a bad id or a closed client and
   * `conflict` for a run id already on this worker are rejections too
   */
  async resumeRun(runId: string, options: ResumeRunOptions = {}): Promise<Run> {
    const lineage = this.newRunLineage(runId, options.parent ?? null);
    const body: ResumeRequest = {
      workerId: this.workerId,
      lineage: [...lineage],
      features: [...this.features],
      ...(this.release === null ? {} : { release: { ...this.release } }),
    };
    let answer: unknown;
    try {
      answer = await this.calls.resume(runId, body);
    } catch (err) {
      const refused = refusal(err, `resume of run ${runId}`);
      this.record({
        type: 'resume.refused',
        runId,
        code: refused.code,
        message: refused.message,
        at: this.clock.now(),
      });
      throw refused;
    }
    const resumed = asResumeAnswer(answer);
    if (resumed === null || resumed.runId !== runId || !resumed.lineage.every(isIdentifier)) {
      throw new KillpathError('internal', `resume of run ${runId}: malformed answer from the control plane`);
    }
    // Checked again: the client may have closed, or the id been taken, during the round trip.
    this.newRunLineage(runId, null);
    const serverLineage = Object.freeze([...resumed.lineage]);
    this.record({ type: 'run.resumed', runId, lineage: serverLineage, at: this.clock.now() });
    return this.createRun(runId, serverLineage, options);
  }

  /**
   * Creates a task queue bound to the kill path (see {@link Queue}): tasks belong to a run (or
   * to the worker), start only while its gate is open, and a covering halt discards or drains
   * them as its directive says, each journaled.
   * @throws KillpathError `invalid_request` for a bad name, bad options or a closed client,
   * `conflict` for a name already used on this client
   */
  queue<T>(name: string, handler: TaskHandler<T>, options: QueueOptions<T> = {}): Queue<T> {
    if (this.closing !== null) throw new KillpathError('invalid_request', 'client is closed');
    if (!isIdentifier(name)) throw new KillpathError('invalid_request', `invalid queue name "${name}"`);
    if (this.queues.has(name))
      throw new KillpathError('conflict', `queue ${name} already exists on this client`);
    const queue = new Queue<T>(this.queueHost, name, handler, options);
    this.queues.set(name, queue);
    return queue;
  }

  /**
   * Stops the stream, the lease timer and the heartbeat so the process can exit; pending
   * reports are dropped, except effect outcomes: permit requests still on the wire are waited
   * for (at most 5 s of real time) so that a permit granted meanwhile is reported `aborted`,
   * then the outcomes still waiting are sent, and the promise resolves once they were answered
   * (at most 5 s more on the client's clock). The gate closes: every later check denies `stale`, and an effect still
   * waiting for its permit never runs. Run timers are cancelled and queued tasks discarded (in
   * the sink only: the journal is closed too). In-flight effect functions are left to finish.
   * Idempotent.
   */
  close(): Promise<void> {
    if (this.closing !== null) return this.closing;
    this.lease.stop();
    this.heartbeat.stop();
    // Permits still on the wire may come back granted (asked before the gate closed): their
    // `aborted` outcomes must reach the control plane, so the reporter closes once they are
    // answered (at most CLOSE_PERMITS_WAIT_MS of real time: a control plane that never answers
    // must not hold the process).
    const delivered = boundedRealTime(this.calls.drained(), CLOSE_PERMITS_WAIT_MS).then(() =>
      this.reporter.close(),
    );
    // The last counters go out (fire-and-forget); nothing is sent after that.
    this.telemetry?.flush();
    this.telemetry?.close();
    // Nothing bound to a run fires after close (the gate is closed anyway; this lets go of the timers).
    for (const state of this.runs.values()) state.timers.cancelAll(STALE);
    for (const queue of this.queues.values()) queue.close();
    this.failReady(new KillpathError('unavailable', 'client closed before the first snapshot'));
    // Closed once the stream is down and the last outcomes were delivered (or gave up).
    this.closing = Promise.all([this.loop.close(), delivered]).then(() => undefined);
    return this.closing;
  }

  private failReady(err: Error): void {
    this.readiness.fail(err);
  }

  private endRun(state: RunState): void {
    this.record({ type: 'run.ended', runId: state.coverage.runId, at: this.clock.now() });
    for (const queue of this.queues.values()) queue.runEnded(state);
    if (state.inFlight.size === 0) this.runDrained(state);
  }

  /**
   * The lineage of a new run, after checking that it may be created here.
   * @throws KillpathError `invalid_request` (closed client, bad id or parent, a worker already hosting
   * `MAX_RUNS_PER_HEARTBEAT` runs), `conflict` (id taken)
   */
  private newRunLineage(runId: string, parent: RunHandle | null): readonly string[] {
    if (this.closing !== null) throw new KillpathError('invalid_request', 'client is closed');
    if (!isIdentifier(runId)) throw new KillpathError('invalid_request', `invalid run id "${runId}"`);
    if (this.runs.has(runId))
      throw new KillpathError('conflict', `run ${runId} already exists on this worker`);
    this.runs.assertRoom(runId);
    if (parent !== null && ![parent.runId, ...parent.lineage].every(isIdentifier)) {
      throw new KillpathError('invalid_request', 'invalid parent run handle');
    }
    return Object.freeze(parent === null ? [] : [...parent.lineage, parent.runId]);
  }

  /** Adds a run to this worker; its gate follows the mirror from its first check. */
  private createRun(
    runId: string,
    lineage: readonly string[],
    options: { memory?: MemoryCommitter; capabilities?: readonly string[]; memorySchema?: MemorySchema },
  ): Run {
    const memory = options.memory;
    if (
      options.capabilities !== undefined &&
      !(Array.isArray(options.capabilities) && options.capabilities.every((c) => typeof c === 'string'))
    ) {
      throw new KillpathError('invalid_request', 'capabilities must be an array of capability names');
    }
    const coverage: RunIdentity = Object.freeze({
      tenant: this.tenant,
      agent: this.agent,
      runId,
      lineage,
      features: this.features,
      release: this.release,
    });
    const state = new RunState(coverage, lineage.at(-1) ?? null, this.host, memory ?? this.committer);
    state.granted = options.capabilities === undefined ? null : new Set(options.capabilities);
    for (const c of options.capabilities ?? [])
      if (this.surface.names.size < MAX_SURFACE) this.surface.names.add(c);
    state.memorySchema = options.memorySchema ?? this.memorySchema;
    this.runs.add(state);
    const run = new Run(this.host, state);
    this.record({
      type: 'run.started',
      runId,
      parentRunId: state.parentRunId,
      lineage,
      at: this.clock.now(),
    });
    return run;
  }

  private runDrained(state: RunState): void {
    this.runs.drained(state);
  }

  /**
   * A run crossed a local limit: the SDK halts it (and its descendants on this worker) by
   * itself, exactly as a halt from the control plane would (gate, in-flight writes, timers,
   * staged memory, queues, halted report), under a local directive `local:<rule>:<run>` that
   * only this worker knows and that no resume clears. Journaled `run.halted_locally`; the
   * control plane hears of it with the next telemetry batch, sent at once.
   */
  private haltLocally(state: RunState, rule: LocalRule, value: number, limit: number): void {
    if (state.counters.localHalt !== null || this.closing !== null) return;
    state.counters.localHalt = { rule, value, limit };
    const runId = state.coverage.runId;
    const entry = localHaltEntry({
      rule,
      runId,
      value,
      limit,
      tenant: this.tenant,
      rev: this.mirror.rev,
      issuedAtMs: wallNow(this.clock),
      release: this.release,
    });
    const at = this.clock.now();
    const directiveId = entry.directive.id;
    this.record({ type: 'run.halted_locally', runId, rule, value, limit, directiveId, at });
    this.runs.enforce(this.runs.addLocalStop(entry), [entry], this.mirror.rev, at);
    this.telemetry?.mark(state);
    this.telemetry?.flush();
  }

  private heartbeatReport(): HeartbeatReport {
    const runs: RunReport[] = [];
    for (const state of this.runs.values()) {
      runs.push({
        runId: state.coverage.runId,
        parentRunId: state.parentRunId,
        lineage: [...state.coverage.lineage],
        state: state.table.level ?? 'running',
        effects: state.effects,
        denied: state.denied,
        inFlight: state.inFlight.size,
      });
    }
    return {
      rev: this.mirror.rev,
      features: [...this.features],
      runs,
      pid: process.pid,
      sinceContactMs: Math.round(this.lease.sinceContactMs(this.createdAt)),
      ...(this.launcherId === null ? {} : { launcher: this.launcherId }),
      ...(this.release === null ? {} : { release: { ...this.release } }),
      ...(this.surface.names.size === 0 ? {} : { capabilities: this.surface.list() }),
    };
  }

  private record(event: SdkEvent): void {
    try {
      this.sink.record(event);
    } catch {
      // A failing sink must never break the gate or an effect.
    }
  }
}

/** Longest `close` waits for permit requests still on the wire, in ms of real time. */
const CLOSE_PERMITS_WAIT_MS = 5_000;

/**
 * `p`, or nothing after `ms` of real time, whichever comes first. Real time, not the client's
 * clock: a test's manual clock that is never advanced must not hold `close` forever.
 */
function boundedRealTime(p: Promise<void>, ms: number): Promise<void> {
  return new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, ms);
    timer.unref?.();
    void p.then(() => {
      clearTimeout(timer);
      resolve();
    });
  });
}
