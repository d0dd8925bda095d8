import { randomUUID } from 'node:crypto';
import {
  KillpathError,
  LEVELS,
  formatRelease,
  parseScope,
  type ApprovalRequest,
  type Directive,
  type ReleaseCheck,
  type EscalationStep,
  type IssueDirectiveBody,
  type Level,
  type Rate,
} from '@killpath/protocol';
import { CONNECTION_OPTIONS, intFlag, parse } from '../args.ts';
import { scopeLabel } from '../output.ts';
import { clientFor } from '../config.ts';
import type { ApiClient } from '../api.ts';

export const KILL_HELP = `killpath kill <scope> --reason TEXT [options]

Stops agents at one scope. Pick exactly one scope:
  --run RUN_ID            one run and its child runs (with --tenant: the run of that tenant,
                          also one no worker holds yet)
  --agent TENANT/AGENT    every run of one agent (also --tenant TENANT --agent AGENT)
  --tenant TENANT         every run of one tenant (with --feature or --run: that feature or run inside it)
  --feature FEATURE       every run that declared the feature
  --release PART=V        every run on that release, wherever it is: PART is code, model or
                          prompt (e.g. --release code=4f2a1c, --release model=acme/planner@7);
                          with --tenant T or --agent T/A: only inside it
  --global                everything (admin token and --break-glass required)

Options:
  --level LEVEL           throttle | degrade | isolate | halt (default) | freeze | kill
  --hard                  same as --level kill: no grace, the launcher ends the process group
  --rate N[/run|/agent]   throttle: effects per second, per run (default) or per agent, e.g. --rate 5/agent
  --tool NAME             narrow to this capability (repeatable): freeze one tool (halt/kill) or
                          revoke it (degrade); a degrade without --tool makes the scope read-only
  --escalate LEVEL@MS     if not acknowledged within MS, step up to LEVEL (repeatable), e.g. kill@30000;
                          a halt always escalates to kill after its grace (+1 s)
  --reason TEXT           why (required)
  --justification TEXT    operator's justification for the audit log (default: the reason)
  --grace MS              grace period of a halt in ms (default 5000)
  --drain                 let queued tasks of halted runs finish inside the grace (default: discard them)
  --commit-memory         commit staged memory writes of halted runs (default: revert them)
  --break-glass TEXT      attestation for directives spanning every tenant
  --idempotency-key KEY   a retry with the same key returns the same directive
  --json                  print the directive as JSON
  --url URL --token TOKEN --data-dir DIR   where the control plane is (see killpath help)`;

export const STEP_HELP = `killpath step <directive-id> up|down --reason TEXT [--rate N[/run|/agent]] [--break-glass TEXT] [--json]

Moves a directive one level up or down the ladder (throttle < degrade < isolate < halt < freeze < kill):
a new directive at the same scope replaces it at one rev. Stepping down to throttle needs --rate
unless the directive had one. A directive narrowed to tools steps over isolate and freeze (degrade ⇄ halt ⇄ kill).`;

export const RESUME_HELP = `killpath resume <directive-id> --reason TEXT [--same-release] [--break-glass TEXT] [--json]
killpath resume <scope> --reason TEXT [--same-release] [--break-glass TEXT] [--json]

Clears a directive at a new rev. The justification is recorded in the audit log. When an
approval rule of the policy covers the directive (e.g. tenant scope or wider, or break-glass),
this files a request instead and prints its id and whom to call: a second, eligible person
completes it with killpath approve REQUEST_ID --reason TEXT.

A resume needs a green release: it is checked against the releases the directive stopped
(recorded at its commit), and refused (same_release) while a worker it would release still runs
one of them. Roll the release back or forward first; or, when the release was not the cause, say
so with --same-release: the --reason then says why resuming onto it is safe, and the audit
record marks the override. killpath resume prints the releases it checked.

The second form clears every active directive whose scope is exactly the one given (a halt, a
kill, a frozen tool, a throttle there), each at its own rev, and prints what it cleared; it
exits 1 when none is active at that scope. Directives at other scopes that still cover the
same runs (e.g. a tenant halt over an agent) stay in force: killpath status lists them.
  --run RUN_ID            run:RUN_ID (with --tenant: of that tenant)
  --agent TENANT/AGENT    agent:TENANT/AGENT (also --tenant TENANT --agent AGENT)
  --tenant TENANT         tenant:TENANT (with --feature or --run: that feature or run inside the tenant)
  --feature FEATURE       feature:FEATURE (of every tenant you can see, unless --tenant)
  --release PART=V        release:PART=V (with --tenant T or --agent T/A: the one inside it)
  --global                global (admin token and --break-glass required)`;

