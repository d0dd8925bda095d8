/**
 * The drill's scenario agent: a real process running the killpath SDK, whose runs each play
 * one role of seed 002's scenarios. It prints every SDK event and its own observations as JSON
 * lines on stdout (`{ k, wall, … }`, wall in epoch ms), like the demo agent, so the drill can
 * measure from outside. It is a stand-in with the identity of an agent of the spec: it proves
 * the kill path around an agent (control plane, SDK, launcher), not the agent's own code.
 *
 * DRILL_PLAN is a comma list of `role:runId`:
 * - `work`: steps and takes a `search` read every DRILL_PAUSE_MS (default 20), a `crm.update`
 *   write every fifth step; reports each new refusal (`{ k: 'denied', run, n, reason, directiveId }`)
 *   and keeps going;
 * - `loop`: steps with a read per step, DRILL_LOOP_PAUSE_MS (default 1) apart, until its gate
 *   refuses (loop length; `{ k: 'step', run, n }` every 25 steps);
 *   prints `{ k: 'cross', run, steps }` at the step that crossed, before any tool call of it;
 * - `cost`: records DRILL_COST_USD (default 0.25) per step until the run is halted (cost cap);
 *   `{ k: 'cross', run, costUsd }` when the spend passes the limit the control plane sent;
 * - `denial`: a run granted only `search` attempts `wire_transfer` three times,
 *   DRILL_DENIAL_GAP_MS (default 400) apart, reading in between; `{ k: 'attempt', run, n, reason }`;
 * - `midcall`: keeps a slow read and a slow write (DRILL_SLOW_MS, default 5000) in flight;
 *   `{ k: 'midcall', run }` once both are;
 * - `hang`: once the deadman's interval arrived, blocks the event loop forever (a hung model call).
 *
 * Refusals end `loop`, `cost`, `denial` with `{ k: 'denied', … }`; every role stops at SIGTERM.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { connect, type Run, type SdkEvent } from '@killpath/sdk';

const wallOf = (at: number) => performance.timeOrigin + at;
/** Prints one line; `wall` on the same clock as the SDK events' (time origin + monotonic). */
const out = (line: object) =>
  process.stdout.write(`${JSON.stringify({ wall: wallOf(performance.now()), ...line })}\n`);
const pause = Number(process.env.DRILL_PAUSE_MS ?? '20');
const slowMs = Number(process.env.DRILL_SLOW_MS ?? '5000');

const plan = (process.env.DRILL_PLAN ?? 'work:w1').split(',').map((entry) => {
  const [role, runId] = entry.split(':');
  if (!role || !runId) {
    console.error(`drill-agent: DRILL_PLAN entry "${entry}" is not role:runId`);
    process.exit(2);
  }
  return { role, runId };
});

let limits: { maxSteps: number | null; maxCostUsd: number | null } = { maxSteps: null, maxCostUsd: null };
let heartbeatMs = 0;
const client = connect({
  url: process.env.KILLPATH_URL!,
  token: process.env.KILLPATH_TOKEN!,
  tenant: process.env.KILLPATH_TENANT!,
  agent: process.env.KILLPATH_AGENT!,
  leaseMs: Number(process.env.KILLPATH_LEASE_MS ?? '3000'),
  heartbeatMs: Number(process.env.KILLPATH_HEARTBEAT_MS ?? '5000'),
  sink: {
    record: (e: SdkEvent) => {
      if (e.type === 'settings.applied') {
        limits = e.limits;
        heartbeatMs = e.heartbeatMs;
      }
      process.stdout.write(`${JSON.stringify({ k: 'ev', wall: wallOf(e.at), ...e })}\n`);
    },
  },
});

const refusal = (err: unknown) => {
  const d = (err as { details?: { reason?: string; directiveId?: string } }).details;
  return {
    reason: d?.reason ?? (err as { code?: string }).code ?? null,
    directiveId: d?.directiveId ?? null,
  };
};

const read = (run: Run) => run.effect({ capability: 'search', class: 'read' }, () => sleep(2));

async function work(run: Run): Promise<void> {
  let last = '';
  for (let n = 1; ; n++) {
    run.step();
    try {
      await read(run);
      if (n % 5 === 0)
        await run.effect(
          {
            capability: 'crm.update',
            class: 'write',
            idempotencyKey: `${run.runId}:${n}`,
            compensate: { action: 'crm.revert', n },
          },
          () => sleep(3),
        );
      last = '';
    } catch (err) {
      const r = refusal(err);
      const key = `${r.reason}|${r.directiveId}`;
      if (key !== last) out({ k: 'denied', run: run.runId, n, ...r });
      last = key;
    }
    await sleep(pause);
  }
}

