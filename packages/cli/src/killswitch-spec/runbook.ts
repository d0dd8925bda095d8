/**
 * The on-call runbook of seed 002 (step 6), rendered from a kill-switch spec: for the engineer
 * at 02:00 who has never seen the agent. Six sections: what it does, how to kill it (console,
 * API, CLI, with exact commands), what will happen, how to know it worked, how to recover,
 * when to escalate.
 *
 * Every runnable command sits alone in a ```sh block and reads `$KILLPATH_URL`,
 * `$KILLPATH_TOKEN` (and `$RUN_ID`) from the environment, so it can be pasted as is, and the
 * end-to-end test runs every block in order; anything to read or adapt, not to run, is in a
 * ```text block.
 */
import type { KillSwitchSpec, SpecAgent, SpecTool } from './types.ts';

/** Options of {@link renderRunbook}. */
export interface RunbookOptions {
  /** The spec file as the reader named it (shown in the "generated from" line). */
  source: string;
  /** The spec's digest (`parseSpec`). */
  digest: string;
  /** `TENANT/AGENT`: a runbook for this agent only; absent: one for every agent of the spec. */
  agent?: string | undefined;
}

/** The spec's entry for `TENANT/AGENT`, or undefined when the spec does not cover it. */
export function findAgent(spec: KillSwitchSpec, key: string): SpecAgent | undefined {
  return spec.agents.find((a) => `${a.tenant}/${a.agent}` === key);
}

const seconds = (ms: number) =>
  ms % 60_000 === 0 && ms >= 60_000 ? `${ms / 60_000} min` : ms % 1000 === 0 ? `${ms / 1000} s` : `${ms} ms`;
const code = (s: string) => `\`${s}\``;
const sh = (cmd: string) => `\`\`\`sh\n${cmd}\n\`\`\``;
const txt = (body: string) => `\`\`\`text\n${body}\n\`\`\``;
const list = (items: string[]) => (items.length === 0 ? 'nothing listed' : items.join(', '));

/** Where `T/A` appears in commands: literal for one agent, shell variables for a fleet. */
interface Target {
  tenant: string;
  agent: string;
  /** `acme/support-bot` or `$TENANT/$AGENT`. */
  key: string;
  /** Quoted for the shell when it holds variables. */
  arg: string;
  tenantArg: string;
}

function targetOf(agent: SpecAgent | null): Target {
  if (agent === null)
    return {
      tenant: '$TENANT',
      agent: '$AGENT',
      key: '$TENANT/$AGENT',
      arg: '"$TENANT/$AGENT"',
      tenantArg: '"$TENANT"',
    };
  return {
    tenant: agent.tenant,
    agent: agent.agent,
    key: `${agent.tenant}/${agent.agent}`,
    arg: `${agent.tenant}/${agent.agent}`,
    tenantArg: agent.tenant,
  };
}

function inFlightWord(spec: KillSwitchSpec, cls: SpecTool['class']): string {
  const f = spec.sideEffects.inFlight;
  if (cls === 'read') return f.read === 'complete' ? 'completes' : 'aborted';
  if (cls === 'write') return f.write === 'abort' ? 'aborted' : 'completes';
  return f.irreversible === 'cool-off' ? 'cancelled in its cool-off' : 'aborted';
}

function toolTable(spec: KillSwitchSpec, tools: SpecTool[]): string {
  if (tools.length === 0) return 'No tools: the agent only reasons and answers.';
  const rows = tools.map(
    (t) =>
      `| ${code(t.name)} | ${t.class} | ${t.description ?? '—'}${t.compensation ? `; undo: ${code(t.compensation)}` : ''} | ${inFlightWord(spec, t.class)} |`,
  );
  return ['| tool | class | what it does | in flight at a halt |', '|---|---|---|---|', ...rows].join('\n');
}

