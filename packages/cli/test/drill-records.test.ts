/**
 * `killpath drill history|due|show` against a real control plane in this process: the tables
 * name what an incident commander asks for, `due` exits 1 when any agent is due (for cron).
 */
import { after, before, describe, test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  KillpathError,
  type DrillDue,
  type RehearsalInput,
  type RehearsalRecord,
  type ScenarioResult,
} from '@killpath/protocol';
import { startServer, type RunningServer } from '@killpath/server';
import { ApiClient } from '../src/api.ts';
import {
  drillDue,
  drillHistory,
  drillShow,
  latencyVsTarget,
  statusCounts,
  worstSignalToHalt,
} from '../src/commands/drill-records.ts';

function scenario(over: Partial<ScenarioResult>): ScenarioResult {
  return {
    id: 'S1',
    title: 'cost runaway',
    path: 'asynchronous',
    status: 'pass',
    startedAt: '2025-06-01T10:00:01.000Z',
    durationMs: 900,
    target: { signalToHaltMs: 1000, haltToRecoveryMs: null },
    signalToHalt: { n: 2, p50: 20, p99: 40, max: 40, samples: [20, 40] },
    haltToRecoveryMs: null,
    effectsAfterFlip: { read: 1, write: 0, irreversible: 0 },
    effectsAfterObserve: 0,
    queue: null,
    journal: { intents: 3, landed: 2, failed: 0, aborted: 1, inDoubt: 0, open: 0, lost: 0, compensations: 1 },
    checks: [{ name: 'no write after the flip', ok: true, kind: 'invariant', detail: '0 writes' }],
    paths: [],
    notes: [],
    remediation: null,
    ...over,
  };
}

const REHEARSAL: RehearsalInput = {
  spec: {
    name: 'acme-spec',
    digest: 'sha256:1111',
    agents: [{ tenant: 'acme', agent: 'bot', level: 4, cadenceDays: 30 }],
  },
  mode: 'local',
  compact: false,
  startedAt: '2025-06-01T10:00:00.000Z',
  finishedAt: '2025-06-01T10:05:00.000Z',
  result: 'fail',
  scenarios: [
    scenario({}),
    scenario({
      id: 'S3',
      title: 'tool misuse',
      status: 'fail',
      signalToHalt: { n: 2, p50: 900, p99: 2100, max: 2100, samples: [900, 2100] },
      checks: [
        { name: 'signal-to-halt within target', ok: false, kind: 'target', detail: 'p99 2100 ms > 1000 ms' },
      ],
      remediation: 'shorten the heartbeat interval of acme/bot',
    }),
    scenario({
      id: 'S7',
      title: 'control plane down',
      path: 'deadman',
      status: 'degraded',
      signalToHalt: null,
      paths: [{ path: 'deadman', state: 'worked', detail: 'tripped in 2 s' }],
    }),
  ],
};

/** Runs a command with console.log captured; returns its exit status and what it printed. */
async function run(
  t: TestContext,
  fn: (args: string[]) => Promise<number>,
  args: string[],
): Promise<{ code: number; out: string }> {
  const lines: string[] = [];
  const log = t.mock.method(console, 'log', (...a: unknown[]) => void lines.push(a.map(String).join(' ')));
  try {
    const code = await fn(args);
    return { code, out: lines.join('\n') };
  } finally {
    log.mock.restore();
  }
}