async function untilRefused(run: Run, each: (n: number) => boolean): Promise<void> {
  const stepMs = Number(process.env.DRILL_LOOP_PAUSE_MS ?? '1');
  for (let n = 1; ; n++) {
    if (!each(n)) break;
    if (n % 25 === 0) out({ k: 'step', run: run.runId, n });
    try {
      await read(run);
    } catch (err) {
      out({ k: 'denied', run: run.runId, n, ...refusal(err) });
      return;
    }
    await sleep(stepMs);
  }
  // The step that crossed issued no tool call; the next attempt shows how the run is refused.
  try {
    await read(run);
    out({
      k: 'denied',
      run: run.runId,
      reason: null,
      directiveId: null,
      message: 'the read after the crossing was allowed',
    });
  } catch (err) {
    out({ k: 'denied', run: run.runId, ...refusal(err) });
  }
}

async function loop(run: Run): Promise<void> {
  await untilRefused(run, () => {
    const steps = run.step();
    if (run.check('search', 'read').kind === 'deny') {
      out({ k: 'cross', run: run.runId, steps, limit: limits.maxSteps });
      return false;
    }
    return true;
  });
}

async function cost(run: Run): Promise<void> {
  const usd = Number(process.env.DRILL_COST_USD ?? '0.25');
  await untilRefused(run, () => {
    run.step();
    run.recordCost({ tokens: 1000, usd });
    if (limits.maxCostUsd !== null && run.counters.costUsd > limits.maxCostUsd) {
      out({ k: 'cross', run: run.runId, costUsd: run.counters.costUsd, limit: limits.maxCostUsd });
      return false;
    }
    return true;
  });
}

async function denial(run: Run): Promise<void> {
  const gap = Number(process.env.DRILL_DENIAL_GAP_MS ?? '400');
  for (let n = 1; n <= 3; n++) {
    try {
      await run.effect({ capability: 'wire_transfer', class: 'irreversible' }, () => 'sent');
      out({ k: 'attempt', run: run.runId, n, reason: null });
    } catch (err) {
      out({ k: 'attempt', run: run.runId, n, ...refusal(err) });
    }
    const until = Date.now() + gap;
    while (Date.now() < until) {
      await read(run).catch(() => {});
      await sleep(pause);
    }
  }
  out({ k: 'done', run: run.runId });
}

async function midcall(run: Run): Promise<void> {
  let started = 0;
  const mark = () => {
    started += 1;
    if (started === 2) out({ k: 'midcall', run: run.runId });
  };
  const slow = (cls: 'read' | 'write', capability: string) =>
    run
      .effect(
        {
          capability,
          class: cls,
          ...(cls === 'write'
            ? { idempotencyKey: `${run.runId}:${capability}`, compensate: { action: 'crm.revert' } }
            : {}),
        },
        async (signal) => {
          mark();
          await sleep(slowMs, undefined, { signal });
          return 'done';
        },
      )
      .then(
        () => out({ k: 'settled', run: run.runId, capability, outcome: 'completed' }),
        (err: unknown) =>
          out({ k: 'settled', run: run.runId, capability, outcome: 'refused', ...refusal(err) }),
      );
  await Promise.all([slow('read', 'search'), slow('write', 'crm.update')]);
}

await client.ready;
const runs = plan.map((p) => ({
  ...p,
  run: client.startRun({ runId: p.runId, ...(p.role === 'denial' ? { capabilities: ['search'] } : {}) }),
}));
out({
  k: 'ready',
  workerId: client.workerId,
  pid: process.pid,
  refused: [],
  runs: runs.map((r) => ({ runId: r.runId, lineage: [] })),
});
// The first heartbeat's answer brings the run limits and the deadman's interval.
const settled = Date.now() + 3000;
while (heartbeatMs === 0 && Date.now() < settled) await sleep(10);

process.once('SIGTERM', () => void client.close().finally(() => process.exit(0)));
await Promise.all(
  runs.map(async ({ role, run }) => {
    switch (role) {
      case 'work':
        return work(run);
      case 'loop':
        return loop(run);
      case 'cost':
        return cost(run);
      case 'denial':
        return denial(run);
      case 'midcall':
        return midcall(run);
      case 'hang':
        out({ k: 'hanging', run: run.runId, heartbeatMs });
        for (;;) {
          // a model call that never returns and never yields
        }
      default:
        throw new Error(`drill-agent: unknown role ${role}`);
    }
  }),
);
await new Promise(() => {});
