import { KillpathError, type Principal } from '@killpath/protocol';

/** True when the principal may see objects of `tenant` (null: objects that span every tenant). */
export function canSee(p: Principal, tenant: string | null): boolean {
  if (p.role === 'agent') return false;
  if (p.tenant === '*') return true;
  return tenant === null || tenant === p.tenant;
}

/** True when the principal may act on objects of `tenant` (null: spanning every tenant, admin only). */
export function canAct(p: Principal, tenant: string | null): boolean {
  if (p.role === 'admin') return true;
  return p.role === 'operator' && tenant !== null && tenant === p.tenant;
}

/** Refuses agents: they read only their own stream and write only their own reports. */
export function requireHuman(p: Principal): void {
  if (p.role === 'agent')
    throw new KillpathError(
      'forbidden',
      'agent tokens may only open their stream and send their own reports',
    );
}

/**
 * Refuses an action on `tenant`: 404 when the principal may not even see it (so another
 * tenant's objects stay invisible), 403 when it may see but not act.
 */
export function requireAct(p: Principal, tenant: string | null, what: string): void {
  if (canAct(p, tenant)) return;
  if (tenant !== null && !canSee(p, tenant)) throw new KillpathError('not_found', `${what} not found`);
  throw new KillpathError('forbidden', `role ${p.role} of tenant ${p.tenant} may not act on ${what}`);
}

/** The tenant filter for listings: undefined for admins (everything), else the principal's own. */
export function tenantFilter(p: Principal): string | undefined {
  return p.tenant === '*' ? undefined : p.tenant;
}
