/**
 * A hand-built drill for the report's tests (unit and browser): a passing S1 with 12 samples and
 * a timeline of a few hundred effects, a failed S3 with a broken invariant and a remediation, a
 * degraded S8 with its paths, a skipped S7 with no data, a passing global flip whose samples span
 * two decades (log axis), and strings full of HTML special characters. Deterministic: the
 * "random" parts come from a seeded generator.
 */
import type { DrillCheck, RehearsalInput, ScenarioResult, TimelinePoint } from '@killpath/protocol';
import type { DrillReportInput } from '../../src/drill/report.ts';

/** Strings that must come out escaped: raw, they would inject markup or a request. */
export const NASTY = {
  title: 'Wire transfer <b>after</b> halt & "retry" \'storm\'',
  detail: '2 writes after the flip: <script>alert("x")</script> wire_transfer & crm.update',
  remediation:
    'Move wire_transfer behind a permit: <img src="https://evil.example/x.png"> & re-run with --only S3',
  note: 'Operator said: "<a href=\'http://evil.example\'>see</a>" & moved on',
  spec: 'demo-fleet <v2> & "prod"',
} as const;

/** mulberry32: a small seeded PRNG, so the fixture is the same on every run. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function summarise(samples: number[]) {
  const sorted = [...samples].sort((a, b) => a - b);
  const at = (p: number) =>
    sorted[Math.min(sorted.length, Math.max(1, Math.ceil((p / 100) * sorted.length))) - 1]!;
  return { n: samples.length, p50: at(50), p99: at(99), max: sorted[sorted.length - 1]!, samples };
}

/**
 * Effects around a flip: steady reads and writes before it, reads that still start until the
 * workers observe it (~`observeMs`), refusals after it, a few writes aborted in flight, and
 * `writesAfter` writes that started after the flip (the broken invariant of a failed scenario).
 */
function timeline(
  seed: number,
  count: number,
  opts: { fromMs: number; toMs: number; observeMs: number; writesAfter?: number },
): TimelinePoint[] {
  const r = rng(seed);
  const out: TimelinePoint[] = [];
  for (let i = 0; i < count; i++) {
    const t = Math.round((opts.fromMs + r() * (opts.toMs - opts.fromMs)) * 100) / 100;
    const klass = r() < 0.6 ? 'read' : r() < 0.9 ? 'write' : 'irreversible';
    if (t < 0) out.push({ t, class: klass, outcome: 'started' });
    else if (t < opts.observeMs && klass === 'read') out.push({ t, class: klass, outcome: 'started' });
    else out.push({ t, class: klass, outcome: 'refused' });
  }
  for (let i = 0; i < 6; i++)
    out.push({ t: Math.round(r() * opts.observeMs * 100) / 100, class: 'write', outcome: 'aborted' });
  for (let i = 0; i < (opts.writesAfter ?? 0); i++)
    out.push({ t: 5 + i * 40, class: 'write', outcome: 'started' });
  return out.sort((a, b) => a.t - b.t);
}

const check = (kind: DrillCheck['kind'], name: string, ok: boolean, detail: string): DrillCheck => ({
  kind,
  name,
  ok,
  detail,
});

function scenario(
  over: Partial<ScenarioResult> & Pick<ScenarioResult, 'id' | 'title' | 'path' | 'status'>,
): ScenarioResult {
  return {
    startedAt: '2026-11-21T10:20:00.000Z',
    durationMs: 4200,
    target: { signalToHaltMs: 250, haltToRecoveryMs: 5000 },
    signalToHalt: null,
    haltToRecoveryMs: null,
    effectsAfterFlip: null,
    effectsAfterObserve: null,
    queue: null,
    journal: null,
    checks: [],
    paths: [],
    notes: [],
    remediation: null,
    ...over,
  };
}

