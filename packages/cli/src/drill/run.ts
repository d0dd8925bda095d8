import { cpus } from 'node:os';
import { parse as parseYaml, stringify as stringifyYaml } from 'yaml';
import { LEVELS } from '@killpath/protocol';
import { DRILL_SCOPES } from './scopes.ts';
import type {
  AuditVerdict,
  AuditVerdictBrief,
  DrillCheck,
  RehearsalInput,
  RehearsalRecord,
  ScenarioResult,
} from '@killpath/protocol';
import type { FleetHarness } from '../fleet/harness.ts';
import { policyFromSpec } from '../killswitch-spec/load-spec.ts';
import type { KillSwitchSpec } from '../killswitch-spec/types.ts';
import type { DrillContext, Measured, Scenario } from './context.ts';
import { DrillEnv } from './env.ts';
import { FAILURE_SCENARIOS } from './failures.ts';
import { FLIP_SCENARIOS, mainFleetSpecs } from './flips.ts';
import { check } from './measure.ts';
import { FREEZE } from './freeze.ts';
import { PROCESS_SCENARIOS } from './processes.ts';
import { TRIGGER_SCENARIOS } from './triggers.ts';

/** Every scenario, in the order a drill runs them (the shared fleet's first, then one process each). */
export const SCENARIOS: Scenario[] = [
  ...FLIP_SCENARIOS,
  ...TRIGGER_SCENARIOS,
  ...PROCESS_SCENARIOS,
  FREEZE,
  ...FAILURE_SCENARIOS,
];

/** The order scenarios are reported in: S1–S8, then the scopes, then the ladder. */
export function reportOrder(id: string): number {
  const m = /^S(\d)$/.exec(id);
  if (m) return Number(m[1]);
  if (id.startsWith('scope:')) return 10 + (DRILL_SCOPES as readonly string[]).indexOf(id.slice(6));
  return 20 + (LEVELS as readonly string[]).indexOf(id.slice(6));
}

/**
 * Resolves `--scenarios`: ids (S1, scope:run, level:kill) and groups (`all`, `S`, `scopes`,
 * `levels`), comma-separated. Throws on an unknown name, listing the known ones.
 */
export function pickScenarios(list: string | undefined): Scenario[] {
  if (list === undefined || list.trim() === '' || list === 'all') return SCENARIOS;
  const wanted = new Set<string>();
  for (const raw of list
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)) {
    const name = raw.toLowerCase();
    const group =
      name === 's' || name === 'seed'
        ? SCENARIOS.filter((s) => /^S\d$/.test(s.id))
        : name === 'scopes'
          ? SCENARIOS.filter((s) => s.id.startsWith('scope:'))
          : name === 'levels'
            ? SCENARIOS.filter((s) => s.id.startsWith('level:'))
            : null;
    if (group) for (const s of group) wanted.add(s.id);
    else {
      const hit = SCENARIOS.find(
        (s) =>
          s.id.toLowerCase() === name ||
          s.id.toLowerCase() === `scope:${name}` ||
          s.id.toLowerCase() === `level:${name}`,
      );
      if (!hit)
        throw new Error(
          `unknown scenario "${raw}"; known: ${SCENARIOS.map((s) => s.id)
            .sort((x, y) => reportOrder(x) - reportOrder(y))
            .join(', ')}, or the groups all, S, scopes, levels`,
        );
      wanted.add(hit.id);
    }
  }
  return SCENARIOS.filter((s) => wanted.has(s.id));
}