function setup(spec: KillSwitchSpec, agent: SpecAgent | null): string {
  const who = agent === null ? "the agent's tenant" : `tenant ${code(agent.tenant)}`;
  const vars = [
    `export KILLPATH_URL=${spec.controlPlane.url}`,
    `export KILLPATH_TOKEN=<your operator token>`,
  ];
  if (agent === null)
    vars.push('export TENANT=<tenant> AGENT=<agent>        # the agent, from the table in section 1');
  vars.push('export RUN_ID=<the run id the page names, or from the runs column of killpath status>');
  const heartbeat = seconds(spec.triggers.deadman.intervalMs);
  return [
    '## 0. Before any command',
    '',
    `Every command reads the control plane's address and your token from the environment. Set them once in your shell; the token is an operator token of ${who} (or an admin token): it is all this runbook needs, the replacement session of section 5 included. If you have none, the platform on-call mints one with ${code(`npx killpath token create --role operator --tenant ${agent?.tenant ?? 'TENANT'} --ttl 12h`)}. Set ${code('RUN_ID')} to the run (session) you were paged for; the commands below use it.`,
    '',
    txt(vars.join('\n')),
    '',
    `Then look at the fleet: find the agent's row${agent === null ? '' : ` (${code(`${agent.tenant}`)} / ${code(agent.agent)})`} and, in its ${code('runs')} column, the run.`,
    '',
    sh('npx killpath status'),
    '',
    `**The run is not listed yet?** A run is listed once its worker has connected and registered it, at the latest with the worker's first heartbeat (every ${heartbeat} by default, ${code('KILLPATH_HEARTBEAT_MS')}): a few seconds after its process started. ${code('npx killpath status --run "$RUN_ID"')} shows the workers that hold it (exit 1 while none does). Wait for it by id; this exits 1 if no worker holds the run within 30 s (then check the id on the page, and that the agent runs under this control plane):`,
    '',
    sh('npx killpath status --wait 30 --run "$RUN_ID"'),
  ].join('\n');
}

function whatItDoes(spec: KillSwitchSpec, agent: SpecAgent | null): string {
  const out = [`## 1. What ${agent === null ? 'these agents do' : 'this agent does'}`, ''];
  const target = (a: SpecAgent) => seconds(spec.latency.signalToHaltMs[a.level]);
  if (agent !== null) {
    out.push(agent.description, '');
    out.push(
      '| | |',
      '|---|---|',
      `| identity | ${code(`${agent.tenant}/${agent.agent}`)} (scope ${code(`agent:${agent.tenant}/${agent.agent}`)})${agent.features.length ? `, features ${agent.features.map(code).join(', ')}` : ''} |`,
      `| autonomy level | ${agent.level} |`,
      `| must stop within | ${target(agent)} of the switch (signal-to-halt) |`,
      `| replacement within | ${seconds(spec.latency.haltToRecoveryMs)} of the halt (halt-to-recovery) |`,
      `| long-term memory | ${agent.memory ? `yes: staged writes are ${spec.sideEffects.memory === 'revert' ? 'reverted' : 'committed'} at a halt` : 'no'} |`,
      '',
      toolTable(spec, agent.tools),
    );
    return out.join('\n');
  }
  out.push(
    `The spec ${code(spec.name)} covers ${spec.agents.length} agents. Set ${code('TENANT')} and ${code('AGENT')} (section 0) to the one you are paged for.`,
    '',
    '| agent | level | must stop within | features | what it does |',
    '|---|---|---|---|---|',
    ...spec.agents.map(
      (a) =>
        `| ${code(`${a.tenant}/${a.agent}`)} | ${a.level} | ${target(a)} | ${a.features.length ? a.features.map(code).join(', ') : '—'} | ${a.description} |`,
    ),
    '',
    `A replacement session must be able to start within ${seconds(spec.latency.haltToRecoveryMs)} of a halt (halt-to-recovery).`,
  );
  const groups = new Map<string, SpecAgent[]>();
  for (const a of spec.agents) {
    const k = JSON.stringify(a.tools);
    groups.set(k, [...(groups.get(k) ?? []), a]);
  }
  for (const agents of groups.values()) {
    out.push(
      '',
      `Tools of ${agents.length === spec.agents.length ? 'every agent' : agents.map((a) => code(`${a.tenant}/${a.agent}`)).join(', ')}:`,
      '',
      toolTable(spec, agents[0]!.tools),
    );
  }
  return out.join('\n');
}

/** The tool the one-tool example names: a write with a compensation (what a page is usually about), else an irreversible or any write. */
function oneToolOf(tools: SpecTool[]): SpecTool | undefined {
  return (
    tools.find((x) => x.class === 'write' && x.compensation) ??
    tools.find((x) => x.class === 'irreversible') ??
    tools.find((x) => x.class === 'write')
  );
}

