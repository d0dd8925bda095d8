import { KillpathError, type Directive } from '@killpath/protocol';
import { CONNECTION_OPTIONS, intFlag, parse } from '../args.ts';
import { clientFor } from '../config.ts';

export const KILL_HELP = `killpath kill <scope> --reason TEXT [options]

Stops agents at one scope. Pick exactly one scope:
  --run RUN_ID            one run and its child runs
  --agent TENANT/AGENT    every run of one agent
  --tenant TENANT         every run of one tenant (with --feature: that feature inside it)
  --feature FEATURE       every run that declared the feature
  --global                everything (admin token and --break-glass required)

Options:
  --tool NAME             freeze only this capability (repeatable); reads of other tools keep flowing
  --reason TEXT           why (required)
  --justification TEXT    operator's justification for the audit log (default: the reason)
  --hard                  level kill instead of halt (no grace; process kill once the launcher runs it)
  --grace MS              grace period of a halt in ms (default 5000)
  --break-glass TEXT      attestation for directives spanning every tenant
  --idempotency-key KEY   a retry with the same key returns the same directive
  --json                  print the directive as JSON
  --url URL --token TOKEN --data-dir DIR   where the control plane is (see killpath help)`;

export const RESUME_HELP = `killpath resume <directive-id> --reason TEXT [--break-glass TEXT] [--json]

Clears a directive at a new rev. The justification is recorded in the audit log.`;

function describe(d: Directive): string {
  const caps = d.capabilities ? ` tools=${d.capabilities.join(',')}` : '';
  return `${d.level} ${d.scopeText}${caps} (id ${d.id}, rev ${d.rev})`;
}

/** `killpath kill`. */
export async function kill(args: string[]): Promise<number> {
  const { values } = parse(args, {
    ...CONNECTION_OPTIONS,
    run: { type: 'string' },
    agent: { type: 'string' },
    tenant: { type: 'string' },
    feature: { type: 'string' },
    global: { type: 'boolean' },
    tool: { type: 'string', multiple: true },
    reason: { type: 'string' },
    justification: { type: 'string' },
    hard: { type: 'boolean' },
    grace: { type: 'string' },
    'break-glass': { type: 'string' },
    'idempotency-key': { type: 'string' },
    json: { type: 'boolean' },
  });
  if (values.help) {
    console.log(KILL_HELP);
    return 0;
  }
  const picked = [values.run && 'run', values.agent && 'agent', values.feature && 'feature', values.global && 'global', values.tenant && !values.feature && 'tenant'].filter(Boolean);
  if (picked.length !== 1) throw new KillpathError('invalid_request', 'pick exactly one scope: --run, --agent, --tenant, --feature or --global (see killpath kill --help)');
  if (values.global && values.tenant) throw new KillpathError('invalid_request', '--global and --tenant exclude each other');
  let scope: string;
  if (values.run) scope = `run:${values.run}`;
  else if (values.agent) {
    if (!values.agent.includes('/')) throw new KillpathError('invalid_request', '--agent takes TENANT/AGENT, e.g. --agent acme/support-bot');
    scope = `agent:${values.agent}`;
  } else if (values.feature) scope = `feature:${values.feature}`;
  else if (values.global) scope = 'global';
  else scope = `tenant:${values.tenant}`;
  if (!values.reason || values.reason.trim() === '') throw new KillpathError('invalid_request', '--reason is required: say why, it goes on the audit record');
  const body = {
    level: values.hard ? 'kill' : 'halt',
    scope,
    reason: values.reason,
    justification: values.justification ?? values.reason,
    ...(values.tool ? { capabilities: values.tool } : {}),
    ...(values.grace !== undefined ? { graceMs: intFlag('grace', values.grace, 0) } : {}),
    ...(values['break-glass'] ? { breakGlass: values['break-glass'] } : {}),
    ...(values.feature && values.tenant ? { tenant: values.tenant } : {}),
  };
  const api = clientFor(values);
  const headers: Record<string, string> = values['idempotency-key'] ? { 'idempotency-key': values['idempotency-key'] } : {};
  const r = await api.post<{ directive: Directive; created: boolean; converged: string | null }>('/v1/directives', body, headers);
  if (values.json) console.log(JSON.stringify(r, null, 2));
  else if (r.created) console.log(`issued ${describe(r.directive)}`);
  else console.log(`already in force (${r.converged === 'idempotency_key' ? 'same idempotency key' : 'identical directive'}): ${describe(r.directive)}`);
  return 0;
}

/** `killpath resume`. */
export async function resume(args: string[]): Promise<number> {
  const { values, positionals } = parse(args, { ...CONNECTION_OPTIONS, reason: { type: 'string' }, 'break-glass': { type: 'string' }, json: { type: 'boolean' } }, true);
  if (values.help) {
    console.log(RESUME_HELP);
    return 0;
  }
  if (positionals.length !== 1) throw new KillpathError('invalid_request', 'usage: killpath resume <directive-id> --reason TEXT');
  if (!values.reason || values.reason.trim() === '') throw new KillpathError('invalid_request', '--reason is required: resuming is a justified, audited act');
  const api = clientFor(values);
  const r = await api.post<{ directive: Directive }>(`/v1/directives/${encodeURIComponent(positionals[0]!)}/resume`, {
    justification: values.reason,
    ...(values['break-glass'] ? { breakGlass: values['break-glass'] } : {}),
  });
  if (values.json) console.log(JSON.stringify(r, null, 2));
  else console.log(`cleared ${describe(r.directive)} at rev ${r.directive.clearedRev}`);
  return 0;
}
