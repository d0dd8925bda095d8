import { test, type TestContext } from 'node:test';
import type { Readable } from 'node:stream';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { cgroupDir, cgroupSupport, parseCgroup2Mount, parseOwnCgroup } from '../../src/launcher/cgroup.ts';
import { CgroupProcessBackend } from '../../src/launcher/cgroup-backend.ts';
import {
  LocalProcessBackend,
  type AgentHandle,
  type ProcessBackend,
} from '../../src/launcher/process-backend.ts';

const AGENT = fileURLToPath(new URL('./fixtures/agent.mjs', import.meta.url));
const HOST = fileURLToPath(new URL('./fixtures/host.ts', import.meta.url));
const sleep = (ms: number) => new Promise((ok) => setTimeout(ok, ms));

/**
 * Where the cgroup tests can run. Under CI=true (CI runs as root on a machine with a cgroup v2
 * hierarchy) a missing one fails the test with the reason; elsewhere the test is skipped with it.
 */
function needCgroup(t: TestContext): string | null {
  const support = cgroupSupport();
  if (support.ok) return support.parent;
  if (process.env.CI === 'true') assert.fail(`the cgroup backend cannot run here (CI=true): ${support.why}`);
  t.skip(`no usable cgroup v2 here: ${support.why}`);
  return null;
}

/** Alive means in /proc and not a zombie. */
function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    return state !== 'Z' && state !== 'X';
  } catch {
    return false;
  }
}

/** utime + stime of a process, in clock ticks. */
function cpuTicks(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return Number(f[11]) + Number(f[12]);
}

function reap(t: TestContext, pids: () => number[], agent?: AgentHandle): void {
  t.after(() => {
    for (const pid of pids()) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // Gone, as it should be.
      }
    }
    (agent?.stdout as Readable | null | undefined)?.destroy();
    (agent?.stderr as Readable | null | undefined)?.destroy();
  });
}

async function startAgent(t: TestContext, backend: ProcessBackend, mode: string) {
  const agent = backend.start({
    command: process.execPath,
    args: [AGENT, mode],
    env: process.env,
    stdio: 'pipe',
  });
  agent.stderr?.pipe(process.stderr);
  let children: number[] = [];
  reap(t, () => [agent.pid, ...children], agent);
  t.after(async () => {
    await agent.thaw();
    await agent.terminate(0);
  });
  const line = await new Promise<string>((ok, fail) => {
    const timer = setTimeout(() => fail(new Error(`agent ${mode} not ready`)), 10_000);
    createInterface({ input: agent.stdout as NodeJS.ReadableStream }).once('line', (l) => {
      clearTimeout(timer);
      ok(l);
    });
  });
  children = (JSON.parse(line) as { children?: number[] }).children ?? [];
  return { agent, children };
}

test('the cgroup2 mount and this process cgroup are read from /proc, never assumed', () => {
  const hybrid = [
    '31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755',
    '35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory',
    '41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw',
  ].join('\n');
  assert.deepEqual(parseCgroup2Mount(hybrid), { root: '/', mountPoint: '/sys/fs/cgroup/unified' });
  const spaced = '29 1 0:26 /kubepods /mnt/my\\040cgroups rw - cgroup2 cgroup2 rw,nsdelegate';
  assert.deepEqual(parseCgroup2Mount(spaced), { root: '/kubepods', mountPoint: '/mnt/my cgroups' });
  assert.equal(parseCgroup2Mount(hybrid.split('\n').slice(0, 2).join('\n')), null, 'v1 only: none');
  assert.equal(
    parseOwnCgroup('4:memory:/x\n0::/system.slice/agent.service\n'),
    '/system.slice/agent.service',
  );
  assert.equal(parseOwnCgroup('4:memory:/x\n'), null);
  assert.equal(
    cgroupDir({ root: '/', mountPoint: '/sys/fs/cgroup' }, '/system.slice/a.service'),
    '/sys/fs/cgroup/system.slice/a.service',
  );
  assert.equal(cgroupDir({ root: '/kubepods', mountPoint: '/mnt/cg' }, '/kubepods/pod1'), '/mnt/cg/pod1');
  const none = cgroupSupport((path) => (path.endsWith('mountinfo') ? hybrid.split('\n')[1]! : '0::/\n'));
  assert.equal(none.ok, false);
  assert.match((none as { why: string }).why, /no cgroup v2 hierarchy/);
});