describe('killpath drill history, due and show', () => {
  let dir: string;
  let server: RunningServer;
  let conn: string[];
  let api: ApiClient;
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'killpath-cli-drills-'));
    server = await startServer({
      dataDir: dir,
      port: 0,
      logLevel: 'silent',
      supervisor: false,
      watchdog: false,
    });
    conn = ['--url', server.url, '--token', server.createdAdminToken!];
    api = new ApiClient(server.url, server.createdAdminToken!);
  });
  after(async () => {
    await server?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test('nothing known: nothing due, exit 0', async (t) => {
    const r = await run(t, drillDue, conn);
    assert.equal(r.code, 0);
    assert.match(r.out, /no agents known/);
    assert.match((await run(t, drillHistory, conn)).out, /no rehearsal records/);
  });

  test('a failed rehearsal: due exits 1 naming it; history and show tell what failed and what to fix', async (t) => {
    const { drill } = await api.post<{ drill: RehearsalRecord }>('/v1/drills', REHEARSAL);

    const due = await run(t, drillDue, [...conn, '--spec-digest', 'sha256:2222']);
    assert.equal(due.code, 1, 'cron alerts on a due agent');
    assert.match(due.out, /acme\/bot\s+YES\s+spec changed; last drill failed; overdue since 2025-07-01\s/);
    assert.match(due.out, new RegExp(`${drill.id} 2025-06-01T10:05:00.000Z FAIL`));
    assert.match(due.out, /1 of 1 agent\(s\) due for a drill/);
    const json = await run(t, drillDue, [...conn, '--json']);
    assert.equal(json.code, 1);
    const agents = JSON.parse(json.out) as DrillDue[];
    assert.deepEqual(
      agents[0]!.reasons.map((r) => r.kind),
      ['failed', 'cadence'],
    );

    const history = await run(t, drillHistory, [...conn, '--agent', 'acme/bot', '-n', '5']);
    assert.equal(history.code, 0);
    const row = history.out.split('\n').find((l) => l.startsWith(drill.id));
    assert.ok(row, history.out);
    assert.match(
      row,
      /acme-spec sha256:1111\s+acme\/bot\s+local\s+FAIL\s+1\/1\/1\/0\s+2\.10 s > 1\.00 s \(S3\)/,
    );
    assert.equal(
      (await run(t, drillHistory, [...conn, '--agent', 'acme/other'])).out,
      'no rehearsal records',
    );

    const show = await run(t, drillShow, [...conn, drill.id]);
    assert.equal(show.code, 0);
    assert.match(show.out, /# drill dr_\S+: FAIL \(1 passed, 1 failed, 1 degraded, 0 skipped\)/);
    assert.match(
      show.out,
      /S3 tool misuse\s+FAIL\s+≤ 1\.00 s\s+900\.0 ms \/ 2\.10 s \(n=2\)\s+w0 i0 r1, 0 after observe\s+3 intents: 2 landed, 1 aborted, 0 failed, 0 in doubt, 0 open, 0 lost\s+shorten the heartbeat interval of acme\/bot/,
    );
    assert.match(
      show.out,
      /failed checks:\n.*\nS3\s+target\s+signal-to-halt within target\s+p99 2100 ms > 1000 ms/,
    );
    assert.match(show.out, /S7\s+deadman\s+worked\s+tripped in 2 s/);
    const shown = JSON.parse((await run(t, drillShow, [...conn, drill.id, '--json'])).out) as RehearsalRecord;
    assert.deepEqual(shown, drill);
  });

  test('bad arguments are refused before any request; an unknown record is not_found', async (t) => {
    await assert.rejects(
      drillHistory([...conn, '--agent', 'acme']),
      (e: unknown) => e instanceof KillpathError && e.code === 'invalid_request',
    );
    await assert.rejects(
      drillHistory([...conn, '--limit', '0']),
      (e: unknown) => e instanceof KillpathError && e.code === 'invalid_request',
    );
    await assert.rejects(
      drillDue([...conn, '--spec-digest', 'a b']),
      (e: unknown) => e instanceof KillpathError && e.code === 'invalid_request',
    );
    await assert.rejects(
      drillShow(conn),
      (e: unknown) => e instanceof KillpathError && e.code === 'invalid_request',
    );
    await assert.rejects(
      drillShow([...conn, 'dr_nope']),
      (e: unknown) => e instanceof KillpathError && e.code === 'not_found',
    );
    assert.equal((await run(t, drillDue, ['--help'])).code, 0);
  });

  test('a full page of history says so and prints the command for the older records; following it reaches every one', async (t) => {
    for (const n of [1, 2, 3])
      await api.post('/v1/drills', { ...REHEARSAL, finishedAt: `2025-06-0${n + 1}T10:05:00.000Z` });
    const { drills } = await api.get<{ drills: RehearsalRecord[] }>('/v1/drills?limit=500');
    const seen: string[] = [];
    let argv = ['-n', '2'];
    for (let pages = 0; pages < 10; pages++) {
      const r = await run(t, drillHistory, [...argv, ...conn]);
      seen.push(...drills.map((d) => d.id).filter((id) => r.out.includes(`${id} `)));
      const next = /older ones: killpath drill history (.*)$/m.exec(r.out)?.[1];
      if (next === undefined) break;
      argv = next.split(' ');
    }
    assert.deepEqual(
      seen,
      drills.map((d) => d.id),
      'every record once, newest first',
    );
    assert.ok(drills.length >= 4);
    // Issue 18: the page says how many there are in all, and --json carries it with the next cursor.
    const first = await run(t, drillHistory, ['-n', '2', ...conn]);
    assert.match(
      first.out,
      new RegExp(`^2 of ${drills.length}, the newest; older ones: killpath drill history -n 2 --before`, 'm'),
    );
    const json = JSON.parse((await run(t, drillHistory, ['-n', '2', '--json', ...conn])).out) as {
      total: number;
      before: string | null;
      drills: RehearsalRecord[];
    };
    assert.deepEqual(
      [json.total, json.drills.map((d) => d.id), json.before],
      [drills.length, [drills[0]!.id, drills[1]!.id], drills[1]!.id],
    );
    const all = await run(t, drillHistory, ['-n', '500', ...conn]);
    assert.match(all.out, new RegExp(`^all ${drills.length}$`, 'm'));
  });
});

test('summaries: status counts, the worst signal-to-halt and its target', () => {
  assert.deepEqual(statusCounts(REHEARSAL.scenarios), { pass: 1, fail: 1, degraded: 1, skipped: 0 });
  const worst = worstSignalToHalt(REHEARSAL.scenarios);
  assert.deepEqual(worst, { scenario: 'S3', p99: 2100, target: 1000 });
  assert.equal(latencyVsTarget(worst), '2.10 s > 1.00 s (S3)');
  assert.equal(latencyVsTarget({ scenario: 'S1', p99: 40, target: 1000 }), '40.0 ms ≤ 1.00 s (S1)');
  assert.equal(latencyVsTarget({ scenario: 'S1', p99: 40, target: null }), '40.0 ms (S1, no target)');
  assert.equal(latencyVsTarget(worstSignalToHalt([])), '-');
});
