/**
 * A resume needs a green release, on real processes: three agents under `killpath run
 * --release`, two on release A and one on B. `killpath kill --release code=A` halts only the
 * first two; a resume is refused while they still run A; restarting them on release C lets it
 * pass and the new runs work. The override (`--same-release`) works and is on the record.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ApiClient } from '@killpath/cli';
import type { AuditRecord, Directive, FleetWorker } from '@killpath/protocol';
import { runCli, startServerProcess, until, type ServerProcess } from './server-process.ts';
import { launch, type Launched, type Line } from './launch.ts';

const A = 'code=aaa111,model=acme/planner@7,prompt=v42';
const B = 'code=bbb222,model=acme/planner@7,prompt=v42';
const C = 'code=ccc333,model=acme/planner@7,prompt=v42';

describe('release-aware kill and resume on real processes', () => {
  let dir: string;
  let server: ServerProcess;
  let admin: ApiClient;
  let operator: string;
  const launched: Launched[] = [];

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'killpath-e2e-release-'));
    server = await startServerProcess(dir);
    admin = new ApiClient(server.url, server.adminToken);
    operator = (
      await admin.post<{ token: string }>('/v1/tokens', { role: 'operator', tenant: 'acme', name: 'olga' })
    ).token;
  });

  after(async () => {
    await Promise.all(launched.map((l) => l.stop()));
    await server?.stop().catch(() => {});
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  /** An agent under `killpath run --release …` that writes (`crm.update`) every 100 ms. */
  function go(run: string, release: string): Launched {
    const l = launch({
      url: server.url,
      token: server.adminToken,
      tenant: 'acme',
      agent: 'planner',
      run,
      extra: ['--release', release],
      env: { LADDER_MODE: 'loop', LADDER_WRITES: '1', LADDER_WRITE_MS: '100', LADDER_PAUSE_MS: '50' },
    });
    launched.push(l);
    return l;
  }
  const granted = (l: Launched, after: number) =>
    l.out.filter((e: Line) => e.k === 'ev' && e.type === 'permit.granted' && (e.wall ?? 0) > after).length;
  const cli = (...args: string[]) => runCli([...args, '--url', server.url, '--token', operator]);
  const fleet = async () => (await admin.get<{ workers: FleetWorker[] }>('/v1/fleet')).workers;
  const audit = async (type: string) =>
    (await admin.get<{ records: AuditRecord[] }>(`/v1/audit?type=${type}&limit=1000`)).records;

  test('kill --release code=A halts A only; the resume waits for a new release; the override is on the record', async () => {
    const a1 = go('a1', A);
    const a2 = go('a2', A);
    const b1 = go('b1', B);
    for (const l of [a1, a2, b1]) await l.waitOut((e) => e.k === 'ready', 20_000, 'the agent to connect');
    // The launcher passed its --release to the agent: the fleet (and status) show each worker's release.
    const byRun = await until('three workers with their releases', 10_000, async () => {
      const ws = await fleet();
      const m = new Map(ws.flatMap((w) => w.runs.map((r) => [r.runId, w] as const)));
      return ['a1', 'a2', 'b1'].every((r) => m.has(r)) ? m : null;
    });
    assert.deepEqual(byRun.get('a1')!.release, { code: 'aaa111', model: 'acme/planner@7', prompt: 'v42' });
    assert.deepEqual(byRun.get('b1')!.release, { code: 'bbb222', model: 'acme/planner@7', prompt: 'v42' });
    const status = await cli('status');
    assert.equal(status.code, 0, status.stderr);
    assert.match(status.stdout, /release/);
    assert.match(status.stdout, /code=aaa111,model=acme\/planner@7,prompt=v42/);
    for (const l of [a1, a2, b1]) await l.waitOut((e) => e.k === 'ev' && e.type === 'permit.granted');

    // The bad rollout: every run on code A, wherever it is (the operator's tenant).
    const killed = await cli('kill', '--release', 'code=aaa111', '--reason', 'bad rollout aaa111', '--json');
    assert.equal(killed.code, 0, killed.stderr);
    const d = (JSON.parse(killed.stdout) as { directive: Directive }).directive;
    assert.equal(d.scopeText, 'release:code=aaa111');
    assert.equal(d.tenant, 'acme');
    assert.deepEqual(d.releases, [{ code: 'aaa111', model: 'acme/planner@7', prompt: 'v42' }]);
    const flip = Date.now();
    for (const l of [a1, a2])
      await l.waitOut((e) => e.k === 'ev' && e.type === 'halt.settled', 10_000, 'A to settle the halt');
    const settled = Date.now();
    await until('B to keep writing after the flip', 10_000, () => granted(b1, settled) >= 3);
    assert.equal(
      granted(a1, settled) + granted(a2, settled),
      0,
      'no write permit on release A after it settled',
    );
    assert.ok(flip <= settled);
    const issued = (await audit('directive.issued')).find((r) => (r.data.directive as Directive).id === d.id);
    assert.deepEqual(
      (issued!.data.directive as Directive).releases,
      d.releases,
      'directive.issued carries them',
    );

    // A resume onto the same release is refused while they still run it.
    const refused = await cli('resume', d.id, '--reason', 'looks fine');
    assert.equal(refused.code, 2);
    assert.match(refused.stderr, /same_release/);
    assert.match(refused.stderr, /code=aaa111,model=acme\/planner@7,prompt=v42/);
    assert.match(refused.stderr, /--same-release/);
    const refusals = (await audit('resume.refused')).filter((r) => r.data.directiveId === d.id);
    assert.equal(refusals.length, 1);
    assert.equal(refusals[0]!.data.reason, 'same_release');
    assert.equal(refusals[0]!.actor, 'olga');

    // The rollout is replaced: the same agents restart on release C (A's processes end).
    await Promise.all([a1.stop(), a2.stop()]);
    const c1 = go('c1', C);
    const c2 = go('c2', C);
    for (const l of [c1, c2]) await l.waitOut((e) => e.k === 'ready', 20_000, 'the agent on C to connect');
    await until('no worker on A connected', 10_000, async () =>
      (await fleet()).every((w) => !w.connected || w.release.code !== 'aaa111'),
    );
    const resumed = await cli('resume', d.id, '--reason', 'rolled forward to ccc333');
    assert.equal(resumed.code, 0, resumed.stderr);
    assert.match(
      resumed.stdout,
      /checked releases code=aaa111; code=aaa111,model=acme\/planner@7,prompt=v42: no worker it released still runs one/,
    );
    const after = Date.now();
    for (const l of [c1, c2]) await until('the new runs to write', 10_000, () => granted(l, after) >= 2);

    // The override: a tenant-wide halt of B and C, resumed onto the same releases on purpose.
    const halted = await cli('kill', '--tenant', 'acme', '--reason', 'config incident', '--json');
    assert.equal(halted.code, 0, halted.stderr);
    const h = (JSON.parse(halted.stdout) as { directive: Directive }).directive;
    assert.deepEqual(
      h.releases.map((r) => r.code),
      ['bbb222', 'ccc333'],
    );
    const again = await cli('resume', h.id, '--reason', 'fixed');
    assert.equal(again.code, 2, again.stdout);
    assert.match(again.stderr, /same_release/);
    const forced = await cli('resume', h.id, '--same-release', '--reason', 'config fix, not a rollout');
    assert.equal(forced.code, 0, forced.stderr);
    assert.match(forced.stdout, /resumed anyway \(--same-release: config fix, not a rollout\)/);
    const action = (await audit('operator_action')).find(
      (r) => r.data.action === 'directive.resume' && r.data.directiveId === h.id,
    );
    assert.equal(action?.data.sameRelease, 'config fix, not a rollout');
    assert.equal(action?.actor, 'olga');
    const back = Date.now();
    await until('B to write again after the override', 10_000, () => granted(b1, back) >= 2);
    const verify = await runCli(['audit', 'verify', '--url', server.url, '--token', server.adminToken]);
    assert.equal(verify.code, 0, verify.stdout + verify.stderr);
  });
});
