/**
 * A small demo agent, readable in one sitting. It connects to the control plane with the
 * killpath SDK and runs a few "runs", each doing what a real agent does all day:
 *
 * - a `search` read (a few ms) and a `crm.update` write (a few ms), every `DEMO_PERIOD_MS`;
 *   the write has an idempotency key and a compensation, and goes through `run.retry` (a
 *   control plane that cannot be reached refuses writes at once; the agent's policy retries);
 * - a task pushed to the `outbox` queue every period, whose handler does an `outbox.send` write;
 * - a periodic `sync` write every 200 ms on a run-bound interval;
 * - a slow `export_report` write that takes seconds (the call a kill must cancel, not wait for);
 * - the first run also starts a child run (fan-out), which a halt of its parent must stop too.
 *
 * Writes need a permit from the control plane, so a halt stops them there too. Every effect
 * goes through `run.effect`, so the gate decides before it starts and a halt aborts it in
 * flight; the interval and the queue are bound to the run, so a halt cancels them and nothing
 * set before the flip fires after it. The agent prints every SDK event as one JSON line on
 * stdout, so the demo (and the tests) can check from outside that nothing covered started,
 * fired or was dequeued after the worker observed a flip.
 *
 * Configuration (environment): KILLPATH_URL, KILLPATH_TOKEN, KILLPATH_TENANT, KILLPATH_AGENT,
 * KILLPATH_FEATURES (comma list), DEMO_RUNS (comma list of run ids; default KILLPATH_RUN_ID, set by `killpath run --run`), DEMO_PERIOD_MS (default
 * 40), DEMO_SLOW_MS (default 3000), DEMO_OUTBOX_MS (how long sending one outbox task takes, default 2), KILLPATH_LEASE_MS (default 3000), DEMO_PARENT_RUN and
 * DEMO_RESUME=1 (resume the runs through the control plane instead of starting them),
 * DEMO_IRREVERSIBLE=1 (also keep an irreversible wire_transfer in its cool-off), DEMO_PARENT_RUN and
 * DEMO_PARENT_LINEAGE (comma list, root first): when set, the first run is started as a child
 * of that run, which lives in another process; KILLPATH_READY_TIMEOUT_MS: give up (exit 1) when
 * the control plane has not answered within this many ms (default: wait, retrying, as long as it takes).
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { connect, type Run, type RunTimer, type SdkEvent } from '@killpath/sdk';

function env(name: string, fallback?: string): string {
  const v = process.env[name] ?? fallback;
  if (v === undefined || v === '') {
    console.error(`demo-agent: ${name} is not set`);
    process.exit(2);
  }
  return v;
}

const period = Number(env('DEMO_PERIOD_MS', '40'));
const slowMs = Number(env('DEMO_SLOW_MS', '3000'));
const outboxMs = Number(env('DEMO_OUTBOX_MS', '2'));
const wall = (at: number) => performance.timeOrigin + at;
const out = (line: object) => process.stdout.write(`${JSON.stringify(line)}\n`);

const client = connect({
  url: env('KILLPATH_URL'),
  token: env('KILLPATH_TOKEN'),
  tenant: env('KILLPATH_TENANT'),
  agent: env('KILLPATH_AGENT'),
  features: (process.env.KILLPATH_FEATURES ?? '').split(',').filter(Boolean),
  leaseMs: Number(env('KILLPATH_LEASE_MS', '3000')),
  heartbeatMs: Number(env('KILLPATH_HEARTBEAT_MS', '5000')),
  // Until the control plane answers, `client.ready` retries and logs "control plane unreachable
  // at URL, retrying" on stderr; with a timeout it rejects instead of waiting for ever.
  ...(process.env.KILLPATH_READY_TIMEOUT_MS
    ? { readyTimeoutMs: Number(process.env.KILLPATH_READY_TIMEOUT_MS) }
    : {}),
  // Every SDK event goes to stdout with a wall-clock time, for the demo to measure from outside.
  sink: { record: (e: SdkEvent) => out({ k: 'ev', wall: wall(e.at), ...e }) },
});

/** Waits `ms` or until `signal` aborts; an abort rejects with the signal's reason (a `halted` error). */
function work(ms: number, signal: AbortSignal): Promise<void> {
  return sleep(ms, undefined, { signal }).catch((err: unknown) => {
    throw signal.aborted ? signal.reason : err;
  });
}

let stopping = false;
/** An effect's class, as `run.check` takes it. */
type EffectClass = NonNullable<Parameters<Run['check']>[1]>;

/**
 * After a refused or aborted effect: when the run itself is stopped (halt, kill, isolate, or no
 * contact), wait until its gate opens again (a resume, contact back) instead of retrying in a
 * loop; otherwise (one tool revoked, a failure) pause one period.
 */
async function backOff(run: Run, capability: string, cls: EffectClass, probe = false): Promise<void> {
  if (run.check(capability, cls).kind === 'allow') return sleep(period);
  // `probe` (the main loop): one attempt puts the refusal on the record (effect.denied names the
  // directive; an effect caught in flight by the stop was aborted, not refused). Then wait.
  if (probe) await run.effect({ capability, class: cls }, () => undefined).catch(() => {});
  await run.whenAllowed(capability, cls, { timeoutMs: 30_000 });
}

