import { createHash } from 'node:crypto';
import { parseDocument } from 'yaml';
import { z } from 'zod';
import {
  APPROVAL_ACTIONS,
  KillpathError,
  LEVELS,
  isCapability,
  type ApprovalAction,
  type ApproverRole,
  isIdentifier,
  type Level,
  type Rate,
  type RunLimits,
} from '@killpath/protocol';
import { checkLevel } from '../ladder.ts';
import { policyEnvironment, windowMs, type ParamValue, type RuleContext } from './cel-env.ts';

/** Deadman settings of one agent: heartbeats expected every `intervalMs`; `missed` of them missed in a row trips it. */
export interface DeadmanSettings {
  enabled: boolean;
  intervalMs: number;
  missed: number;
  /**
   * The deadman halts the worker's runs; if the worker has not reported them halted this long
   * after, the halt escalates to a kill and the launcher ends the process (guarantee 8).
   */
  killAfterMs: number;
}

/** The deadman defaults: a heartbeat every 5 s, three missed trip it, the kill follows at once. */
export const DEFAULT_DEADMAN: DeadmanSettings = Object.freeze({
  enabled: true,
  intervalMs: 5000,
  missed: 3,
  killAfterMs: 0,
});

/** What a rule does when it fires: a directive, at a scope relative to the run it evaluated. */
export interface RuleAction {
  level: Level;
  scope: 'run' | 'agent' | 'tenant';
  graceMs?: number;
  capabilities?: string[];
  rate?: Rate;
}

/** One compiled rule. */
export interface CompiledRule {
  name: string;
  description: string | null;
  when: string;
  action: RuleAction;
  /** `shadow`: evaluated and recorded, never fired (canary of a policy change). */
  mode: 'enforce' | 'shadow';
  /** Notify the operator after the fact (default true). */
  notify: boolean;
  /** May take levels the automation policy reserves for people (isolate, kill by default). */
  critical: boolean;
  /** SHA-256 of the rule's content: a changed rule starts with fresh trigger state. */
  digest: string;
  /** Evaluates `when`; throws on an evaluation error (a missing value, a division by zero). */
  test(ctx: RuleContext): boolean;
}

/** Scope kinds a resume approval rule can name. */
export const APPROVAL_SCOPES = ['global', 'tenant', 'agent', 'feature', 'release', 'run'] as const;

/**
 * One approval rule: acts of `action` it covers (for a resume: directives at one of `scopes`, or
 * issued with break-glass when `breakGlass`) need `approvals` approvals from principals of
 * `approvers` other than the requester, within `withinMs` of the request.
 */
export interface ApprovalRule {
  name: string;
  description: string | null;
  action: ApprovalAction;
  /** Resume only: scope kinds covered (empty: none by scope). */
  scopes: (typeof APPROVAL_SCOPES)[number][];
  /** Resume only: also covers a directive issued with a break-glass attestation. */
  breakGlass: boolean;
  approvals: number;
  approvers: ApproverRole;
  withinMs: number;
  /** Whom to call for a second approval (the spec and runbook say it too). */
  contact: string | null;
}

/** A validated, compiled policy. */
export interface CompiledPolicy {
  /** SHA-256 of the source text. */
  digest: string;
  description: string | null;
  params: Record<string, ParamValue>;
  rules: CompiledRule[];
  /** How long the supervisor keeps per-second buckets: the longest window any rule asks for (at least 60 s). */
  retentionMs: number;
  /** The run limits for an agent (its own entry, then `T/*`, then the default). */
  limitsFor(tenant: string, agent: string): RunLimits;
  /** The deadman settings for an agent (its own entry, then `T/*`, then the default). */
  deadmanFor(tenant: string, agent: string): DeadmanSettings;
  /** The shortest heartbeat interval any agent is given (the watchdog ticks faster than this). */
  minIntervalMs: number;
  /** Approval rules (empty: every act is one person's, the default). */
  approvals: ApprovalRule[];
}

/** One problem found in a policy: where (`rules[2].when`) and what. */
export interface PolicyProblem {
  path: string;
  message: string;
}