function howToKill(spec: KillSwitchSpec, agent: SpecAgent | null, t: Target): string {
  const m = spec.mechanism;
  const paths = spec.triggers.synchronous;
  const levels = spec.scope.levels;
  const reason = `paged: ${t.key} misbehaving, halted per runbook`;
  const out = [
    '## 2. How to kill it',
    '',
    `Stop the least that stops the harm: the one run you were paged for first (the agent's other runs keep working), or one tool; the whole agent only when several of its runs misbehave. Every path puts your identity and reason on the audit record (${code('operator_action')}); say what you saw in the reason.`,
  ];
  if (paths.includes('cli')) {
    // The spec's side-effect policy, where it is not the default (discard the queue, revert memory).
    const policy = `${spec.sideEffects.queue === 'drain' ? ' --drain' : ''}${spec.sideEffects.memory === 'commit' ? ' --commit-memory' : ''}`;
    const grace = ` --grace ${m.haltGraceMs}`;
    const oneTool = oneToolOf(agent?.tools ?? spec.agents.flatMap((a) => a.tools));
    const hard =
      m.fallback === 'process-signal'
        ? ` Under the launcher (${code('killpath run')}) every process of it (its cgroup, or its process group where there is none) gets SIGTERM, then SIGKILL after ${seconds(m.killGraceMs)}.`
        : '';
    out.push('', '**CLI.**');
    if (levels.includes('run')) {
      out.push(
        '',
        `Only the one run (and its child runs); the agent's other runs keep working. If a worker has not reported halted within the ${seconds(m.haltGraceMs)} grace (plus the control plane's slack, 1 s by default: the kill prints "if not acknowledged within ${seconds(m.haltGraceMs)} + 1 s, this becomes a kill"), the halt becomes a kill:`,
        '',
        sh(
          `npx killpath kill --run "$RUN_ID"${grace}${policy} --reason "paged: run $RUN_ID of ${t.key} misbehaving, halted per runbook"`,
        ),
      );
      if (levels.includes('capability') && oneTool)
        out.push(
          '',
          `Only one tool of that run (here ${code(oneTool.name)}: name the tool the page names), its other tools keep working; ${code(`--agent ${t.arg} --tool ${oneTool.name}`)} instead of ${code('--run')} takes the tool from every run of the agent:`,
          '',
          sh(
            `npx killpath kill --run "$RUN_ID" --tool ${oneTool.name} --reason "paged: ${oneTool.name} of run $RUN_ID misbehaving, stopped per runbook"`,
          ),
        );
      out.push(
        '',
        `The run's process at once, when the halt did not stop it or the process itself is at fault (hard kill: no grace).${hard} Processes of the agent's other runs keep running:`,
        '',
        sh(
          `npx killpath kill --run "$RUN_ID" --hard --reason "paged: run $RUN_ID of ${t.key}: ending its process per runbook"`,
        ),
      );
    } else if (levels.includes('capability') && oneTool)
      out.push(
        '',
        `Only one tool (here ${code(oneTool.name)}: name the tool the page names), keeping the agent's other tools working:`,
        '',
        sh(
          `npx killpath kill --agent ${t.arg} --tool ${oneTool.name} --reason "paged: ${oneTool.name} of ${t.key} misbehaving, stopped per runbook"`,
        ),
      );
    out.push(
      '',
      'The whole agent, every run, when several of its runs misbehave:',
      '',
      sh(`npx killpath kill --agent ${t.arg}${grace}${policy} --reason "${reason}"`),
      '',
      `The whole agent at once, when its halt did not stop it (hard kill: no grace).${hard}`,
      '',
      sh(
        `npx killpath kill --agent ${t.arg} --hard --reason "paged: halt did not stop ${t.key}, killing per runbook"`,
      ),
    );
    out.push(
      '',
      `Each kill prints its directive's id (${code('issued halt run:… (id …)')}); section 4 uses the first one's:`,
      '',
      txt('export DIRECTIVE_ID=<the id killpath kill printed; also listed by npx killpath status>'),
    );
    out.push('', ...ladder(spec, t, oneTool));
    if (levels.includes('tenant') || levels.includes('global')) {
      const wider = [];
      if (levels.includes('tenant'))
        wider.push(
          `npx killpath kill --tenant ${t.tenantArg} --reason "..."     # every agent of the tenant`,
        );
      if (levels.includes('global'))
        wider.push(
          'npx killpath kill --global --break-glass "incident N, approved by ..." --reason "..."   # everything (admin token)',
        );
      out.push(
        '',
        'Wider blast radius: only after the escalation in section 6 agrees.',
        '',
        txt(wider.join('\n')),
      );
    }
  }
  if (paths.includes('console')) {
    out.push(
      '',
      `**Console.** Open ${spec.controlPlane.consoleUrl} and sign in with your operator token. In the fleet view, find ${agent === null ? "the agent's tenant and, under it, the agent" : `tenant ${code(t.tenant)}, agent ${code(t.agent)}`}, then the run's row (search by run id), and press **Halt** on it (**Kill** for a hard stop; the agent's row has the same buttons for every run of the agent). Type the justification and confirm. A viewer token shows no buttons.`,
    );
  }
  if (paths.includes('api')) {
    const body = {
      level: 'halt',
      scope: `agent:${t.key}`,
      reason,
      justification: `${reason} (on-call, via the API)`,
      graceMs: m.haltGraceMs,
      drain: spec.sideEffects.queue,
      memory: spec.sideEffects.memory,
    };
    const head = `curl -sS -X POST "$KILLPATH_URL/v1/directives" -H "authorization: Bearer $KILLPATH_TOKEN" -H 'content-type: application/json' \\\n`;
    const cmd =
      agent === null
        ? `${head}  --data-binary @- <<EOF\n${JSON.stringify(body)}\nEOF`
        : `${head}  -d '${JSON.stringify(body)}'`;
    out.push(
      '',
      `**API.** ${code('POST /v1/directives')} with your token; here the whole agent (${code('"scope":"run:RUN"')} for one run; a directive spanning every tenant also needs a ${code('breakGlass')} attestation and an admin token):`,
      '',
      sh(cmd),
    );
  }
  return out.join('\n');
}

