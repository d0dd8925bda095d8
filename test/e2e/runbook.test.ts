/**
 * The runbook, followed as written, on real processes, with an operator token only: a control
 * plane, a live demo fleet of acme/support-bot (the paged run with its child run under one
 * launcher, a sibling run under another), and the runbook `killpath runbook` renders for it
 * from the demo spec. Every ```sh block runs with bash, the way the on-call engineer pastes it:
 * from the repository root, `npx killpath` resolving to this checkout, KILLPATH_URL and
 * KILLPATH_TOKEN (an operator token of acme: never the admin token), RUN_ID (the paged run) and
 * DIRECTIVE_ID (the id the kill printed) in the environment.
 *
 * The walk follows the decision tree of section 5 for a cause not fixed in the process: stop
 * the run, prove it (the audit shows it, nothing was permitted after the commit, the sibling
 * run was untouched), list its compensations completely (more than 1,000 landed writes, a
 * child run), end the process, resume, start the replacement with the operator token, see it
 * work. Each step's time is printed. The other blocks (one tool, the whole agent, the API) run
 * afterwards, each checked; none may be left unrun. Then `killpath resume` by scope is checked
 * on its own.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ApiClient, launch, type Launched } from '@killpath/cli';
import type { AuditRecord, Directive, FleetPage, FleetWorker, LedgerEntry } from '@killpath/protocol';
import { runCli, startServerProcess, until, type CliResult, type ServerProcess } from './server-process.ts';
import { alive } from './launch.ts';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const DEMO_AGENT = join(ROOT, 'examples/demo-agent/dist/agent.js');
const AGENT = 'acme/support-bot';
const RUN_ID = 'acme-sup-1';
const CHILD = `${RUN_ID}.child`;
const SIBLING = 'acme-sup-2';
const REPLACEMENT = `${RUN_ID}-replacement`;
/** The demo spec's halt-to-recovery target, ms. */
const HALT_TO_RECOVERY_TARGET_MS = 300_000;
/** Landed compensable writes of the paged run and its child before the stop: past one default page. */
const WRITES_BEFORE_STOP = 1100;
const sleep = (ms: number) => new Promise((ok) => setTimeout(ok, ms));