test(
  'cgroup backend: a child that clears its environment, calls setsid, double-forks and ignores SIGTERM does not survive a kill',
  { timeout: 20_000 },
  async (t) => {
    const parent = needCgroup(t);
    if (parent === null) return;
    const backend = new CgroupProcessBackend({ parent, orphanPolicy: 'keep' });
    const { agent, children } = await startAgent(t, backend, 'escape');
    const [escapee] = children as [number];
    const dir = (agent as unknown as { cgroup: string }).cgroup;
    assert.ok(alive(escapee), 'the escapee runs');
    assert.equal(readFileSync(`/proc/${escapee}/environ`, 'latin1'), '', 'with an empty environment');
    const raw = readFileSync(`/proc/${escapee}/stat`, 'utf8').slice(0);
    const stat = raw.slice(raw.lastIndexOf(')') + 2).split(' ');
    assert.notEqual(Number(stat[1]), agent.pid, 'not a child of the agent');
    assert.notEqual(Number(stat[2]), agent.pid, 'outside the agent process group');
    assert.ok(agent.processes().includes(escapee), 'but inside the agent cgroup');
    assert.match(readFileSync(`/proc/${escapee}/cgroup`, 'utf8'), new RegExp(dir.split('/').pop()!));

    const result = await agent.terminate(300);
    console.log(
      `# cgroup backend, setsid+double-fork+empty env escapee ignoring SIGTERM: terminate(300) -> ${result.signal} in ${result.ms} ms, ended ${result.ended.length} processes`,
    );
    assert.equal(result.signal, 'SIGKILL');
    assert.deepEqual(result.survivors, []);
    assert.ok(result.ended.includes(agent.pid) && result.ended.includes(escapee), 'cgroup.procs names both');
    assert.equal(alive(escapee), false, 'the escapee is gone');
    assert.equal(alive(agent.pid), false);
    assert.equal(existsSync(dir), false, 'the cgroup is removed');
  },
);

test(
  'process-group backend: the same escapee survives a kill (the documented limit of that backend)',
  { timeout: 20_000 },
  async (t) => {
    // Tracking off: the escape is then deterministic (a sample while the intermediate lives
    // could still see the grandchild through its parent).
    const backend = new LocalProcessBackend({ trackEveryMs: 0, orphanPolicy: 'keep' });
    const { agent, children } = await startAgent(t, backend, 'escape');
    const [escapee] = children as [number];
    const result = await agent.terminate(200);
    assert.deepEqual(result.survivors, [], 'the backend does not even know of it');
    assert.equal(alive(agent.pid), false, 'the agent itself is gone');
    assert.equal(alive(escapee), true, 'the escapee survives: use the cgroup backend');
    assert.equal(result.ended.includes(escapee), false);
    process.kill(escapee, 'SIGKILL');
  },
);