/** Seconds as a person reads them: `5 s`, `1.5 s`. */
const seconds = (msValue: number) => `${Math.round(msValue / 100) / 10} s`;

/**
 * What happens to a directive on its own, in words: "if not acknowledged within 5 s + 1 s, this
 * becomes a kill" (grace, then the escalation's slack), not a step that reads as about to happen.
 */
export function escalationWords(d: Pick<Directive, 'level' | 'graceMs' | 'escalation'>): string {
  return d.escalation
    .map((e) => {
      const within =
        e.afterMs > d.graceMs && d.graceMs > 0
          ? `${seconds(d.graceMs)} + ${seconds(e.afterMs - d.graceMs)}`
          : seconds(e.afterMs);
      return `if not acknowledged within ${within}, this becomes a ${e.level}`;
    })
    .join('; ');
}

/** One directive as a line; `escalation` adds what it becomes on its own (not for a cleared one). */
function describe(d: Directive, escalation = true): string {
  const caps = d.capabilities ? ` tools=${d.capabilities.join(',')}` : '';
  const rate = d.rate ? ` rate=${d.rate.perSecond}/s per ${d.rate.per}` : '';
  const esc = escalation && d.escalation.length > 0 ? `; ${escalationWords(d)}` : '';
  return `${d.level} ${scopeLabel(d)}${caps}${rate} (id ${d.id}, rev ${d.rev})${esc}`;
}

/** `killpath kill`. */
export async function kill(args: string[]): Promise<number> {
  const { values } = parse(args, {
    ...CONNECTION_OPTIONS,
    run: { type: 'string' },
    agent: { type: 'string' },
    tenant: { type: 'string' },
    feature: { type: 'string' },
    release: { type: 'string' },
    global: { type: 'boolean' },
    tool: { type: 'string', multiple: true },
    level: { type: 'string' },
    rate: { type: 'string' },
    escalate: { type: 'string', multiple: true },
    reason: { type: 'string' },
    justification: { type: 'string' },
    hard: { type: 'boolean' },
    grace: { type: 'string' },
    drain: { type: 'boolean' },
    'commit-memory': { type: 'boolean' },
    'break-glass': { type: 'string' },
    'idempotency-key': { type: 'string' },
    json: { type: 'boolean' },
  });
  if (values.help) {
    console.log(KILL_HELP);
    return 0;
  }
  const named = scopeFlags(values, 'kill');
  if (named === null)
    throw new KillpathError(
      'invalid_request',
      'pick exactly one scope: --run, --agent, --tenant, --feature, --release or --global (see killpath kill --help)',
    );
  const scope = named.scopeText;
  if (!values.reason || values.reason.trim() === '')
    throw new KillpathError('invalid_request', '--reason is required: say why, it goes on the audit record');
  if (values.hard && values.level !== undefined && values.level !== 'kill')
    throw new KillpathError('invalid_request', '--hard means --level kill');
  const level = values.hard ? 'kill' : (values.level ?? 'halt');
  if (!(LEVELS as readonly string[]).includes(level))
    throw new KillpathError('invalid_request', `--level must be one of ${LEVELS.join(', ')}`);
  if (level === 'throttle' && values.rate === undefined)
    throw new KillpathError('invalid_request', 'a throttle needs --rate N[/run|/agent], e.g. --rate 5');
  const body: IssueDirectiveBody = {
    level: level as Level,
    ...(values.rate !== undefined ? { rate: rateFlag(values.rate) } : {}),
    ...(values.escalate ? { escalation: values.escalate.map(escalateFlag) } : {}),
    scope,
    reason: values.reason,
    justification: values.justification ?? values.reason,
    ...(values.tool ? { capabilities: values.tool } : {}),
    ...(values.grace !== undefined ? { graceMs: intFlag('grace', values.grace, 0) } : {}),
    ...(values.drain ? { drain: 'drain' } : {}),
    ...(values['commit-memory'] ? { memory: 'commit' } : {}),
    ...(values['break-glass'] ? { breakGlass: values['break-glass'] } : {}),
    ...(named.tenant !== undefined ? { tenant: named.tenant } : {}),
  };
  const api = clientFor(values);
  // A key of its own when none is given: a kill that timed out on one replica may go to the
  // next (the deployment converges on one directive whichever replica committed it first).
  const headers: Record<string, string> = { 'idempotency-key': values['idempotency-key'] || randomUUID() };
  const r = await api.post<{ directive: Directive; created: boolean; converged: string | null }>(
    '/v1/directives',
    body,
    headers,
  );
  if (values.json) console.log(JSON.stringify(r, null, 2));
  else if (r.created) console.log(`issued ${describe(r.directive)}`);
  else
    console.log(
      `already in force (${r.converged === 'idempotency_key' ? 'same idempotency key' : 'identical directive'}): ${describe(r.directive)}`,
    );
  return 0;
}

