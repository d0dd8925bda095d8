/**
 * The launcher as the last line of defence, on real processes: a control plane, agents started
 * by `killpath run`, and the launcher itself SIGKILLed. Figures are printed with a leading `#`.
 */
import { after, before, describe, test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ApiClient, PartitionRelay, cgroupSupport } from '@killpath/cli';
import type { AuditRecord, Directive } from '@killpath/protocol';
import { runCli, startServerProcess, until, type ServerProcess } from './server-process.ts';
import { alive, launch, type Launched } from './launch.ts';

const sleep = (ms: number) => new Promise((ok) => setTimeout(ok, ms));
const NO_SDK_AGENT = fileURLToPath(new URL('./fixtures/no-sdk-agent.ts', import.meta.url));
const LAGGARD_AGENT = fileURLToPath(new URL('./fixtures/sdk-laggard-agent.ts', import.meta.url));
/** The halt grace, the server's --escalation-slack and the launchers' kill grace of the escalation tests, ms. */
const GRACE = 500;
const SLACK = 300;
const KILL_GRACE = 500;
/** The grace of the halt an agent acknowledges in time (see that test). */
const ACK_GRACE = 3000;
/** Where an escalated halt must have ended its agent by (issue 19): grace + slack + kill grace + 1 s. */
const ESCALATION_BOUND = GRACE + SLACK + KILL_GRACE + 1000;
/**
 * A correctness bound only ("ended by the escalation, not by something else"): well under the
 * deadman (3 missed 5 s heartbeats), the only other thing that could end such an agent, and far
 * from the issue's 20 s where nothing ended it. The measured times are printed beside the
 * issue's bound; speed lives in bench/launcher.ts.
 */
const CORRECTNESS_BOUND = 10_000;

/** Under CI=true a machine without a usable cgroup v2 fails the test; elsewhere it is skipped. */
function needCgroup(t: TestContext): boolean {
  const s = cgroupSupport();
  if (s.ok) return true;
  if (process.env.CI === 'true') assert.fail(`the cgroup backend cannot run here (CI=true): ${s.why}`);
  t.skip(`no usable cgroup v2 here: ${s.why}`);
  return false;
}

