import { KillpathError } from './errors.ts';
import { isReleasePart, isReleaseValue, type Release, type ReleasePart } from './release.ts';

/**
 * What a directive covers, as a tagged union. The string form (see {@link formatScope}) is
 * `global`, `tenant:T`, `agent:T/A`, `run:R`, `feature:F`, or `release:PART=V` (PART one of
 * `code`, `model`, `prompt`), optionally inside one agent: `release:PART=V;agent=A` (the agent's
 * tenant is the directive's {@link Coverage.tenant}, which such a scope requires).
 */
export type Scope =
  | { kind: 'global' }
  | { kind: 'tenant'; tenant: string }
  | { kind: 'agent'; tenant: string; agent: string }
  | { kind: 'run'; run: string }
  | { kind: 'feature'; feature: string }
  | { kind: 'release'; part: ReleasePart; value: string; agent: string | null };

/** Every kind of scope, in the order people meet them: drills and tests iterate this one list. */
export const SCOPE_KINDS = ['global', 'tenant', 'agent', 'run', 'feature', 'release'] as const;

/** One kind of {@link Scope}. */
export type ScopeKind = (typeof SCOPE_KINDS)[number];

// SCOPE_KINDS and Scope name the same kinds: adding one to either without the other fails to compile.
const sameKinds: [ScopeKind, Scope['kind']] extends [Scope['kind'], ScopeKind] ? true : never = true;
void sameKinds;

/** Identifiers: letters, digits and `._:@-`, 1 to 128 characters, no `/`. */
const ID = /^[A-Za-z0-9._:@-]{1,128}$/;

/** True when `s` is a valid tenant, agent, run, feature or capability identifier. */
export function isIdentifier(s: string): boolean {
  return ID.test(s);
}

/**
 * Capability names: an identifier (`crm.update`, `llm`), or two identifiers joined by one `/`
 * for a tool namespaced by its server (`mcp:github/create_issue`). At most 257 characters.
 */
const CAPABILITY = /^[A-Za-z0-9._:@-]{1,128}(?:\/[A-Za-z0-9._:@-]{1,128})?$/;

/** True when `s` is a valid capability name (see {@link isIdentifier}; one `/` may namespace it). */
export function isCapability(s: string): boolean {
  return CAPABILITY.test(s);
}

/**
 * Parses the string form of a scope.
 * @throws KillpathError with code `invalid_request` when the text is not a scope.
 */
export function parseScope(text: string): Scope {
  if (text === 'global') return { kind: 'global' };
  const colon = text.indexOf(':');
  const kind = colon < 0 ? text : text.slice(0, colon);
  const rest = colon < 0 ? '' : text.slice(colon + 1);
  const bad = (why: string): never => {
    throw new KillpathError('invalid_request', `invalid scope "${text}": ${why}`);
  };
  switch (kind) {
    case 'tenant':
      if (!ID.test(rest)) bad('expected tenant:T');
      return { kind: 'tenant', tenant: rest };
    case 'agent': {
      const slash = rest.indexOf('/');
      const tenant = rest.slice(0, slash);
      const agent = rest.slice(slash + 1);
      if (slash < 0 || !ID.test(tenant) || !ID.test(agent)) bad('expected agent:T/A');
      return { kind: 'agent', tenant, agent };
    }
    case 'run':
      if (!ID.test(rest)) bad('expected run:R');
      return { kind: 'run', run: rest };
    case 'feature':
      if (!ID.test(rest)) bad('expected feature:F');
      return { kind: 'feature', feature: rest };
    case 'release': {
      const semi = rest.indexOf(';');
      const main = semi < 0 ? rest : rest.slice(0, semi);
      const eq = main.indexOf('=');
      const part = eq < 0 ? main : main.slice(0, eq);
      const value = main.slice(eq + 1);
      if (eq < 0 || !isReleasePart(part)) bad('expected release:PART=V with PART code, model or prompt');
      if (!isReleaseValue(value)) bad('a release value is 1-128 characters of letters, digits and ._:@/+~-');
      let agent: string | null = null;
      if (semi >= 0) {
        const inside = rest.slice(semi + 1);
        if (!inside.startsWith('agent=') || !ID.test(inside.slice(6)))
          bad('expected release:PART=V or release:PART=V;agent=A');
        agent = inside.slice(6);
      }
      return { kind: 'release', part: part as ReleasePart, value, agent };
    }
    default:
      return bad('expected global, tenant:T, agent:T/A, run:R, feature:F or release:PART=V');
  }
}

