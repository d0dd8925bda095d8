/**
 * What the console shows and offers, as plain functions of the API's answers: who may act on
 * what, the scope string of each target, the directive a dialog sends, the fleet as a tree.
 * No DOM here, so all of it is unit-tested under Node.
 */
import {
  LEVELS,
  RELEASE_PARTS,
  coversRun,
  flagWords,
  formatRelease,
  levelRank,
  type Directive,
  type FleetGroup,
  type FleetState,
  type FleetWorker,
  type IssueDirectiveBody,
  type Level,
  type Principal,
  type Rate,
  type ReleasePart,
  type RunReport,
  type WorkerFlags,
} from '@killpath/protocol';

/** One worker of `GET /v1/fleet`. */
export type FleetWorkerView = FleetWorker;

/** Something the operator can act on. A tool is any target narrowed to some capabilities. */
export type Target =
  | { kind: 'global' }
  | { kind: 'tenant'; tenant: string }
  | { kind: 'agent'; tenant: string; agent: string }
  | { kind: 'run'; tenant: string; run: string }
  | { kind: 'feature'; tenant: string; feature: string }
  | { kind: 'release'; tenant: string; part: ReleasePart; value: string };

/** The scope string of `POST /v1/directives` for a target. */
export function targetScope(t: Target): string {
  switch (t.kind) {
    case 'global':
      return 'global';
    case 'tenant':
      return `tenant:${t.tenant}`;
    case 'agent':
      return `agent:${t.tenant}/${t.agent}`;
    case 'run':
      return `run:${t.run}`;
    case 'feature':
      return `feature:${t.feature}`;
    case 'release':
      return `release:${t.part}=${t.value}`;
  }
}

/** The tenant a target belongs to; null for global (every tenant). */
export function targetTenant(t: Target): string | null {
  return t.kind === 'global' ? null : t.tenant;
}

/** Words for a target, as in "Kill run ticket-1" or "Halt agent acme/support-bot". */
export function targetLabel(t: Target): string {
  switch (t.kind) {
    case 'global':
      return 'every tenant (global)';
    case 'tenant':
      return `tenant ${t.tenant}`;
    case 'agent':
      return `agent ${t.tenant}/${t.agent}`;
    case 'run':
      return `run ${t.run}`;
    case 'feature':
      return `feature ${t.feature} in tenant ${t.tenant}`;
    case 'release':
      return `release ${t.part}=${t.value} in tenant ${t.tenant}`;
  }
}

/** True when the principal may issue or clear directives confined to `tenant` (null: every tenant). Mirrors the server's policy. */
export function canAct(p: Principal, tenant: string | null): boolean {
  if (p.role === 'admin') return true;
  return p.role === 'operator' && tenant !== null && tenant === p.tenant;
}

/** The ladder levels the principal is offered at a target: none for viewers and for other tenants. */
export function levelsOffered(p: Principal, t: Target): Level[] {
  return canAct(p, targetTenant(t)) ? [...LEVELS] : [];
}

/** True when acting on the target needs a break-glass attestation (it spans every tenant). */
export function needsBreakGlass(t: Target | Directive): boolean {
  return 'kind' in t ? t.kind === 'global' : t.tenant === null;
}

/** True when the principal is offered a resume of this directive. */
export function canResume(p: Principal, d: Directive): boolean {
  return d.clearedAt === null && canAct(p, d.tenant);
}

/** One line about each level, shown beside its choice in the action dialog. */
export const LEVEL_HELP: Record<Level, string> = {
  throttle: 'limit effects to a rate',
  degrade: 'revoke capabilities (read-only when no tools are named)',
  isolate: 'cut the agent off from the outside (egress)',
  halt: 'stop: refuse new effects, abort writes in flight, after an optional grace',
  freeze: 'stop every process at once and keep its memory for evidence (killpath inspect); resume thaws it',
  kill: 'stop now and end the process',
};

/** What the action dialog holds; every field as typed. */
export interface ActionForm {
  level: Level;
  /** Comma- or space-separated capabilities; empty for every effect. */
  capabilities: string;
  reason: string;
  justification: string;
  /** Milliseconds, empty for the server's default. */
  graceMs: string;
  drain: 'discard' | 'drain';
  perSecond: string;
  per: 'run' | 'agent';
  breakGlass: string;
}

