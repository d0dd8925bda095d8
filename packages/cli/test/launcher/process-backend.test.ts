import { test, type TestContext } from 'node:test';
import type { Readable } from 'node:stream';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { KillpathError } from '@killpath/protocol';
import { LAUNCH_ID_ENV, LocalProcessBackend, type AgentHandle } from '../../src/launcher/process-backend.ts';

const AGENT = fileURLToPath(new URL('./fixtures/agent.mjs', import.meta.url));

/** Alive means in /proc and not a zombie: an exited orphan may wait a while for init to reap it. */
function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    return state !== 'Z' && state !== 'X';
  } catch {
    return false;
  }
}

/**
 * Whatever a failing test leaves running is SIGKILLed after it, so a regression fails the test
 * instead of hanging the run (a survivor would hold the agent's pipes open).
 */
function reap(t: TestContext, agent: AgentHandle, pids: number[]): void {
  t.after(() => {
    for (const pid of [agent.pid, ...pids]) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // Gone, as it should be.
      }
    }
    (agent.stdout as Readable | null)?.destroy();
    (agent.stderr as Readable | null)?.destroy();
  });
}

/** Starts the fixture agent in `mode` and waits for its ready line. */
async function startAgent(
  t: TestContext,
  backend: LocalProcessBackend,
  mode: string,
): Promise<{ agent: AgentHandle; children: number[] }> {
  const agent = backend.start({
    command: process.execPath,
    args: [AGENT, mode],
    env: process.env,
    stdio: 'pipe',
  });
  agent.stderr?.pipe(process.stderr);
  const lines = createInterface({ input: agent.stdout as NodeJS.ReadableStream });
  const first = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`agent ${mode} not ready`)), 10_000);
    lines.once('line', (line) => {
      clearTimeout(timer);
      resolve(line);
    });
  });
  const ready = JSON.parse(first) as { ready: boolean; children?: number[] };
  assert.equal(ready.ready, true);
  reap(t, agent, ready.children ?? []);
  return { agent, children: ready.children ?? [] };
}

test(
  'a CPU-bound agent ignoring SIGTERM and its children (one setsid) are all gone after terminate(300)',
  { timeout: 20_000 },
  async (t) => {
    const backend = new LocalProcessBackend({ trackEveryMs: 0 });
    const { agent, children } = await startAgent(t, backend, 'stubborn');
    assert.equal(children.length, 2);
    for (const pid of [agent.pid, ...children])
      assert.ok(alive(pid), `pid ${pid} should run before terminate`);
    assert.equal(agent.alive(), true);

    const result = await agent.terminate(300);
    console.log(
      `# CPU-bound agent, SIGTERM ignored, 2 children (1 setsid): terminate(300) -> ${result.signal} in ${result.ms} ms`,
    );
    assert.equal(result.signal, 'SIGKILL');
    assert.deepEqual(result.survivors, []);
    assert.ok(result.ms >= 300, `the grace is honoured (${result.ms} ms)`);
    assert.ok(result.ms < 2_000, `SIGKILL is prompt (${result.ms} ms)`);
    for (const pid of [agent.pid, ...children]) assert.equal(alive(pid), false, `pid ${pid} must be gone`);
    assert.equal(agent.alive(), false);
    assert.deepEqual(await agent.exited, { code: null, signal: 'SIGKILL' });
    // Calling it again returns the same outcome.
    assert.equal(await agent.terminate(300), result);
  },
);

test('a cooperative agent ends on SIGTERM well before the grace', { timeout: 20_000 }, async (t) => {
  const backend = new LocalProcessBackend();
  const { agent } = await startAgent(t, backend, 'cooperative');
  const result = await agent.terminate(2_000);
  console.log(`# cooperative agent: terminate(2000) -> ${result.signal} in ${result.ms} ms`);
  assert.equal(result.signal, 'SIGTERM');
  assert.deepEqual(result.survivors, []);
  assert.ok(result.ms < 1_000, `ended well before the grace (${result.ms} ms)`);
  assert.deepEqual(await agent.exited, { code: 0, signal: null });
});

test(
  'a daemonized grandchild (setsid + orphaned to init) is found by its launch id and killed',
  { timeout: 20_000 },
  async (t) => {
    // Tracking off: only the launch-id marker in its environment can find the grandchild.
    const backend = new LocalProcessBackend({ trackEveryMs: 0 });
    const { agent, children } = await startAgent(t, backend, 'daemonize');
    const [grandchild] = children as [number];
    assert.ok(alive(grandchild));
    const raw = readFileSync(`/proc/${grandchild}/stat`, 'utf8');
    const stat = raw.slice(raw.lastIndexOf(')') + 2).split(' ');
    assert.notEqual(Number(stat[1]), agent.pid, 'the grandchild is not a child of the agent');
    assert.notEqual(Number(stat[2]), agent.pid, 'the grandchild left the agent group');
    assert.match(readFileSync(`/proc/${grandchild}/environ`, 'latin1'), new RegExp(`${LAUNCH_ID_ENV}=`));

    const result = await agent.terminate(200);
    console.log(`# daemonized grandchild: terminate(200) -> ${result.signal} in ${result.ms} ms`);
    assert.deepEqual(result.survivors, []);
    assert.equal(alive(grandchild), false);
    assert.equal(alive(agent.pid), false);
  },
);

test(
  'terminate after the agent exited by itself reports no signal; signal() reaches the group',
  { timeout: 20_000 },
  async () => {
    const backend = new LocalProcessBackend();
    const agent = backend.start({
      command: process.execPath,
      args: [
        '-e',
        "process.on('SIGUSR2', () => process.exit(7)); setInterval(() => {}, 1000); console.log('up')",
      ],
      env: process.env,
      stdio: 'pipe',
    });
    await new Promise((resolve) => agent.stdout?.once('data', resolve));
    agent.signal('SIGUSR2');
    assert.deepEqual(await agent.exited, { code: 7, signal: null });
    assert.equal(agent.alive(), false);
    const result = await agent.terminate(1_000);
    assert.equal(result.signal, null);
    assert.deepEqual(result.survivors, []);
    agent.signal('SIGTERM'); // a no-op once the group is gone, never a throw
  },
);

test('a command that cannot start is a KillpathError', () => {
  const backend = new LocalProcessBackend();
  assert.throws(
    () => backend.start({ command: '/nonexistent/killpath-agent', args: [], env: process.env }),
    (err: unknown) => err instanceof KillpathError && err.code === 'invalid_request',
  );
});