/** What to fix when a check fails, by check name. */
const REMEDIATION: Record<string, string> = {
  'no covered effect after observe':
    'An effect started after its worker applied the stop: make sure every tool call and memory write goes through run.effect (the SDK gate); if it does, file a bug with this record (guarantee 1).',
  'no effect after observe':
    'An effect started after its worker applied the stop: make sure every tool call goes through run.effect; if it does, file a bug with this record.',
  'no write permit after the flip':
    'The control plane granted a write after the flip: its permit desk and switchboard were not one serialised unit. Stop using this store backend and file a bug with this record.',
  'every covered worker halted':
    'A covered worker never reported halted: check its stream and heartbeats, its lease, and run it under `killpath run` so the automatic kill step can end it.',
  'every worker applied it':
    'A worker never applied the directive: check its stream to the control plane (killpath status shows its observed rev).',
  'no timer fired after observe':
    'A timer of a halted run fired: bind timers to the run (run.setTimeout / run.setInterval / run.retry), not the global ones.',
  'no queued task started after observe':
    'A queued task of a halted run started: queue work with client.queue(…) bound to the run, so a halt discards it.',
  'in-flight writes rolled back':
    'A write in flight was not cancelled: pass the AbortSignal the SDK gives each effect into the tool call.',
  'the write was rolled back':
    'A write in flight was not cancelled: pass the AbortSignal the SDK gives each effect into the tool call.',
  'signal-to-halt within target':
    'Slower than the spec allows for this autonomy level: check propagation (stream, machine load), calls that ignore their AbortSignal, and the halt grace; or revisit the target in the spec.',
  'halt-to-recovery within target':
    'Recovery is slower than the spec allows: check how long a replacement session takes to start and to get its first permit.',
  'process gone':
    'The launcher did not end the process: run the agent under `killpath run`, check --kill-grace, and look for processes that escaped the group.',
  'process killed':
    'The hung process was not ended: the deadman must order a kill (killAfterMs in the policy) and the agent must run under `killpath run`.',
  'deadman fired':
    'The deadman did not trip: run the watchdog (`killpath serve` without --no-watchdog, or `killpath watchdog`) and check the policy\u2019s deadman settings for this agent.',
  'cost_cap fired':
    'The cost-cap rule did not fire: check `killpath policy show` has it enforced and the supervisor runs.',
  'loop_length fired':
    'The loop-length rule did not fire: check `killpath policy show` has it enforced and the supervisor runs.',
  'auth_denial fired on the first':
    'The auth-denial rule did not fire on the first denial: check `killpath policy show` and the supervisor.',
  'no second attempt':
    'The run made another unauthorised attempt before it was halted: the server rule is slower than the agent\u2019s retry; lower the telemetry batching or make the tool\u2019s grant check halt locally.',
  'operator notified':
    'No alert reached the sink: configure `killpath serve --notify-webhook URL` and check it receives alerts.',
  'no hanging intent':
    'Effects are left without an outcome: the worker died or lost contact before reporting. Work through `killpath journal RUN` and `killpath compensations`.',
  'no lost journal entry':
    'The ledger lost a write an agent saw land: file a bug with this record (journal consistency).',
  'rate at or under the dial':
    'The throttle let more through than dialled: check every effect goes through run.effect.',
  'fails closed: nothing after lease expiry':
    'The worker kept acting after its lease expired: check its leaseMs and that every effect goes through run.effect.',
  'synchronous path still works':
    'The operator path failed with the supervisor down: the synchronous path must not depend on the supervisor. File a bug with this record.',
  'synchronous path unreachable, then converged':
    'After the partition healed the worker did not apply the directive issued meanwhile: check its reconnect (resync on the rev gap).',
  'launcher froze it':
    'The launcher did not freeze the agent: run it under `killpath run` (a cgroup v2 hierarchy or, failing that, its process group) and read the launcher log for the freeze.',
  'no effect after the freeze':
    'An effect started after the launcher confirmed the freeze: a process of the agent escaped its cgroup or process group. Prefer `--isolation cgroup` and file a bug with this record.',
  'not one instruction while frozen':
    'A frozen process ran: a process of the agent escaped the freeze. Prefer `--isolation cgroup` and file a bug with this record.',
  'evidence written while frozen':
    'No evidence file: check the launcher can write its --evidence-dir and that the run was still frozen when killpath inspect asked.',
  thawed:
    'The resume did not thaw the agent: check the launcher was connected to the control plane when the freeze was cleared (its log), and that nothing killed it.',
  'lease resynchronised before the first effect':
    'After the thaw an effect started before a fresh snapshot: the SDK must treat a lapsed lease as stale until its stream resynchronises. File a bug with this record.',
  'scenario completed':
    'The scenario could not complete: read the detail, fix the environment (control plane reachable, token role, agents start) and rerun.',
};

/** The remediation of a failed scenario: one line per failed check. */
function remediation(checks: DrillCheck[]): string | null {
  const failed = checks.filter((c) => !c.ok);
  if (failed.length === 0) return null;
  return [...new Set(failed.map((c) => REMEDIATION[c.name] ?? `Investigate "${c.name}": ${c.detail}`))].join(
    ' ',
  );
}