/** A fresh form for a level. */
export function emptyForm(level: Level): ActionForm {
  return {
    level,
    capabilities: '',
    reason: '',
    justification: '',
    graceMs: '',
    drain: 'discard',
    perSecond: '',
    per: 'run',
    breakGlass: '',
  };
}

/** Body of `POST /v1/directives` as the console sends it: the protocol's, derived from the schema the control plane checks it with. */
export type IssueBody = IssueDirectiveBody;

/** Field-by-field problems of a form. */
export type FormErrors = Partial<Record<keyof ActionForm, string>>;

const IDENT = /^[A-Za-z0-9._:@-]{1,128}$/;

/** True when the level takes a grace period (the halts). */
export function takesGrace(level: Level): boolean {
  return level === 'halt' || level === 'kill';
}

/**
 * Turns a form into a request body, or says what is wrong with it. A justification is always
 * required; so is a break-glass attestation for a global target.
 */
export function directiveBody(
  t: Target,
  f: ActionForm,
): { ok: true; body: IssueBody } | { ok: false; errors: FormErrors } {
  const errors: FormErrors = {};
  const justification = f.justification.trim();
  if (justification === '') errors.justification = 'A justification is required.';
  else if (justification.length > 4000)
    errors.justification = 'The justification must be at most 4000 characters.';
  if (f.reason.trim().length > 500) errors.reason = 'The reason must be at most 500 characters.';
  const caps = f.capabilities.split(/[\s,]+/).filter((s) => s !== '');
  const badCap = caps.find((c) => !IDENT.test(c));
  if (badCap !== undefined)
    errors.capabilities = `"${badCap}" is not a capability name (letters, digits and ._:@-).`;
  let graceMs: number | undefined;
  if (takesGrace(f.level) && f.graceMs.trim() !== '') {
    graceMs = Number(f.graceMs);
    if (!Number.isInteger(graceMs) || graceMs < 0 || graceMs > 3_600_000)
      errors.graceMs = 'The grace must be a whole number of milliseconds from 0 to 3600000.';
  }
  let rate: Rate | undefined;
  if (f.level === 'throttle') {
    const perSecond = Number(f.perSecond);
    if (f.perSecond.trim() === '' || !Number.isFinite(perSecond) || perSecond <= 0 || perSecond > 1e6)
      errors.perSecond = 'A throttle needs a rate above 0 effects per second.';
    else rate = { perSecond, per: f.per };
  }
  const breakGlass = f.breakGlass.trim();
  if (needsBreakGlass(t) && breakGlass === '')
    errors.breakGlass = 'A break-glass attestation is required for a global directive.';
  if (Object.keys(errors).length > 0) return { ok: false, errors };
  const scope = targetScope(t);
  const body: IssueBody = {
    level: f.level,
    scope,
    reason: f.reason.trim() || `${f.level} ${scope} from the web console`,
    justification,
  };
  if (caps.length > 0) body.capabilities = caps;
  if (graceMs !== undefined) body.graceMs = graceMs;
  if (f.level === 'halt') body.drain = f.drain;
  if (rate) body.rate = rate;
  if (needsBreakGlass(t)) body.breakGlass = breakGlass;
  // Run, feature and release scopes carry their tenant beside the scope: confine them to the one shown.
  if (t.kind === 'run' || t.kind === 'feature' || t.kind === 'release') body.tenant = t.tenant;
  return { ok: true, body };
}

/**
 * Body of `POST /v1/directives/{id}/resume`, or what is wrong with the form. With `sameRelease`
 * the operator says the release the directive stopped is not the cause: the justification is
 * sent as the reason resuming onto it is safe (audited as an override).
 */
export function resumeBody(
  d: Directive,
  justification: string,
  breakGlass: string,
  sameRelease = false,
):
  | { ok: true; body: { justification: string; breakGlass?: string; sameRelease?: string } }
  | { ok: false; errors: { justification?: string; breakGlass?: string } } {
  const errors: { justification?: string; breakGlass?: string } = {};
  if (justification.trim() === '') errors.justification = 'A justification is required.';
  if (needsBreakGlass(d) && breakGlass.trim() === '')
    errors.breakGlass = 'A break-glass attestation is required to resume a global directive.';
  if (Object.keys(errors).length > 0) return { ok: false, errors };
  return {
    ok: true,
    body: {
      justification: justification.trim(),
      ...(needsBreakGlass(d) ? { breakGlass: breakGlass.trim() } : {}),
      ...(sameRelease ? { sameRelease: justification.trim() } : {}),
    },
  };
}

