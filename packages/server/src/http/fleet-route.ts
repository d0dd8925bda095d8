/**
 * `GET /v1/fleet`: the fleet view, one small page at a time. Query: `limit` (default
 * {@link FLEET_PAGE_DEFAULT}, at most {@link FLEET_PAGE_MAX}), `cursor` (opaque, from the previous
 * page's `nextCursor`), filters `tenant=` (an admin's; a tenant's people see their own tenant
 * only), `agent=`, `state=` and `run=` (the workers hosting that run id in the caller's view).
 * The answer carries `total` and counts by tenant/agent and by state, so a client showing a
 * thousand workers never fetches them all.
 */
import type { Hono } from 'hono';
import {
  KillpathError,
  LEVELS,
  isIdentifier,
  type Directive,
  type FleetPage,
  type FleetState,
} from '@killpath/protocol';
import { requireHuman, tenantFilter } from '../auth/policy.ts';
import type { Fleet, FleetKey, FleetQuery } from '../fleet.ts';
import type { Env } from './common.ts';

/** Workers per page when `limit` is not given. */
export const FLEET_PAGE_DEFAULT = 100;
/** Most workers one page may ask for. */
export const FLEET_PAGE_MAX = 500;

const STATES: readonly FleetState[] = ['running', ...LEVELS, 'stale'];

/** Registers `GET /v1/fleet` on `app`. */
export function fleetRoutes(
  app: Hono<Env>,
  deps: { fleet: Fleet; rev(): number; active(): readonly Directive[] },
): void {
  app.get('/v1/fleet', (c) => {
    const p = c.get('principal');
    requireHuman(p);
    const q = fleetQuery((name) => c.req.query(name), tenantFilter(p));
    const rev = deps.rev();
    const page = deps.fleet.page(q, rev, deps.active());
    const answer: FleetPage = {
      rev,
      workers: page.workers,
      total: page.total,
      limit: q.limit,
      nextCursor: page.next === null ? null : encodeCursor(page.next),
      groups: page.groups,
      states: page.states,
    };
    return c.json(answer);
  });
}

/** Reads and checks the query of `GET /v1/fleet` for a caller who sees `ownTenant` (all: undefined). */
function fleetQuery(param: (name: string) => string | undefined, ownTenant: string | undefined): FleetQuery {
  const bad = (msg: string, details?: Record<string, unknown>) =>
    new KillpathError('invalid_request', msg, details ? { details } : {});
  const ident = (name: string): string | undefined => {
    const v = param(name);
    if (v !== undefined && !isIdentifier(v))
      throw bad(`query parameter ${name} must be 1-128 letters, digits or ._:@-`);
    return v;
  };
  const limitText = param('limit');
  let limit = FLEET_PAGE_DEFAULT;
  if (limitText !== undefined) {
    limit = Number(limitText);
    if (!/^\d+$/.test(limitText) || limit > FLEET_PAGE_MAX)
      throw bad(`query parameter limit must be a whole number from 0 to ${FLEET_PAGE_MAX}`, {
        limit: FLEET_PAGE_MAX,
      });
  }
  const tenant = ident('tenant');
  if (ownTenant !== undefined && tenant !== undefined && tenant !== ownTenant)
    throw new KillpathError('forbidden', `this token sees tenant ${ownTenant} only`);
  const state = param('state');
  if (state !== undefined && !STATES.includes(state as FleetState))
    throw bad(`query parameter state must be one of ${STATES.join(', ')}`);
  const q: FleetQuery = { limit };
  const t = ownTenant ?? tenant;
  if (t !== undefined) q.tenant = t;
  const agent = ident('agent');
  if (agent !== undefined) q.agent = agent;
  if (state !== undefined) q.state = state as FleetState;
  const run = ident('run');
  if (run !== undefined) q.run = run;
  const cursor = param('cursor');
  if (cursor !== undefined && cursor !== '') q.after = decodeCursor(cursor);
  return q;
}

/** The cursor after `k`: opaque to clients (base64url of the key), stable while workers come and go. */
function encodeCursor(k: FleetKey): string {
  return Buffer.from(JSON.stringify(k)).toString('base64url');
}

function decodeCursor(text: string): FleetKey {
  let k: unknown;
  try {
    k = JSON.parse(Buffer.from(text, 'base64url').toString('utf8'));
  } catch {
    k = null;
  }
  if (!Array.isArray(k) || k.length !== 3 || !k.every((x) => typeof x === 'string' && isIdentifier(x)))
    throw new KillpathError(
      'invalid_request',
      'query parameter cursor is not one this server gave (pass a page nextCursor as is)',
    );
  return k as unknown as FleetKey;
}