/** Turns what a scenario measured into its judged result. */
export function judge(
  s: Scenario,
  m: Measured,
  startedAt: Date,
  durationMs: number,
  recoveryTarget: number,
): ScenarioResult {
  const failed = m.checks.some((c) => !c.ok);
  const paths = m.paths ?? [];
  const status = m.skipped ? 'skipped' : failed ? 'fail' : paths.length > 0 ? 'degraded' : 'pass';
  return {
    id: s.id,
    title: s.title,
    path: s.path,
    status,
    startedAt: startedAt.toISOString(),
    durationMs: Math.round(durationMs),
    target: {
      signalToHaltMs: m.targetMs ?? null,
      haltToRecoveryMs:
        m.haltToRecoveryMs !== undefined && m.haltToRecoveryMs !== null ? recoveryTarget : null,
    },
    signalToHalt: m.signalToHalt ?? null,
    haltToRecoveryMs: m.haltToRecoveryMs ?? null,
    effectsAfterFlip: m.effectsAfterFlip ?? null,
    effectsAfterObserve: m.effectsAfterObserve ?? null,
    queue: m.queue ?? null,
    journal: m.journal ?? null,
    checks: m.checks,
    paths,
    timeline: m.timeline ?? [],
    notes: m.skipped ? [m.skipped, ...(m.notes ?? [])] : (m.notes ?? []),
    remediation: failed ? remediation(m.checks) : null,
  };
}

/** Options of {@link runDrill}. */
export interface DrillRunOptions {
  spec: KillSwitchSpec;
  digest: string;
  scenarios: Scenario[];
  compact: boolean;
  /** Watch after each flip, ms (default: the spec's rehearsal window; 1000 in compact mode). */
  windowMs: number;
  url: string | null;
  token: string | null;
  tenant: string | null;
  allowGlobal: boolean;
  keep: boolean;
  progress(text: string): void;
}

/** A finished drill. */
export interface DrillRun {
  rehearsal: RehearsalInput;
  wallMs: number;
  machine: string;
  controlPlaneUrl: string;
  record: RehearsalRecord | null;
  recordError: string | null;
  /** The audit log's verification: an admin's answer (local drills), or a tenant token's ok-or-not. */
  auditVerified: AuditVerdict | AuditVerdictBrief | null;
  /** Local drills: the data dir, when kept. */
  dataDir: string | null;
}

/** Which checks break the compact CI battery: invariants only, never a latency. */
export function brokenInvariants(r: RehearsalInput): string[] {
  return r.scenarios.flatMap((s) =>
    s.checks.filter((c) => !c.ok && c.kind === 'invariant').map((c) => `${s.id} ${c.name}: ${c.detail}`),
  );
}

/**
 * Runs a drill: opens its environment (its own control plane with the spec's policy, or a
 * deployment by URL), runs the scenarios one after another on real processes, judges each
 * against the spec, stores the rehearsal record at the control plane, and stops everything.
 */
