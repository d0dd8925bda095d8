/**
 * The automatic triggers on real processes: the supervisor's default rules tripping on a real
 * agent (notified at a webhook), a shadow rule, a policy change audited and rolled back, the
 * deadman killing a hung agent through its launcher (watched by `killpath watchdog` as its own
 * process), the mutual watch of supervisor and watchdog, the synchronous path with the
 * supervisor down, and the SDK's local loop-length rule halting a run while the control plane
 * is unreachable. Figures are printed with a leading `#`, never asserted.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer, type Server } from 'node:http';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { AddressInfo } from 'node:net';
import { createInterface } from 'node:readline';
import { ApiClient, percentile } from '@killpath/cli';
import { DEFAULT_POLICY } from '@killpath/server';
import type { AuditRecord, Directive } from '@killpath/protocol';
import { KILLPATH_BIN, runCli, startServerProcess, until, type ServerProcess } from './server-process.ts';
import { alive, launch, type Launched, type Line } from './launch.ts';

const AGENT = fileURLToPath(new URL('./fixtures/trigger-agent.ts', import.meta.url));

interface Alert {
  kind: string;
  summary: string;
  directiveId: string | null;
  details: Record<string, unknown>;
  path: string;
  receivedAt: number;
}

/** Runs the CLI without blocking this process (the webhook receiver lives here). */
const cli = (args: string[]) => runCli(args);