/** Parses `--rate 5`, `--rate 2.5/run`, `--rate 10/agent`. */
export function rateFlag(text: string): Rate {
  const m = /^(\d+(?:\.\d+)?)(?:\/(run|agent))?$/.exec(text.trim());
  const perSecond = m ? Number(m[1]) : Number.NaN;
  if (!m || !(perSecond > 0))
    throw new KillpathError(
      'invalid_request',
      `--rate takes effects per second, optionally /run or /agent (e.g. 5, 0.5/run, 20/agent), not "${text}"`,
    );
  return { perSecond, per: (m[2] as Rate['per'] | undefined) ?? 'run' };
}

/** Parses `--escalate kill@30000` (ms) or `kill@30s`. */
export function escalateFlag(text: string): EscalationStep {
  const m = /^([a-z]+)@(\d+)(ms|s)?$/.exec(text.trim());
  if (!m || !(LEVELS as readonly string[]).includes(m[1]!)) {
    throw new KillpathError(
      'invalid_request',
      `--escalate takes LEVEL@MS (e.g. kill@30000 or kill@30s) with a level of ${LEVELS.join(', ')}, not "${text}"`,
    );
  }
  return { level: m[1] as Level, afterMs: Number(m[2]) * (m[3] === 's' ? 1000 : 1) };
}

/** `killpath step`. */
export async function step(args: string[]): Promise<number> {
  const { values, positionals } = parse(
    args,
    {
      ...CONNECTION_OPTIONS,
      reason: { type: 'string' },
      rate: { type: 'string' },
      'break-glass': { type: 'string' },
      json: { type: 'boolean' },
    },
    true,
  );
  if (values.help) {
    console.log(STEP_HELP);
    return 0;
  }
  const [id, direction] = positionals;
  if (positionals.length !== 2 || (direction !== 'up' && direction !== 'down'))
    throw new KillpathError('invalid_request', 'usage: killpath step <directive-id> up|down --reason TEXT');
  if (!values.reason || values.reason.trim() === '')
    throw new KillpathError('invalid_request', '--reason is required: every step is audited');
  const api = clientFor(values);
  const r = await api.post<{ directive: Directive; replaced: string[] }>(
    `/v1/directives/${encodeURIComponent(id!)}/step`,
    {
      direction,
      justification: values.reason,
      ...(values.rate !== undefined ? { rate: rateFlag(values.rate) } : {}),
      ...(values['break-glass'] ? { breakGlass: values['break-glass'] } : {}),
    },
  );
  if (values.json) console.log(JSON.stringify(r, null, 2));
  else console.log(`stepped ${direction}: ${describe(r.directive)}, replacing ${r.replaced.join(', ')}`);
  return 0;
}