for (const kind of ['cgroup', 'process-group'] as const) {
  test(
    `${kind} backend: freeze stops every process at once (no CPU time), thaw resumes them`,
    { timeout: 20_000 },
    async (t) => {
      let backend: ProcessBackend;
      if (kind === 'cgroup') {
        const parent = needCgroup(t);
        if (parent === null) return;
        backend = new CgroupProcessBackend({ parent, orphanPolicy: 'keep' });
      } else {
        backend = new LocalProcessBackend({ orphanPolicy: 'keep' });
      }
      // stubborn: the agent spins; its two children idle (one in its own session).
      const { agent, children } = await startAgent(t, backend, 'stubborn');
      const pids = [agent.pid, ...children];
      assert.deepEqual(
        agent.processes(),
        [...pids].sort((a, b) => a - b),
      );
      const frozen = await agent.freeze();
      console.log(
        `# ${kind} backend: freeze confirmed in ${frozen.ms} ms for ${frozen.pids.length} processes`,
      );
      assert.equal(frozen.confirmed, true);
      assert.deepEqual(
        frozen.pids,
        [...pids].sort((a, b) => a - b),
      );
      assert.equal(agent.frozen(), true);
      const before = cpuTicks(agent.pid);
      await sleep(300);
      assert.equal(cpuTicks(agent.pid), before, 'a frozen CPU-bound agent runs not one tick');
      const thawed = await agent.thaw();
      assert.equal(thawed.confirmed, true);
      assert.equal(agent.frozen(), false);
      const deadline = Date.now() + 5000;
      while (cpuTicks(agent.pid) === before && Date.now() < deadline) await sleep(20);
      assert.ok(cpuTicks(agent.pid) > before, 'thawed, it runs again');
      // Frozen again, then killed: SIGKILL at once (a frozen agent cannot run a SIGTERM handler).
      await agent.freeze();
      const killed = await agent.terminate(5_000);
      assert.equal(killed.signal, 'SIGKILL');
      assert.ok(killed.ms < 4_000, `no grace for a frozen agent (${killed.ms} ms)`);
      assert.deepEqual(pids.filter(alive), []);
    },
  );
}

