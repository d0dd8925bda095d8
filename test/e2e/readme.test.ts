/**
 * The README, run as a newcomer runs it. Its first command is `npm install && npx killpath
 * demo`: the second half runs exactly as written (after the install the test command already
 * did), `npx` finding the workspace's `killpath` bin without the registry, and the demo must
 * exit 0 with every invariant held. Then the five-minute tour: every sh block, in order, in one
 * shell, as pasted.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { delimiter, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ApiClient } from '@killpath/cli';
import type { Directive, FleetWorker } from '@killpath/protocol';
import { alive } from './launch.ts';
import { until } from './server-process.ts';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

test('npx killpath demo runs from the repo root and exits 0', { timeout: 180_000 }, () => {
  const r = spawnSync('npx', ['--no-install', 'killpath', 'demo'], {
    cwd: ROOT,
    encoding: 'utf8',
    timeout: 170_000,
  });
  assert.equal(r.status, 0, `npx killpath demo failed:\n${r.stdout}\n${r.stderr}`);
  assert.match(r.stdout, /audit chain verified/);
  assert.match(r.stdout, /every invariant held/);
});

/** The sh blocks of the README's five-minute tour, in order, as a reader sees them. */
function tourBlocks(): string[] {
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
  const start = readme.indexOf('## Five-minute tour');
  const end = readme.indexOf('\n## ', start + 1);
  assert.ok(start >= 0 && end > start, 'the README has a five-minute tour');
  return [...readme.slice(start, end).matchAll(/^```(\w*)\n([\s\S]*?)\n```$/gm)]
    .filter((m) => m[1] === 'sh')
    .map((m) => m[2]!);
}

/** A loopback port free right now (from :0). */
async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((ok) => s.listen(0, '127.0.0.1', ok));
  const { port } = s.address() as AddressInfo;
  await new Promise<void>((ok) => s.close(() => ok()));
  return port;
}

/**
 * The five-minute tour as a newcomer runs it: one bash session in a fresh directory (the
 * checkout's `node_modules` and `examples` linked in, nothing else: no `.killpath` yet), every sh
 * block pasted in order, each command exiting 0 (`set -e`). Only the port is changed, from 7070
 * to a free one. After each block the test checks what the README says it does.
 */
