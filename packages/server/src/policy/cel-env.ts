import { Environment } from '@marcbachmann/cel-js';

/**
 * The counters the supervisor keeps per subject, in this order in every bucket. Names are the
 * CEL field names (`run.tool_errors`).
 */
export const COUNTERS = [
  'steps',
  'tokens',
  'cost_usd',
  'tool_calls',
  'tool_errors',
  'auth_denials',
  'schema_violations',
  'anomalies',
  'revoked_denials',
] as const;

/** One counter's name. */
export type CounterName = (typeof COUNTERS)[number];

/** Index of each counter in a bucket. */
export const C = Object.freeze({
  steps: 0,
  tokens: 1,
  cost_usd: 2,
  tool_calls: 3,
  tool_errors: 4,
  auth_denials: 5,
  schema_violations: 6,
  anomalies: 7,
  revoked_denials: 8,
});

/** How many counters a bucket holds. */
export const N_COUNTERS = COUNTERS.length;

/** What a rule sees of one subject (a run, an agent or a tenant): totals and sliding windows. */
export interface SubjectSource {
  readonly kind: 'run' | 'agent' | 'tenant';
  /** The run id, the agent name or the tenant. */
  readonly id: string;
  readonly tenant: string;
  /** The agent (empty for a tenant). */
  readonly agent: string;
  /** Runs seen (1 for a run). */
  readonly runs: number;
  /** Highest anomaly score flagged (0 when none). */
  readonly anomalyScore: number;
  /** A counter's total since the subject was first seen. */
  total(counter: number): number;
  /** A counter's sum over the last `ms` (at the supervisor's bucket resolution). */
  windowed(counter: number, ms: number): number;
}

const int = (v: number): bigint => BigInt(Math.round(v));
const rate = (errors: number, calls: number): number => (calls === 0 ? 0 : errors / calls);