/** Runs `bash -euo pipefail -c code` from the repository root, without blocking this process. */
function bash(code: string, env: NodeJS.ProcessEnv, timeoutMs = 60_000): Promise<CliResult> {
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

/** The fenced blocks of a Markdown document, in order, as a reader sees them. */
function fencedBlocks(md: string): { lang: string; code: string }[] {
  return [...md.matchAll(/^```(\w*)\n([\s\S]*?)\n```$/gm)].map((m) => ({ lang: m[1]!, code: m[2]! }));
}

/** The SDK events an agent printed (one JSON line each). */
const landed = (l: Launched, runs: string[], capability?: string) =>
  l.out.filter(
    (e) =>
      e.k === 'ev' &&
      e.type === 'effect.landed' &&
      runs.includes(String(e.runId)) &&
      (capability === undefined || e.capability === capability),
  ).length;

describe(
  'the runbook of acme/support-bot, walked with an operator token (real processes)',
  { timeout: 420_000 },
  () => {
    let dir: string;
    let server: ServerProcess;
    let admin: ApiClient;
    let operatorToken: string;
    let env: NodeJS.ProcessEnv;
    let paged: Launched;
    let sibling: Launched;
    let runbook = '';
    /** Process groups started in the background (the replacement session), ended in `after` whatever happened. */
    const background: number[] = [];
    const agentPids: number[] = [];
    const ran = new Set<number>();

    const active = async () =>
      (await admin.get<{ directives: Directive[] }>('/v1/directives?active=true')).directives;
    const audit = async (type: string, after = 0) =>
      (await admin.get<{ records: AuditRecord[] }>(`/v1/audit?type=${type}&after=${after}&limit=5000`))
        .records;
    const lastSeq = async () =>
      (await admin.get<{ records: AuditRecord[] }>('/v1/audit?order=desc&limit=1')).records[0]?.seq ?? 0;
    const workers = async () => (await admin.get<FleetPage>('/v1/fleet?limit=500')).workers;
    const shBlocks = () => fencedBlocks(runbook).filter((b) => b.lang === 'sh');
    /** The first sh block (not yet run) matching `re`, run; its index is recorded. */
    const runBlock = async (re: RegExp, timeoutMs?: number) => {
      const blocks = shBlocks();
      const i = blocks.findIndex((b, j) => !ran.has(j) && re.test(b.code));
      assert.ok(i >= 0, `the runbook has a block matching ${re}`);
      ran.add(i);
      const r = await bash(blocks[i]!.code, env, timeoutMs);
      return { ...r, index: i, code_: blocks[i]!.code };
    };
    const ok = (r: CliResult & { code_: string }) =>
      assert.equal(r.code, 0, `exits 0:\n${r.code_}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);

    before(async () => {
      dir = mkdtempSync(join(tmpdir(), 'killpath-runbook-'));
      server = await startServerProcess(dir, 0, ['--keepalive-ms', '300']);
      admin = new ApiClient(server.url, server.adminToken);
      // The fleet was deployed before the incident (with the deployment's own credentials); the
      // on-call engineer holds an operator token of acme and nothing else.
      const agentEnv = { DEMO_PERIOD_MS: '5', DEMO_SLOW_MS: '3000', KILLPATH_HEARTBEAT_MS: '500' };
      const start = (run: string) =>
        launch({
          url: server.url,
          token: server.adminToken,
          tenant: 'acme',
          agent: 'support-bot',
          agentScript: DEMO_AGENT,
          run,
          extra: ['--features', 'new-planner', '--kill-grace', '2000'],
          env: agentEnv,
        });
      paged = start(RUN_ID);
      sibling = start(SIBLING);
      for (const l of [paged, sibling]) {
        const ready = await l.waitOut((e) => e.k === 'ready', 30_000, 'the agent ready');
        agentPids.push(Number(ready.pid));
      }
      operatorToken = (
        await admin.post<{ token: string }>('/v1/tokens', {
          role: 'operator',
          tenant: 'acme',
          name: 'oncall@acme',
          ttlMs: 3_600_000,
        })
      ).token;
      env = {
        ...process.env,
        PATH: `${dirname(process.execPath)}${delimiter}${process.env.PATH ?? ''}`,
        KILLPATH_URL: server.url,
        KILLPATH_TOKEN: operatorToken,
        RUN_ID,
        KILLPATH_DATA_DIR: join(dir, 'nowhere'),
        // What the replacement's agent inherits: heartbeats often enough for the wait to be short.
        KILLPATH_HEARTBEAT_MS: '500',
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
      for (const pgid of background) signal(-pgid, 'SIGTERM');
      if (background.length > 0) await sleep(1000);
      for (const pgid of background) signal(-pgid, 'SIGKILL');
      await paged?.stop();
      await sibling?.stop();
      for (const pid of agentPids) if (alive(pid)) signal(pid, 'SIGKILL');
      await server?.stop().catch(() => {});
      if (dir) rmSync(dir, { recursive: true, force: true });
    });

    test('killpath runbook renders it from the demo spec, with the operator token', async () => {
      const r = await bash(`npx killpath runbook --spec examples/demo-fleet.spec.yaml --agent ${AGENT}`, env);
      assert.equal(r.code, 0, r.stderr);
      runbook = r.stdout;
      assert.match(runbook, /^# Runbook: acme\/support-bot — how to stop it/);
      const blocks = fencedBlocks(runbook);
      assert.ok(
        blocks.every((b) => b.lang === 'sh' || b.lang === 'text'),
        `only sh and text blocks: ${blocks.map((b) => b.lang).join(', ')}`,
      );
      for (const v of ['export RUN_ID=', 'export DIRECTIVE_ID='])
        assert.ok(
          blocks.some((b) => b.lang === 'text' && b.code.includes(v)),
          `the runbook tells how to set ${v}`,
        );
    });

    test('the walk: stop one run, prove it, list compensations completely, end the process, resume, start the replacement, see it work', async () => {
      assert.ok(runbook !== '', 'the runbook was rendered');
      const t0 = Date.now();
      let last = t0;
      const step = (what: string) => {
        const now = Date.now();
        console.log(`# ${what}: ${now - last} ms (at ${((now - t0) / 1000).toFixed(1)} s)`);
        last = now;
      };

      // Section 0: the fleet, and the paged run found by id (waiting for its first heartbeat).
      const status0 = await runBlock(/^npx killpath status$/);
      ok(status0);
      assert.match(status0.stdout, /acme\s+support-bot/, 'the agent has a row');
      const found = await runBlock(/^npx killpath status --wait 30 --run "\$RUN_ID"$/);
      ok(found);
      assert.match(found.stdout, new RegExp(`\\b${RUN_ID}\\b(?!\\[)`), 'the run is listed, running');
      step('0. find the paged run (status, status --wait --run)');

      // The paged run (with its child) has landed more writes than one default page holds.
      await until(
        `${WRITES_BEFORE_STOP} landed crm.update writes of the run and its child`,
        180_000,
        () => landed(paged, [RUN_ID, CHILD], 'crm.update') >= WRITES_BEFORE_STOP,
      );
      last = Date.now();
      const siblingBefore = landed(sibling, [SIBLING]);
      const seqBefore = await lastSeq();

      // Section 2: the one run (and its child), nothing else.
      const stop = await runBlock(/^npx killpath kill --run "\$RUN_ID" --grace 5000 /);
      ok(stop);
      const haltedAt = Date.now();
      const m = /^issued halt run:acme\/acme-sup-1 \(id (\S+), rev \d+\)/.exec(stop.stdout);
      assert.ok(m, `the kill names the run with its tenant and prints its id: ${stop.stdout}`);
      env.DIRECTIVE_ID = m[1]!;
      const halted = await until('session.halted for the run', 15_000, async () =>
        (await audit('session.halted', seqBefore)).find(
          (x) => x.data.directiveId === env.DIRECTIVE_ID && (x.data.runs as string[]).includes(RUN_ID),
        ),
      );
      step(
        `2. stop the run (kill --run; session.halted after ${String(halted.data.timeToStopMs)} ms, target 2000 ms)`,
      );

      // Section 4: prove it. Status: the run and its child halted, the sibling running, no flags on it.
      await until('the run shown halted', 15_000, async () => {
        const r = await bash('npx killpath status', env);
        return new RegExp(`\\b${RUN_ID}\\[halt\\]`).test(r.stdout) && r;
      });
      const status4 = await runBlock(/^npx killpath status$/);
      ok(status4);
      assert.match(status4.stdout, new RegExp(`\\b${RUN_ID}\\[halt\\]`));
      assert.match(
        status4.stdout,
        new RegExp(`\\b${CHILD.replace('.', '\\.')}\\[halt\\]`),
        'the child run too',
      );
      assert.match(status4.stdout, new RegExp(`\\b${SIBLING}\\b(?!\\[)`), 'the sibling run is running');
      assert.match(status4.stdout, /run:acme\/acme-sup-1/, 'the directive, with its tenant');
      // Below the fleet, the workers that lost a lease or aborted effects: the paged run's alone, for this directive.
      const flagged = status4.stdout.slice(status4.stdout.indexOf('lost a lease or aborted effects'));
      assert.match(flagged, /: 1 worker\(s\) \(below\); every other worker of the \d+ in view did neither/);
      assert.match(flagged, new RegExp(`acme\\s+\\S+\\s+\\S+\\s+${RUN_ID}\\b.*aborted \\d+ effect\\(s\\)`));
      assert.doesNotMatch(
        flagged.split('active directives')[0]!,
        new RegExp(`\\b${SIBLING}\\b`),
        'the sibling is not flagged',
      );
      const tail = await runBlock(/^npx killpath audit tail -n 20 --type operator_action,/);
      ok(tail);
      for (const t of ['operator_action', 'kill_switch.fired', 'session.halted'])
        assert.match(tail.stdout, new RegExp(` ${t.replace('.', '\\.')} `), `the audit tail shows ${t}`);
      assert.match(
        tail.stdout,
        new RegExp(
          `session\\.halted .*runs=${RUN_ID},${CHILD.replace('.', '\\.')} directive=${env.DIRECTIVE_ID}`,
        ),
        'session.halted names the run and its child',
      );
      const caught = await runBlock(/^npx killpath audit tail -n 40 --type in_flight_tool_calls\.status,/);
      ok(caught);
      assert.match(caught.stdout, / (in_flight_tool_calls\.status|effect\.aborted) .*run=acme-sup-1/);
      for (const t of [tail, caught])
        assert.doesNotMatch(t.stdout, new RegExp(`\\b${SIBLING}\\b`), 'no stop record names the sibling');
      const none = await runBlock(/^npx killpath journal "\$RUN_ID" --permitted-after "\$DIRECTIVE_ID"$/);
      ok(none);
      assert.match(
        none.stdout,
        /writes permitted after the commit, of run acme-sup-1 and its child runs .*: none/,
      );
      const verify = await runBlock(/^npx killpath audit verify$/);
      ok(verify);
      assert.match(verify.stdout, /^audit chain ok\b/);
      const metrics = await runBlock(/\/metrics"/);
      ok(metrics);
      assert.match(metrics.stdout, /^killpath_signal_to_halt_seconds_count(\{[^}]*\})? [1-9]\d*$/m);
      // The sibling was untouched: it kept landing writes, and no stop record names it.
      await until(
        'the sibling to land more writes after the stop',
        15_000,
        () => landed(sibling, [SIBLING]) > siblingBefore + 10,
      );
      for (const type of [
        'session.halted',
        'effect.aborted',
        'in_flight_tool_calls.status',
        'queue.discarded',
      ])
        assert.deepEqual(
          (await audit(type, seqBefore)).filter((x) => JSON.stringify(x.data).includes(`"${SIBLING}"`)),
          [],
          `no ${type} names the sibling run`,
        );
      step(
        '4. prove it (status, audit tail, nothing permitted after the commit, verify, metrics, sibling untouched)',
      );

      // Section 5: every compensation of the run and its child, every page.
      const comp = await runBlock(/^npx killpath compensations --run "\$RUN_ID" --all$/);
      ok(comp);
      const total = (
        await new ApiClient(server.url, operatorToken).get<{ total: number }>(
          `/v1/compensations?run=${RUN_ID}&limit=1`,
        )
      ).total;
      assert.ok(total > 1000, `more than one default page to compensate (${total})`);
      assert.match(comp.stdout, new RegExp(`^run ${RUN_ID} and its 1 child run\\(s\\)$`, 'm'));
      assert.match(comp.stdout, new RegExp(`^${total} of ${total} writes to compensate, newest first$`, 'm'));
      const rows = comp.stdout.split('\n').filter((l) => /^acme\s+support-bot\s+\S+\s+crm\.update\s/.test(l));
      assert.equal(rows.length, total, 'every row is printed');
      assert.ok(
        rows.some((l) => l.includes(` ${CHILD} `)),
        "the child run's writes are on the list",
      );
      assert.ok(
        rows.every((l) => l.includes('"action":"crm.revert"')),
        'each with its crm.revert',
      );
      const journal = await runBlock(/^npx killpath journal "\$RUN_ID"$/);
      ok(journal);
      assert.match(journal.stdout, /^run acme-sup-1 of acme\/support-bot/);
      assert.match(
        journal.stdout,
        new RegExp(`with its 1 child run\\(s\\) \\(${CHILD.replace('.', '\\.')}\\)`),
      );
      step(`5. list compensations completely (${total} rows) and the journal`);

      // The cause is not fixed in the process: end it (the sibling's process keeps running).
      const end = await runBlock(/^npx killpath kill --run "\$RUN_ID" --hard --reason "cause not fixed/);
      ok(end);
      assert.match(end.stdout, /^issued kill run:acme\/acme-sup-1 /);
      const exit = await Promise.race([paged.exited, sleep(20_000).then(() => 'still running' as const)]);
      assert.equal(exit, 3, "the paged run's launcher ended its agent and exited 3");
      assert.ok(!alive(agentPids[0]!), "the paged run's agent process is gone");
      assert.ok(alive(agentPids[1]!), "the sibling's agent process still runs");
      await until('process.killed on the record', 10_000, async () =>
        (await audit('process.killed', seqBefore)).find((x) => x.data.pid === agentPids[0]),
      );
      step('5.2 end the process (kill --run --hard)');

      const resume = await runBlock(/^npx killpath resume --run "\$RUN_ID" /);
      ok(resume);
      assert.match(resume.stdout, /^cleared halt run:acme\/acme-sup-1 /m);
      assert.match(resume.stdout, /^cleared kill run:acme\/acme-sup-1 /m);
      assert.deepEqual(await active(), [], 'no directive left');
      const resumeSeq = await lastSeq();
      const resumedAt = Date.now();
      step('5.3 resume (resume --run)');

      // The replacement, with the operator's token: it runs in the foreground, so in the background here.
      const blocks = shBlocks();
      const ri = blocks.findIndex(
        (b, j) =>
          !ran.has(j) &&
          /^npx killpath run --tenant acme --agent support-bot --run "\$RUN_ID-replacement" --features new-planner -- node examples\/demo-agent\/dist\/agent\.js$/.test(
            b.code,
          ),
      );
      assert.ok(ri >= 0, 'the runbook has the replacement command');
      ran.add(ri);
      const logFile = join(dir, 'replacement.log');
      const fd = openSync(logFile, 'w');
      const p = spawn('bash', ['-euo', 'pipefail', '-c', blocks[ri]!.code], {
        cwd: ROOT,
        env,
        stdio: ['ignore', fd, fd],
        detached: true,
      });
      closeSync(fd);
      background.push(p.pid!);
      const log = () => readFileSync(logFile, 'utf8').split('\n').slice(-20).join('\n');
      let replacementPid: number | null = null;
      try {
        const listed = await runBlock(/^npx killpath status --wait 30 --run "\$RUN_ID-replacement"$/, 60_000);
        assert.equal(listed.code, 0, `the replacement is listed:\n${listed.stderr}\n${log()}`);
        assert.match(listed.stdout, new RegExp(`\\b${REPLACEMENT}\\b(?!\\[)`));
        assert.match(
          readFileSync(logFile, 'utf8'),
          /"msg":"your operator token minted an agent token of acme\/support-bot for this launcher","expiresAt":"20/,
        );
        const w = (await workers()).find((x: FleetWorker) => x.runs.some((r) => r.runId === REPLACEMENT));
        assert.ok(w && w.pid !== null, 'the replacement has a worker');
        replacementPid = w.pid;
        agentPids.push(w.pid!);
        const minted = (await audit('operator_action', resumeSeq)).find(
          (x) => x.data.action === 'token.create' && x.data.agent === 'support-bot',
        );
        assert.ok(minted, 'the agent token minted for the launcher is on the record');
        assert.equal(minted.actor, 'oncall@acme', "in the operator's name");
        assert.equal(typeof minted.data.launcher, 'string');
        // From the run's ledger (the audit commits ledger rows by digest, one record per group commit).
        const first = await until('a write of the replacement run landed', 60_000, async () =>
          (
            await admin
              .get<{ effects: LedgerEntry[] }>(`/v1/runs/${REPLACEMENT}/journal?tenant=acme&children=false`)
              .catch(() => ({ effects: [] }))
          ).effects.find((x) => x.status === 'landed'),
        );
        const recoveredAt = Date.now();
        const works = await runBlock(/^npx killpath journal "\$RUN_ID-replacement"$/);
        ok(works);
        assert.match(works.stdout, /^run acme-sup-1-replacement of acme\/support-bot/);
        assert.match(works.stdout, /\blanded\b/, 'its writes landed');
        step('5.4 start the replacement with the operator token, see its writes land');
        console.log(
          `# resume → the replacement's first landed write: ${((recoveredAt - resumedAt) / 1000).toFixed(1)} s; stop → it: ${((recoveredAt - haltedAt) / 1000).toFixed(1)} s (halt-to-recovery target ${HALT_TO_RECOVERY_TARGET_MS / 1000} s; first write ${first.capability})`,
        );
      } finally {
        // Stopped like a foreground command: SIGTERM to its process group; the launcher ends its agent.
        process.kill(-p.pid!, 'SIGTERM');
      }
      await until(
        'the replacement session to end, its agent with it',
        15_000,
        () =>
          (p.exitCode !== null || p.signalCode !== null) &&
          (replacementPid === null || !alive(replacementPid)),
      );
      // The agent token minted for the replacement's launcher ended with it.
      const revoked = await until('the minted token revoked with its launcher', 10_000, async () =>
        (await audit('token.revoked', resumeSeq)).find((x) => String(x.actor).startsWith('launcher:')),
      );
      assert.equal(revoked.data.agent, 'support-bot');
      // The walk reads the runbook from top to bottom: each step comes after the one before it.
      const order = [...ran].sort((a, b) => a - b);
      assert.deepEqual([...ran], order, 'the walk follows the order of the runbook');
    });

    test('the other variants of section 2 and 5, each as written (one tool, the whole agent, the API)', async () => {
      const rest: { match: RegExp; check: (r: CliResult) => Promise<void> | void }[] = [
        {
          match: /^npx killpath kill --run "\$RUN_ID" --tool crm\.update /,
          check: (r) => assert.match(r.stdout, /^issued halt run:acme\/acme-sup-1 tools=crm\.update /),
        },
        {
          match: /^npx killpath kill --run "\$RUN_ID" --hard --reason "paged/,
          check: (r) => assert.match(r.stdout, /^issued kill run:acme\/acme-sup-1 /),
        },
        {
          match: /^npx killpath kill --agent acme\/support-bot --grace 5000 /,
          check: async (r) => {
            assert.match(r.stdout, /^issued halt agent:acme\/support-bot /);
            await until('the sibling run halted', 15_000, async () =>
              (await workers()).some((w) => w.runs.some((x) => x.runId === SIBLING && x.state === 'halt')),
            );
          },
        },
        {
          match: /^curl -sS -X POST "\$KILLPATH_URL\/v1\/directives"/,
          check: (r) => {
            const d = (JSON.parse(r.stdout) as { directive?: Directive; replayed?: boolean }).directive;
            assert.ok(d, r.stdout);
            assert.equal(d.level, 'halt');
            assert.equal(d.scopeText, 'agent:acme/support-bot');
          },
        },
        {
          match: /^npx killpath kill --agent acme\/support-bot --hard /,
          check: async (r) => {
            assert.match(r.stdout, /^issued kill agent:acme\/support-bot /);
            assert.equal(
              await Promise.race([sibling.exited, sleep(20_000).then(() => 'still running' as const)]),
              3,
              "the sibling's launcher ended its agent",
            );
          },
        },
        {
          match: /^npx killpath resume --agent acme\/support-bot /,
          check: async (r) => {
            assert.match(r.stdout, /^cleared kill agent:acme\/support-bot /m);
            assert.ok(!(await active()).some((d) => d.scopeText === 'agent:acme/support-bot'));
          },
        },
      ];
      for (const v of rest) {
        const r = await runBlock(v.match);
        ok(r);
        await v.check(r);
      }
      const left = shBlocks()
        .map((b, i) => (ran.has(i) ? null : b.code))
        .filter((x) => x !== null);
      assert.deepEqual(left, [], 'no sh block is left unrun');
      // The one-tool stop of the run is another scope than the agent's: cleared here, not by the runbook's resume.
      const clear = await runCli(['resume', '--run', RUN_ID, '--reason', 'end of the walk'], {
        env,
        cwd: ROOT,
      });
      assert.equal(clear.code, 0, clear.stderr);
      assert.deepEqual(await active(), []);
    });

    test('resume by scope: nothing active is exit 1, the id form still works, a feature inside a tenant', async () => {
      const adminEnv = { ...env, KILLPATH_TOKEN: server.adminToken };
      const cli = (args: string[]) => runCli(args, { env: adminEnv, cwd: ROOT });
      const none = await cli(['resume', '--agent', AGENT, '--reason', 'again']);
      assert.equal(none.code, 1);
      assert.match(none.stderr, /no active directive at agent:acme\/support-bot: nothing to resume/);

      const issued = await cli(['kill', '--agent', AGENT, '--reason', 'by id', '--json']);
      assert.equal(issued.code, 0, issued.stderr);
      const id = (JSON.parse(issued.stdout) as { directive: Directive }).directive.id;
      const byId = await cli(['resume', id, '--reason', 'by id']);
      assert.equal(byId.code, 0, byId.stderr);
      assert.match(byId.stdout, new RegExp(`^cleared halt agent:acme/support-bot \\(id ${id}, `));

      assert.equal(
        (await cli(['kill', '--feature', 'new-planner', '--tenant', 'acme', '--reason', 'feature'])).code,
        0,
      );
      const other = await cli([
        'resume',
        '--tenant',
        'globex',
        '--feature',
        'new-planner',
        '--reason',
        'wrong tenant',
      ]);
      assert.equal(other.code, 1, 'a feature directive of another tenant is not this one');
      const feature = await cli([
        'resume',
        '--tenant',
        'acme',
        '--feature',
        'new-planner',
        '--reason',
        'feature',
        '--json',
      ]);
      assert.equal(feature.code, 0, feature.stderr);
      assert.deepEqual(
        (JSON.parse(feature.stdout) as { cleared: Directive[] }).cleared.map((d) => [d.scopeText, d.tenant]),
        [['feature:new-planner', 'acme']],
      );
      assert.deepEqual(await active(), []);

      const both = await cli(['resume', id, '--agent', AGENT, '--reason', 'x']);
      assert.equal(both.code, 2);
      assert.match(both.stderr, /give a directive id or a scope/);
    });
  },
);