export async function runDrill(o: DrillRunOptions): Promise<DrillRun> {
  const t0 = performance.now();
  const startedAt = new Date();
  const deadmanAgent = o.spec.agents.at(-1)!;
  // A compact local drill tightens one agent's deadman; a remote one runs the deployment's policy.
  const fast = o.compact && o.url === null;
  const deadman = fast ? { intervalMs: 1000, missed: 3 } : o.spec.triggers.deadman;
  const policy = drillPolicy(o.spec, fast ? `${deadmanAgent.tenant}/${deadmanAgent.agent}` : null, deadman);
  const env = await DrillEnv.open({
    spec: o.spec,
    url: o.url,
    token: o.token,
    tenant: o.tenant,
    policy,
    absentAfterMs: o.compact ? 1000 : 5000,
    keep: o.keep,
  });
  let fleet: FleetHarness | null = null;
  const ctx: DrillContext = {
    env,
    spec: o.spec,
    compact: o.compact,
    windowMs: o.windowMs,
    allowGlobal: o.allowGlobal,
    policy,
    deadman: { agent: env.agents.at(-1)!, thresholdMs: deadman.intervalMs * deadman.missed },
    leaseMs: 3000,
    progress: o.progress,
    async mainFleet() {
      if (fleet === null) {
        const specs = mainFleetSpecs(ctx);
        o.progress(`starting the shared fleet: ${specs.length} agent processes`);
        fleet = await env.fleet(specs, { DEMO_PERIOD_MS: '20', DEMO_SLOW_MS: '4000' });
        await new Promise((ok) => setTimeout(ok, 800));
      }
      return fleet;
    },
  };
  // Agent processes run in process groups of their own: an interrupted drill stops them itself.
  const onSignal = () => void env.close().finally(() => process.exit(130));
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  const results: ScenarioResult[] = [];
  let record: RehearsalRecord | null = null;
  let recordError: string | null = null;
  try {
    o.progress(
      `${env.mode === 'local' ? 'control plane started on' : 'control plane at'} ${env.url}; run ids start with ${env.prefix}`,
    );
    const sharedLeft = () => o.scenarios.slice(results.length).some((s) => FLIP_SCENARIOS.includes(s));
    for (const [i, s] of o.scenarios.entries()) {
      o.progress(`[${i + 1}/${o.scenarios.length}] ${s.id} ${s.title} …`);
      const began = new Date();
      const t = performance.now();
      const mark = await env.mark();
      let m: Measured;
      try {
        m = await s.run(ctx);
      } catch (err) {
        m = {
          checks: [check('scenario completed', 'invariant', false, (err as Error).message ?? String(err))],
        };
      }
      const durationMs = performance.now() - t;
      // Whatever the scenario left in force or running is undone before the next one starts.
      const undone = await env
        .cleanUpSince(mark, fleet)
        .catch((err: Error) => [`cleanup failed: ${err.message}`]);
      if (undone.length > 0) {
        m = { ...m, notes: [...(m.notes ?? []), ...undone.map((u) => `cleanup: ${u}`)] };
        for (const u of undone) o.progress(`  cleanup after ${s.id}: ${u}`);
      }
      const r = judge(s, m, began, durationMs, o.spec.latency.haltToRecoveryMs);
      results.push(r);
      o.progress(
        `[${i + 1}/${o.scenarios.length}] ${s.id} ${r.status}${r.signalToHalt ? `, signal-to-halt max ${r.signalToHalt.max} ms` : ''} (${(r.durationMs / 1000).toFixed(1)} s)`,
      );
      if (fleet !== null && !sharedLeft()) {
        await (fleet as FleetHarness).stop(1000);
        fleet = null;
      }
    }
    const finishedAt = new Date();
    const rehearsal: RehearsalInput = {
      spec: {
        name: o.spec.name,
        digest: o.digest,
        agents: env.agents.map((a) => ({
          tenant: a.tenant,
          agent: a.agent,
          level: a.level,
          cadenceDays: o.spec.rehearsal.cadenceDays[a.level],
        })),
      },
      mode: env.mode,
      compact: o.compact,
      startedAt: startedAt.toISOString(),
      finishedAt: finishedAt.toISOString(),
      result: results.some((r) => r.status === 'fail') ? 'fail' : 'pass',
      scenarios: [...results].sort((a, b) => reportOrder(a.id) - reportOrder(b.id)),
    };
    try {
      const body = { ...rehearsal, scenarios: rehearsal.scenarios.map(({ timeline: _t, ...rest }) => rest) };
      record = (await env.api.post<{ drill: RehearsalRecord }>('/v1/drills', body)).drill;
    } catch (err) {
      recordError = (err as Error).message;
    }
    const asked = env.api.get<AuditVerdict | AuditVerdictBrief>('/v1/audit/verify');
    // A deployment's answer depends on the token (a tenant's says only ok or not; an agent's is
    // refused): a remote drill reports what it was told and fails on nothing else.
    const verdict = env.mode === 'local' ? await asked : await asked.catch(() => null);
    return {
      rehearsal,
      wallMs: Math.round(performance.now() - t0),
      machine: `${process.platform} ${process.arch}, ${cpus().length} cores, node ${process.version}`,
      controlPlaneUrl: env.url,
      record,
      recordError,
      auditVerified: verdict,
      dataDir: o.keep ? env.dataDir : null,
    };
  } finally {
    process.removeListener('SIGINT', onSignal);
    process.removeListener('SIGTERM', onSignal);
    await env.close();
  }
}

/**
 * The policy a local drill's control plane runs: the spec's triggers, with (compact drills) a
 * fast deadman for one agent, so S5 and S8 take seconds rather than the spec's 15 s.
 */
export function drillPolicy(
  spec: KillSwitchSpec,
  fastDeadmanFor: string | null,
  deadman: { intervalMs: number; missed: number },
): string {
  const text = policyFromSpec(spec);
  if (fastDeadmanFor === null) return text;
  const doc = parseYaml(text) as { deadman?: { agents?: Record<string, unknown> } };
  doc.deadman = {
    ...(doc.deadman ?? {}),
    agents: {
      ...(doc.deadman?.agents ?? {}),
      [fastDeadmanFor]: { intervalMs: deadman.intervalMs, missed: deadman.missed, killAfterMs: 0 },
    },
  };
  return `# killpath drill: the spec's policy, with a fast deadman for ${fastDeadmanFor} (compact drill)\n${stringifyYaml(doc)}`;
}