const ms = (max: number) => z.number().int().min(0).max(max);
const agentKey = z.string().refine((k) => {
  const [t, a, ...rest] = k.split('/');
  return (
    rest.length === 0 &&
    t !== undefined &&
    a !== undefined &&
    isIdentifier(t) &&
    (a === '*' || isIdentifier(a))
  );
}, 'keys are TENANT/AGENT or TENANT/*');

const LimitsSpec = z.strictObject({
  maxSteps: z.number().int().min(1).max(1e12).nullable().optional(),
  maxCostUsd: z.number().min(0).max(1e12).nullable().optional(),
});

const DeadmanSpec = z.strictObject({
  enabled: z.boolean().optional(),
  intervalMs: z.number().int().min(50).max(3_600_000).optional(),
  missed: z.number().int().min(1).max(1000).optional(),
  killAfterMs: ms(3_600_000).optional(),
});

const ActionSpec = z.strictObject({
  level: z.enum(LEVELS),
  scope: z.enum(['run', 'agent', 'tenant']).default('run'),
  graceMs: ms(3_600_000).optional(),
  capabilities: z
    .array(z.string().refine(isCapability, 'capabilities are identifiers, or two joined by one /'))
    .min(1)
    .max(64)
    .optional(),
  rate: z
    .strictObject({ perSecond: z.number().positive().max(1e6), per: z.enum(['run', 'agent']) })
    .optional(),
});

const RuleSpec = z.strictObject({
  name: z.string().regex(/^[a-z][a-z0-9_]{0,63}$/, 'rule names are lower_snake_case, 1-64 characters'),
  description: z.string().max(1000).optional(),
  when: z.string().min(1).max(4000),
  action: ActionSpec,
  notify: z.boolean().default(true),
  mode: z.enum(['enforce', 'shadow']).default('enforce'),
  critical: z.boolean().default(false),
});

const ApprovalSpec = z.strictObject({
  name: z.string().regex(/^[a-z][a-z0-9_]{0,63}$/, 'rule names are lower_snake_case, 1-64 characters'),
  description: z.string().max(1000).optional(),
  action: z.enum(APPROVAL_ACTIONS),
  scopes: z.array(z.enum(APPROVAL_SCOPES)).max(APPROVAL_SCOPES.length).optional(),
  breakGlass: z.boolean().optional(),
  approvals: z.number().int().min(1).max(5).default(1),
  approvers: z.enum(['admin', 'operator']).default('admin'),
  within: z.string().regex(/^\d{1,6}(s|m|h)$/, 'a duration like 900s, 15m or 2h'),
  contact: z.string().min(1).max(500).optional(),
});

const PolicySpec = z.strictObject({
  version: z.literal(1).optional(),
  description: z.string().max(4000).optional(),
  params: z
    .record(
      z.string().regex(/^[a-z_][a-z0-9_]{0,63}$/, 'param names are lower_snake_case'),
      z.union([z.number(), z.string().max(1000), z.boolean()]),
    )
    .optional(),
  rules: z.array(RuleSpec).max(200).default([]),
  limits: z
    .strictObject({ default: LimitsSpec.optional(), agents: z.record(agentKey, LimitsSpec).optional() })
    .optional(),
  deadman: z
    .strictObject({ default: DeadmanSpec.optional(), agents: z.record(agentKey, DeadmanSpec).optional() })
    .optional(),
  approvals: z.array(ApprovalSpec).max(50).default([]),
});

/** Largest policy source accepted, in bytes. */
export const MAX_POLICY_BYTES = 48 * 1024;

const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');

/**
 * Parses and validates a policy (YAML), compiling every rule's `when` with CEL and type-checking
 * it against the rule variables (`run`, `agent`, `tenant`, `limits`, `params`, `window()`).
 * Returns every problem found, not only the first.
 */