/** A subject as CEL sees it (`run`, `agent`, `tenant`): fields read through to its counters. */
export class CelSubject {
  readonly #s: SubjectSource;
  constructor(source: SubjectSource) {
    this.#s = source;
  }
  /** Internal: the source, for `window()`. */
  get source(): SubjectSource {
    return this.#s;
  }
  get id(): string {
    return this.#s.id;
  }
  get tenant(): string {
    return this.#s.tenant;
  }
  get agent(): string {
    return this.#s.agent;
  }
  get runs(): bigint {
    return BigInt(this.#s.runs);
  }
  get steps(): bigint {
    return int(this.#s.total(C.steps));
  }
  get tokens(): bigint {
    return int(this.#s.total(C.tokens));
  }
  get cost_usd(): number {
    return this.#s.total(C.cost_usd);
  }
  get tool_calls(): bigint {
    return int(this.#s.total(C.tool_calls));
  }
  get tool_errors(): bigint {
    return int(this.#s.total(C.tool_errors));
  }
  get tool_error_rate(): number {
    return rate(this.#s.total(C.tool_errors), this.#s.total(C.tool_calls));
  }
  get auth_denials(): bigint {
    return int(this.#s.total(C.auth_denials));
  }
  get revoked_denials(): bigint {
    return int(this.#s.total(C.revoked_denials));
  }
  get schema_violations(): bigint {
    return int(this.#s.total(C.schema_violations));
  }
  get anomalies(): bigint {
    return int(this.#s.total(C.anomalies));
  }
  get anomaly_score(): number {
    return this.#s.anomalyScore;
  }
}

/** `window(subject, "60s")`: the subject's counters over a sliding window. */
export class CelWindow {
  readonly #s: SubjectSource;
  readonly #ms: number;
  constructor(source: SubjectSource, ms: number) {
    this.#s = source;
    this.#ms = ms;
  }
  get seconds(): number {
    return this.#ms / 1000;
  }
  get steps(): bigint {
    return int(this.#s.windowed(C.steps, this.#ms));
  }
  get tokens(): bigint {
    return int(this.#s.windowed(C.tokens, this.#ms));
  }
  get cost_usd(): number {
    return this.#s.windowed(C.cost_usd, this.#ms);
  }
  get tool_calls(): bigint {
    return int(this.#s.windowed(C.tool_calls, this.#ms));
  }
  get tool_errors(): bigint {
    return int(this.#s.windowed(C.tool_errors, this.#ms));
  }
  get tool_error_rate(): number {
    return rate(this.#s.windowed(C.tool_errors, this.#ms), this.#s.windowed(C.tool_calls, this.#ms));
  }
  get auth_denials(): bigint {
    return int(this.#s.windowed(C.auth_denials, this.#ms));
  }
  get revoked_denials(): bigint {
    return int(this.#s.windowed(C.revoked_denials, this.#ms));
  }
  get schema_violations(): bigint {
    return int(this.#s.windowed(C.schema_violations, this.#ms));
  }
  get anomalies(): bigint {
    return int(this.#s.windowed(C.anomalies, this.#ms));
  }
}

/** `limits`: the run limits in force for the subject's agent (the policy's `limits` section). */
export class CelLimits {
  readonly #steps: bigint;
  readonly #cost: number;
  /** `null` for "no limit": CEL sees the largest int64 and +infinity, which nothing exceeds. */
  constructor(maxSteps: number | null, maxCostUsd: number | null) {
    this.#steps = maxSteps === null ? 9_223_372_036_854_775_807n : BigInt(maxSteps);
    this.#cost = maxCostUsd ?? Number.POSITIVE_INFINITY;
  }
  get max_steps(): bigint {
    return this.#steps;
  }
  get max_cost_usd(): number {
    return this.#cost;
  }
}

const SUBJECT_FIELDS = {
  id: 'string',
  tenant: 'string',
  agent: 'string',
  runs: 'int',
  steps: 'int',
  tokens: 'int',
  cost_usd: 'double',
  tool_calls: 'int',
  tool_errors: 'int',
  tool_error_rate: 'double',
  auth_denials: 'int',
  revoked_denials: 'int',
  schema_violations: 'int',
  anomalies: 'int',
  anomaly_score: 'double',
} as const;

const WINDOW_FIELDS = {
  seconds: 'double',
  steps: 'int',
  tokens: 'int',
  cost_usd: 'double',
  tool_calls: 'int',
  tool_errors: 'int',
  tool_error_rate: 'double',
  auth_denials: 'int',
  revoked_denials: 'int',
  schema_violations: 'int',
  anomalies: 'int',
} as const;

/** The longest sliding window a rule may ask for, in ms. */
export const MAX_WINDOW_MS = 3_600_000;

const DURATION = /^(\d+(?:\.\d+)?)(ms|s|m|h)$/;
const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
const parsed = new Map<string, number>();

/**
 * Parses a window length: `500ms`, `60s`, `5m`, `1h`.
 * @throws Error for another format, a zero length or one above {@link MAX_WINDOW_MS}
 */
export function windowMs(text: string): number {
  const hit = parsed.get(text);
  if (hit !== undefined) return hit;
  const m = DURATION.exec(text);
  const ms = m ? Number(m[1]) * UNIT_MS[m[2]!]! : Number.NaN;
  if (!(ms > 0) || ms > MAX_WINDOW_MS)
    throw new Error(`window length "${text}" must be like 500ms, 60s, 5m or 1h, at most 1h`);
  if (parsed.size < 1000) parsed.set(text, ms);
  return ms;
}

/** Types, variables and functions every policy's rules share; a policy adds its `params`. */
function baseEnvironment(): Environment {
  return new Environment({
    limits: { maxAstNodes: 500, maxDepth: 32, maxListElements: 100, maxMapEntries: 100, maxCallArguments: 8 },
  })
    .registerType('Subject', { ctor: CelSubject, fields: SUBJECT_FIELDS })
    .registerType('Window', { ctor: CelWindow, fields: WINDOW_FIELDS })
    .registerType('Limits', { ctor: CelLimits, fields: { max_steps: 'int', max_cost_usd: 'double' } })
    .registerVariable('run', 'Subject', { description: 'the run whose telemetry is evaluated' })
    .registerVariable('agent', 'Subject', { description: "the run's agent, over all its runs" })
    .registerVariable('tenant', 'Subject', { description: "the run's tenant, over all its agents" })
    .registerVariable('limits', 'Limits', {
      description: "the run limits of the run's agent (policy section limits)",
    })
    .registerFunction(
      'window(Subject, string): Window',
      (s: CelSubject, d: string) => new CelWindow(s.source, windowMs(d)),
      {
        description: 'the subject counters over the last duration, e.g. window(run, "60s").tool_error_rate',
      },
    );
}

let base: Environment | null = null;

/** A scalar a policy's `params` may hold. */
export type ParamValue = number | string | boolean;

/**
 * The CEL environment of one policy: the shared one plus `params.<name>` with the types of
 * the given values (whole numbers are `int`, other numbers `double`).
 */
export function policyEnvironment(params: Record<string, ParamValue>): Environment {
  base ??= baseEnvironment();
  const fields: Record<string, string> = {};
  const values: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(params)) {
    if (typeof v === 'number') {
      fields[k] = Number.isSafeInteger(v) ? 'int' : 'double';
      values[k] = Number.isSafeInteger(v) ? BigInt(v) : v;
    } else {
      fields[k] = typeof v === 'string' ? 'string' : 'bool';
      values[k] = v;
    }
  }
  const Params = class Params {};
  const env = base.clone().registerType('Params', { ctor: Params, fields });
  env.registerConstant('params', 'Params', Object.assign(new Params(), values));
  return env;
}

/** The variables one evaluation sees. */
export interface RuleContext {
  run: CelSubject;
  agent: CelSubject;
  tenant: CelSubject;
  limits: CelLimits;
}