/**
 * The rungs around a halt, for a need that a halt does not fit: a table to read (its commands
 * name the directive id the kill printed, so none is a runnable block).
 */
function ladder(spec: KillSwitchSpec, t: Target, risky: SpecTool | undefined): string[] {
  const levels = spec.scope.levels;
  const where = levels.includes('run') ? '--run "$RUN_ID"' : `--agent ${t.arg}`;
  const rows = [
    ...(levels.includes('capability') && risky
      ? [
          `| take one tool away, keep the agent running | ${code(`npx killpath kill --agent ${t.arg} --level degrade --tool ${risky.name} --reason "…"`)} |`,
        ]
      : []),
    `| let it read but not write | ${code(`npx killpath kill ${where} --level degrade --reason "…"`)} |`,
    `| cut it off from everything external (under ${code('killpath run')}) | ${code(`npx killpath kill ${where} --level isolate --reason "…"`)} |`,
  ];
  if (spec.mechanism.freeze)
    rows.push(
      `| stop it at once and keep its memory for evidence (under ${code('killpath run')}) | ${code(`npx killpath kill ${where} --level freeze --reason "…"`)}: not one more instruction runs, egress is cut; then ${levels.includes('run') ? code('npx killpath inspect --run "$RUN_ID" --reason "…"') : `${code('npx killpath inspect --run R --reason "…"')} for each run`} writes the process tree, open files, connections and core files while it stays frozen; ${code('npx killpath resume <freeze id> --reason "…"')} thaws it (it resynchronises before any effect), ${code('npx killpath step <freeze id> up --reason "…"')} kills it |`,
    );
  return [
    'Softer or harder than a halt, when that fits better (the directive id is printed by the kill and listed by `npx killpath status`):',
    '',
    '| need | command |',
    '|---|---|',
    ...rows,
  ];
}