/** Outgoing messages: one task per period and run; a halt of the run drops its queued ones (journaled). */
const outbox = client.queue<{ runId: string; seq: number }>('outbox', async (task, { run }) => {
  if (run === null) return;
  await run.effect(
    { capability: 'outbox.send', class: 'write', idempotencyKey: `${task.runId}:outbox:${task.seq}` },
    (signal) => work(outboxMs, signal),
  );
});

/** A periodic `sync` write on a run-bound interval; re-armed by the main loop after a resume. */
function startSync(run: Run): RunTimer {
  return run.setInterval(
    () => run.effect({ capability: 'sync', class: 'write' }, (signal) => work(2, signal)),
    200,
    'sync',
  );
}

/** The agent's main loop for one run: read, then write, forever; a denied or aborted effect is skipped. */
async function loop(run: Run): Promise<void> {
  let counter = 0;
  let sync: RunTimer | null = null;
  while (!stopping) {
    try {
      // A halt cancels the interval; once the run may write again, start it anew.
      if (sync?.active !== true && run.check('sync').kind === 'allow') sync = startSync(run);
      await run.effect({ capability: 'search', class: 'read' }, (signal) => work(2, signal));
      counter += 1;
      const record = counter;
      await run.retry(
        () =>
          run.effect(
            {
              capability: 'crm.update',
              class: 'write',
              idempotencyKey: `${run.runId}:${record}`,
              args: { record },
              compensate: { action: 'crm.revert', record },
            },
            (signal) => work(3, signal),
          ),
        { attempts: 3, backoff: { initialMs: 20, maxMs: 200 }, label: 'crm.update' },
      );
      outbox.push({ runId: run.runId, seq: counter }, { run });
    } catch {
      // Denied, refused or aborted: the SDK journaled it. A stopped run waits for its resume.
      await backOff(run, 'search', 'read', true);
    }
    await sleep(period);
  }
}

/** Keeps one slow write in flight: the call a kill switch must cancel rather than wait for. */
async function slowLoop(run: Run): Promise<void> {
  while (!stopping) {
    try {
      await run.effect(
        { capability: 'export_report', class: 'write', args: { report: 'weekly' } },
        (signal) => work(slowMs, signal),
      );
    } catch {
      await backOff(run, 'export_report', 'write');
    }
  }
}

/** An irreversible `wire_transfer` now and then: it waits out its cool-off, and a halt meanwhile cancels it. */
async function transferLoop(run: Run): Promise<void> {
  let n = 0;
  while (!stopping) {
    n += 1;
    try {
      await run.effect(
        {
          capability: 'wire_transfer',
          class: 'irreversible',
          idempotencyKey: `${run.runId}:transfer:${n}`,
          compensate: { action: 'recall_transfer', n },
        },
        (signal) => work(2, signal),
      );
    } catch {
      await backOff(run, 'wire_transfer', 'irreversible');
    }
  }
}

const runIds = env('DEMO_RUNS', process.env.KILLPATH_RUN_ID).split(',');
const parentRun = process.env.DEMO_PARENT_RUN ?? '';
const parent =
  parentRun === ''
    ? undefined
    : { runId: parentRun, lineage: (process.env.DEMO_PARENT_LINEAGE ?? '').split(',').filter(Boolean) };
// DEMO_RESUME=1 is the path of a durable agent restarted after a crash or a redeploy: it asks
// the control plane to resume each run, and a run that is halted stays stopped.
const resuming = process.env.DEMO_RESUME === '1';
const runs: Run[] = [];
if (!resuming) {
  for (const [i, runId] of runIds.entries())
    runs.push(client.startRun({ runId, ...(i === 0 && parent !== undefined ? { parent } : {}) }));
  runs.push(runs[0]!.startChild({ runId: `${runIds[0]}.child` }));
}

try {
  await client.ready;
} catch (err) {
  console.error(`demo-agent: ${(err as Error).message}`);
  process.exit(1);
}
const refused: string[] = [];
if (resuming) {
  for (const runId of runIds) {
    try {
      runs.push(await client.resumeRun(runId));
    } catch {
      refused.push(runId);
    }
  }
}
out({
  k: 'ready',
  workerId: client.workerId,
  pid: process.pid,
  refused,
  runs: runs.map((r) => ({ runId: r.identity.runId, lineage: r.identity.lineage })),
});

const loops = runs.map(loop);
if (runs[0] !== undefined) loops.push(slowLoop(runs[0]));
if (runs[0] !== undefined && process.env.DEMO_IRREVERSIBLE === '1') loops.push(transferLoop(runs[0]));

async function shutdown(): Promise<void> {
  stopping = true;
  await client.close();
  process.exit(0);
}
process.once('SIGTERM', () => void shutdown());
process.once('SIGINT', () => void shutdown());
await Promise.all(loops);
