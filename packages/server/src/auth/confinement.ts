import { KillpathError, formatScope, type Principal, type Scope } from '@killpath/protocol';
import type { Store } from '../store/store.ts';
import { requireAct } from './policy.ts';

/**
 * Decides which tenant a new directive is confined to and checks the principal may issue
 * it there. Directives spanning every tenant need an admin and a break-glass attestation.
 */
export async function confine(
  p: Principal,
  scope: Scope,
  body: { tenant?: string | undefined; breakGlass?: string | undefined },
  store: Pick<Store, 'findRuns'>,
): Promise<string | null> {
  let tenant: string | null;
  switch (scope.kind) {
    case 'global':
      tenant = null;
      break;
    case 'tenant':
    case 'agent':
      tenant = scope.tenant;
      break;
    case 'run': {
      // A run id lives inside its tenant: a person's run scope is their own tenant's run; an
      // admin's is the tenant named, or the one tenant holding the id.
      if (p.tenant !== '*' || body.tenant !== undefined) {
        tenant = body.tenant ?? p.tenant;
        break;
      }
      const held = [...new Set((await store.findRuns(scope.run)).map((r) => r.tenant))];
      if (held.length > 1)
        throw new KillpathError(
          'invalid_request',
          `run ${scope.run} exists in tenants ${held.join(', ')}; give its tenant (--tenant T)`,
          { details: { run: scope.run, tenants: held, need: 'tenant' } },
        );
      tenant = held[0] ?? null;
      if (tenant === null && !body.breakGlass) {
        // An admin naming a run no worker holds: say that, not "spanning every tenant".
        throw new KillpathError(
          'not_found',
          `run ${scope.run} is not known in any tenant you can act on; give its tenant or start it first`,
          { details: { run: scope.run, need: 'tenant' } },
        );
      }
      break;
    }
    case 'feature':
      tenant = body.tenant ?? (p.tenant === '*' ? null : p.tenant);
      break;
    case 'release':
      tenant = body.tenant ?? (p.tenant === '*' ? null : p.tenant);
      if (scope.agent !== null && tenant === null)
        throw new KillpathError(
          'invalid_request',
          `scope ${formatScope(scope)} names an agent: give its tenant (tenant field, --tenant)`,
        );
      break;
  }
  if (body.tenant !== undefined && tenant !== body.tenant) {
    throw new KillpathError(
      'invalid_request',
      `scope ${scope.kind} belongs to tenant ${tenant ?? '(all)'}, not ${body.tenant}`,
    );
  }
  requireAct(p, tenant, tenant === null ? 'every tenant' : `tenant ${tenant}`);
  if (tenant === null && !body.breakGlass) {
    throw new KillpathError(
      'break_glass_required',
      'a directive spanning every tenant needs an admin token and a breakGlass attestation',
    );
  }
  return tenant;
}