/** `killpath resume`: by directive id, or every active directive at one exact scope. */
export async function resume(args: string[]): Promise<number> {
  const { values, positionals } = parse(
    args,
    {
      ...CONNECTION_OPTIONS,
      reason: { type: 'string' },
      'break-glass': { type: 'string' },
      json: { type: 'boolean' },
      run: { type: 'string' },
      agent: { type: 'string' },
      tenant: { type: 'string' },
      feature: { type: 'string' },
      release: { type: 'string' },
      global: { type: 'boolean' },
      'same-release': { type: 'boolean' },
    },
    true,
  );
  if (values.help) {
    console.log(RESUME_HELP);
    return 0;
  }
  const byScope = scopeFlags(values, 'resume');
  if (byScope === null && positionals.length !== 1)
    throw new KillpathError(
      'invalid_request',
      'usage: killpath resume <directive-id> --reason TEXT, or killpath resume --run R | --agent T/A | --tenant T [--feature F] | --feature F | --global --reason TEXT',
    );
  if (byScope !== null && positionals.length > 0)
    throw new KillpathError(
      'invalid_request',
      'give a directive id or a scope (--run, --agent, --tenant, --feature, --release, --global), not both',
    );
  if (!values.reason || values.reason.trim() === '')
    throw new KillpathError('invalid_request', '--reason is required: resuming is a justified, audited act');
  const api = clientFor(values);
  const body = {
    justification: values.reason,
    ...(values['break-glass'] ? { breakGlass: values['break-glass'] } : {}),
    ...(values['same-release'] ? { sameRelease: values.reason } : {}),
  };
  if (byScope === null) {
    const r = await postResume(api, positionals[0]!, body);
    if (values.json) console.log(JSON.stringify(r, null, 2));
    else if ('approval' in r) console.log(pendingLine(r.approval));
    else {
      console.log(`cleared ${describe(r.directive, false)} at rev ${r.directive.clearedRev}`);
      console.log(`  ${checkedLine(r.releaseCheck)}`);
    }
    return 0;
  }
  const { directives } = await api.get<{ directives: Directive[] }>('/v1/directives?active=true&limit=5000');
  const matching = directives.filter(
    (d) => d.scopeText === byScope.scopeText && (byScope.tenant === undefined || d.tenant === byScope.tenant),
  );
  const label = scopeLabel({ scopeText: byScope.scopeText, tenant: byScope.tenant });
  if (matching.length === 0) {
    if (values.json) console.log(JSON.stringify({ cleared: [] }, null, 2));
    else
      console.error(
        `no active directive at ${label}: nothing to resume (killpath status lists the active ones and their scopes)`,
      );
    return 1;
  }
  const cleared: Cleared[] = [];
  const pending: ApprovalRequest[] = [];
  for (const d of matching) {
    try {
      const r = await postResume(api, d.id, body);
      if ('approval' in r) pending.push(r.approval);
      else cleared.push(r);
    } catch (err) {
      // Cleared meanwhile (an escalation replaced it, another operator resumed it): nothing left to do for it.
      if (err instanceof KillpathError && (err.code === 'conflict' || err.code === 'not_found')) continue;
      throw err;
    }
  }
  if (values.json)
    console.log(
      JSON.stringify(
        {
          cleared: cleared.map((r) => r.directive),
          releaseChecks: cleared.map((r) => r.releaseCheck),
          ...(pending.length ? { pending } : {}),
        },
        null,
        2,
      ),
    );
  else {
    for (const r of cleared) {
      console.log(`cleared ${describe(r.directive, false)} at rev ${r.directive.clearedRev}`);
      console.log(`  ${checkedLine(r.releaseCheck)}`);
    }
    for (const a of pending) console.log(pendingLine(a));
    console.log(
      `${cleared.length} directive${cleared.length === 1 ? '' : 's'} cleared at ${label}${pending.length ? `, ${pending.length} waiting for approval` : ''}`,
    );
  }
  return 0;
}

/** What resuming one directive answers: cleared, or a pending approval request (202). */
type Resumed = Cleared | { approval: ApprovalRequest; created: boolean };

/** A resume that cleared its directive, with the release check it passed. */
interface Cleared {
  directive: Directive;
  releaseCheck: ReleaseCheck;
}

/** Resumes one directive; a `same_release` refusal names the CLI's override, not the API field. */
async function postResume(api: ApiClient, id: string, body: object): Promise<Resumed> {
  try {
    return await api.post<Resumed>(`/v1/directives/${encodeURIComponent(id)}/resume`, body);
  } catch (err) {
    if (err instanceof KillpathError && err.code === 'same_release')
      throw new KillpathError('same_release', err.message.replace(/\(sameRelease\)$/, '(--same-release)'), {
        details: err.details,
      });
    throw err;
  }
}

/** `checked releases code=A,prompt=v1; code=B: …`: what a resume checked, and whether the override let it through. */
export function checkedLine(check: ReleaseCheck): string {
  if (check.checked.length === 0) return 'release check: the directive recorded no release';
  const checked = `checked release${check.checked.length === 1 ? '' : 's'} ${check.checked.map(formatRelease).join('; ')}`;
  if (check.running.length === 0) return `${checked}: no worker it released still runs one`;
  return `${checked}: ${check.running.length} worker(s) still run one, resumed anyway (--same-release: ${check.sameRelease ?? ''})`;
}

/**
 * The release scope `--release PART=V` names (with `--tenant T`: inside T; with `--agent T/A`
 * or `--tenant T --agent A`: inside that agent), or null without `--release`.
 * @throws KillpathError `invalid_request` for a bad value or a scope flag that cannot go with it
 */