function whatHappens(spec: KillSwitchSpec, agent: SpecAgent | null): string {
  const se = spec.sideEffects;
  const m = spec.mechanism;
  const tools = agent?.tools ?? [
    ...new Map(spec.agents.flatMap((a) => a.tools).map((x) => [x.name, x])).values(),
  ];
  const named = (cls: SpecTool['class']) =>
    tools
      .filter((x) => x.class === cls)
      .map((x) => code(x.name))
      .join(', ');
  const bullets: string[] = [
    'Every worker of the agent observes the directive within milliseconds over its stream; from then its gate refuses every new effect before it starts.',
  ];
  if (named('read'))
    bullets.push(
      `Reads in flight (${named('read')}) ${se.inFlight.read === 'complete' ? 'complete: they change nothing' : 'are aborted'}.`,
    );
  if (named('write'))
    bullets.push(
      `Writes in flight (${named('write')}) ${se.inFlight.write === 'abort' ? 'are aborted; a write that had already landed keeps its compensation on the list (section 5)' : 'complete'}. Each call caught in flight is journaled (${code('in_flight_tool_calls.status')}).`,
    );
  if (named('irreversible'))
    bullets.push(
      `Irreversible calls (${named('irreversible')}) ${se.inFlight.irreversible === 'cool-off' ? `still in their cool-off are cancelled (${code('effect.aborted')}, "halted during cool-off"); one released before the halt has left and can only be compensated` : 'in flight are aborted; one already released has left and can only be compensated'}.`,
    );
  bullets.push(
    `Queued tasks of the run (its outbox and other queues), when it had any, are ${se.queue === 'discard' ? `discarded (${code('queue.discarded')}; no such record when nothing was queued)` : `drained within the ${seconds(m.haltGraceMs)} grace (${code('queue.drained')}), the rest discarded`}; timers and retries bound to the run are cancelled (${code('timer.cancelled')}). Nothing set before the halt fires after it.`,
  );
  const memory = agent === null ? spec.agents.some((a) => a.memory) : agent.memory;
  bullets.push(
    memory
      ? `Memory writes staged in the current step are ${se.memory === 'revert' ? `reverted (${code('memory.reverted')})` : `committed (${code('memory.committed')})`}.`
      : 'It writes no long-term memory, so there is no memory to revert.',
  );
  const fallback =
    m.fallback === 'process-signal'
      ? ` Under the launcher (${code('killpath run')}) the kill ends every process of the agent (its cgroup, or its process group): SIGTERM, then SIGKILL after ${seconds(m.killGraceMs)}.`
      : m.fallback === 'network-isolation'
        ? ' The fallback is network isolation of the launched process.'
        : ' There is no process-level fallback.';
  bullets.push(
    `A worker that has not reported halted within the ${seconds(m.haltGraceMs)} grace is escalated to a kill.${fallback}`,
  );
  const target =
    agent === null
      ? 'within its target in section 1'
      : `within ${seconds(spec.latency.signalToHaltMs[agent.level])}`;
  bullets.push(
    `Expected: every run halted ${target}. The halt survives restarts and redeploys: a restarted worker cannot resume a halted run (${code('resume.refused')}) until the directive is resumed (section 5).`,
  );
  bullets.push(`Kept for review: ${list(se.preserve)}. Dropped: ${list(se.purge)}.`);
  return ['## 3. What will happen', '', ...bullets.map((b) => `- ${b}`)].join('\n');
}

function howToKnow(spec: KillSwitchSpec, agent: SpecAgent | null, t: Target): string {
  // An operator's directive is audited as operator_action + kill_switch.fired (directive.issued is an automatic trigger's).
  const events = [
    ...new Set([
      'operator_action',
      'kill_switch.fired',
      ...spec.sideEffects.auditEvents.filter((e) => e !== 'directive.issued'),
    ]),
  ];
  const stopEvents = events.filter((e) =>
    ['operator_action', 'kill_switch.fired', 'session.halted'].includes(e),
  );
  const caught = events.filter((e) => !stopEvents.includes(e));
  // A queue event appears only when there was something queued: never promise it unconditionally.
  const evidence = (e: string) =>
    e === 'queue.discarded' || e === 'queue.drained' ? `${code(e)} (when the run had queued tasks)` : code(e);
  const target =
    agent === null ? 'the target in section 1' : seconds(spec.latency.signalToHaltMs[agent.level]);
  return [
    '## 4. How to know it worked',
    '',
    `The run and its child runs show ${code('[halt]')} (or ${code('[kill]')}) in the ${code('runs')} column, and your directive is listed under "active directives" with scope ${code(`run:${t.tenant}/$RUN_ID`)} (or ${code(`agent:${t.key}`)} for the whole agent). **The other runs were untouched**: the agent's other runs are listed without a mark, and below the fleet, among the workers that "lost a lease or aborted effects" recently, only the run's own worker is listed (with the effects the stop aborted); every other worker "did neither":`,
    '',
    sh('npx killpath status'),
    '',
    `The audit log has, in this order: your ${code('operator_action')} and ${code('kill_switch.fired')} (trigger operator), then one ${code('session.halted')} per worker with its ${code('timeToStopMs')} (at most ${target}) and the runs it stopped:`,
    '',
    sh(`npx killpath audit tail -n 20 --type ${stopEvents.join(',')}`),
    '',
    `Then the record of what was caught in flight (${caught.map(evidence).join(', ')}); a busy run leaves many, so this is on its own. Each line names its run: for a run-scoped stop, none names a run other than ${code('$RUN_ID')} and its children (the other runs were untouched):`,
    '',
    sh(`npx killpath audit tail -n 40 --type ${caught.join(',')}`),
    '',
    `**Effects permitted after the halt was committed**: there must be none. This lists the writes the control plane permitted to the run and its children after your directive's commit (exit 0 when there are none; exit 1 lists them: escalate, section 6, Q1). A write permitted just before the commit may land just after it; it is not one of these, and the journal (section 5) shows it:`,
    '',
    sh('npx killpath journal "$RUN_ID" --permitted-after "$DIRECTIVE_ID"'),
    '',
    'The record itself is intact (exit 1 names the first bad record):',
    '',
    sh('npx killpath audit verify'),
    '',
    `Dashboards: the console's fleet view (${spec.controlPlane.consoleUrl}) shows the run and its workers as halted and the directive in "Active directives"; the signal-to-halt histogram is in the metrics:`,
    '',
    sh(
      `curl -sS "$KILLPATH_URL/metrics" -H "authorization: Bearer $KILLPATH_TOKEN" | grep '^killpath_signal_to_halt_seconds'`,
    ),
    '',
    `**Not stopped?** No ${code('session.halted')} within ${target}, or effects still landing: end the process (${code('kill --run "$RUN_ID" --hard')}, section 2) and escalate (section 6, first question).`,
  ].join('\n');
}

