/**
 * The runbook, followed as written, on real processes: a control plane, one demo agent of
 * acme/support-bot, and the runbook `killpath runbook` renders for it from the demo spec.
 * Every ```sh block runs in order with bash, the way the on-call engineer pastes it: from the
 * repository root, `npx killpath` resolving to this checkout, KILLPATH_URL / KILLPATH_TOKEN
 * (the test server's admin token) and RUN_ID (the agent's run, which the runbook tells the
 * reader to read off `killpath status`) in the environment. Each block must exit 0 and do what
 * the runbook says it does; the replacement-session command runs in the background until its
 * run works, then is stopped. A block the test cannot run must be a ```text block: none may be
 * left unrun. Then `killpath resume` by scope is checked on its own: nothing active, the id
 * form, a feature inside a tenant.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ApiClient, FleetHarness } from '@killpath/cli';
import type { AuditRecord, Directive, FleetWorker } from '@killpath/protocol';
import { runCli, startServerProcess, until, type CliResult, type ServerProcess } from './server-process.ts';
import { alive } from './launch.ts';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const AGENT = 'acme/support-bot';
const RUN_ID = 'acme-sup-1';
const REPLACEMENT = `${RUN_ID}-replacement`;
const sleep = (ms: number) => new Promise((ok) => setTimeout(ok, ms));

type Result = CliResult;

/** Runs `bash -euo pipefail -c code` from the repository root, without blocking this process (the agent's pipes are read here). */
function bash(code: string, env: NodeJS.ProcessEnv, timeoutMs = 60_000): Promise<Result> {
  return new Promise((ok) => {
    const p = spawn('bash', ['-euo', 'pipefail', '-c', code], {
      cwd: ROOT,
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    p.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    const timer = setTimeout(() => p.kill('SIGKILL'), timeoutMs);
    p.once('exit', (code) => {
      clearTimeout(timer);
      ok({ code, stdout, stderr });
    });
  });
}

/** The CLI of this checkout, directly (for the checks around the runbook, not the runbook itself). */
const cli = (args: string[], env: NodeJS.ProcessEnv): Promise<Result> => runCli(args, { env, cwd: ROOT });

/** The fenced blocks of a Markdown document, in order, as a reader sees them. */
function fencedBlocks(md: string): { lang: string; code: string }[] {
  return [...md.matchAll(/^```(\w*)\n([\s\S]*?)\n```$/gm)].map((m) => ({ lang: m[1]!, code: m[2]! }));
}

describe('the runbook of acme/support-bot, run as written (real processes)', { timeout: 240_000 }, () => {
  let dir: string;
  let server: ServerProcess;
  let api: ApiClient;
  let fleet: FleetHarness;
  let env: NodeJS.ProcessEnv;
  let runbook = '';
  /** Process groups started in the background (the replacement session) and agent pids, ended in `after` whatever happened. */
  const background: number[] = [];
  const agentPids: number[] = [];

  const active = async () =>
    (await api.get<{ directives: Directive[] }>('/v1/directives?active=true')).directives;
  const audit = async (type: string, after = 0) =>
    (await api.get<{ records: AuditRecord[] }>(`/v1/audit?type=${type}&after=${after}&limit=5000`)).records;
  const lastSeq = async () =>
    (await api.get<{ records: AuditRecord[] }>('/v1/audit?order=desc&limit=1')).records[0]?.seq ?? 0;
  const workers = async () => (await api.get<{ workers: FleetWorker[] }>('/v1/fleet')).workers;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'killpath-runbook-'));
    server = await startServerProcess(dir, 0, ['--keepalive-ms', '300']);
    api = new ApiClient(server.url, server.adminToken);
    fleet = await FleetHarness.start({
      api,
      agents: [{ tenant: 'acme', agent: 'support-bot', runs: [RUN_ID], features: ['new-planner'] }],
      env: { DEMO_PERIOD_MS: '100', DEMO_SLOW_MS: '3000', KILLPATH_HEARTBEAT_MS: '500' },
    });
    agentPids.push(...fleet.agents.map((a) => a.pid));
    // What the on-call engineer has: the URL and a token in the environment, the run id read off
    // `killpath status` (section 0), `npx` run from the repository root. The Node that runs this
    // test comes first on PATH, so the `killpath` bin (#!/usr/bin/env node) runs on it too.
    env = {
      ...process.env,
      PATH: `${dirname(process.execPath)}${delimiter}${process.env.PATH ?? ''}`,
      KILLPATH_URL: server.url,
      KILLPATH_TOKEN: server.adminToken,
      RUN_ID,
      KILLPATH_DATA_DIR: join(dir, 'nowhere'),
    };
    delete env.NODE_OPTIONS;
  });

  after(async () => {
    const signal = (pid: number, sig: NodeJS.Signals) => {
      try {
        process.kill(pid, sig);
      } catch {
        // already gone
      }
    };
    // SIGTERM first, so that the launcher ends its agent (in a process group of its own).
    for (const pgid of background) signal(-pgid, 'SIGTERM');
    if (background.length > 0) await sleep(1000);
    for (const pgid of background) signal(-pgid, 'SIGKILL');
    await fleet?.stop();
    for (const pid of agentPids) if (alive(pid)) signal(pid, 'SIGKILL');
    await server?.stop().catch(() => {});
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test('killpath runbook renders it from the demo spec', async () => {
    const r = await bash(`npx killpath runbook --spec examples/demo-fleet.spec.yaml --agent ${AGENT}`, env);
    assert.equal(r.code, 0, r.stderr);
    runbook = r.stdout;
    assert.match(runbook, /^# Runbook: acme\/support-bot — how to stop it/);
    const blocks = fencedBlocks(runbook);
    assert.ok(
      blocks.every((b) => b.lang === 'sh' || b.lang === 'text'),
      `only sh and text blocks: ${blocks.map((b) => b.lang).join(', ')}`,
    );
    assert.ok(
      blocks.some((b) => b.lang === 'text' && b.code.includes('export RUN_ID=')),
      'the runbook tells how to set RUN_ID',
    );
  });

  test('every sh block, in order, exits 0 and does what the runbook says', async () => {
    assert.ok(runbook !== '', 'the runbook was rendered');
    const blocks = fencedBlocks(runbook).filter((b) => b.lang === 'sh');
    let statusRuns = 0;
    let resumeSeq = 0;
    let haltedAt = 0;
    let replacementPid: number | null = null;
    const ran: string[] = [];
    const checked = new Set<string>();

    /** What each block must have done, by what it is. Every check must be used at least once. */
    const checks: { name: string; match: RegExp; check: (r: Result) => Promise<void> }[] = [
      {
        name: 'status',
        match: /^npx killpath status$/,
        check: async (r) => {
          statusRuns += 1;
          assert.match(r.stdout, /acme\s+support-bot/, 'the agent has a row');
          if (statusRuns === 1)
            assert.match(
              r.stdout,
              new RegExp(`\\b${RUN_ID}\\b(?!\\[)`),
              'section 0: the run is listed, running',
            );
          else {
            // Section 4: halted runs and the directives at both scopes.
            await until('the run shown halted', 10_000, async () =>
              /\bacme-sup-1\[(halt|kill)\]/.test((await bash('npx killpath status', env)).stdout),
            );
            assert.match(r.stdout, /agent:acme\/support-bot/);
            assert.match(r.stdout, /run:acme\/acme-sup-1/);
          }
        },
      },
      {
        name: 'api halt',
        match: /^curl -sS -X POST "\$KILLPATH_URL\/v1\/directives"/,
        check: async (r) => {
          const d = (JSON.parse(r.stdout) as { directive: Directive }).directive;
          assert.equal(d.level, 'halt');
          assert.equal(d.scopeText, 'agent:acme/support-bot');
          haltedAt = Date.now();
          const halted = await until('session.halted for the API halt', 10_000, async () =>
            (await audit('session.halted')).find(
              (x) => x.data.directiveId === d.id && (x.data.runs as string[]).includes(RUN_ID),
            ),
          );
          console.log(
            `# API halt: session.halted after ${String(halted.data.timeToStopMs)} ms (target 2000 ms)`,
          );
          const ops = await audit('operator_action');
          assert.ok(
            ops.some((x) => x.data.directiveId === d.id && x.data.via === 'api'),
            'operator_action recorded for the API path',
          );
        },
      },
      {
        name: 'cli agent halt',
        match: /^npx killpath kill --agent acme\/support-bot --grace/,
        check: async (r) => {
          assert.match(
            r.stdout,
            /^(issued|already in force \(identical directive\):) halt agent:acme\/support-bot/,
          );
        },
      },
      {
        name: 'cli run halt',
        match: /^npx killpath kill --run "\$RUN_ID"/,
        check: async (r) => {
          assert.match(r.stdout, /^issued halt run:acme\/acme-sup-1 /);
          assert.ok((await active()).some((d) => d.scopeText === `run:${RUN_ID}` && d.level === 'halt'));
        },
      },
      {
        name: 'cli tool freeze',
        match: /^npx killpath kill --agent acme\/support-bot --tool wire_transfer/,
        check: async (r) =>
          assert.match(r.stdout, /^issued halt agent:acme\/support-bot tools=wire_transfer/),
      },
      {
        name: 'cli hard kill',
        match: /^npx killpath kill --agent acme\/support-bot --hard/,
        check: async (r) => {
          assert.match(r.stdout, /^issued kill agent:acme\/support-bot /);
          const before = fleet.agents[0]!.events.length;
          await sleep(500);
          const started = fleet.agents[0]!.events.slice(before).filter(
            (e) => e.type === 'effect.started' && e.runId === RUN_ID,
          );
          assert.equal(started.length, 0, 'the agent starts nothing while halted');
        },
      },
      {
        name: 'audit tail',
        match: /^npx killpath audit tail /,
        check: async (r) => {
          for (const t of ['operator_action', 'kill_switch.fired', 'session.halted'])
            assert.match(r.stdout, new RegExp(` ${t.replace('.', '\\.')} `), `the audit tail shows ${t}`);
          assert.doesNotMatch(r.stdout, / effect\.landed /, 'filtered to the events the runbook names');
        },
      },
      {
        name: 'audit verify',
        match: /^npx killpath audit verify$/,
        check: async (r) => assert.match(r.stdout, /^audit chain ok: \d+ records/),
      },
      {
        name: 'metrics',
        match: /\/metrics"/,
        check: async (r) =>
          assert.match(r.stdout, /^killpath_signal_to_halt_seconds_count(\{[^}]*\})? [1-9]\d*$/m),
      },
      {
        name: 'compensations',
        match: /^npx killpath compensations --tenant acme$/,
        check: async (r) =>
          assert.match(
            r.stdout,
            /acme\s+support-bot\s+acme-sup-1\s+crm\.update .*"action":"crm\.revert"/,
            'the landed CRM writes of the halted run, with crm.revert',
          ),
      },
      {
        name: 'journal',
        match: /^npx killpath journal "\$RUN_ID"$/,
        check: async (r) => {
          assert.match(r.stdout, /^run acme-sup-1 of acme\/support-bot/);
          assert.match(r.stdout, /crm\.update/);
        },
      },
      {
        name: 'resume agent',
        match: /^npx killpath resume --agent acme\/support-bot /,
        check: async (r) => {
          assert.match(r.stdout, /^cleared kill agent:acme\/support-bot /m);
          assert.match(r.stdout, /^cleared halt agent:acme\/support-bot tools=wire_transfer /m);
          assert.match(r.stdout, /^\d+ directives cleared at agent:acme\/support-bot$/m);
          const left = await active();
          assert.ok(
            !left.some((d) => d.scopeText === 'agent:acme/support-bot'),
            'nothing left at the agent scope',
          );
          assert.ok(
            left.some((d) => d.scopeText === `run:${RUN_ID}`),
            'the run halt is another scope: still in force',
          );
        },
      },
      {
        name: 'resume run',
        match: /^npx killpath resume --run "\$RUN_ID" /,
        check: async (r) => {
          assert.match(r.stdout, /^cleared halt run:acme\/acme-sup-1 /m);
          assert.deepEqual(await active(), [], 'no directive left');
          resumeSeq = await lastSeq();
          const since = fleet.agents[0]!.events.length;
          const landed = await until('the agent to land a write again', 15_000, () =>
            fleet.agents[0]!.events.slice(since).find(
              (e) => e.type === 'effect.landed' && e.runId === RUN_ID && e.class === 'write',
            ),
          );
          console.log(`# the halted run works again after resume (${String(landed.capability)} landed)`);
        },
      },
      {
        name: 'replacement session',
        match:
          /^npx killpath run --tenant acme --agent support-bot --run "\$RUN_ID-replacement" --features new-planner -- node examples\/demo-agent\/dist\/agent\.js$/,
        check: async () => {
          // Ran in the background (below): the new run registers and lands writes, then it is stopped.
          const w = await until('the replacement run in the fleet', 30_000, async () =>
            (await workers()).find((x) => x.runs.some((run) => run.runId === REPLACEMENT) && x.pid !== null),
          );
          replacementPid = w.pid;
          agentPids.push(w.pid!);
          assert.deepEqual(w.features, ['new-planner']);
          const started = await until('the launcher to report the process started', 15_000, async () =>
            (await audit('process.started', resumeSeq)).find((x) => x.data.pid === w.pid),
          );
          assert.match(
            String(started.data.detail),
            /examples\/demo-agent\/dist\/agent\.js$/,
            "started under the launcher with the runbook's command",
          );
          await until('a write of the replacement run landed', 30_000, async () =>
            (await audit('effect.landed', resumeSeq)).find((x) => x.data.runId === REPLACEMENT),
          );
          console.log(
            `# first halt to the replacement run's first landed write: ${((Date.now() - haltedAt) / 1000).toFixed(1)} s (halt-to-recovery target 300 s)`,
          );
        },
      },
    ];

    for (const [i, b] of blocks.entries()) {
      const what = checks.find((c) => c.match.test(b.code));
      assert.ok(what, `sh block ${i + 1} is not one the test knows how to check:\n${b.code}`);
      if (what.name === 'replacement session') {
        // It runs in the foreground until the agent exits: run it in the background with a timeout, check, stop it.
        // Its output goes to a file: an orphaned agent holding a pipe of this process would keep the test from ending.
        const logFile = join(dir, 'replacement.log');
        const fd = openSync(logFile, 'w');
        const p = spawn('bash', ['-euo', 'pipefail', '-c', b.code], {
          cwd: ROOT,
          env,
          stdio: ['ignore', fd, fd],
          detached: true,
        });
        closeSync(fd);
        const stderr = () => readFileSync(logFile, 'utf8').split('\n').slice(-20).join('\n');
        const exited = new Promise<number | null>((ok) => p.once('exit', (code) => ok(code)));
        background.push(p.pid!);
        const deadline = setTimeout(() => process.kill(-p.pid!, 'SIGKILL'), 90_000);
        let running = true;
        const early = exited.then((code) => {
          if (running) throw new Error(`the replacement session exited early (${code}): ${stderr()}`);
        });
        try {
          await Promise.race([what.check({ code: null, stdout: '', stderr: '' }), early]);
        } finally {
          running = false;
          clearTimeout(deadline);
        }
        // Stopped like a foreground command: SIGTERM to its process group; the launcher ends its agent.
        process.kill(-p.pid!, 'SIGTERM');
        await until(
          'the replacement session to end, its agent with it',
          15_000,
          () =>
            (p.exitCode !== null || p.signalCode !== null) &&
            (replacementPid === null || !alive(replacementPid)),
        );
      } else {
        const r = await bash(b.code, env);
        assert.equal(
          r.code,
          0,
          `sh block ${i + 1} exits 0:\n${b.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`,
        );
        await what.check(r);
      }
      checked.add(what.name);
      ran.push(b.code);
    }
    assert.equal(ran.length, blocks.length, 'no sh block is left unrun');
    assert.deepEqual(
      checks.map((c) => c.name).filter((n) => !checked.has(n)),
      [],
      'every step the test expects is in the runbook',
    );
    assert.equal(statusRuns, 2, 'status in section 0 and section 4');
  });

  test('resume by scope: nothing active is exit 1, the id form still works, a feature inside a tenant', async () => {
    const none = await cli(['resume', '--agent', AGENT, '--reason', 'again'], env);
    assert.equal(none.code, 1);
    assert.match(none.stderr, /no active directive at agent:acme\/support-bot: nothing to resume/);

    const issued = await cli(['kill', '--agent', AGENT, '--reason', 'by id', '--json'], env);
    assert.equal(issued.code, 0, issued.stderr);
    const id = (JSON.parse(issued.stdout) as { directive: Directive }).directive.id;
    const byId = await cli(['resume', id, '--reason', 'by id'], env);
    assert.equal(byId.code, 0, byId.stderr);
    assert.match(byId.stdout, new RegExp(`^cleared halt agent:acme/support-bot \\(id ${id}, `));

    assert.equal(
      (await cli(['kill', '--feature', 'new-planner', '--tenant', 'acme', '--reason', 'feature'], env)).code,
      0,
    );
    const other = await cli(
      ['resume', '--tenant', 'globex', '--feature', 'new-planner', '--reason', 'wrong tenant'],
      env,
    );
    assert.equal(other.code, 1, 'a feature directive of another tenant is not this one');
    const feature = await cli(
      ['resume', '--tenant', 'acme', '--feature', 'new-planner', '--reason', 'feature', '--json'],
      env,
    );
    assert.equal(feature.code, 0, feature.stderr);
    assert.deepEqual(
      (JSON.parse(feature.stdout) as { cleared: Directive[] }).cleared.map((d) => [d.scopeText, d.tenant]),
      [['feature:new-planner', 'acme']],
    );
    assert.deepEqual(await active(), []);

    const both = await cli(['resume', id, '--agent', AGENT, '--reason', 'x'], env);
    assert.equal(both.code, 2);
    assert.match(both.stderr, /give a directive id or a scope/);
  });
});