/** Words for a run's or worker's state: stop levels read as halted. */
export function stateLabel(state: 'running' | Level | 'stale'): string {
  switch (state) {
    case 'running':
      return 'running';
    case 'stale':
      return 'stale (no contact)';
    case 'halt':
      return 'halted';
    case 'kill':
      return 'halted (kill)';
    case 'throttle':
      return 'throttled';
    case 'degrade':
      return 'degraded';
    case 'isolate':
      return 'isolated';
    case 'freeze':
      return 'frozen';
  }
}

/** Short words for a worker's flags (throttled, degraded, isolated), empty when none. */
export function flagLabels(flags: WorkerFlags | null | undefined): string[] {
  return flags ? flagWords(flags) : [];
}

/** The strongest active directive covering a run, as the control plane's switchboard says (not the worker). */
export function orderedLevel(
  directives: readonly Directive[],
  w: FleetWorkerView,
  r: RunReport,
): Directive | null {
  const run = {
    tenant: w.tenant,
    agent: w.agent,
    runId: r.runId,
    lineage: r.lineage,
    features: w.features,
    release: w.release ?? null,
  };
  let top: Directive | null = null;
  for (const d of directives) {
    if (d.clearedAt !== null || !coversRun(d, run)) continue;
    if (top === null || levelRank(d.level) > levelRank(top.level)) top = d;
  }
  return top;
}

/** One run in an agent's tree, depth-first, children under their parent. */
export interface RunRow {
  run: RunReport;
  worker: FleetWorkerView;
  depth: number;
  /** The parent lives outside this agent (another agent or process not shown here). */
  parentElsewhere: boolean;
}

/** One agent of a tenant: its workers and its runs as a tree. */
export interface AgentNode {
  tenant: string;
  agent: string;
  /** Its workers on the page shown. */
  workers: FleetWorkerView[];
  runs: RunRow[];
  /** Its counts in the whole view (the server's), or null when the server gave none. */
  count: FleetGroup | null;
}

/** One tenant: its agents, the features its workers declare and the release parts they run. */
export interface TenantNode {
  tenant: string;
  agents: AgentNode[];
  /** Workers and runs of the tenant in the whole view (its groups' counts; the page's when none). */
  workers: number;
  runs: number;
  features: string[];
  /** Every release part value its workers run (a `release:PART=V` target each), sorted. */
  releases: { part: ReleasePart; value: string }[];
}

/** A worker's release in words (`code=4f2a1c,prompt=v42`), or `—` when it declared none. */
export function releaseText(w: Pick<FleetWorkerView, 'release'>): string {
  return w.release === undefined || Object.keys(w.release).length === 0 ? '—' : formatRelease(w.release);
}

/**
 * Groups the fleet into tenants, agents and run trees, sorted by name. `alsoTenants` adds
 * tenants with no worker (the operator's own, tenants named by directives).
 */
export function fleetTree(
  workers: readonly FleetWorkerView[],
  alsoTenants: readonly string[] = [],
  groups: readonly FleetGroup[] = [],
): TenantNode[] {
  const tenants = new Map<string, Map<string, FleetWorkerView[]>>();
  const counts = new Map<string, FleetGroup>();
  for (const t of alsoTenants) tenants.set(t, new Map());
  for (const g of groups) {
    counts.set(`${g.tenant}/${g.agent}`, g);
    let agents = tenants.get(g.tenant);
    if (!agents) tenants.set(g.tenant, (agents = new Map()));
    if (!agents.has(g.agent)) agents.set(g.agent, []);
  }
  for (const w of workers) {
    let agents = tenants.get(w.tenant);
    if (!agents) tenants.set(w.tenant, (agents = new Map()));
    let list = agents.get(w.agent);
    if (!list) agents.set(w.agent, (list = []));
    list.push(w);
  }
  const byName = (a: string, b: string) => a.localeCompare(b);
  return [...tenants.keys()].sort(byName).map((tenant) => {
    const agents = tenants.get(tenant)!;
    const features = new Set<string>();
    const releases = new Map<string, { part: ReleasePart; value: string }>();
    const nodes = [...agents.keys()].sort(byName).map((agent) => {
      const ws = agents.get(agent)!;
      for (const w of ws) {
        for (const f of w.features) features.add(f);
        for (const part of RELEASE_PARTS) {
          const value = w.release?.[part];
          if (value !== undefined) releases.set(`${part}=${value}`, { part, value });
        }
      }
      return {
        tenant,
        agent,
        workers: ws,
        runs: runTree(ws),
        count: counts.get(`${tenant}/${agent}`) ?? null,
      };
    });
    return {
      tenant,
      agents: nodes,
      workers: nodes.reduce((n, a) => n + (a.count?.workers ?? a.workers.length), 0),
      runs: nodes.reduce(
        (n, a) => n + (a.count?.runs ?? a.workers.reduce((m, w) => m + w.runs.length, 0)),
        0,
      ),
      features: [...features].sort(byName),
      releases: [...releases.keys()].sort(byName).map((k) => releases.get(k)!),
    };
  });
}