export function releaseScope(v: {
  release?: string | undefined;
  run?: string | undefined;
  agent?: string | undefined;
  tenant?: string | undefined;
  feature?: string | undefined;
  global?: boolean | undefined;
}): { scopeText: string; tenant?: string } | null {
  if (v.release === undefined) return null;
  if (v.run || v.feature || v.global)
    throw new KillpathError(
      'invalid_request',
      '--release goes alone, or inside --tenant T or --agent T/A (not with --run, --feature or --global)',
    );
  if (!v.release.includes('=') || v.release.includes(','))
    throw new KillpathError(
      'invalid_request',
      `--release takes one PART=VALUE with PART code, model or prompt (e.g. --release prompt=v42), not "${v.release}"`,
    );
  let tenant = v.tenant;
  let agent: string | null = null;
  if (v.agent !== undefined) {
    const slash = v.agent.indexOf('/');
    if (slash < 0 && tenant === undefined)
      throw new KillpathError(
        'invalid_request',
        '--agent takes TENANT/AGENT (or --tenant TENANT --agent AGENT), e.g. --agent acme/support-bot',
      );
    if (slash >= 0 && tenant !== undefined && tenant !== v.agent.slice(0, slash))
      throw new KillpathError('invalid_request', `--agent ${v.agent} is not in --tenant ${tenant}`);
    if (slash >= 0) tenant = v.agent.slice(0, slash);
    agent = slash < 0 ? v.agent : v.agent.slice(slash + 1);
  }
  const scopeText = `release:${v.release}${agent === null ? '' : `;agent=${agent}`}`;
  // Checked here for one clear line; the control plane checks again.
  parseScope(scopeText);
  return { scopeText, ...(tenant !== undefined ? { tenant } : {}) };
}

/** The lines telling the requester that a second person must approve, and how. */
function pendingLine(a: ApprovalRequest): string {
  const who = a.approverRole === 'admin' ? 'an admin' : 'an operator of the tenant or an admin';
  return `resume needs approval: request ${a.id} (${a.summary}) needs ${a.needed} approval${a.needed === 1 ? '' : 's'} by ${who} other than you, by ${a.expiresAt}.${a.contact ? ` Call ${a.contact}.` : ''}
They run: killpath approve ${a.id} --reason "…"`;
}

/**
 * The scope the flags `--run/--agent/--tenant/--feature/--release/--global` name, or null when
 * none is given (`--release`: see {@link releaseScope}). `--agent` takes `TENANT/AGENT`, or `AGENT` with `--tenant TENANT` (the launcher's
 * spelling); `--tenant` with `--run` or `--feature` narrows those to the tenant (`tenant` in the
 * result); `--tenant` alone is the tenant scope.
 * @throws KillpathError `invalid_request` when the flags name no single scope
 */
export function scopeFlags(
  v: {
    run?: string | undefined;
    agent?: string | undefined;
    tenant?: string | undefined;
    feature?: string | undefined;
    release?: string | undefined;
    global?: boolean | undefined;
  },
  command: string,
): { scopeText: string; tenant?: string } | null {
  const byRelease = releaseScope(v);
  if (byRelease !== null) return byRelease;
  const picked = [
    v.run && 'run',
    v.agent && 'agent',
    v.feature && 'feature',
    v.global && 'global',
    v.tenant && !v.feature && !v.run && !v.agent && 'tenant',
  ].filter(Boolean);
  if (picked.length === 0) return null;
  if (picked.length > 1)
    throw new KillpathError(
      'invalid_request',
      `pick exactly one scope: --run, --agent, --tenant, --feature, --release or --global (see killpath ${command} --help)`,
    );
  if (v.global && v.tenant)
    throw new KillpathError('invalid_request', '--global and --tenant exclude each other');
  if (v.run) return { scopeText: `run:${v.run}`, ...(v.tenant ? { tenant: v.tenant } : {}) };
  if (v.agent) {
    const slash = v.agent.indexOf('/');
    if (slash < 0 && v.tenant === undefined)
      throw new KillpathError(
        'invalid_request',
        '--agent takes TENANT/AGENT (or --tenant TENANT --agent AGENT), e.g. --agent acme/support-bot',
      );
    if (slash >= 0 && v.tenant !== undefined && v.agent.slice(0, slash) !== v.tenant)
      throw new KillpathError(
        'invalid_request',
        `--agent ${v.agent} is not in --tenant ${v.tenant}: give one of them, or the same tenant in both`,
      );
    return { scopeText: `agent:${slash < 0 ? `${v.tenant}/${v.agent}` : v.agent}` };
  }
  if (v.feature) return { scopeText: `feature:${v.feature}`, ...(v.tenant ? { tenant: v.tenant } : {}) };
  if (v.global) return { scopeText: 'global' };
  return { scopeText: `tenant:${v.tenant}` };
}