function howToRecover(spec: KillSwitchSpec, agent: SpecAgent | null, t: Target): string {
  const m = spec.mechanism;
  const runLevel = spec.scope.levels.includes('run');
  const compensated = list([
    ...new Set(
      (agent?.tools ?? spec.agents.flatMap((a) => a.tools))
        .filter((x) => x.compensation)
        .map((x) => `${code(x.name)} → ${code(x.compensation!)}`),
    ),
  ]);
  const out = [
    '## 5. How to recover',
    '',
    `First see what landed before the halt: the writes of the halted run that carry a compensation (${compensated}), its child runs' included, newest first, every page (${code('--all')}; the output says "N of M"), for you to work through; killpath records them, running them is the agent owner's job:`,
    '',
    sh(
      runLevel
        ? 'npx killpath compensations --run "$RUN_ID" --all'
        : `npx killpath compensations --tenant ${t.tenantArg} --all`,
    ),
    '',
    "The run's own ledger, its child runs' included: every write it intended and what became of it, cancelled timers, discarded tasks (newest first, 1000 a page; it prints the command for the next page):",
    '',
    sh('npx killpath journal "$RUN_ID"'),
    '',
    'Then walk this tree. A resume lifts the stop from whatever process still hosts the run: **never resume a process that still holds the cause.**',
    '',
    txt(
      [
        'Is the cause fixed in the running process?',
        '  yes (a setting it rereads, an upstream outage that has ended, bad data fixed outside it)',
        '      -> 3. resume: the run carries on where it stopped',
        '  no, or not sure (its code, model, prompt or what it has in memory is at fault)',
        '      -> 2. end the process  -> 3. resume  -> 4. start the replacement',
      ].join('\n'),
    ),
    '',
  ];
  if (runLevel)
    out.push(
      `**2. End the process.** A hard kill of the run: under the launcher every process of it gets SIGTERM, then SIGKILL after ${seconds(m.killGraceMs)} (${code('process.killed')} in the audit; in ${code('npx killpath status')} its worker goes ${code('disconnected')}). The processes of the agent's other runs keep running:`,
      '',
      sh(
        'npx killpath kill --run "$RUN_ID" --hard --reason "cause not fixed in the process: ending it before the resume, per runbook"',
      ),
      '',
    );
  else
    out.push(
      `**2. End the process.** A hard kill of the agent (${code(`npx killpath kill --agent ${t.arg} --hard`)}, section 2): under the launcher every process of it gets SIGTERM, then SIGKILL after ${seconds(m.killGraceMs)}.`,
      '',
    );
  out.push(
    `**3. Resume.** This clears every active directive at exactly that scope (the halt, a one-tool stop and the hard kill of the run alike), is audited with your reason, and exits 1 when nothing is active there. Resume the scope you stopped:`,
    '',
  );
  if (runLevel)
    out.push(sh('npx killpath resume --run "$RUN_ID" --reason "cause fixed, resumed per runbook"'), '');
  out.push(
    sh(`npx killpath resume --agent ${t.arg} --reason "cause fixed, resumed per runbook"`),
    '',
    '**A resume needs a green release.** Each directive recorded, at its commit, the releases (code, model, prompt) of the runs it stopped; `npx killpath status` shows them beside it, and the release each worker runs. A resume is refused (`same_release`) while a worker it would release still runs one of them (an ended process runs none). Before you resume, decide:',
    '',
    `- **Was the cause a rollout** (new code, a new model version, a new prompt)? Start the replacement (step 4) on a known-good release (${code('--release code=<good sha>')}). ${code('killpath resume')} prints the releases it checked. A bad rollout across agents or tenants is stopped with one directive: ${code('npx killpath kill --release code=<sha> --reason "…"')} (also ${code('model=')}, ${code('prompt=')}; inside ${code(`--agent ${t.arg}`)} or ${code('--tenant T')}).`,
    `- **Was it not the release** (a config or data fix, an upstream outage, the release unchanged and not at fault) while a process of it still runs? Say why resuming onto the same release is safe: ${code('--same-release')} with your reason. The audit record marks the override and names the releases.`,
    '- **Not sure?** Treat it as the release: resuming on the same broken contract reproduces the incident on cue.',
    '',
    txt(
      `npx killpath resume --agent ${t.arg} --same-release --reason "config fix, not a rollout: <why the release is safe>"`,
    ),
    '',
    ...approvals(spec),
    '',
    `**4. Start the replacement** under the launcher, which holds its own line to the control plane and can end the process. Your operator token is enough: the control plane mints the agent a short-lived agent token bound to this launcher (audited with your name, the agent and the expiry; it ends when the launcher exits, or after 8 h: ${code('--token-ttl')} for another). It runs in the foreground until the agent exits, so run it in its own terminal; the halt-to-recovery target is ${seconds(spec.latency.haltToRecoveryMs)}.`,
    '',
  );
  const features = (a: SpecAgent) => (a.features.length ? ` --features ${a.features.join(',')}` : '');
  if (agent !== null) {
    const cmd = `npx killpath run --tenant ${agent.tenant} --agent ${agent.agent} --run "$RUN_ID-replacement"${features(agent)} -- `;
    out.push(
      agent.command
        ? sh(`${cmd}${agent.command}`)
        : txt(`${cmd}<the command that starts ${agent.tenant}/${agent.agent}; the spec does not say>`),
    );
  } else {
    const commands = [...new Set(spec.agents.map((a) => a.command ?? null))];
    const withFeatures = spec.agents.filter((a) => a.features.length > 0);
    const note = withFeatures.length
      ? ` Add ${withFeatures.map((a) => `${code(`--features ${a.features.join(',')}`)} for ${code(`${a.tenant}/${a.agent}`)}`).join(', ')}.`
      : '';
    const cmd = 'npx killpath run --tenant "$TENANT" --agent "$AGENT" --run "$RUN_ID-replacement" -- ';
    if (commands.length === 1 && commands[0] !== null)
      out.push(sh(`${cmd}${commands[0]}`), ...(note ? ['', note.trim()] : []));
    else
      out.push(
        txt(
          [
            `${cmd}<command>`,
            '',
            ...spec.agents.map(
              (a) => `${a.tenant}/${a.agent}: ${a.command ?? '(the spec does not say)'}${features(a)}`,
            ),
          ].join('\n'),
        ),
      );
  }
  out.push(
    '',
    'See it work: the new run is listed (this waits for its first heartbeat), and its first writes land in its ledger:',
    '',
    sh('npx killpath status --wait 30 --run "$RUN_ID-replacement"'),
    '',
    sh('npx killpath journal "$RUN_ID-replacement"'),
  );
  return out.join('\n');
}

