import { randomUUID } from 'node:crypto';
import { KillpathError, type Directive, type Principal } from '@killpath/protocol';
import { canSee, requireAct } from './auth/policy.ts';
import type { LauncherHub } from './launchers.ts';
import type { Store } from './store/store.ts';

/** What `POST /v1/runs/{id}/inspect` answers: the request to look for in `process.inspected` records. */
export interface InspectAccepted {
  requestId: string;
  runId: string;
  tenant: string;
  /** Launchers the order reached; each reports `process.inspected` with `requestId`. */
  launchers: string[];
}

/** What {@link inspectRun} needs of the control plane. */
export interface InspectDeps {
  store: Pick<Store, 'appendAudit'>;
  launchers: Pick<LauncherHub, 'inspect'>;
  rev: () => number;
  active: () => readonly Directive[];
}

/**
 * Orders the launchers of a frozen run to write its evidence (process tree, open files,
 * connections, core files) while the agent stays frozen; audited as an `operator_action`. A run
 * that no connected launcher holds frozen is a 409 `conflict` saying how to freeze it.
 * @throws KillpathError `forbidden` for viewers and agents, `not_found` for a run the caller cannot see, `conflict`
 */
export async function inspectRun(
  deps: InspectDeps,
  p: Principal,
  runId: string,
  body: { justification: string; tenant?: string | undefined; cores?: boolean | undefined },
): Promise<InspectAccepted> {
  if (p.role === 'agent' || p.role === 'viewer')
    throw new KillpathError('forbidden', `role ${p.role} may not inspect agent processes`);
  // Run ids are per tenant: the caller's own, or the one an admin names.
  const tenant = body.tenant ?? (p.tenant === '*' ? null : p.tenant);
  if (tenant === null)
    throw new KillpathError(
      'invalid_request',
      `name the tenant of run ${runId} (an admin token spans every tenant)`,
    );
  if (!canSee(p, tenant)) throw new KillpathError('not_found', `run ${runId} not found`);
  requireAct(p, tenant, `run ${runId}`);
  const requestId = `insp_${randomUUID()}`;
  const launchers = deps.launchers.inspect(tenant, runId, deps.rev(), deps.active(), {
    type: 'inspect',
    requestId,
    runId,
    actor: p.name,
    cores: body.cores ?? true,
  });
  if (launchers.length === 0)
    throw new KillpathError(
      'conflict',
      `no connected launcher holds run ${runId} frozen: freeze it first (killpath kill --run ${runId} --level freeze)`,
    );
  await deps.store.appendAudit([
    {
      type: 'operator_action',
      actor: p.name,
      tenant,
      data: {
        action: 'process.inspect',
        role: p.role,
        tokenId: p.tokenId,
        runId,
        requestId,
        launchers,
        justification: body.justification,
      },
    },
  ]);
  return { requestId, runId, tenant, launchers };
}
