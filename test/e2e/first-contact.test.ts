/**
 * What a new user meets first, on real processes: an SDK agent started while the control plane
 * is down waits for it (alive, saying so on stderr) instead of exiting silently, and with
 * `KILLPATH_READY_TIMEOUT_MS` gives up with one clear line and a non-zero exit.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { fileURLToPath } from 'node:url';
import { alive } from './launch.ts';
import { until } from './server-process.ts';

const DEMO_AGENT = fileURLToPath(new URL('../../examples/demo-agent/dist/agent.js', import.meta.url));

/** A loopback port nobody listens on (taken from :0, then let go). */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
  const { port } = server.address() as { port: number };
  await new Promise<void>((ok) => server.close(() => ok()));
  return port;
}

/** Starts the demo agent against `url`; its output is collected; it is killed when the test ends. */
function startAgent(url: string, extra: NodeJS.ProcessEnv = {}) {
  const child = spawn(process.execPath, [DEMO_AGENT], {
    env: {
      ...process.env,
      KILLPATH_URL: url,
      KILLPATH_TOKEN: 'kp_not_checked_yet',
      KILLPATH_TENANT: 'acme',
      KILLPATH_AGENT: 'support-bot',
      DEMO_RUNS: 'run-1',
      ...extra,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  let stdout = '';
  child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
  child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
  const exited = new Promise<number | null>((ok) => child.once('close', (code) => ok(code)));
  return {
    child,
    exited,
    stderr: () => stderr,
    stdout: () => stdout,
    stop: () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    },
  };
}

test('an SDK agent started with no control plane stays alive, retrying, and says so once', async (t) => {
  const url = `http://127.0.0.1:${await closedPort()}`;
  const agent = startAgent(url);
  t.after(agent.stop);
  const line = `killpath: control plane unreachable at ${url}, retrying`;
  await until('the unreachable line on stderr', 15_000, () => agent.stderr().includes(line));
  // Several retries later (100 ms doubling) it is still alive and has said it only once.
  const since = Date.now();
  await until(
    'three seconds of retrying',
    10_000,
    () => Date.now() - since >= 3000 || agent.child.exitCode !== null,
  );
  assert.equal(agent.child.exitCode, null, `the agent is still running:\n${agent.stderr()}`);
  assert.ok(alive(agent.child.pid!));
  assert.equal(agent.stderr().split(line).length - 1, 1, `logged once:\n${agent.stderr()}`);
  assert.doesNotMatch(agent.stdout(), /"k":"ready"/, 'not ready: no control plane answered');
});

test('with KILLPATH_READY_TIMEOUT_MS the agent exits 1 with a clear message', async (t) => {
  const port = await closedPort();
  const url = `http://127.0.0.1:${port}`;
  const agent = startAgent(url, { KILLPATH_READY_TIMEOUT_MS: '1500' });
  t.after(agent.stop);
  const code = await Promise.race([
    agent.exited,
    new Promise<'hung'>((ok) => setTimeout(() => ok('hung'), 20_000).unref()),
  ]);
  assert.equal(code, 1, `exit code (stderr: ${agent.stderr()})`);
  assert.match(
    agent.stderr(),
    new RegExp(
      `^demo-agent: control plane at http://127\\.0\\.0\\.1:${port} not reached within readyTimeoutMs \\(1500 ms\\): .*ECONNREFUSED`,
      'm',
    ),
  );
  assert.doesNotMatch(agent.stderr(), /\n\s+at /, 'no stack trace');
});