const DURATION_WORDS: Record<string, string> = { s: 's', m: ' min', h: ' h' };

/** What the spec's approval rules mean for the on-call engineer: who approves which resume, and whom to call. */
function approvals(spec: KillSwitchSpec): string[] {
  const rules = spec.approvals ?? [];
  if (rules.length === 0)
    return [
      'The spec sets no approval rules: the person who resumes is the only one needed (every resume is audited with its reason).',
    ];
  const within = (w: string) => `${w.slice(0, -1)}${DURATION_WORDS[w.slice(-1)] ?? w.slice(-1)}`;
  const who = (r: (typeof rules)[number]) =>
    `${r.approvals} approval${r.approvals === 1 ? '' : 's'} by ${r.approvers === 'admin' ? 'an admin' : 'an operator of the tenant or an admin'} other than you within ${within(r.within)}`;
  const what = (r: (typeof rules)[number]) => {
    if (r.action === 'policy.apply') return 'Applying or rolling back the policy';
    const parts = [
      ...(r.scopes?.length ? [`a directive at scope ${r.scopes.map(code).join(' or ')}`] : []),
      ...(r.breakGlass ? ['one issued with break-glass'] : []),
    ];
    return `Resuming ${parts.join(', or ')}`;
  };
  return [
    `**Second approval.** Stopping is one person; these acts wait for a second (rules of the policy). The resume then prints a request id instead of clearing; call the contact, who runs ${code('npx killpath approve <request id> --reason "…"')} (they see what they approve; you cannot approve your own request):`,
    '',
    ...rules.map((r) => `- ${what(r)} needs ${who(r)} (rule ${code(r.name)}). Call ${r.contact}.`),
    '',
    txt(
      'npx killpath approvals                                   # pending requests\nnpx killpath approve <request id> --reason "checked: cause fixed"   # run by the approver',
    ),
  ];
}