function runTree(workers: readonly FleetWorkerView[]): RunRow[] {
  const all: { run: RunReport; worker: FleetWorkerView }[] = [];
  for (const w of workers) for (const r of w.runs) all.push({ run: r, worker: w });
  all.sort((a, b) => a.run.runId.localeCompare(b.run.runId));
  const ids = new Set(all.map((x) => x.run.runId));
  const children = new Map<string, typeof all>();
  const roots: typeof all = [];
  for (const x of all) {
    const parent = x.run.parentRunId;
    if (parent !== null && ids.has(parent) && parent !== x.run.runId) {
      let list = children.get(parent);
      if (!list) children.set(parent, (list = []));
      list.push(x);
    } else roots.push(x);
  }
  const out: RunRow[] = [];
  const seen = new Set<string>();
  const walk = (x: (typeof all)[number], depth: number) => {
    if (seen.has(x.run.runId)) return;
    seen.add(x.run.runId);
    out.push({
      run: x.run,
      worker: x.worker,
      depth,
      parentElsewhere: depth === 0 && x.run.parentRunId !== null,
    });
    for (const c of children.get(x.run.runId) ?? []) walk(c, depth + 1);
  };
  for (const r of roots) walk(r, 0);
  // Runs caught in a parent cycle (a bad report) are still shown.
  for (const x of all) walk(x, 0);
  return out;
}

/** Milliseconds as "0.4 s ago", "12 s ago", "3 min ago"; "never" for null. */
export function agoText(ms: number | null): string {
  if (ms === null) return 'no heartbeat yet';
  if (ms < 10_000) return `${(ms / 1000).toFixed(1)} s ago`;
  if (ms < 120_000) return `${Math.round(ms / 1000)} s ago`;
  return `${Math.round(ms / 60_000)} min ago`;
}

/** Effects per second for display: "—" when unknown. */
export function rateText(rate: number | null): string {
  if (rate === null) return '—';
  if (rate === 0) return '0/s';
  return rate < 10 ? `${rate.toFixed(1)}/s` : `${Math.round(rate)}/s`;
}

/** An API error as one plain sentence for the page. */
export function errorText(err: { status?: number; code?: string; message?: string }): string {
  const code = err.code
    ? ` (${err.code}${err.status ? `, HTTP ${err.status}` : ''})`
    : err.status
      ? ` (HTTP ${err.status})`
      : '';
  return `${err.message ?? 'request failed'}${code}`;
}

/** Counts by state in words, most severe first: "2 halted, 498 running". */
export function statesText(states: Partial<Record<FleetState, number>>): string {
  const order: FleetState[] = ['stale', ...[...LEVELS].reverse(), 'running'];
  return order
    .filter((s) => (states[s] ?? 0) > 0)
    .map((s) => `${states[s]} ${stateLabel(s)}`)
    .join(', ');
}

/** Rows of a run search: the run found and the runs under it; the others of its worker are left out. */
export function runsMatching(rows: readonly RunRow[], runId: string): RunRow[] {
  return rows.filter((r) => r.run.runId === runId || r.run.lineage.includes(runId));
}

/**
 * "all N" or "N of M" for a list that may be cut (issue 18: never a silent cut); `exact` false
 * when the server's total is a lower bound ("N of at least M"). Without a total (an older
 * server), just "N".
 */
export function ofTotal(shown: number, total: number | undefined, exact = true): string {
  if (total === undefined) return String(shown);
  if (shown >= total && exact) return `all ${total}`;
  return `${shown} of ${exact ? '' : 'at least '}${total}`;
}