test('the five-minute tour runs as written, in order', { timeout: 240_000 }, async (t) => {
  const blocks = tourBlocks();
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'killpath-tour-'));
  symlinkSync(join(ROOT, 'node_modules'), join(dir, 'node_modules'));
  symlinkSync(join(ROOT, 'examples'), join(dir, 'examples'));
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    PATH: `${dirname(process.execPath)}${delimiter}${process.env.PATH ?? ''}`,
    npm_config_offline: 'true',
  };
  for (const k of ['NODE_OPTIONS', 'KILLPATH_URL', 'KILLPATH_TOKEN', 'KILLPATH_DATA_DIR']) delete env[k];
  const shell = spawn('bash', ['--norc', '--noprofile', '-s'], {
    cwd: dir,
    env,
    stdio: ['pipe', 'pipe', 'pipe'],
    detached: true,
  });
  let stdout = '';
  let stderr = '';
  shell.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
  shell.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
  const pids: number[] = [];
  t.after(async () => {
    shell.stdin.end();
    const signal = (pid: number, sig: NodeJS.Signals) => {
      try {
        process.kill(pid, sig);
      } catch {
        // already gone
      }
    };
    // The shell's background jobs (serve, the agent, the launcher) share its process group.
    signal(-shell.pid!, 'SIGTERM');
    await new Promise((ok) => setTimeout(ok, 1000));
    signal(-shell.pid!, 'SIGKILL');
    for (const pid of pids) if (alive(pid)) signal(pid, 'SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  });
  shell.stdin.write('set -eo pipefail\n');

  /** Pastes one block and waits for it to finish; returns what it printed. */
  const paste = async (i: number, code: string) => {
    const from = { out: stdout.length, err: stderr.length };
    const marker = `::tour-block-${i}-done`;
    shell.stdin.write(`${code.replaceAll('7070', String(port))}\necho ${marker}\n`);
    await until(`block ${i + 1} to finish`, 90_000, () => {
      if (shell.exitCode !== null)
        throw new Error(
          `block ${i + 1} failed (the shell exited ${shell.exitCode}):\n${code}\nstdout: ${stdout.slice(from.out)}\nstderr: ${stderr.slice(from.err)}`,
        );
      return stdout.includes(marker);
    });
    return { out: stdout.slice(from.out).replace(`${marker}\n`, ''), err: stderr.slice(from.err) };
  };

  let api: ApiClient | null = null;
  const active = async () =>
    (await api!.get<{ directives: Directive[] }>('/v1/directives?active=true')).directives;
  const workers = async () => (await api!.get<{ workers: FleetWorker[] }>('/v1/fleet')).workers;

  const checks: { match: RegExp; check: (r: { out: string; err: string }) => Promise<void> }[] = [
    {
      match: /^npx killpath serve --port \d+ &\nnpx killpath status --wait 30$/,
      check: async (r) => {
        assert.match(r.out, new RegExp(`listening on http://127\\.0\\.0\\.1:${port} `));
        assert.match(
          r.out,
          /admin token \(shown once, also written to .*\/\.killpath\/admin\.token\):\n {2}\S+/,
        );
        assert.match(r.out, /fleet: 0 of 0 worker\(s\)/);
        api = new ApiClient(
          `http://127.0.0.1:${port}`,
          readFileSync(join(dir, '.killpath', 'admin.token'), 'utf8').trim(),
        );
      },
    },
    {
      match: /^export KILLPATH_TOKEN_AGENT=/,
      check: async (r) => {
        assert.match(r.out, /acme\s+support-bot\s.*\s\d+\s+running\b.*\brun-1\b/);
        for (const w of await workers()) if (w.pid !== null) pids.push(w.pid);
      },
    },
    {
      match: /^npx killpath kill --agent acme\/support-bot --tool crm\.update/,
      check: async (r) => {
        assert.match(r.out, /^issued halt agent:acme\/support-bot tools=crm\.update /m);
        assert.match(r.out, /^issued halt run:acme\/run-1 /m);
        assert.match(r.out, /^issued halt agent:acme\/support-bot \(id /m);
        assert.match(r.out, /active directives: 3/);
        assert.match(r.out, /incident 42/);
        assert.deepEqual((await active()).map((d) => [d.scopeText, d.tenant]).sort(), [
          ['agent:acme/support-bot', 'acme'],
          ['agent:acme/support-bot', 'acme'],
          ['run:run-1', 'acme'],
        ]);
      },
    },
    {
      match: /^npx killpath resume --agent acme\/support-bot --reason "fix deployed/,
      check: async (r) => {
        assert.match(r.out, /^2 directives cleared at agent:acme\/support-bot$/m);
        assert.match(r.out, /^1 directive cleared at run:run-1$/m);
        assert.match(r.out, /active directives: 0/);
        assert.deepEqual(await active(), [], 'the incident is over before the ladder and the launcher');
      },
    },
    {
      match: /^npx killpath kill --agent acme\/support-bot --level throttle/,
      check: async (r) => {
        assert.match(r.out, /^issued throttle agent:acme\/support-bot rate=2\/s per run /m);
        assert.match(r.out, /^stepped up: halt agent:acme\/support-bot tools=crm\.update /m);
        assert.match(r.out, /still misbehaving/, 'status shows the step with its own reason');
        assert.match(r.out, /^2 directives cleared at agent:acme\/support-bot$/m);
        assert.deepEqual(await active(), []);
      },
    },
    {
      match: /^DEMO_PERIOD_MS=200 npx killpath run --tenant acme --agent support-bot --run run-2 /,
      check: async (r) => {
        assert.match(r.out, /\brun-2\b/, 'status shows the launched run');
        assert.match(r.out, /^issued kill run:acme\/run-2 /m);
        const w = (await workers()).find((x) => x.runs.some((run) => run.runId === 'run-2'));
        assert.ok(w?.pid, 'the launched agent reported its pid');
        pids.push(w.pid);
        await until('the launched agent to be ended by its launcher', 20_000, () => !alive(w.pid!));
        await until('launched.log to record the kill', 10_000, () =>
          /process\.killed|killed/.test(readFileSync(join(dir, 'launched.log'), 'utf8')),
        );
      },
    },
    {
      match: /^npx killpath audit tail -n 10\nnpx killpath audit verify$/,
      check: async (r) => assert.match(r.out, /^audit chain ok: \d+ records/m),
    },
    {
      match: /^curl -s -X POST http:\/\/127\.0\.0\.1:\d+\/v1\/agents\/acme\/support-bot\/kill/,
      check: async (r) => {
        const body = JSON.parse(r.out) as { directive: Directive };
        assert.equal(body.directive.level, 'kill');
        assert.equal(body.directive.scopeText, 'agent:acme/support-bot');
      },
    },
  ];

  const used = new Set<number>();
  for (const [i, code] of blocks.entries()) {
    const c = checks.findIndex((x) => x.match.test(code));
    assert.ok(c >= 0, `tour block ${i + 1} is not one the test knows how to check:\n${code}`);
    used.add(c);
    await checks[c]!.check(await paste(i, code));
  }
  assert.deepEqual(
    checks.map((_, i) => i).filter((i) => !used.has(i)),
    [],
    'every step the test expects is in the tour',
  );
  assert.equal(stderr.match(/killpath \w+: /g), null, `no command complained:\n${stderr}`);
});