/** Starts the host fixture (a launcher stand-in) and returns what it started. */
async function host(t: TestContext, kind: string, policy: 'kill' | 'keep') {
  const proc = spawn(process.execPath, [HOST, kind, 'escape', policy], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let pids: number[] = [];
  reap(t, () => [proc.pid!, ...pids]);
  const line = await new Promise<string>((ok, fail) => {
    const timer = setTimeout(() => fail(new Error('host not ready')), 15_000);
    createInterface({ input: proc.stdout! }).once('line', (l) => {
      clearTimeout(timer);
      ok(l);
    });
  });
  const info = JSON.parse(line) as { agent: number; children: number[]; cgroup: string | null };
  pids = [info.agent, ...info.children];
  return { proc, info, pids };
}

async function waitGone(pids: number[], ms: number): Promise<number> {
  const t0 = performance.now();
  while (pids.some(alive) && performance.now() - t0 < ms) await sleep(5);
  return Math.round(performance.now() - t0);
}

test(
  '--orphan-policy kill: SIGKILL the launcher and its agent cgroup dies with it; keep: it lives on',
  { timeout: 30_000 },
  async (t) => {
    if (needCgroup(t) === null) return;
    const killed = await host(t, 'cgroup', 'kill');
    assert.ok(killed.pids.every(alive));
    killed.proc.kill('SIGKILL');
    const ms = await waitGone(killed.pids, 5_000);
    console.log(`# orphan policy kill (cgroup): launcher SIGKILLed -> agent and escapee gone in ${ms} ms`);
    assert.deepEqual(killed.pids.filter(alive), [], 'agent and escapee are gone');
    const deadline = Date.now() + 3000;
    while (existsSync(killed.info.cgroup!) && Date.now() < deadline) await sleep(10);
    assert.equal(existsSync(killed.info.cgroup!), false, 'the guard removed the cgroup');

    const kept = await host(t, 'cgroup', 'keep');
    kept.proc.kill('SIGKILL');
    await sleep(500);
    assert.deepEqual(
      kept.pids.filter(alive),
      kept.pids,
      '--orphan-policy keep: the agent outlives its launcher',
    );
    for (const pid of kept.pids) process.kill(pid, 'SIGKILL');
    await waitGone(kept.pids, 3000);
    const deadline2 = Date.now() + 3000;
    while (Date.now() < deadline2) {
      try {
        (await import('node:fs')).rmdirSync(kept.info.cgroup!);
        break;
      } catch {
        await sleep(20);
      }
    }
  },
);

test(
  '--orphan-policy kill on the process-group backend ends the group (an escapee that left it survives)',
  { timeout: 30_000 },
  async (t) => {
    const h = await host(t, 'local', 'kill');
    h.proc.kill('SIGKILL');
    const [agentPid, escapee] = h.pids as [number, number];
    await waitGone([agentPid], 5_000);
    assert.equal(alive(agentPid), false, 'the agent process group is killed by the guard');
    assert.equal(alive(escapee), true, 'the escapee left the group: only a cgroup holds it');
    process.kill(escapee, 'SIGKILL');
  },
);

test(
  'inspect: the evidence of a frozen agent (tree, files, connections, a core where gcore is installed, no environment) and it ran not one tick',
  { timeout: 120_000 },
  async (t) => {
    const parent = needCgroup(t);
    if (parent === null) return;
    const { writeEvidence, gcoreBinary } = await import('../../src/launcher/evidence.ts');
    const { mkdtempSync, rmSync } = await import('node:fs');
    const { tmpdir } = await import('node:os');
    const { join } = await import('node:path');
    const backend = new CgroupProcessBackend({ parent, orphanPolicy: 'keep' });
    // A small process (a fast core) with a secret in its environment and a CPU-bound loop.
    const agent = backend.start({
      command: '/bin/sh',
      args: ['-c', 'echo up; while :; do :; done'],
      env: { PATH: process.env.PATH, KILLPATH_TOKEN: 'kp_secret_never_in_evidence' },
      stdio: 'pipe',
    });
    reap(t, () => [agent.pid], agent);
    t.after(() => agent.terminate(0));
    await new Promise((ok) => agent.stdout!.once('data', ok));
    await agent.freeze();
    const cpu = cpuTicks(agent.pid);
    const dir = mkdtempSync(join(tmpdir(), 'killpath-evidence-'));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    const { path, evidence } = await writeEvidence({
      dir,
      requestId: 'insp_1',
      runId: 'r1',
      actor: 'op',
      launcherId: 'L1',
      isolation: 'cgroup',
      pids: agent.processes(),
      frozen: agent.frozen(),
      cores: true,
      hold: (fn) => agent.holdForTrace(fn),
    });
    assert.equal(cpuTicks(agent.pid), cpu, 'not one tick while the evidence was taken');
    assert.equal(agent.frozen(), true);
    assert.match(
      readFileSync(
        join(parent, (agent as unknown as { cgroup: string }).cgroup.split('/').pop()!, 'cgroup.events'),
        'utf8',
      ),
      /frozen 1/,
      'frozen again after the cores',
    );
    assert.deepEqual(
      evidence.processes.map((p) => p.pid),
      [agent.pid],
    );
    assert.deepEqual(evidence.processes[0]!.cmdline.slice(0, 2), ['/bin/sh', '-c']);
    assert.ok(evidence.processes[0]!.files.some((f) => f.fd === 1 && /^(socket|pipe):\[/.test(f.target)));
    assert.ok(
      !readFileSync(path, 'utf8').includes('kp_secret_never_in_evidence'),
      'the environment is never read',
    );
    if (gcoreBinary() === null) {
      assert.match(evidence.coreNote ?? '', /not installed/);
    } else {
      assert.equal(evidence.coreNote, null, 'every core written');
      assert.ok(existsSync(evidence.processes[0]!.core!), 'the core file exists');
    }
    // Thawed, it runs again.
    await agent.thaw();
    const deadline = Date.now() + 5000;
    while (cpuTicks(agent.pid) === cpu && Date.now() < deadline) await sleep(20);
    assert.ok(cpuTicks(agent.pid) > cpu);
  },
);