describe('automatic triggers on real processes', { timeout: 120_000 }, () => {
  let dir: string;
  let server: ServerProcess;
  let api: ApiClient;
  let hook: Server;
  let hookUrl = '';
  let dog: ChildProcess | null = null;
  const alerts: Alert[] = [];
  const launched: Launched[] = [];
  const auditOf = async (a: ApiClient, type: string) =>
    (await a.get<{ records: AuditRecord[] }>(`/v1/audit?type=${type}&limit=5000`)).records;
  const alertOf = (kind: string, pred: (a: Alert) => boolean = () => true, ms = 10_000) =>
    until(`a ${kind} alert at the webhook`, ms, () => alerts.find((a) => a.kind === kind && pred(a)));
  const go = (
    s: ServerProcess,
    opts: { tenant: string; agent: string; run?: string; env: Record<string, string> },
  ) => {
    const l = launch({ url: s.url, token: s.adminToken, agentScript: AGENT, ...opts });
    launched.push(l);
    return l;
  };

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'killpath-triggers-'));
    hook = createServer((req, res) => {
      let body = '';
      req.on('data', (c: Buffer) => (body += c.toString()));
      req.on('end', () => {
        alerts.push({
          ...(JSON.parse(body) as Omit<Alert, 'path' | 'receivedAt'>),
          path: req.url ?? '',
          receivedAt: Date.now(),
        });
        res.writeHead(204).end();
      });
    });
    await new Promise<void>((ok) => hook.listen(0, '127.0.0.1', ok));
    hookUrl = `http://127.0.0.1:${(hook.address() as AddressInfo).port}`;
    // The control plane with its supervisor, and the watchdog as its own process.
    server = await startServerProcess(join(dir, 'a'), 0, [
      '--keepalive-ms',
      '300',
      '--notify-webhook',
      `${hookUrl}/a`,
      '--no-watchdog',
      '--absent-after',
      '1500',
    ]);
    api = new ApiClient(server.url, server.adminToken);
    const minted = await api.post<{ token: string }>('/v1/tokens', {
      role: 'admin',
      tenant: '*',
      name: 'watchdog:e2e',
    });
    dog = spawn(
      process.execPath,
      [
        KILLPATH_BIN,
        'watchdog',
        '--url',
        server.url,
        '--token',
        minted.token,
        '--id',
        'wd-e2e',
        '--tick',
        '50',
        '--log-level',
        'warn',
      ],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    await new Promise<void>((ok, fail) => {
      createInterface({ input: dog!.stdout! }).on('line', (l) => l.includes('watching') && ok());
      dog!.once('exit', (code) => fail(new Error(`killpath watchdog exited with ${code}`)));
    });
  });

  after(async () => {
    await Promise.all(launched.map((l) => l.stop()));
    if (dog && dog.exitCode === null) dog.kill('SIGKILL');
    await server?.stop().catch(() => {});
    hook?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  let rules: Launched;
  const RULE_RUNS: Record<string, string> = {
    loop_length: 'r-loop',
    cost_cap: 'r-cost',
    tool_error_rate: 'r-errors',
    auth_denial: 'r-denial',
    memory_schema: 'r-schema',
  };

  test('each default rule trips on a real agent process, kill_switch.fired names it, and the operator is notified at the webhook', async () => {
    rules = go(server, { tenant: 'acme', agent: 'rules-bot', env: { TRIGGER_MODE: 'rules' } });
    await rules.waitOut((e) => e.k === 'done', 30_000, 'every rule run to finish');
    const fired = await until('kill_switch.fired for every rule', 10_000, async () => {
      const recs = (await auditOf(api, 'kill_switch.fired')).filter((r) => r.data.trigger === 'supervisor');
      return Object.keys(RULE_RUNS).every((rule) => recs.some((r) => r.data.rule === rule)) && recs;
    });
    const latencies: number[] = [];
    for (const [rule, runId] of Object.entries(RULE_RUNS)) {
      const rec = fired.find((r) => r.data.rule === rule)!;
      assert.equal(rec.data.scope, `run:${runId}`, `${rule} halts its run`);
      assert.equal(rec.data.level, 'halt');
      assert.equal(rec.actor, `supervisor:${rule}`, 'the audit names the rule as the actor');
      const d = (await api.get<{ directive: Directive }>(`/v1/directives/${rec.data.directiveId as string}`))
        .directive;
      assert.equal(d.clearedRev, null, 'the directive is in force');
      const cross = rules.out.find((e) => e.k === 'cross' && e.run === runId)!;
      assert.ok(cross, `${runId} crossed its line`);
      latencies.push(Date.parse(d.issuedAt) - (cross.wall as number));
      const denied = rules.out.find((e) => e.k === 'denied' && e.run === runId)!;
      assert.equal(denied.reason, 'halted', `${runId}: the next effect after the trip was refused`);
      if (rule === 'loop_length' || rule === 'cost_cap') {
        // The SDK enforced the same limit itself, at once; the supervisor's directive is the durable record.
        assert.equal(denied.directiveId, `local:${rule}:${runId}`);
        assert.ok(rules.out.some((e) => e.type === 'run.halted_locally' && e.runId === runId));
      } else {
        assert.equal(denied.directiveId, d.id, `${runId} was stopped by the supervisor's directive`);
      }
      const alert = await alertOf('kill_switch.fired', (a) => a.details.rule === rule);
      assert.equal(alert.directiveId, d.id);
      assert.equal(alert.path, '/a');
      assert.match(alert.summary, new RegExp(`policy rule ${rule} fired`));
    }
    // Loop length: no step past the limit issued a tool call (the local rule stopped it first).
    const loopCross = rules.out.find((e) => e.k === 'cross' && e.run === 'r-loop')!;
    assert.equal(loopCross.steps, 201, 'the loop was stopped at its 201st step, before its tool call');
    const status = await api.get<{ supervisor: { rules: Record<string, { fired: number }> } }>(
      '/v1/supervisor',
    );
    for (const rule of Object.keys(RULE_RUNS))
      assert.equal(status.supervisor.rules[rule]?.fired, 1, `${rule} fired once`);
    console.log(
      `# trigger latency, crossing event in the agent → directive commit (batching 250 ms + HTTP + evaluation + commit), n=${latencies.length}: p50 ${percentile(latencies, 50)} ms, max ${Math.max(...latencies)} ms (wall clocks of one machine; per rule: ${Object.keys(
        RULE_RUNS,
      )
        .map((r, i) => `${r} ${latencies[i]}`)
        .join(', ')})`,
    );
  });

  test('a shadow rule records what it would have done, and fires nothing', async () => {
    const done = await rules.waitOut((e) => e.k === 'anomaly-done', 10_000, 'the anomaly run');
    const shadow = await until('policy.shadow_fired', 5_000, async () =>
      (await auditOf(api, 'policy.shadow_fired')).find((r) => r.data.rule === 'anomaly'),
    );
    assert.equal(shadow.data.run, 'r-anomaly');
    assert.deepEqual(shadow.data.wouldIssue, { level: 'halt', scope: 'run:r-anomaly' });
    assert.equal(
      (await auditOf(api, 'kill_switch.fired')).filter((r) => r.data.rule === 'anomaly').length,
      0,
      'no kill_switch.fired for a shadow rule',
    );
    const active = (await api.get<{ directives: Directive[] }>('/v1/directives?active=true')).directives;
    assert.equal(
      active.filter((d) => d.scopeText === 'run:r-anomaly').length,
      0,
      'no directive for the shadowed run',
    );
    assert.ok(
      (done.allowed as number) > 20,
      `the run kept working after the flag (${String(done.allowed)} effects allowed)`,
    );
    assert.equal(
      alerts.filter((a) => a.kind === 'kill_switch.fired' && a.details.rule === 'anomaly').length,
      0,
      'no notification',
    );
    await rules.stop();
  });

  const hungPolicy = DEFAULT_POLICY.replace(
    '  # agents:\n  #   acme/fast-loop: { intervalMs: 1000, missed: 3 }',
    '  agents:\n    acme/hung-bot: { intervalMs: 300, missed: 3, killAfterMs: 0 }',
  );

  test('a policy change is audited with its diff and author, and rolled back', async () => {
    assert.notEqual(hungPolicy, DEFAULT_POLICY);
    const file = join(dir, 'policy.yaml');
    writeFileSync(file, hungPolicy);
    const conn = ['--url', server.url, '--token', server.adminToken];
    const v1 = await api.get<{ version: number; digest: string }>('/v1/policy');
    const applied = await cli(['policy', 'apply', file, '--comment', 'tight deadman for hung-bot', ...conn]);
    assert.equal(applied.code, 0, applied.stderr);
    assert.match(applied.stdout, /applied policy v2/);
    const changed = (await auditOf(api, 'policy.changed')).at(-1)!;
    assert.equal(changed.data.version, 2);
    assert.equal(changed.data.previous, v1.version);
    assert.equal(changed.actor, 'bootstrap-admin', 'who made the change');
    assert.equal(changed.data.comment, 'tight deadman for hung-bot');
    assert.match(
      changed.data.diff as string,
      /\+ {4}acme\/hung-bot: \{ intervalMs: 300/,
      'the diff is on the record',
    );
    const bad = join(dir, 'bad.yaml');
    writeFileSync(
      bad,
      DEFAULT_POLICY.replace('run.steps > limits.max_steps', 'run.stepz > limits.max_steps'),
    );
    const refused = await cli(['policy', 'apply', bad, ...conn]);
    assert.equal(refused.code, 2, 'an invalid policy is refused');
    assert.match(refused.stderr, /rules\[1\]\.when: No such key: stepz/);
    const back = await cli(['policy', 'rollback', '1', '--reason', 'e2e: back to the default', ...conn]);
    assert.equal(back.code, 0, back.stderr);
    const rolled = (await auditOf(api, 'policy.changed')).at(-1)!;
    assert.equal(rolled.data.version, 3);
    assert.equal(rolled.data.rollbackOf, 1);
    assert.equal(
      (await api.get<{ digest: string }>('/v1/policy')).digest,
      v1.digest,
      'the active text is version 1 again',
    );
    const hist = JSON.parse((await cli(['policy', 'history', '--json', ...conn])).stdout) as {
      active: number;
      versions: { version: number }[];
    };
    assert.deepEqual(
      hist.versions.map((v) => v.version),
      [3, 2, 1],
    );
    assert.equal(hist.active, 3);
    assert.equal(
      (await cli(['policy', 'apply', file, '--comment', 'again, for the deadman test', ...conn])).code,
      0,
    );
    assert.equal((await api.get<{ version: number }>('/v1/policy')).version, 4);
  });

  test('a hung agent (event loop blocked) trips the deadman and its launcher kills the process', async () => {
    const l = go(server, { tenant: 'acme', agent: 'hung-bot', run: 'h-1', env: { TRIGGER_MODE: 'hang' } });
    const ready = await l.waitOut((e) => e.k === 'ready', 20_000, 'the agent');
    await l.waitOut(
      (e) => e.type === 'settings.applied' && e.heartbeatMs === 300,
      5_000,
      'the agent to adopt the 300 ms heartbeat',
    );
    const hanging = await l.waitOut((e) => e.k === 'hanging', 5_000, 'the agent to hang');
    assert.equal(await l.exited, 3, 'killpath run exits 3: killed by the switchboard');
    const gone = Date.now();
    assert.equal(alive(ready.pid as number), false, 'the hung process is gone');
    const trip = (await auditOf(api, 'deadman.triggered')).find((r) => r.data.workerId === ready.workerId)!;
    assert.ok(trip, 'deadman.triggered is on the record');
    assert.equal(trip.actor, 'watchdog:wd-e2e', 'tripped by the watchdog process');
    assert.equal(trip.data.thresholdMs, 900);
    assert.ok((trip.data.heartbeatAgoMs as number) > 900, 'it tripped only after three missed heartbeats');
    assert.deepEqual(trip.data.runs, ['h-1']);
    const killed = (await auditOf(api, 'process.killed')).find((r) => r.data.pid === ready.pid)!;
    assert.ok(killed, 'the launcher audited the kill');
    const alert = await alertOf('deadman.triggered', (a) => a.details.workerId === ready.workerId);
    assert.match(alert.summary, /ordered to kill the process/);
    console.log(
      `# deadman (interval 300 ms × 3 = 900 ms threshold, watchdog tick 50 ms): silence at trip ${Math.round(trip.data.heartbeatAgoMs as number)} ms (${Math.round((trip.data.heartbeatAgoMs as number) - 900)} ms past the threshold); hang → trip ${Date.parse(trip.ts) - (hanging.wall as number)} ms; hang → process gone ${gone - (hanging.wall as number)} ms`,
    );
  });

  test('the supervisor raises watchdog.absent when the watchdog process stops', async () => {
    const stoppedAt = Date.now();
    dog!.kill('SIGKILL');
    const alert = await alertOf(
      'watchdog.absent',
      (a) => a.receivedAt >= stoppedAt && a.path === '/a',
      6_000,
    );
    assert.match(alert.summary, /hung agents are not detected/);
    const rec = (await auditOf(api, 'watchdog.absent')).at(-1)!;
    assert.equal(rec.data.lastId, 'wd-e2e');
    console.log(
      `# watchdog stopped → watchdog.absent at the webhook ${alert.receivedAt - stoppedAt} ms (absent after 1500 ms)`,
    );
  });

  describe('a second control plane, with its supervisor stopped', () => {
    let b: ServerProcess;
    let apiB: ApiClient;
    let startedAt = 0;

    before(async () => {
      startedAt = Date.now();
      b = await startServerProcess(join(dir, 'b'), 0, [
        '--keepalive-ms',
        '300',
        '--notify-webhook',
        `${hookUrl}/b`,
        '--no-supervisor',
        '--absent-after',
        '1000',
      ]);
      apiB = new ApiClient(b.url, b.adminToken);
    });

    after(async () => {
      await b?.stop().catch(() => {});
    });

    test('the watchdog raises supervisor.absent, and a CLI kill still halts the run', async () => {
      const alert = await alertOf('supervisor.absent', (a) => a.path === '/b', 8_000);
      assert.match(alert.summary, /policy rules are not evaluated/);
      console.log(
        `# supervisor down from the start → supervisor.absent at the webhook ${alert.receivedAt - startedAt} ms after the server was spawned (absent after 1000 ms)`,
      );
      const l = go(b, { tenant: 'acme', agent: 'calm-bot', run: 's-1', env: { TRIGGER_MODE: 'steps' } });
      await l.waitOut((e) => e.k === 'step' && (e.n as number) >= 10, 20_000, 'the agent to work');
      const r = await cli([
        'kill',
        '--run',
        's-1',
        '--reason',
        'e2e: supervisor is down',
        '--json',
        '--url',
        b.url,
        '--token',
        b.adminToken,
      ]);
      assert.equal(r.code, 0, r.stderr);
      const d = (JSON.parse(r.stdout) as { directive: Directive }).directive;
      const denied = await l.waitOut(
        (e) => e.k === 'denied' && e.directiveId === d.id,
        10_000,
        'the run to be halted',
      );
      assert.equal(denied.reason, 'halted');
      const settled = await until('session.halted', 5_000, async () =>
        (await auditOf(apiB, 'session.halted')).find((x) => x.data.directiveId === d.id),
      );
      console.log(
        `# supervisor down: CLI kill → worker settled ${Math.round(settled.data.timeToStopMs as number)} ms`,
      );
      assert.equal(
        (await auditOf(apiB, 'kill_switch.fired')).filter((x) => x.data.trigger === 'supervisor').length,
        0,
        'no rule fired: the supervisor is down',
      );
      await l.stop();
    });

    test('with the control plane unreachable, the local loop-length rule still halts the run', async () => {
      const l = go(b, {
        tenant: 'acme',
        agent: 'loop-bot',
        run: 'p-1',
        env: { TRIGGER_MODE: 'steps', TRIGGER_PAUSE_MS: '5', TRIGGER_LEASE_MS: '60000' },
      });
      await l.waitOut((e) => e.type === 'settings.applied', 20_000, 'the run limits from the control plane');
      await l.waitOut((e) => e.k === 'step' && (e.n as number) >= 30, 20_000, 'the agent to work');
      await b.crash();
      const cutAt = Date.now();
      const local = await l.waitOut((e) => e.type === 'run.halted_locally', 10_000, 'the local halt');
      assert.equal(local.rule, 'loop_length');
      assert.equal(local.value, 201);
      assert.equal(local.limit, 200);
      assert.ok((local.wall as number) > cutAt, 'it happened while the control plane was down');
      const denied = await l.waitOut((e) => e.k === 'denied', 5_000, 'the next effect to be refused');
      assert.equal(denied.n, 201, 'the step past the limit issued no tool call');
      assert.equal(denied.reason, 'halted');
      assert.equal(denied.directiveId, 'local:loop_length:p-1');
      assert.ok(
        !l.out.some((e: Line) => e.k === 'denied' && e.reason === 'stale'),
        'the lease had not expired: the local rule halted it',
      );
      // Back up on the same address: the worker reconnects and the local halt reaches the record.
      b = await startServerProcess(join(dir, 'b'), b.port, [
        '--keepalive-ms',
        '300',
        '--no-supervisor',
        '--absent-after',
        '1000',
      ]);
      apiB = new ApiClient(b.url, b.adminToken);
      const rec = await until('local_rule.fired', 15_000, async () =>
        (await auditOf(apiB, 'local_rule.fired')).find((x) => x.data.runId === 'p-1'),
      );
      assert.equal(rec.data.rule, 'loop_length');
      assert.ok(
        l.out.filter((e) => e.k === 'denied').every((e) => e.directiveId === 'local:loop_length:p-1'),
        'still halted locally after reconnecting',
      );
      await l.stop();
    });
  });
});
