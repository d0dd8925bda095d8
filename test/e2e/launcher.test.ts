/**
 * The launcher as the last line of defence, on real processes: a control plane, agents started
 * by `killpath run`, and the launcher itself SIGKILLed. Figures are printed with a leading `#`.
 */
import { after, before, describe, test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { cgroupSupport } from '@killpath/cli';
import { startServerProcess, type ServerProcess } from './server-process.ts';
import { alive, launch, type Launched } from './launch.ts';

const sleep = (ms: number) => new Promise((ok) => setTimeout(ok, ms));

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
  const launched: Launched[] = [];
  const strays: number[] = [];
  const go = (opts: Omit<Parameters<typeof launch>[0], 'url' | 'token'>) => {
    const l = launch({ url: server.url, token: server.adminToken, ...opts });
    launched.push(l);
    return l;
  };

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'killpath-launcher-'));
    server = await startServerProcess(dir, 0, ['--keepalive-ms', '300', '--escalation-slack', '300']);
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
});
