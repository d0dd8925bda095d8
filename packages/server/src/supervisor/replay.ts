import { z } from 'zod';
import { KillpathError, isIdentifier, type RunTelemetry } from '@killpath/protocol';
import { createLogger } from '../log.ts';
import type { CompiledPolicy } from '../policy/policy.ts';
import { Supervisor, type Fire } from './supervisor.ts';

/**
 * One recorded run update, as `killpath serve --record-telemetry` writes it: when it arrived,
 * whose it is, and the run's totals on that worker. Counters left out count as 0; `workerId`
 * defaults to `recorded`.
 */
export interface RecordedUpdate extends RunTelemetry {
  /** Arrival time: ISO 8601 or epoch ms. */
  at: number;
  tenant: string;
  agent: string;
  workerId: string;
}

const n = z.number().min(0).default(0);
const Line = z.object({
  at: z.union([z.number(), z.string().refine((s) => !Number.isNaN(Date.parse(s)), 'an ISO 8601 time')]),
  tenant: z.string().refine(isIdentifier, 'an identifier'),
  agent: z.string().refine(isIdentifier, 'an identifier'),
  workerId: z.string().refine(isIdentifier, 'an identifier').default('recorded'),
  runId: z.string().refine(isIdentifier, 'an identifier'),
  steps: n,
  tokens: n,
  costUsd: n,
  toolCalls: n,
  toolErrors: n,
  authDenials: n,
  revokedDenials: n,
  schemaViolations: n,
  anomalies: n,
  anomalyScore: z.number().default(0),
  anomalyDetail: z.string().nullable().default(null),
  localHalt: z.unknown().optional(),
});

/**
 * Parses JSON lines of recorded updates (blank lines and lines starting with `#` are skipped).
 * @throws KillpathError `invalid_request` naming the first bad line
 */
export function parseTelemetryLines(text: string): RecordedUpdate[] {
  const out: RecordedUpdate[] = [];
  text.split('\n').forEach((raw, i) => {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) return;
    let v: unknown;
    try {
      v = JSON.parse(line);
    } catch {
      throw new KillpathError('invalid_request', `events line ${i + 1}: not JSON`);
    }
    const r = Line.safeParse(v);
    if (!r.success) {
      const issue = r.error.issues[0]!;
      throw new KillpathError(
        'invalid_request',
        `events line ${i + 1}: ${issue.path.join('.') || '(line)'}: ${issue.message}`,
      );
    }
    const d = r.data;
    out.push({ ...d, at: typeof d.at === 'number' ? d.at : Date.parse(d.at), localHalt: null });
  });
  return out;
}

/** What a replay found. */
export interface ReplayResult {
  updates: number;
  /** Every fire (enforce) and shadow fire, in order. */
  fires: Fire[];
  /** Per rule: enforce fires, shadow fires and evaluation errors. */
  rules: Record<string, { fired: number; shadow: number; errors: number; lastError: string | null }>;
}

/**
 * Evaluates a policy offline against recorded updates, in arrival order on their own clock
 * (windows see the recorded times), with the same supervisor the control plane runs but no
 * control plane: nothing is issued, fires are only collected. Enforce and shadow rules both
 * report what they would do.
 */
export function replayTelemetry(policy: CompiledPolicy, updates: readonly RecordedUpdate[]): ReplayResult {
  const sorted = [...updates].sort((a, b) => a.at - b.at);
  let now = sorted[0]?.at ?? 0;
  const fires: Fire[] = [];
  const sup = new Supervisor({
    log: createLogger('silent'),
    policy: () => ({ version: 0, policy }),
    now: () => now,
    onFire: (f) => fires.push({ ...f }),
  });
  for (const u of sorted) {
    now = u.at;
    const { at: _at, tenant, agent, workerId, ...run } = u;
    sup.ingest({ workerId, tenant, agent }, [run]);
  }
  const status = sup.status();
  const rules: ReplayResult['rules'] = {};
  for (const r of policy.rules) {
    const s = status.rules[r.name];
    rules[r.name] = {
      fired: s?.fired ?? 0,
      shadow: s?.shadow ?? 0,
      errors: s?.errors ?? 0,
      lastError: s?.lastError ?? null,
    };
  }
  return { updates: sorted.length, fires, rules };
}
