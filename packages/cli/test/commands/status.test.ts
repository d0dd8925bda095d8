/**
 * `killpath status` as an on-call checks "other runs unharmed": the workers that aborted
 * effects recently are flagged with their runs and why (a directive, or none: a lapsed lease),
 * every other worker is said to have done neither; `--run R` finds the workers holding a run
 * (one line and exit 1 while none does); the fleet pages ("N of M", the next page's command,
 * `--all`, `--json` with total and cursor). Workers heartbeat through the real routes of a
 * control plane in this process.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { RunReport } from '@killpath/protocol';
import { ApiClient } from '../../src/api.ts';
import { cli } from '../cli-capture.ts';
import { startCliServer, type CliServer } from '../cli-server.ts';

const report = (runId: string): RunReport => ({
  runId,
  parentRunId: null,
  lineage: [],
  state: 'running',
  effects: 0,
  denied: 0,
  inFlight: 0,
});

/** The CLI's output split into lines (a table is printed as one string). */
async function lines(argv: string[]) {
  const r = await cli(argv);
  return { ...r, out: r.out.join('\n').split('\n') };
}

describe('killpath status: flags, --run, pages', () => {
  let s: CliServer;
  before(async () => {
    s = await startCliServer('status');
    const admin = new ApiClient(s.url, s.token);
    const { token } = await admin.post<{ token: string }>('/v1/tokens', {
      role: 'agent',
      tenant: 'acme',
      agent: 'bot',
      name: 'bot',
    });
    const agent = new ApiClient(s.url, token);
    for (const [w, run] of [
      ['w-1', 'run-1'],
      ['w-2', 'run-2'],
      ['w-3', 'run-3'],
    ] as const) {
      await agent.post(`/v1/workers/${w}/heartbeat`, {
        rev: 0,
        features: [],
        runs: [report(run)],
        pid: 1000,
        sinceContactMs: 5,
      });
      await agent.post('/v1/runs', { workerId: w, runId: run, parentRunId: null, lineage: [], features: [] });
    }
    // w-2's lease lapsed mid-write: the SDK aborted the effect with no directive.
    await agent.post('/v1/journal', {
      workerId: 'w-2',
      events: [
        {
          type: 'in_flight_tool_calls.status',
          runId: 'run-2',
          effectId: 'w-2:1',
          permitId: null,
          capability: 'crm.update',
          class: 'write',
          status: 'aborted',
          directiveId: null,
        },
      ],
    });
  });
  after(async () => {
    await s?.close();
  });

  it('flags the worker that aborted an effect, with its run and why; the others did neither', async () => {
    const r = await lines(['status', ...s.conn]);
    assert.equal(r.code, 0, r.err.join('\n'));
    assert.ok(r.out.includes('fleet: 3 of 3 worker(s) (running 3)'), r.out.join('\n'));
    assert.ok(
      r.out.includes(
        'lost a lease or aborted effects in the last 10 min: 1 worker(s) (below); every other worker of the 3 in view did neither',
      ),
      r.out.join('\n'),
    );
    assert.ok(
      r.out.some((l) =>
        /^acme +- +w-2 +run-2 +aborted 1 effect\(s\) for no directive \(its lease lapsed or its stream was lost\)$/.test(
          l,
        ),
      ),
      r.out.join('\n'),
    );
    const j = JSON.parse((await cli(['status', '--json', ...s.conn])).out.join('\n')) as {
      flagged: { workerId: string; runs: string[]; aborted: number; directives: (string | null)[] }[];
      total: number;
      cursor: string | null;
    };
    assert.deepEqual(
      j.flagged.map((f) => [f.workerId, f.runs, f.aborted, f.directives]),
      [['w-2', ['run-2'], 1, [null]]],
    );
    assert.equal(j.total, 3);
    assert.equal(j.cursor, null);
  });

  it('--since 0 looks back no time: nothing flagged', async () => {
    const r = await lines(['status', '--since', '0', ...s.conn]);
    assert.ok(
      r.out.some((l) => l.startsWith('lost a lease or aborted effects in the last 0 min: 0 worker(s);')),
    );
  });

  it('--run R: the workers holding it; none yet is one line and exit 1', async () => {
    const r = await lines(['status', '--run', 'run-3', ...s.conn]);
    assert.equal(r.code, 0, r.err.join('\n'));
    assert.ok(
      r.out.some((l) => l.startsWith('fleet: 1 of 1 worker(s) holding run run-3')),
      r.out.join('\n'),
    );
    assert.ok(r.out.some((l) => /^acme +bot +w-3 .* run-3$/.test(l)));
    assert.ok(!r.out.some((l) => /^acme +bot +w-1 /.test(l)));
    const none = await cli(['status', '--run', 'run-9', ...s.conn]);
    assert.equal(none.code, 1);
    assert.deepEqual(none.out, []);
    assert.deepEqual(none.err, [
      "killpath status: no worker holds run run-9 (yet): a run is listed from its worker's first heartbeat (every 5 s by default); killpath status --wait 30 --run run-9 waits for it",
    ]);
  });

  it('pages: "N of M", the next page command reaches the rest; --all reads every page', async () => {
    const first = await lines(['status', '--limit', '2', ...s.conn]);
    assert.ok(first.out.some((l) => l.startsWith('fleet: 2 of 3 worker(s)')));
    const next = first.out.find((l) => l.startsWith('next page: '));
    assert.ok(next, first.out.join('\n'));
    const words = /^next page: (.*?)\s+\(--all: every page\)$/.exec(next)![1]!.split(' ');
    assert.deepEqual(words.slice(0, 4), ['killpath', 'status', '--limit', '2']);
    const second = await lines([...words.slice(1), ...s.conn]);
    assert.ok(second.out.some((l) => l.startsWith('fleet: 1 of 3 worker(s)')));
    assert.ok(second.out.some((l) => /^acme +bot +w-3 /.test(l)));
    assert.ok(!second.out.some((l) => l.startsWith('next page: ')));
    const all = JSON.parse(
      (await cli(['status', '--limit', '2', '--all', '--json', ...s.conn])).out.join('\n'),
    ) as {
      workers: { workerId: string }[];
      cursor: string | null;
    };
    assert.deepEqual(
      all.workers.map((w) => w.workerId),
      ['w-1', 'w-2', 'w-3'],
    );
    assert.equal(all.cursor, null);
  });

  it('counts every active directive past the API default of 500', async () => {
    const admin = new ApiClient(s.url, s.token);
    for (let i = 0; i < 501; i += 50)
      await Promise.all(
        Array.from({ length: Math.min(50, 501 - i) }, (_, j) =>
          admin.post('/v1/directives', {
            level: 'halt',
            scope: `feature:f-${i + j}`,
            tenant: 'acme',
            reason: 'many',
            justification: 'many',
          }),
        ),
      );
    const r = await lines(['status', ...s.conn]);
    assert.ok(r.out.includes('active directives: 501'), r.out.filter((l) => l.startsWith('active')).join());
  });
});