/** The report input: five scenarios, overall fail (S3 broke an invariant). */
export function drillReportFixture(): DrillReportInput {
  const r = rng(42);
  const s1Samples = Array.from({ length: 12 }, () => Math.round((18 + r() * 40) * 100) / 100);
  const s3Samples = Array.from({ length: 8 }, (_, i) => Math.round((120 + i * 45 + r() * 30) * 100) / 100);
  const globalSamples = [1.8, 2.4, 3.1, 4.9, 7.5, 12, 19, 33, 48, 95, 160, 240];
  const scenarios: ScenarioResult[] = [
    scenario({
      id: 'S1',
      title: 'Runaway loop on one run',
      path: 'synchronous (CLI kill)',
      status: 'pass',
      signalToHalt: summarise(s1Samples),
      haltToRecoveryMs: 812.4,
      effectsAfterFlip: { read: 3, write: 0, irreversible: 0 },
      effectsAfterObserve: 0,
      queue: { atFlip: 5, afterWindow: 0, discarded: 5 },
      journal: {
        intents: 41,
        landed: 38,
        failed: 0,
        aborted: 3,
        inDoubt: 0,
        open: 0,
        lost: 0,
        compensations: 2,
      },
      checks: [
        check(
          'invariant',
          'no write after the flip',
          true,
          '0 writes, 0 irreversible effects started after the flip',
        ),
        check('invariant', 'every covered worker halted', true, '12 of 12 workers reported halted'),
        check('target', 'signal-to-halt p99 ≤ 250 ms', true, `p99 ${summarise(s1Samples).p99} ms`),
        check('expectation', 'loop_length rule fired', true, 'local rule halted run-7 after 40 iterations'),
      ],
      timeline: timeline(1, 320, { fromMs: -1500, toMs: 900, observeMs: 30 }),
      notes: ['12 workers, 1 repetition each'],
    }),
    scenario({
      id: 'S3',
      title: NASTY.title,
      path: 'asynchronous (policy trigger)',
      status: 'fail',
      durationMs: 6100,
      signalToHalt: summarise(s3Samples),
      haltToRecoveryMs: 7400,
      effectsAfterFlip: { read: 4, write: 2, irreversible: 0 },
      effectsAfterObserve: 2,
      queue: { atFlip: 3, afterWindow: 1, discarded: 2 },
      journal: {
        intents: 17,
        landed: 14,
        failed: 1,
        aborted: 1,
        inDoubt: 0,
        open: 1,
        lost: 0,
        compensations: 3,
      },
      checks: [
        check('invariant', 'no write after the flip', false, NASTY.detail),
        check('target', 'signal-to-halt p99 ≤ 250 ms', false, 'p99 over target'),
        check('expectation', 'operator notified', true, 'alert raised within 1 s'),
      ],
      timeline: timeline(2, 180, { fromMs: -800, toMs: 600, observeMs: 60, writesAfter: 2 }),
      notes: [NASTY.note],
      remediation: NASTY.remediation,
    }),
    scenario({
      id: 'S7',
      title: 'Control plane down mid-run',
      path: 'deadman',
      status: 'skipped',
      durationMs: 0,
      target: { signalToHaltMs: null, haltToRecoveryMs: null },
      notes: ['not exercised against a remote control plane (the drill cannot stop it)'],
    }),
    scenario({
      id: 'S8',
      title: 'Stream partitioned from one worker',
      path: 'fail closed (lease)',
      status: 'degraded',
      signalToHalt: summarise([420, 455, 470]),
      target: { signalToHaltMs: 3000, haltToRecoveryMs: null },
      effectsAfterFlip: { read: 0, write: 0, irreversible: 0 },
      effectsAfterObserve: 0,
      checks: [
        check(
          'invariant',
          'no write without a live permit',
          true,
          'all 9 write attempts refused: permit unreachable',
        ),
      ],
      paths: [
        { path: 'synchronous path (CLI kill)', state: 'unreachable', detail: 'stream cut by the partition' },
        { path: 'local rules (loop length)', state: 'worked', detail: 'halted run-3 after 40 iterations' },
        {
          path: 'lease (fail closed)',
          state: 'degraded',
          detail: 'halted after 455 ms lease, not the 250 ms target',
        },
        { path: 'deadman', state: 'not exercised', detail: 'heartbeats still reached the watchdog' },
      ],
      timeline: timeline(3, 90, { fromMs: -300, toMs: 700, observeMs: 455 }),
    }),
    scenario({
      id: 'scope:global',
      title: 'Global halt (break glass)',
      path: 'synchronous (CLI kill)',
      status: 'pass',
      signalToHalt: summarise(globalSamples),
      target: { signalToHaltMs: 250, haltToRecoveryMs: null },
      effectsAfterFlip: { read: 1, write: 0, irreversible: 0 },
      effectsAfterObserve: 0,
      checks: [check('invariant', 'every covered worker halted', true, '12 of 12')],
    }),
  ];
  const rehearsal: RehearsalInput = {
    spec: {
      name: NASTY.spec,
      digest: 'sha256:9f2c4e1a7b3d5e6f8091a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f7',
      agents: [{ tenant: 'acme', agent: 'support-bot', level: 4, cadenceDays: 30 }],
    },
    mode: 'local',
    compact: false,
    startedAt: '2026-11-21T10:20:00.000Z',
    finishedAt: '2026-11-21T10:20:31.500Z',
    result: 'fail',
    scenarios,
  };
  return {
    title: `killpath drill: ${NASTY.spec}`,
    rehearsal,
    wallMs: 31_500,
    machine: 'linux x64, 2 cores, node v24.21.0',
    recordId: 'drl_01JD8Z & <id>',
    controlPlaneUrl: 'http://127.0.0.1:7070',
  };
}