/** The string form of a scope; `parseScope(formatScope(s))` round-trips. */
export function formatScope(scope: Scope): string {
  switch (scope.kind) {
    case 'global':
      return 'global';
    case 'tenant':
      return `tenant:${scope.tenant}`;
    case 'agent':
      return `agent:${scope.tenant}/${scope.agent}`;
    case 'run':
      return `run:${scope.run}`;
    case 'feature':
      return `feature:${scope.feature}`;
    case 'release':
      return `release:${scope.part}=${scope.value}${scope.agent === null ? '' : `;agent=${scope.agent}`}`;
  }
}

/**
 * Who a run is: its place in the ownership tree, its ancestry, the features it declared and the
 * release its worker runs. `lineage` lists the run's ancestors, root first, and travels with the
 * run across processes. Without a `release` (or a part of it) no `release:` scope naming that
 * part covers the run.
 */
export interface RunIdentity {
  tenant: string;
  agent: string;
  runId: string;
  lineage: readonly string[];
  features: readonly string[];
  release?: Readonly<Release> | null;
}

/**
 * The part of a directive that decides what it covers. `tenant` restricts a `feature`, `run` or
 * `release` scope to one tenant (null: every tenant, only an admin may issue that).
 */
export interface Coverage {
  scope: Scope;
  tenant: string | null;
  capabilities: readonly string[] | null;
}

/** True when the directive covers the run at all (any capability). */
export function coversRun(c: Coverage, run: RunIdentity): boolean {
  if (c.tenant !== null && c.tenant !== run.tenant) return false;
  const s = c.scope;
  switch (s.kind) {
    case 'global':
      return true;
    case 'tenant':
      return s.tenant === run.tenant;
    case 'agent':
      return s.tenant === run.tenant && s.agent === run.agent;
    case 'run':
      return s.run === run.runId || run.lineage.includes(s.run);
    case 'feature':
      return run.features.includes(s.feature);
    case 'release':
      return (s.agent === null || s.agent === run.agent) && run.release?.[s.part] === s.value;
  }
}

/** True when the directive covers this capability of the run. */
export function coversEffect(c: Coverage, run: RunIdentity, capability: string): boolean {
  if (!coversRun(c, run)) return false;
  return c.capabilities === null || c.capabilities.includes(capability);
}

/**
 * The tenant a scope belongs to, when the scope itself names one (tenant and agent scopes).
 * Run, feature and release scopes carry their tenant separately; global has none.
 */
export function scopeTenant(scope: Scope): string | null {
  return scope.kind === 'tenant' || scope.kind === 'agent' ? scope.tenant : null;
}

/**
 * True when a URL's hostname names this machine: `localhost` (and `*.localhost`), 127.0.0.0/8
 * or `::1`. Plain HTTP is only allowed to such hosts unless the caller says `insecure`.
 */
export function isLoopbackHost(hostname: string): boolean {
  const h = hostname.toLowerCase().replace(/^\[|\]$/g, '');
  if (h === 'localhost' || h.endsWith('.localhost')) return true;
  if (h === '::1' || h === '0:0:0:0:0:0:0:1') return true;
  const m = /^127\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(h);
  return m !== null && m.slice(1).every((x) => Number(x) <= 255);
}