describe('the launcher as the last line of defence', { timeout: 240_000 }, () => {
  let dir: string;
  let server: ServerProcess;
  let api: ApiClient;
  const WHY = { reason: 'e2e launcher', justification: 'testing the launcher' };
  const issue = async (body: Record<string, unknown>) =>
    (await api.post<{ directive: Directive }>('/v1/directives', { ...WHY, ...body })).directive;
  const auditOf = async (type: string) =>
    (await api.get<{ records: AuditRecord[] }>(`/v1/audit?type=${type}&limit=5000`)).records;
  const launched: Launched[] = [];
  const strays: number[] = [];
  const go = (opts: Omit<Parameters<typeof launch>[0], 'url' | 'token'>) => {
    const l = launch({ url: server.url, token: server.adminToken, ...opts });
    launched.push(l);
    return l;
  };

  /**
   * Issues a halt with the short grace on `scope` and waits for the agent `pid` to be gone; checks
   * that the escalation's kill step ended it through its launcher (named as a laggard; SIGKILL,
   * since the agent ignores SIGTERM). Returns halt issued → last process gone, ms.
   */
  async function haltUntilGone(l: Launched, pid: number, scope: string): Promise<number> {
    const launcherId = String(l.log.find((e) => typeof e.launcher === 'string')?.launcher);
    const halt = await issue({ level: 'halt', scope, graceMs: GRACE });
    const issuedAt = Date.parse(String(halt.issuedAt));
    while (alive(pid) && Date.now() - issuedAt < 30_000) await sleep(5);
    const gone = Date.now() - issuedAt;
    assert.equal(alive(pid), false, `the agent still runs ${gone} ms after the halt`);
    assert.equal(await l.exited, 3, 'the launcher killed it and exits as stopped');
    const esc = (await auditOf('directive.escalated')).find((r) => r.data.from === halt.id);
    assert.ok(esc, 'the halt escalated');
    assert.ok(
      (esc.data.laggards as string[]).includes(`launcher:${launcherId}`),
      `the launcher is named among the laggards: ${JSON.stringify(esc.data.laggards)}`,
    );
    const killed = await until('process.killed', 10_000, async () =>
      (await auditOf('process.killed')).find((r) => r.data.pid === pid),
    );
    assert.equal(killed.data.directiveId, esc.data.directiveId, "ended by the escalation's kill step");
    assert.equal(killed.data.signal, 'SIGKILL', 'it ignored SIGTERM: SIGKILL after the kill grace');
    assert.ok(gone < CORRECTNESS_BOUND, `ended by the escalation, not by something else (${gone} ms)`);
    return gone;
  }

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'killpath-launcher-'));
    server = await startServerProcess(dir, 0, ['--keepalive-ms', '300', '--escalation-slack', String(SLACK)]);
    api = new ApiClient(server.url, server.adminToken);
  });

  after(async () => {
    await Promise.all(launched.map((l) => l.stop()));
    for (const pid of strays) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // gone
      }
    }
    await server?.stop().catch(() => {});
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test('killpath run puts the agent in a cgroup by default; SIGKILL the launcher and the agent and its children die with it', async (t) => {
    if (!needCgroup(t)) return;
    const l = go({ tenant: 'acme', agent: 'orphan-bot', run: 'o-1', env: { LADDER_MODE: 'spin' } });
    const iso = await l.waitLog((e) => e.msg === 'agent isolation: cgroup', 20_000, 'the isolation line');
    assert.equal(iso.orphanPolicy, 'kill');
    const children = await l.waitOut((e) => e.k === 'children', 20_000, 'the children');
    const ready = await l.waitOut((e) => e.k === 'ready', 20_000, 'the agent');
    const pids = [ready.pid as number, ...(children.pids as number[])];
    strays.push(...pids);
    assert.ok(pids.every(alive));
    const cg = readFileSync(`/proc/${ready.pid as number}/cgroup`, 'utf8');
    assert.match(cg, /0::.*killpath-/, 'the agent runs in a killpath cgroup');
    const cgPath = /0::(.*)/.exec(cg)![1]!;
    const t0 = performance.now();
    l.proc.kill('SIGKILL');
    while (pids.some(alive) && performance.now() - t0 < 5000) await sleep(5);
    const ms = Math.round(performance.now() - t0);
    assert.deepEqual(pids.filter(alive), [], 'agent and both children are gone');
    console.log(`# launcher SIGKILLed (orphan policy kill, cgroup): agent and 2 children gone in ${ms} ms`);
    // The agent's cgroup is a child of the launcher's, which is this test's own.
    const s = cgroupSupport();
    assert.ok(s.ok);
    const agentDir = join(s.parent, basename(cgPath));
    const deadline = Date.now() + 3000;
    while (existsSync(agentDir) && Date.now() < deadline) await sleep(20);
    assert.equal(existsSync(agentDir), false, 'the guard removed the agent cgroup');
  });

  test('freeze: not one effect after the freeze, inspect writes the evidence while frozen (no secrets), thaw resumes after a fresh snapshot', async (t) => {
    if (!needCgroup(t)) return;
    const evidenceDir = join(dir, 'evidence');
    const l = go({
      tenant: 'acme',
      agent: 'frozen-bot',
      run: 'f-1',
      env: { LADDER_MODE: 'loop', LADDER_WRITES: '1' },
      extra: ['--evidence-dir', evidenceDir],
    });
    const ready = await l.waitOut((e) => e.k === 'ready', 20_000, 'the agent');
    await l.waitOut((e) => e.k === 'ev' && e.type === 'effect.started', 20_000, 'effects');
    const freeze = await issue({ level: 'freeze', scope: 'run:f-1', tenant: 'acme' });
    const frozen = await until('process.frozen', 10_000, async () =>
      (await auditOf('process.frozen')).find((r) => r.data.directiveId === freeze.id),
    );
    assert.equal(frozen.data.isolation, 'cgroup');
    assert.deepEqual(frozen.data.pids, [ready.pid]);
    const frozenAt = Date.parse(frozen.ts);
    const lines = l.out.length;
    await sleep(3500); // longer than the agent's 3 s lease
    assert.equal(l.out.length, lines, 'a frozen agent prints nothing: not one more instruction');
    const after = l.out.filter(
      (e) => e.k === 'ev' && e.type === 'effect.started' && (e.wall as number) > frozenAt,
    ).length;
    assert.equal(after, 0, 'no effect started after the freeze was recorded');
    const ticks = (pid: number) => {
      const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
      return Number(f[11]) + Number(f[12]);
    };
    const cpu = ticks(ready.pid as number);

    const token = (
      await api.post<{ token: string }>('/v1/tokens', { role: 'operator', tenant: 'acme', name: 'e2e-op' })
    ).token;
    const conn = ['--url', server.url, '--token', token];
    const refused = await runCli(['inspect', ...conn, '--run', 'nobody-frozen', '--reason', 'x']);
    assert.equal(refused.code, 2, 'a run nobody holds frozen is a clear refusal');
    assert.match(refused.stderr, /freeze it first/);
    const t0 = performance.now();
    const r = await runCli([
      'inspect',
      ...conn,
      '--run',
      'f-1',
      '--reason',
      'what was it doing',
      '--no-cores',
    ]);
    const inspectMs = Math.round(performance.now() - t0);
    assert.equal(
      r.code,
      0,
      `${r.stderr}\nlauncher: ${l.log
        .slice(-8)
        .map((x) => JSON.stringify(x))
        .join('\n')}`,
    );
    const path = /: (\S+evidence\.json) \(/.exec(r.stdout)?.[1];
    assert.ok(path, r.stdout);
    const evidence = JSON.parse(readFileSync(path, 'utf8')) as {
      frozen: boolean;
      processes: {
        pid: number;
        cmdline: string[];
        core: string | null;
        files: { connection?: { state: string; remote: string | null } }[];
      }[];
      coreNote: string | null;
    };
    assert.equal(evidence.frozen, true);
    assert.deepEqual(
      evidence.processes.map((p) => p.pid),
      [ready.pid],
    );
    const port = new URL(server.url).port;
    assert.ok(
      evidence.processes[0]!.files.some(
        (f) => f.connection?.state === 'ESTABLISHED' && f.connection.remote?.endsWith(`:${port}`),
      ),
      'its connection to the control plane is listed',
    );
    const text = readFileSync(path, 'utf8');
    assert.ok(
      !text.includes(server.adminToken) && !text.includes('KILLPATH_TOKEN'),
      'no secret from the environment',
    );
    const core = evidence.processes[0]!.core;
    console.log(
      `# inspect of a frozen agent (1 process): ${inspectMs} ms through the CLI, core ${core === null ? `not written (${evidence.coreNote})` : `${Math.round(statSync(core).size / 1e6)} MB`}`,
    );
    if (core !== null) rmSync(core, { force: true });
    assert.equal(ticks(ready.pid as number), cpu, 'the agent ran not one tick during the inspection');
    const inspected = (await auditOf('operator_action')).find((x) => x.data.action === 'process.inspect');
    assert.equal(inspected?.actor, 'e2e-op', 'the inspection is on the record with who asked');

    await api.post(`/v1/directives/${freeze.id}/resume`, { justification: 'evidence taken' });
    const thawed = await until('process.thawed', 10_000, async () =>
      (await auditOf('process.thawed')).find((x) => x.data.directiveId === freeze.id),
    );
    const resync = await l.waitOut(
      (e) => e.k === 'ev' && e.type === 'stream.resync' && /lease expired/.test(String(e.reason)),
      10_000,
      'a resync after the thaw',
    );
    const resumed = await l.waitOut(
      (e) => e.k === 'ev' && e.type === 'effect.started' && (e.wall as number) > (resync.wall as number),
      10_000,
      'effects after the thaw',
    );
    const snapshotFirst = l.out.find(
      (e) => e.k === 'ev' && e.type === 'stream.connected' && (e.wall as number) > (resync.wall as number),
    );
    assert.ok(
      snapshotFirst && (snapshotFirst.wall as number) <= (resumed.wall as number),
      'a fresh snapshot before the first effect',
    );
    console.log(
      `# thaw: resume → process.thawed ${Date.parse(thawed.ts) - Date.parse(String(freeze.issuedAt))} ms after the freeze was issued; first effect after the resync at +${(resumed.wall as number) - (resync.wall as number)} ms`,
    );
    await l.stop();
  });

  test('a halt nobody can acknowledge (an agent that never registered with the SDK) escalates, and the launcher ends it', async () => {
    const l = go({
      tenant: 'acme',
      agent: 'nosdk-bot',
      run: 'n-1',
      agentScript: NO_SDK_AGENT,
    });
    const ready = await l.waitOut((e) => e.k === 'ready', 20_000, 'the agent');
    await l.waitLog((e) => e.msg === 'control plane connected', 20_000, 'the launcher stream');
    const halt = await issue({ level: 'halt', scope: 'agent:acme/nosdk-bot', graceMs: 500 });
    assert.equal(await l.exited, 3, 'the launcher killed it');
    const gone = Date.now() - Date.parse(String(halt.issuedAt));
    assert.equal(alive(ready.pid as number), false);
    const esc = (await auditOf('directive.escalated')).find((r) => r.data.from === halt.id);
    assert.ok(
      (esc?.data.laggards as string[]).some((x) => x.startsWith('launcher:')),
      'the launcher is named',
    );
    console.log(
      `# halt of a non-SDK agent (grace 500 + slack 300 + kill grace 500): halt → process gone ${gone} ms (bound 2300 ms)`,
    );
    assert.ok(gone <= 500 + 300 + 500 + 1000, `gone within grace + slack + kill grace + 1 s (${gone} ms)`);
  });
  test('a halt of an SDK agent hung before it connects (it never registers a worker) escalates: its launcher ends it', async () => {
    const l = go({
      tenant: 'acme',
      agent: 'prehang-bot',
      run: 'p-1',
      agentScript: LAGGARD_AGENT,
      extra: ['--kill-grace', String(KILL_GRACE)],
      env: { LAGGARD_MODE: 'hang-before-connect' },
    });
    const ready = await l.waitOut((e) => e.k === 'ready', 20_000, 'the agent');
    await l.waitLog((e) => e.msg === 'control plane connected', 20_000, 'the launcher stream');
    await sleep(300);
    assert.equal(
      l.out.some((e) => e.k === 'ev'),
      false,
      'the SDK never connected',
    );
    const gone = await haltUntilGone(l, ready.pid as number, 'agent:acme/prehang-bot');
    console.log(
      `# escalation, SDK agent hung before connecting: halt → process gone ${gone} ms (issue bound ${ESCALATION_BOUND} ms: grace ${GRACE} + slack ${SLACK} + kill grace ${KILL_GRACE} + 1 s)`,
    );
  });

  test('a halt of an SDK agent whose stream is cut (its process spinning, SIGTERM ignored) escalates: its launcher ends it', async (t) => {
    const relay = await PartitionRelay.start(server.url);
    t.after(() => relay.close());
    const l = go({
      tenant: 'acme',
      agent: 'cut-bot',
      run: 'c-1',
      agentScript: LAGGARD_AGENT,
      extra: ['--kill-grace', String(KILL_GRACE)],
      env: { LAGGARD_MODE: 'cut', LAGGARD_CP_URL: relay.url },
    });
    const ready = await l.waitOut((e) => e.k === 'ready', 20_000, 'the agent');
    await l.waitLog((e) => e.msg === 'control plane connected', 20_000, 'the launcher stream');
    const workers = async () =>
      (await api.get<{ workers: { workerId: string }[] }>('/v1/fleet?tenant=acme')).workers;
    assert.ok(
      (await workers()).some((w) => w.workerId === ready.workerId),
      'the agent registered its worker',
    );
    relay.cut();
    await l.waitOut((e) => e.k === 'cut', 10_000, 'the agent to lose its stream and spin');
    const gone = await haltUntilGone(l, ready.pid as number, 'agent:acme/cut-bot');
    console.log(
      `# escalation, SDK agent whose stream was cut: halt → process gone ${gone} ms (issue bound ${ESCALATION_BOUND} ms)`,
    );
  });

  test('an SDK agent that acknowledges the halt in time is not killed: alive after the kill step would have run, the directive stays a halt', async () => {
    const l = go({
      tenant: 'acme',
      agent: 'ack-bot',
      run: 'k-1',
      extra: ['--kill-grace', String(KILL_GRACE)],
      env: { LADDER_MODE: 'loop' },
    });
    const ready = await l.waitOut((e) => e.k === 'ready', 20_000, 'the agent');
    await l.waitLog((e) => e.msg === 'control plane connected', 20_000, 'the launcher stream');
    // A grace the acknowledgement meets even on a loaded machine (with the 500 ms of the other
    // cases, a slow ack legitimately escalated: a kill, as it must be, but not this test's case).
    const halt = await issue({ level: 'halt', scope: 'agent:acme/ack-bot', graceMs: ACK_GRACE });
    const issuedAt = Date.parse(String(halt.issuedAt));
    const acked = await until('session.halted', 10_000, async () =>
      (await auditOf('session.halted')).find(
        (r) => r.data.workerId === ready.workerId && r.data.directiveId === halt.id,
      ),
    );
    const ackMs = Date.parse(acked.ts) - issuedAt;
    // Past the moment the kill step would have ended it, with a margin for a loaded machine.
    const bound = ACK_GRACE + SLACK + KILL_GRACE + 1000;
    await sleep(Math.max(0, issuedAt + bound + 1500 - Date.now()));
    assert.equal(alive(ready.pid as number), true, 'the agent process lives');
    assert.equal(l.proc.exitCode, null, 'its launcher still runs it');
    assert.equal(
      (await auditOf('directive.escalated')).some((r) => r.data.from === halt.id),
      false,
      'no escalation',
    );
    assert.equal(
      (await auditOf('process.killed')).some((r) => r.data.pid === ready.pid),
      false,
      'no process.killed',
    );
    const active = (
      await api.get<{ directives: Directive[] }>('/v1/directives?active=true')
    ).directives.filter((d) => d.scopeText === 'agent:acme/ack-bot');
    assert.deepEqual(
      active.map((d) => [d.id, d.level]),
      [[halt.id, 'halt']],
      'the directive stays the halt',
    );
    console.log(
      `# escalation, SDK agent that acknowledged: halt → session.halted ${ackMs} ms (grace ${ACK_GRACE} ms); alive ${Date.now() - issuedAt} ms after the halt (the kill step would have ended it by ${bound} ms)`,
    );
    await api.post(`/v1/directives/${halt.id}/resume`, { justification: 'acknowledged, not killed' });
    await l.stop();
  });
});