export function parsePolicy(
  source: string,
): { ok: true; policy: CompiledPolicy } | { ok: false; problems: PolicyProblem[] } {
  if (Buffer.byteLength(source) > MAX_POLICY_BYTES)
    return {
      ok: false,
      problems: [{ path: '(file)', message: `a policy is at most ${MAX_POLICY_BYTES} bytes` }],
    };
  const doc = parseDocument(source, { prettyErrors: true, uniqueKeys: true });
  if (doc.errors.length > 0) {
    return {
      ok: false,
      problems: doc.errors.map((e) => ({
        path: e.linePos ? `line ${e.linePos[0].line}` : '(yaml)',
        message: e.message.split('\n')[0]!,
      })),
    };
  }
  const raw: unknown = doc.toJS({ maxAliasCount: 100 }) ?? {};
  const spec = PolicySpec.safeParse(raw);
  if (!spec.success) {
    return {
      ok: false,
      problems: spec.error.issues.map((i) => ({
        path:
          i.path
            .map((p) => (typeof p === 'number' ? `[${p}]` : `.${String(p)}`))
            .join('')
            .replace(/^\./, '') || '(root)',
        message: i.message,
      })),
    };
  }
  const s = spec.data;
  const problems: PolicyProblem[] = [];
  const params = s.params ?? {};
  const env = policyEnvironment(params);
  const rules: CompiledRule[] = [];
  const names = new Set<string>();
  let retentionMs = 60_000;
  s.rules.forEach((r, i) => {
    const at = `rules[${i}]`;
    if (names.has(r.name)) problems.push({ path: `${at}.name`, message: `duplicate rule name "${r.name}"` });
    names.add(r.name);
    try {
      checkLevel(
        { level: r.action.level, rate: r.action.rate, capabilities: r.action.capabilities },
        r.action.graceMs ?? 0,
        0,
      );
    } catch (err) {
      problems.push({ path: `${at}.action`, message: (err as Error).message });
    }
    if (r.action.level === 'isolate' && r.action.scope === 'run')
      problems.push({
        path: `${at}.action.scope`,
        message: 'isolate acts on processes: use scope agent or tenant',
      });
    const calls = r.when.match(/\bwindow\s*\(/g)?.length ?? 0;
    const literal = [...r.when.matchAll(/\bwindow\s*\(\s*(?:run|agent|tenant)\s*,\s*"([^"]*)"\s*\)/g)];
    if (literal.length !== calls)
      problems.push({
        path: `${at}.when`,
        message: 'window() takes a subject and a literal duration, e.g. window(run, "60s")',
      });
    for (const m of literal) {
      try {
        retentionMs = Math.max(retentionMs, windowMs(m[1]!));
      } catch (err) {
        problems.push({ path: `${at}.when`, message: (err as Error).message });
      }
    }
    let check;
    try {
      check = env.check(r.when);
    } catch (err) {
      problems.push({ path: `${at}.when`, message: firstLine(err) });
      return;
    }
    if (!check.valid) {
      problems.push({ path: `${at}.when`, message: firstLine(check.error) });
      return;
    }
    if (check.type !== 'bool') {
      problems.push({
        path: `${at}.when`,
        message: `must be a bool expression, this one is ${String(check.type)}`,
      });
      return;
    }
    const fn = env.parse(r.when);
    const action: RuleAction = { level: r.action.level, scope: r.action.scope };
    if (r.action.graceMs !== undefined) action.graceMs = r.action.graceMs;
    if (r.action.capabilities !== undefined) action.capabilities = r.action.capabilities;
    if (r.action.rate !== undefined) action.rate = r.action.rate;
    const content = { when: r.when, action, mode: r.mode, critical: r.critical, params };
    rules.push({
      name: r.name,
      description: r.description ?? null,
      when: r.when,
      action,
      mode: r.mode,
      notify: r.notify,
      critical: r.critical,
      digest: sha256(JSON.stringify(content)),
      test: (ctx) => fn(ctx) === true,
    });
  });
  const approvals = compileApprovals(s.approvals, problems);
  if (problems.length > 0) return { ok: false, problems };
  const limitDefault: RunLimits = {
    maxSteps: s.limits?.default?.maxSteps ?? null,
    maxCostUsd: s.limits?.default?.maxCostUsd ?? null,
  };
  const limitAgents = s.limits?.agents ?? {};
  const deadDefault: DeadmanSettings = { ...DEFAULT_DEADMAN, ...definedOnly(s.deadman?.default ?? {}) };
  const deadAgents = s.deadman?.agents ?? {};
  const limitsCache = new Map<string, RunLimits>();
  const deadCache = new Map<string, DeadmanSettings>();
  return {
    ok: true,
    policy: {
      digest: sha256(source),
      description: s.description ?? null,
      params,
      rules,
      retentionMs,
      minIntervalMs: Math.min(
        deadDefault.intervalMs,
        ...Object.values(deadAgents).map((d) => d.intervalMs ?? deadDefault.intervalMs),
      ),
      approvals,
      limitsFor(tenant, agent) {
        const key = `${tenant}/${agent}`;
        let hit = limitsCache.get(key);
        if (hit === undefined) {
          const own = limitAgents[key] ?? limitAgents[`${tenant}/*`] ?? {};
          hit = Object.freeze({
            maxSteps: own.maxSteps !== undefined ? own.maxSteps : limitDefault.maxSteps,
            maxCostUsd: own.maxCostUsd !== undefined ? own.maxCostUsd : limitDefault.maxCostUsd,
          });
          if (limitsCache.size < 10_000) limitsCache.set(key, hit);
        }
        return hit;
      },
      deadmanFor(tenant, agent) {
        const key = `${tenant}/${agent}`;
        let hit = deadCache.get(key);
        if (hit === undefined) {
          const own = deadAgents[key] ?? deadAgents[`${tenant}/*`] ?? {};
          hit = Object.freeze({ ...deadDefault, ...definedOnly(own) });
          if (deadCache.size < 10_000) deadCache.set(key, hit);
        }
        return hit;
      },
    },
  };
}

/**
 * Like {@link parsePolicy}, throwing the problems as one error.
 * @throws KillpathError `invalid_request` with `details: PolicyProblem[]`
 */
export function compilePolicy(source: string): CompiledPolicy {
  const r = parsePolicy(source);
  if (r.ok) return r.policy;
  const first = r.problems[0]!;
  throw new KillpathError(
    'invalid_request',
    `invalid policy: ${first.path}: ${first.message}${r.problems.length > 1 ? ` (and ${r.problems.length - 1} more)` : ''}`,
    { details: r.problems },
  );
}

const UNIT_MS: Record<string, number> = { s: 1000, m: 60_000, h: 3_600_000 };

/** Checks and compiles the approval rules, adding what is wrong to `problems`. */
function compileApprovals(specs: z.infer<typeof ApprovalSpec>[], problems: PolicyProblem[]): ApprovalRule[] {
  const names = new Set<string>();
  return specs.map((a, i) => {
    const at = `approvals[${i}]`;
    if (names.has(a.name))
      problems.push({ path: `${at}.name`, message: `duplicate approval rule "${a.name}"` });
    names.add(a.name);
    const withinMs = Number(a.within.slice(0, -1)) * UNIT_MS[a.within.slice(-1)]!;
    if (withinMs < 60_000 || withinMs > 24 * 3_600_000)
      problems.push({
        path: `${at}.within`,
        message: 'between 1m and 24h: long enough to reach someone, short enough to mean now',
      });
    if (a.action === 'resume' && (a.scopes ?? []).length === 0 && a.breakGlass !== true)
      problems.push({
        path: at,
        message:
          'a resume rule covers directives by scopes, by breakGlass: true, or both; this one covers none',
      });
    if (a.action === 'token.create_admin')
      problems.push({
        path: `${at}.action`,
        message:
          'minting admin tokens cannot be gated yet (the secret would reach the approver, not the requester): gate resume or policy.apply',
      });
    if (a.action !== 'resume' && (a.scopes !== undefined || a.breakGlass !== undefined))
      problems.push({ path: at, message: `scopes and breakGlass apply to resume rules, not ${a.action}` });
    return {
      name: a.name,
      description: a.description ?? null,
      action: a.action,
      scopes: [...new Set(a.scopes ?? [])],
      breakGlass: a.breakGlass ?? false,
      approvals: a.approvals,
      approvers: a.approvers,
      withinMs,
      contact: a.contact ?? null,
    };
  });
}

function definedOnly<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

function firstLine(err: unknown): string {
  const msg = err instanceof Error ? err.message : String(err);
  return msg.split('\n')[0]!.trim();
}
