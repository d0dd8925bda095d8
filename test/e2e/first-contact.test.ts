/**
 * What a new user meets first, on real processes: an SDK agent started while the control plane
 * is down waits for it (alive, saying so on stderr) instead of exiting silently, and with
 * `KILLPATH_READY_TIMEOUT_MS` gives up with one clear line and a non-zero exit; the CLI names
 * the real cause of a refusal, in its own flags.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ApiClient, FleetHarness } from '@killpath/cli';
import { alive } from './launch.ts';
import { KILLPATH_BIN, runCli, startServerProcess, until } from './server-process.ts';

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

test('the CLI names the real cause: a run no worker holds, --tenant --run, --break-glass, a launcher refusing to start', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'killpath-first-contact-'));
  const server = await startServerProcess(dir);
  t.after(async () => {
    await server.stop();
    rmSync(dir, { recursive: true, force: true });
  });
  const env = { ...process.env, KILLPATH_URL: server.url, KILLPATH_TOKEN: server.adminToken };
  const cli = (...args: string[]) => runCli(args, { env });

  const unknown = await cli('kill', '--run', 'run-2', '--hard', '--reason', 'stop it now');
  assert.equal(unknown.code, 2);
  assert.equal(
    unknown.stderr,
    'killpath kill: run run-2 is not known in any tenant you can act on; give --tenant or start it first (not_found)\n',
  );
  const ahead = await cli('kill', '--tenant', 'acme', '--run', 'run-2', '--hard', '--reason', 'stop it now');
  assert.equal(ahead.code, 0, ahead.stderr);
  assert.match(ahead.stdout, /^issued kill run:acme\/run-2 /);
  const resumed = await cli('resume', '--tenant', 'acme', '--run', 'run-2', '--reason', 'not needed');
  assert.equal(resumed.code, 0, resumed.stderr);
  assert.match(resumed.stdout, /^1 directive cleared at run:acme\/run-2$/m);

  const global = await cli('kill', '--global', '--reason', 'everything');
  assert.equal(global.code, 2);
  assert.match(global.stderr, /--break-glass TEXT/);
  assert.doesNotMatch(global.stderr, /breakGlass/, 'the CLI flag, not the API field');

  // A launcher that refuses to start the agent says why on stderr, in one line, besides its JSON log.
  assert.equal((await cli('kill', '--agent', 'acme/support-bot', '--reason', 'incident 42')).code, 0);
  const run = await cli(
    'run',
    '--tenant',
    'acme',
    '--agent',
    'support-bot',
    '--run',
    'run-2',
    '--',
    process.execPath,
    '-e',
    '',
  );
  assert.equal(run.code, 3, run.stderr);
  const human = run.stderr.split('\n').filter((l) => l !== '' && !l.startsWith('{'));
  assert.equal(human.length, 1, `one line besides the JSON log:\n${run.stderr}`);
  assert.match(
    human[0]!,
    /^killpath run: not started: halt agent:acme\/support-bot \(directive d_\S+\) covers acme\/support-bot run run-2; killpath status lists it, killpath resume d_\S+ --reason TEXT clears it$/,
  );
});

test('a second serve on a live data dir with its port taken fails in one line and touches nothing; a later start says where the admin token is', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'killpath-first-contact-'));
  let server = await startServerProcess(dir);
  t.after(async () => {
    await server.stop();
    rmSync(dir, { recursive: true, force: true });
  });
  const second = await runCli(['serve', '--data-dir', dir, '--port', String(server.port)]);
  assert.equal(second.code, 2);
  assert.equal(second.stdout, '', 'nothing started, nothing printed');
  assert.equal(
    second.stderr,
    `killpath serve: port ${server.port} is already in use (try --port 0 or another port)\n`,
  );
  await server.stop();

  const later = spawn(process.execPath, [KILLPATH_BIN, 'serve', '--data-dir', dir, '--port', '0'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  later.stdout.on('data', (c: Buffer) => (out += c.toString()));
  t.after(() => {
    if (later.exitCode === null) later.kill('SIGKILL');
  });
  await until('the later start to say where the admin token is', 20_000, () => /admin token: /.test(out));
  assert.match(
    out,
    new RegExp(`^admin token: in ${join(dir, 'admin.token')} \\(created on the first start`, 'm'),
  );
  later.kill('SIGTERM');
  await new Promise((ok) => later.once('exit', ok));
  // Keep `after` happy: the first server is already stopped.
  server = { ...server, stop: async () => {} };
});

test('a halted demo agent waits for its resume instead of retrying denied effects in a loop', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'killpath-first-contact-'));
  const server = await startServerProcess(dir);
  const api = new ApiClient(server.url, server.adminToken);
  let fleet: FleetHarness | null = null;
  t.after(async () => {
    await fleet?.stop();
    await server.stop();
    rmSync(dir, { recursive: true, force: true });
  });
  fleet = await FleetHarness.start({
    api,
    agents: [{ tenant: 'acme', agent: 'support-bot', runs: ['run-1'] }],
    env: { DEMO_PERIOD_MS: '20', DEMO_SLOW_MS: '200', KILLPATH_HEARTBEAT_MS: '300' },
  });
  const agent = fleet.agents[0]!;
  const issued = await api.post<{ directive: { id: string } }>('/v1/directives', {
    level: 'halt',
    scope: 'agent:acme/support-bot',
    reason: 'incident 42',
    justification: 'incident 42',
    graceMs: 2000,
  });
  await until('the halt to settle', 15_000, () => agent.events.some((e) => e.type === 'halt.settled'));
  const from = agent.events.length;
  await new Promise((ok) => setTimeout(ok, 3000));
  const denied = agent.events.slice(from).filter((e) => e.type === 'effect.denied').length;
  // A loop at DEMO_PERIOD_MS=20 would be refused ~150 times in 3 s per loop; waiting, it is refused not at all.
  assert.ok(denied <= 3, `refused ${denied} times in 3 s while halted`);
  // A kill reaches no process that is not under a launcher: status says so, not just "kill".
  const killed = await api.post<{ directive: { id: string } }>('/v1/directives', {
    level: 'kill',
    scope: 'agent:acme/support-bot',
    reason: 'incident 42',
    justification: 'incident 42',
  });
  const env = { ...process.env, KILLPATH_URL: server.url, KILLPATH_TOKEN: server.adminToken };
  const status = await until('status to show the kill', 15_000, async () => {
    const r = await runCli(['status'], { env });
    return /support-bot .*\bkill\b/.test(r.stdout) ? r.stdout : null;
  });
  assert.match(status, /\bkill \(process alive, not under a launcher: the kill cannot end it\)/);
  await api.post(`/v1/directives/${killed.directive.id}/resume`, { justification: 'incident 42 closed' });
  await api.post(`/v1/directives/${issued.directive.id}/resume`, { justification: 'incident 42 closed' });
  const resumedAt = agent.events.length;
  await until('a write to land again after the resume', 15_000, () =>
    agent.events.slice(resumedAt).some((e) => e.type === 'effect.landed' && e.class === 'write'),
  );
});