function whenToEscalate(spec: KillSwitchSpec, t: Target): string {
  const out = ['## 6. When to escalate', ''];
  if (spec.escalation.length === 0) {
    out.push(
      'The spec names no one to call: page the owner of the agent through your usual incident process.',
    );
    return out.join('\n');
  }
  out.push(
    `Ask every question in order and page everyone whose answer is yes, the first one first. Tell them the agent (${code(t.key)}), the directive id (${code('npx killpath status')}) and when you stopped it.`,
    '',
  );
  const tree = spec.escalation.map((e, i) => `Q${i + 1}  ${e.when}?\n      yes -> ${e.contact}`);
  if (spec.scope.levels.includes('run'))
    tree.push(
      '(effects permitted after the halt was committed: npx killpath journal "$RUN_ID" --permitted-after "$DIRECTIVE_ID", section 4)',
    );
  tree.push(
    'All no: no escalation. Record the directive id, what you saw and what you did in the incident ticket.',
  );
  out.push(txt(tree.join('\n')));
  return out.join('\n');
}

/**
 * Renders the runbook (Markdown) for one agent of the spec, or for all of them with shared
 * sections once and the per-agent specifics in tables. Deterministic: the same spec gives the
 * same text.
 * @throws Error when `opts.agent` names an agent the spec does not cover (check with {@link findAgent})
 */
export function renderRunbook(spec: KillSwitchSpec, opts: RunbookOptions): string {
  const agent = opts.agent === undefined ? null : (findAgent(spec, opts.agent) ?? null);
  if (opts.agent !== undefined && agent === null)
    throw new Error(`the spec ${spec.name} does not cover ${opts.agent}`);
  const t = targetOf(agent);
  const title =
    agent === null
      ? `# Runbook: ${spec.name} — how to stop its agents`
      : `# Runbook: ${t.key} — how to stop it`;
  const generated = `killpath runbook --spec ${opts.source}${agent === null ? '' : ` --agent ${t.key}`}`;
  const intro = [
    title,
    '',
    `<!-- Generated by \`${generated}\` from the kill-switch spec "${spec.name}" (digest ${opts.digest.slice(0, 12)}). Do not edit by hand: change the spec, regenerate, and have the new version reviewed with the agent. -->`,
    '',
    `For the on-call engineer who has never seen ${agent === null ? 'these agents' : 'this agent'}. If ${agent === null ? 'one' : 'it'} is misbehaving now, do section 0, then section 2. Commands in ${code('sh')} blocks can be pasted as they are; ${code('text')} blocks are to read or adapt.`,
  ].join('\n');
  return `${[intro, setup(spec, agent), whatItDoes(spec, agent), howToKill(spec, agent, t), whatHappens(spec, agent), howToKnow(spec, agent, t), howToRecover(spec, agent, t), whenToEscalate(spec, t)].join('\n\n')}\n`;
}

/** The fenced code blocks of a Markdown text, in order, with their info string (`sh`, `text`) and the section heading above them. */
export function codeBlocks(markdown: string): { lang: string; code: string; section: string }[] {
  const out: { lang: string; code: string; section: string }[] = [];
  let section = '';
  let open: { lang: string; lines: string[] } | null = null;
  for (const line of markdown.split('\n')) {
    if (open !== null) {
      if (line === '```') {
        out.push({ lang: open.lang, code: open.lines.join('\n'), section });
        open = null;
      } else open.lines.push(line);
      continue;
    }
    const fence = /^```(\S*)$/.exec(line);
    if (fence) open = { lang: fence[1]!, lines: [] };
    else if (line.startsWith('## ')) section = line.slice(3);
  }
  return out;
}
