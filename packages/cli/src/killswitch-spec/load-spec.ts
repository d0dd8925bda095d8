/**
 * Reading, validating and using a kill-switch specification (see `./types.ts`): `parseSpec`
 * explains every error with its YAML line, `loadSpec` reads a file, `policyFromSpec` turns the
 * asynchronous triggers and the deadman into a supervisor policy.
 *
 * The file is long mostly because of {@link FIELDS}: one plain-words explanation per field, so
 * that every error says what is wrong, what is allowed and why it matters.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { LineCounter, isAlias, isMap, isSeq, parseDocument, type Document } from 'yaml';
import { z } from 'zod';
import { KillpathError, canonicalJson, isIdentifier } from '@killpath/protocol';
import {
  SPEC_SCOPES,
  SPEC_TRIGGERS,
  type KillSwitchSpec,
  type SpecTrigger,
  type SpecTriggerSetting,
} from './types.ts';

/** One problem in a spec: where (`agents[1].level`), on which line of the file (1-based), and what. */
export interface SpecProblem {
  path: string;
  line: number | null;
  message: string;
}

/** A spec that does not validate; `errors` lists every problem found, not only the first. */
export class SpecError extends KillpathError {
  readonly errors: SpecProblem[];
  readonly file: string | null;

  constructor(errors: SpecProblem[], file: string | null = null) {
    const first = errors[0];
    const where = first
      ? `${first.line === null ? '' : `line ${first.line}: `}${first.path}: ${first.message}`
      : 'no details';
    super(
      'invalid_request',
      `${file ?? 'the spec'} is not a valid kill-switch spec: ${where}${errors.length > 1 ? ` (and ${errors.length - 1} more)` : ''}`,
      { details: errors },
    );
    this.errors = errors;
    this.file = file;
  }
}

/** A validated spec, the SHA-256 of its canonical JSON, and what deserves a look without being wrong. */
export interface LoadedSpec {
  spec: KillSwitchSpec;
  digest: string;
  warnings: string[];
}

/** Audit events a spec may require (the design's event names and the journal's). */
export const SPEC_AUDIT_EVENTS = [
  'operator_action',
  'kill_switch.fired',
  'directive.issued',
  'directive.cleared',
  'directive.escalated',
  'session.halted',
  'in_flight_tool_calls.status',
  'effect.intent',
  'effect.landed',
  'effect.aborted',
  'effect.compensated',
  'effect.denied',
  'timer.cancelled',
  'queue.discarded',
  'queue.drained',
  'memory.reverted',
  'memory.committed',
  'deadman.triggered',
  'watchdog.absent',
  'supervisor.absent',
  'policy.changed',
  'drill.recorded',
  'resume.refused',
  'resume.requested',
  'resume.approved',
  'approval.refused',
  'token.revoked',
  'process.killed',
] as const;

/** The three events seed 002 names as the minimum record of a halt. */
const REQUIRED_EVENTS = ['kill_switch.fired', 'session.halted', 'in_flight_tool_calls.status'] as const;

const TRIGGER_DEFAULTS: Record<SpecTrigger, SpecTriggerSetting> = {
  cost_cap: { enabled: true, threshold: 5, windowSeconds: null, mode: 'enforce' },
  loop_length: { enabled: true, threshold: 200, windowSeconds: null, mode: 'enforce' },
  tool_error_rate: { enabled: true, threshold: 0.3, windowSeconds: 60, mode: 'enforce' },
  auth_denial: { enabled: true, threshold: 1, windowSeconds: null, mode: 'enforce' },
  memory_schema: { enabled: true, threshold: 1, windowSeconds: null, mode: 'enforce' },
  anomaly: { enabled: true, threshold: 0.9, windowSeconds: null, mode: 'shadow' },
};

/** Explanation of one field: what is allowed, and why it matters. Keys use `[]` for any index. */
interface FieldDoc {
  allowed: string;
  why: string;
}

const TRIGGER_WHY = 'the supervisor halts a run that crosses it, and the operator is notified after the fact';
const FIELDS: Record<string, FieldDoc> = {
  '': {
    allowed: 'a mapping with name, agents and the six sections',
    why: 'see "killpath spec init" for a commented example',
  },
  version: {
    allowed: '1',
    why: 'the only spec format so far; a later format will be told apart by this number',
  },
  name: { allowed: 'a non-empty name', why: 'it titles the runbook and every drill record' },
  controlPlane: {
    allowed: 'a mapping with url and consoleUrl',
    why: "the runbook's commands and console link point there",
  },
  'controlPlane.url': {
    allowed: 'an http(s) URL',
    why: 'the runbook tells the on-call engineer to set KILLPATH_URL to it',
  },
  'controlPlane.consoleUrl': {
    allowed: 'an http(s) URL (default: url + "/")',
    why: 'the runbook sends the on-call engineer to the console there',
  },
  agents: {
    allowed: 'a list of at least one agent',
    why: 'a kill switch is specified per agent: its level sets its targets and cadence',
  },
  'agents[]': {
    allowed: 'a mapping with tenant, agent, level, description and tools',
    why: 'each entry is one agent the switch must stop',
  },
  'agents[].tenant': {
    allowed: '1-128 letters, digits or ._:@- (no /)',
    why: 'scopes name the agent as agent:TENANT/AGENT, so it must be a valid identifier',
  },
  'agents[].agent': {
    allowed: '1-128 letters, digits or ._:@- (no /)',
    why: 'scopes name the agent as agent:TENANT/AGENT, so it must be a valid identifier',
  },
  'agents[].level': {
    allowed: '3, 4 or 5',
    why: "the autonomy level sets the agent's signal-to-halt target and its rehearsal cadence",
  },
  'agents[].description': {
    allowed: 'one paragraph of text',
    why: 'it is the first thing the 02:00 on-call engineer, who has never seen this agent, reads',
  },
  'agents[].tools': {
    allowed: 'a list of tools (name, class)',
    why: 'the class of each tool decides what a halt does to a call in flight',
  },
  'agents[].tools[]': {
    allowed: 'a mapping with name and class (and compensation, description)',
    why: 'each entry is one tool the agent may call',
  },
  'agents[].tools[].name': {
    allowed: '1-128 letters, digits or ._:@-',
    why: 'it is the capability name the gate checks and a tool freeze names',
  },
  'agents[].tools[].class': {
    allowed: 'read, write or irreversible',
    why: 'reads may complete, writes are aborted, irreversible calls are cancelled in their cool-off',
  },
  'agents[].tools[].compensation': {
    allowed: 'the name of the action that undoes a landed write, or null',
    why: 'killpath compensations lists it for the operator after a halt',
  },
  'agents[].tools[].description': {
    allowed: 'one line of text, or null',
    why: 'the runbook lists what each tool does',
  },
  'agents[].memory': {
    allowed: 'true or false',
    why: 'an agent writing long-term memory has staged writes a halt reverts or commits',
  },
  'agents[].features': {
    allowed: 'a list of feature names (identifiers)',
    why: 'a feature-scoped halt stops the runs declaring them',
  },
  'agents[].features[]': { allowed: '1-128 letters, digits or ._:@-', why: 'feature:F scopes name it' },
  'agents[].command': {
    allowed: 'the command that starts one session, e.g. node dist/agent.js',
    why: "the runbook's replacement-session step runs it under killpath run",
  },
  scope: { allowed: 'a mapping with levels', why: 'component 1: what the switch can halt' },
  'scope.levels': {
    allowed: `a list of ${SPEC_SCOPES.join(', ')} that includes run and agent`,
    why: 'seed 002 requires at least per-session (run) and per-agent scopes',
  },
  'scope.levels[]': { allowed: SPEC_SCOPES.join(', '), why: 'these are the scopes the switch can act at' },
  triggers: {
    allowed: 'a mapping with synchronous, asynchronous and deadman',
    why: 'component 2: who or what can throw the switch',
  },
  'triggers.synchronous': {
    allowed: 'a list of console, api, cli',
    why: 'the operator paths the runbook documents (seed 002 asks for all three)',
  },
  'triggers.synchronous[]': {
    allowed: 'console, api or cli',
    why: 'these are the operator paths killpath offers',
  },
  'triggers.asynchronous': {
    allowed: `a mapping with any of ${SPEC_TRIGGERS.join(', ')}`,
    why: 'the runtime rules the supervisor evaluates',
  },
  'triggers.asynchronous.cost_cap': { allowed: 'a mapping with enabled, threshold, mode', why: TRIGGER_WHY },
  'triggers.asynchronous.cost_cap.threshold': {
    allowed: 'US dollars spent by a run, more than 0',
    why: TRIGGER_WHY,
  },
  'triggers.asynchronous.loop_length': {
    allowed: 'a mapping with enabled, threshold, mode',
    why: TRIGGER_WHY,
  },
  'triggers.asynchronous.loop_length.threshold': {
    allowed: 'a whole number of steps, at least 1',
    why: TRIGGER_WHY,
  },
  'triggers.asynchronous.tool_error_rate': {
    allowed: 'a mapping with enabled, threshold, windowSeconds, mode',
    why: TRIGGER_WHY,
  },
  'triggers.asynchronous.tool_error_rate.threshold': {
    allowed: 'a share of failed tool calls, more than 0 and at most 1',
    why: TRIGGER_WHY,
  },
  'triggers.asynchronous.tool_error_rate.windowSeconds': {
    allowed: 'a whole number of seconds from 1 to 3600',
    why: 'the error rate is measured over this sliding window',
  },
  'triggers.asynchronous.auth_denial': {
    allowed: 'a mapping with enabled, threshold, mode',
    why: TRIGGER_WHY,
  },
  'triggers.asynchronous.auth_denial.threshold': {
    allowed: 'a whole number of denials, at least 1 (1 = the first)',
    why: 'seed 002 halts on the first unauthorised tool call',
  },
  'triggers.asynchronous.memory_schema': {
    allowed: 'a mapping with enabled, threshold, mode',
    why: TRIGGER_WHY,
  },
  'triggers.asynchronous.memory_schema.threshold': {
    allowed: 'a whole number of violations, at least 1 (1 = the first)',
    why: 'seed 002 halts on the first memory-write schema violation',
  },
  'triggers.asynchronous.anomaly': { allowed: 'a mapping with enabled, threshold, mode', why: TRIGGER_WHY },
  'triggers.asynchronous.anomaly.threshold': {
    allowed: 'a detector score, more than 0 and at most 1',
    why: TRIGGER_WHY,
  },
  'triggers.asynchronous.*.enabled': {
    allowed: 'true or false',
    why: 'false leaves the rule out of the policy',
  },
  'triggers.asynchronous.*.mode': {
    allowed: 'enforce or shadow',
    why: 'shadow only records what the rule would have done (a canary)',
  },
  'triggers.deadman': {
    allowed: 'a mapping with intervalMs and missed',
    why: 'the watchdog halts and kills a worker whose heartbeats stop, a hung one included',
  },
  'triggers.deadman.intervalMs': {
    allowed: 'a whole number of ms from 100 to 3600000',
    why: 'heartbeats come this often; faster ones load the control plane for nothing',
  },
  'triggers.deadman.missed': {
    allowed: 'a whole number from 1 to 1000',
    why: 'this many missed heartbeats in a row trip the deadman',
  },
  mechanism: {
    allowed: 'a mapping with primary, fallback, killGraceMs, isolation, haltGraceMs, freeze',
    why: 'component 3: how the halt is carried out',
  },
  'mechanism.primary': {
    allowed: 'cooperative',
    why: "killpath's first mechanism is the SDK's gate before every effect",
  },
  'mechanism.fallback': {
    allowed: 'process-signal, network-isolation or none',
    why: 'seed 002: production agents pair the cooperative halt with a process-level fallback',
  },
  'mechanism.killGraceMs': {
    allowed: 'a whole number of ms from 0 to 600000',
    why: "the launcher's SIGTERM to SIGKILL grace",
  },
  'mechanism.isolation': {
    allowed: 'proxy, netns or none',
    why: "how a launched agent's egress is cut by an isolate",
  },
  'mechanism.haltGraceMs': {
    allowed: 'a whole number of ms from 0 to 3600000',
    why: 'queued tasks may drain inside it, and a worker not halted by then is killed',
  },
  'mechanism.freeze': {
    allowed: 'true or false',
    why: 'whether the runbook offers a freeze (stop every process at once, keep the evidence, then thaw or kill) and the drill rehearses it',
  },
  latency: {
    allowed: 'a mapping with signalToHaltMs and haltToRecoveryMs',
    why: 'component 4: the targets the drill measures against',
  },
  'latency.signalToHaltMs': {
    allowed: 'a mapping with keys 3, 4, 5',
    why: 'each autonomy level has its own signal-to-halt target',
  },
  'latency.signalToHaltMs.*': {
    allowed: 'a whole number of ms, more than 0',
    why: 'the drill fails a rehearsal slower than this',
  },
  'latency.haltToRecoveryMs': {
    allowed: 'a whole number of ms, more than 0',
    why: 'how soon a replacement session must be able to start after a halt',
  },
  sideEffects: {
    allowed: 'a mapping with inFlight, memory, queue, preserve, purge, auditEvents',
    why: 'component 5: what a halt leaves behind',
  },
  'sideEffects.inFlight': {
    allowed: 'a mapping with read, write, irreversible',
    why: 'what a halt does to calls in flight, per class',
  },
  'sideEffects.inFlight.read': {
    allowed: 'complete or abort',
    why: 'idempotent reads may be allowed to finish',
  },
  'sideEffects.inFlight.write': {
    allowed: 'abort or complete',
    why: 'a write in flight is aborted and its compensation listed',
  },
  'sideEffects.inFlight.irreversible': {
    allowed: 'cool-off or abort',
    why: 'seed 002: irreversible tools pass a cool-off a halt can cancel',
  },
  'sideEffects.memory': {
    allowed: 'revert or commit',
    why: 'what happens to memory writes staged in the current step',
  },
  'sideEffects.queue': { allowed: 'discard or drain', why: 'what happens to tasks queued for a halted run' },
  'sideEffects.preserve': { allowed: 'a list of text', why: 'what is kept for post-incident review' },
  'sideEffects.preserve[]': { allowed: 'text', why: 'what is kept for post-incident review' },
  'sideEffects.purge': { allowed: 'a list of text', why: 'what a halt drops' },
  'sideEffects.purge[]': { allowed: 'text', why: 'what a halt drops' },
  'sideEffects.auditEvents': {
    allowed: `a list of event names including ${REQUIRED_EVENTS.join(', ')}`,
    why: 'the drill checks every one of them is emitted',
  },
  'sideEffects.auditEvents[]': {
    allowed: 'an audit event name such as session.halted',
    why: 'the drill looks for it in the audit log',
  },
  rehearsal: {
    allowed: 'a mapping with cadenceDays, onChange, windowMs',
    why: 'component 6: a switch that is never fired is not a switch',
  },
  'rehearsal.cadenceDays': {
    allowed: 'a mapping with keys 3, 4, 5',
    why: 'each autonomy level has its own rehearsal cadence',
  },
  'rehearsal.cadenceDays.*': {
    allowed: 'a whole number of days, at least 1',
    why: 'a rehearsal is due this many days after the last one',
  },
  'rehearsal.onChange': {
    allowed: 'a list of tools, autonomy, memory',
    why: 'a material change makes a rehearsal due at once',
  },
  'rehearsal.onChange[]': {
    allowed: 'tools, autonomy or memory',
    why: 'the material changes seed 002 names',
  },
  'rehearsal.windowMs': {
    allowed: 'a whole number of ms from 100 to 3600000',
    why: 'how long the drill watches after each flip',
  },
  escalation: { allowed: 'a list of { when, contact }', why: "the runbook's decision tree of who to call" },
  'escalation[]': { allowed: 'a mapping with when and contact', why: 'one branch of the decision tree' },
  'escalation[].when': { allowed: 'a non-empty condition', why: 'the on-call engineer asks it in order' },
  'escalation[].contact': {
    allowed: 'a non-empty role and how to reach it',
    why: 'who to page when the condition holds',
  },
  approvals: {
    allowed: 'a list of approval rules (default none: one person resumes)',
    why: 'stopping stays one person; undoing a wide stop can take a second, named in the runbook',
  },
  'approvals[]': {
    allowed: 'a mapping with name, action, scopes/breakGlass, approvals, approvers, within and contact',
    why: 'one rule of the policy (killpath spec policy writes it)',
  },
  'approvals[].name': {
    allowed: 'lower_snake_case, 1-64 characters',
    why: 'the rule is named in every request',
  },
  'approvals[].action': {
    allowed: 'resume or policy.apply',
    why: 'the act the rule gates',
  },
  'approvals[].scopes': {
    allowed: 'a list of global, tenant, agent, feature, release, run (resume rules)',
    why: 'resuming a directive at these scopes needs the approval',
  },
  'approvals[].breakGlass': {
    allowed: 'true or false (resume rules)',
    why: 'resuming a directive issued with break-glass needs the approval',
  },
  'approvals[].approvals': { allowed: 'an integer from 1 to 5', why: 'how many other people must approve' },
  'approvals[].approvers': {
    allowed: 'admin or operator',
    why: 'who may approve: admins, or also operators of the tenant',
  },
  'approvals[].within': {
    allowed: 'a duration from 1m to 24h, like 15m',
    why: 'after it the request expires and must be asked again',
  },
  'approvals[].contact': {
    allowed: 'a non-empty role and how to reach it',
    why: 'the runbook says whom to call for the second approval',
  },
};

const text = z.string().trim().min(1);
const id = z.string().refine(isIdentifier);
const wholeMs = (min: number, max: number) => z.number().int().min(min).max(max);
const url = z.string().refine((s) => {
  try {
    return ['http:', 'https:'].includes(new URL(s).protocol);
  } catch {
    return false;
  }
});

const Tool = z.strictObject({
  name: id,
  class: z.enum(['read', 'write', 'irreversible']),
  compensation: text.nullable().default(null),
  description: text.nullable().default(null),
});

const Agent = z.strictObject({
  tenant: id,
  agent: id,
  level: z.union([z.literal(3), z.literal(4), z.literal(5)]),
  description: text,
  tools: z.array(Tool).default([]),
  memory: z.boolean().default(false),
  features: z.array(id).default([]),
  command: text.optional(),
});

function trigger(name: SpecTrigger, threshold: z.ZodNumber) {
  const d = TRIGGER_DEFAULTS[name];
  const base = {
    enabled: z.boolean().default(d.enabled),
    threshold: threshold.default(d.threshold),
    mode: z.enum(['enforce', 'shadow']).default(d.mode),
  };
  const shape =
    name === 'tool_error_rate'
      ? z.strictObject({
          ...base,
          windowSeconds: z.number().int().min(1).max(3600).default(d.windowSeconds!),
        })
      : z.strictObject(base);
  return shape.prefault({}).transform((t): SpecTriggerSetting => ({ windowSeconds: null, ...t }));
}

const perLevel = (schema: z.ZodNumber, d: [number, number, number]) =>
  z.strictObject({ 3: schema.default(d[0]), 4: schema.default(d[1]), 5: schema.default(d[2]) }).prefault({});

const Spec = z.strictObject({
  version: z.literal(1).default(1),
  name: text,
  controlPlane: z
    .strictObject({ url: url.default('http://127.0.0.1:7070'), consoleUrl: url.optional() })
    .prefault({}),
  agents: z.array(Agent).min(1),
  scope: z
    .strictObject({ levels: z.array(z.enum(SPEC_SCOPES)).default(['capability', 'run', 'agent', 'tenant']) })
    .prefault({}),
  triggers: z
    .strictObject({
      synchronous: z.array(z.enum(['console', 'api', 'cli'])).default(['console', 'api', 'cli']),
      asynchronous: z
        .strictObject({
          cost_cap: trigger('cost_cap', z.number().positive()),
          loop_length: trigger('loop_length', z.number().int().min(1)),
          tool_error_rate: trigger('tool_error_rate', z.number().positive().max(1)),
          auth_denial: trigger('auth_denial', z.number().int().min(1)),
          memory_schema: trigger('memory_schema', z.number().int().min(1)),
          anomaly: trigger('anomaly', z.number().positive().max(1)),
        })
        .prefault({}),
      deadman: z
        .strictObject({
          intervalMs: wholeMs(100, 3_600_000).default(5000),
          missed: z.number().int().min(1).max(1000).default(3),
        })
        .prefault({}),
    })
    .prefault({}),
  mechanism: z
    .strictObject({
      primary: z.literal('cooperative').default('cooperative'),
      fallback: z.enum(['process-signal', 'network-isolation', 'none']).default('process-signal'),
      killGraceMs: wholeMs(0, 600_000).default(2000),
      isolation: z.enum(['proxy', 'netns', 'none']).default('proxy'),
      haltGraceMs: wholeMs(0, 3_600_000).default(5000),
      freeze: z.boolean().default(true),
    })
    .prefault({}),
  latency: z
    .strictObject({
      signalToHaltMs: perLevel(z.number().int().positive(), [5000, 2000, 1000]),
      haltToRecoveryMs: z.number().int().positive().default(300_000),
    })
    .prefault({}),
  sideEffects: z
    .strictObject({
      inFlight: z
        .strictObject({
          read: z.enum(['complete', 'abort']).default('complete'),
          write: z.enum(['abort', 'complete']).default('abort'),
          irreversible: z.enum(['cool-off', 'abort']).default('cool-off'),
        })
        .prefault({}),
      memory: z.enum(['revert', 'commit']).default('revert'),
      queue: z.enum(['discard', 'drain']).default('discard'),
      preserve: z.array(text).default(['audit log', 'run journal', 'compensations list']),
      purge: z.array(text).default([]),
      auditEvents: z
        .array(z.string())
        .default(['operator_action', 'directive.issued', ...REQUIRED_EVENTS, 'effect.aborted']),
    })
    .prefault({}),
  rehearsal: z
    .strictObject({
      cadenceDays: perLevel(z.number().int().min(1), [91, 30, 30]),
      onChange: z.array(z.enum(['tools', 'autonomy', 'memory'])).default(['tools', 'autonomy', 'memory']),
      windowMs: wholeMs(100, 3_600_000).default(60_000),
    })
    .prefault({}),
  escalation: z.array(z.strictObject({ when: text, contact: text })).default([]),
  approvals: z
    .array(
      z.strictObject({
        name: z.string().regex(/^[a-z][a-z0-9_]{0,63}$/),
        action: z.enum(['resume', 'policy.apply']),
        scopes: z.array(z.enum(['global', 'tenant', 'agent', 'feature', 'release', 'run'])).optional(),
        breakGlass: z.boolean().optional(),
        approvals: z.number().int().min(1).max(5).default(1),
        approvers: z.enum(['admin', 'operator']).default('admin'),
        within: z.string().regex(/^\d{1,6}(s|m|h)$/),
        contact: text,
      }),
    )
    .default([]),
});

type Segment = string | number;
const show = (path: readonly Segment[]) =>
  path.map((p, i) => (typeof p === 'number' ? `[${p}]` : `${i === 0 ? '' : '.'}${p}`)).join('');
const generic = (path: readonly Segment[]) =>
  path
    .map((p) => (typeof p === 'number' ? '[]' : `.${p}`))
    .join('')
    .replace(/^\./, '')
    .replace(/\.\[\]/g, '[]');

function docFor(path: readonly Segment[]): FieldDoc | undefined {
  const g = generic(path);
  return (
    FIELDS[g] ??
    FIELDS[
      g.replace(/^(triggers\.asynchronous|latency\.signalToHaltMs|rehearsal\.cadenceDays)\.[^.]+/, '$1.*')
    ]
  );
}

/** Keys allowed in the mapping at `path`, from the field table. */
function keysAt(path: readonly Segment[]): string[] {
  const g = generic(path);
  const prefix = g === '' ? '' : `${g}.`;
  const keys = new Set<string>();
  for (const k of Object.keys(FIELDS)) {
    if (k.startsWith(prefix) && k.length > prefix.length) {
      const rest = k.slice(prefix.length).split(/[.[]/)[0]!;
      if (rest !== '*' && rest !== '') keys.add(rest);
    }
  }
  if (/^triggers\.asynchronous\.[a-z_]+$/.test(g))
    for (const k of ['enabled', 'threshold', 'mode']) keys.add(k);
  if (g !== 'triggers.asynchronous.tool_error_rate') keys.delete('windowSeconds');
  if (g === 'latency.signalToHaltMs' || g === 'rehearsal.cadenceDays') return ['3', '4', '5'];
  return [...keys];
}

function distance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let prev = row[0]!;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const cur = row[j]!;
      row[j] = Math.min(row[j]! + 1, row[j - 1]! + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = cur;
    }
  }
  return row[b.length]!;
}

/** ` (did you mean "x"?)` for the closest candidate within a few edits, else the empty string. */
export function didYouMean(word: string, candidates: readonly string[]): string {
  let best: string | null = null;
  let bestD = Infinity;
  for (const c of candidates) {
    const d = c.toLowerCase() === word.toLowerCase() ? 0 : distance(word, c);
    if (d < bestD) [best, bestD] = [c, d];
  }
  return best !== null && bestD <= Math.max(2, Math.floor(word.length / 3))
    ? ` (did you mean "${best}"?)`
    : '';
}

function valueAt(raw: unknown, path: readonly Segment[]): unknown {
  let v = raw;
  for (const p of path)
    v = typeof v === 'object' && v !== null ? (v as Record<string, unknown>)[String(p)] : undefined;
  return v;
}

function describe(v: unknown): string {
  if (v === null) return 'null (empty)';
  if (Array.isArray(v)) return v.length === 0 ? 'an empty list' : 'a list';
  if (typeof v === 'object') return 'a mapping';
  if (typeof v === 'string') return `"${v.length > 60 ? `${v.slice(0, 57)}...` : v}"`;
  return String(v);
}

/** Line (1-based) of the node at `path` in the document, or of its deepest existing ancestor. */
function lineOf(doc: Document, lc: LineCounter, path: readonly Segment[]): number | null {
  let node: unknown = doc.contents;
  let offset: number | null = null;
  const at = (n: unknown) => {
    const r = (n as { range?: [number, number, number] } | null)?.range;
    if (r) offset = r[0];
  };
  at(node);
  for (const seg of path) {
    if (isAlias(node)) node = node.resolve(doc);
    if (isMap(node)) {
      const pair = node.items.find(
        (p) => String((p.key as { value?: unknown } | null)?.value ?? p.key) === String(seg),
      );
      if (!pair) break;
      at(pair.key);
      node = pair.value;
    } else if (isSeq(node) && typeof seg === 'number') {
      node = node.items[seg];
      if (node === undefined) break;
      at(node);
    } else break;
  }
  return offset === null ? null : lc.linePos(offset).line;
}

function issueMessage(issue: z.core.$ZodIssue, raw: unknown): string {
  const doc = docFor(issue.path as Segment[]);
  const value = valueAt(raw, issue.path as Segment[]);
  const allowed = doc?.allowed ?? issue.message;
  const why = doc ? `; ${doc.why}` : '';
  if (value === undefined) return `missing: must be ${allowed}${why}`;
  const hint =
    issue.code === 'invalid_value' && typeof value === 'string'
      ? didYouMean(value, issue.values.map(String))
      : '';
  return `got ${describe(value)}${hint}: must be ${allowed}${why}`;
}

/** Maps every zod issue to plain-words problems (one per unknown key). */
function schemaProblems(
  issues: z.core.$ZodIssue[],
  raw: unknown,
  line: (p: readonly Segment[]) => number | null,
): SpecProblem[] {
  const out: SpecProblem[] = [];
  for (const issue of issues) {
    const path = issue.path as Segment[];
    if (issue.code === 'unrecognized_keys') {
      const allowed = keysAt(path);
      for (const key of issue.keys) {
        const at = [...path, key];
        out.push({
          path: show(at),
          line: line(at),
          message: `unknown key "${key}"${didYouMean(key, allowed)}; allowed here: ${allowed.join(', ')}. A misspelt key would silently leave its default in force`,
        });
      }
      continue;
    }
    // A union of literals (the level) reports one issue per branch: say it once.
    if (issue.code === 'invalid_union') {
      out.push({
        path: show(path),
        line: line(path),
        message: issueMessage({ ...issue, code: 'custom' } as z.core.$ZodIssue, raw),
      });
      continue;
    }
    out.push({ path: show(path) || '(file)', line: line(path), message: issueMessage(issue, raw) });
  }
  return out;
}

/**
 * Checks across fields that a schema cannot express. They read the raw document leniently
 * (a value of the wrong type is skipped, an absent one takes its default), so that they run,
 * and their errors are reported, alongside the schema's own.
 */
function crossChecks(
  raw: unknown,
  line: (p: readonly Segment[]) => number | null,
): { errors: SpecProblem[]; warnings: string[] } {
  const errors: SpecProblem[] = [];
  const warnings: string[] = [];
  const err = (path: Segment[], message: string) =>
    errors.push({ path: show(path), line: line(path), message });
  const warn = (path: Segment[], message: string) => {
    const l = valueAt(raw, path) === undefined ? null : line(path);
    warnings.push(`${show(path)}${l === null ? '' : ` (line ${l})`}: ${message}`);
  };
  const get = (path: Segment[]) => valueAt(raw, path);
  const list = (path: Segment[], fallback: readonly string[]): string[] => {
    const v = get(path);
    return v === undefined
      ? [...fallback]
      : Array.isArray(v)
        ? v.filter((x): x is string => typeof x === 'string')
        : [];
  };
  const str = (path: Segment[], fallback: string | null = null) => {
    const v = get(path);
    return typeof v === 'string' ? v : v === undefined ? fallback : null;
  };
  const irreversibleMode = str(['sideEffects', 'inFlight', 'irreversible'], 'cool-off');
  const agents = get(['agents']);
  const seen = new Map<string, number>();
  (Array.isArray(agents) ? agents : []).forEach((_, i) => {
    const tenant = str(['agents', i, 'tenant']);
    const agent = str(['agents', i, 'agent']);
    const key = `${tenant}/${agent}`;
    if (tenant !== null && agent !== null) {
      const first = seen.get(key);
      if (first !== undefined)
        err(
          ['agents', i],
          `${key} is listed twice (also agents[${first}]): one entry per agent, so that its targets, cadence and runbook are unambiguous`,
        );
      else seen.set(key, i);
    }
    const tools = get(['agents', i, 'tools']);
    const names = new Map<string, number>();
    (Array.isArray(tools) ? tools : []).forEach((__, j) => {
      const at: Segment[] = ['agents', i, 'tools', j];
      const name = str([...at, 'name']);
      if (name === null) return;
      const prior = names.get(name);
      if (prior !== undefined)
        err(
          [...at, 'name'],
          `tool "${name}" of ${key} is listed twice (also tools[${prior}]): each tool has one class, which decides what a halt does to it`,
        );
      else names.set(name, j);
      const cls = str([...at, 'class']);
      if (cls === 'irreversible' && irreversibleMode !== null && irreversibleMode !== 'cool-off') {
        warn(
          at,
          `${key}'s ${name} is irreversible but sideEffects.inFlight.irreversible is ${irreversibleMode}: a halt cannot call back an action already taken; seed 002 puts irreversible tools behind a cool-off (a second signal after a timed delay)`,
        );
      }
      if (cls === 'read' && typeof get([...at, 'compensation']) === 'string')
        warn(
          [...at, 'compensation'],
          `${name} is a read: there is nothing to compensate, and the compensation is never listed`,
        );
    });
  });
  const levels = list(['scope', 'levels'], ['capability', 'run', 'agent', 'tenant']);
  const missing = ['run', 'agent'].filter((l) => !levels.includes(l));
  if (missing.length > 0)
    err(
      ['scope', 'levels'],
      `must include run and agent (missing ${missing.join(' and ')}): seed 002 requires at least per-session and per-agent scopes`,
    );
  for (const path of [
    ['scope', 'levels'],
    ['triggers', 'synchronous'],
    ['rehearsal', 'onChange'],
  ]) {
    const l = list(path, []);
    const d = l.find((v, i) => l.indexOf(v) !== i);
    if (d !== undefined) err(path, `"${d}" is listed twice: each entry once`);
  }
  const target = (level: 3 | 4 | 5, fallback: number) => {
    const v = get(['latency', 'signalToHaltMs', String(level)]);
    return v === undefined ? fallback : typeof v === 'number' && v > 0 ? v : null;
  };
  const [t3, t4, t5] = [target(3, 5000), target(4, 2000), target(5, 1000)];
  if (t5 !== null && t4 !== null && t5 > t4)
    err(
      ['latency', 'signalToHaltMs', '5'],
      `level 5 target ${t5} ms is looser than level 4's ${t4} ms: the more autonomous the agent, the faster it must stop (5 <= 4 <= 3)`,
    );
  if (t4 !== null && t3 !== null && t4 > t3)
    err(
      ['latency', 'signalToHaltMs', '4'],
      `level 4 target ${t4} ms is looser than level 3's ${t3} ms: the more autonomous the agent, the faster it must stop (5 <= 4 <= 3)`,
    );
  const events = get(['sideEffects', 'auditEvents']);
  if (Array.isArray(events)) {
    events.forEach((e, i) => {
      // A non-string is the schema's to report.
      if (typeof e === 'string' && !(SPEC_AUDIT_EVENTS as readonly string[]).includes(e)) {
        err(
          ['sideEffects', 'auditEvents', i],
          `unknown audit event "${e}"${didYouMean(e, SPEC_AUDIT_EVENTS)}: the drill could never find it in the audit log; known events: ${SPEC_AUDIT_EVENTS.join(', ')}`,
        );
      }
    });
    const absent = REQUIRED_EVENTS.filter((e) => !events.includes(e));
    if (absent.length > 0)
      err(
        ['sideEffects', 'auditEvents'],
        `must include ${absent.join(', ')}: seed 002 names kill_switch.fired, session.halted and in_flight_tool_calls.status as the record every halt leaves`,
      );
  }
  if (get(['mechanism', 'fallback']) === 'none')
    warn(
      ['mechanism', 'fallback'],
      'no fallback: an agent stuck in a long call or ignoring its gate cannot be stopped; seed 002 pairs the cooperative halt with a process signal or container kill',
    );
  const paths = ['console', 'api', 'cli'].filter(
    (p) => !list(['triggers', 'synchronous'], ['console', 'api', 'cli']).includes(p),
  );
  if (paths.length > 0)
    warn(
      ['triggers', 'synchronous'],
      `without ${paths.join(', ')}: seed 002 asks for all three operator paths, and the runbook leaves out the missing ones`,
    );
  const esc = get(['escalation']);
  if (esc === undefined || (Array.isArray(esc) && esc.length === 0))
    warn(['escalation'], "empty: the runbook's 'when to escalate' section will have no one to call");
  return { errors, warnings };
}

/** Problems in file order (those without a line last), each reported once. */
function sortProblems(problems: SpecProblem[]): SpecProblem[] {
  const seen = new Set<string>();
  return problems
    .filter((p) => {
      const k = `${p.path}\0${p.message}`;
      return seen.has(k) ? false : (seen.add(k), true);
    })
    .sort((a, b) => (a.line ?? Infinity) - (b.line ?? Infinity));
}

/**
 * Parses and validates a spec (YAML), filling defaults for omitted sections.
 * @param file named in the error message only
 * @throws SpecError listing every problem with its path, line and an explanation
 */
export function parseSpec(source: string, file?: string): LoadedSpec {
  const lc = new LineCounter();
  const doc = parseDocument(source, { lineCounter: lc, prettyErrors: true, uniqueKeys: true });
  if (doc.errors.length > 0) {
    throw new SpecError(
      doc.errors.map((e) => ({
        path: '(yaml)',
        line: e.linePos?.[0].line ?? null,
        message: `not valid YAML: ${e.message.split('\n')[0]!.replace(/ at line \d+, column \d+:?$/, '')}`,
      })),
      file ?? null,
    );
  }
  const raw: unknown = doc.toJS({ maxAliasCount: 1000 });
  const line = (p: readonly Segment[]) => lineOf(doc, lc, p);
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw new SpecError(
      [
        {
          path: '(file)',
          line: raw === null || raw === undefined ? null : line([]),
          message: `got ${raw === undefined ? 'an empty file' : describe(raw)}: a spec is a mapping with name, agents and the six sections; "killpath spec init" writes a commented example`,
        },
      ],
      file ?? null,
    );
  }
  const parsed = Spec.safeParse(raw);
  const checked = crossChecks(raw, line);
  const problems = [
    ...(parsed.success ? [] : schemaProblems(parsed.error.issues, raw, line)),
    ...checked.errors,
  ];
  if (!parsed.success || problems.length > 0) throw new SpecError(sortProblems(problems), file ?? null);
  const s = parsed.data;
  const spec: KillSwitchSpec = {
    ...s,
    controlPlane: {
      url: s.controlPlane.url,
      consoleUrl: s.controlPlane.consoleUrl ?? `${s.controlPlane.url.replace(/\/+$/, '')}/`,
    },
    agents: s.agents.map((a) => ({ ...a, ...(a.command === undefined ? {} : { command: a.command }) })),
    // No rules, no field: a spec without approvals keeps the digest it had before they existed.
    approvals: s.approvals.length === 0 ? undefined : s.approvals,
  };
  return {
    spec,
    digest: createHash('sha256').update(canonicalJson(spec)).digest('hex'),
    warnings: [...doc.warnings.map((w) => `(yaml): ${w.message.split('\n')[0]}`), ...checked.warnings],
  };
}

/**
 * Reads and validates a spec file.
 * @throws KillpathError `invalid_request` when the file cannot be read; SpecError when it is not valid
 */
export function loadSpec(path: string): LoadedSpec {
  let source: string;
  try {
    source = readFileSync(path, 'utf8');
  } catch (err) {
    throw new KillpathError(
      'invalid_request',
      `cannot read spec ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
    );
  }
  return parseSpec(source, path);
}

/** A CEL double literal (CEL does not compare a double with an int literal). */
const dbl = (n: number) => (Number.isInteger(n) ? `${n}.0` : String(n));

/**
 * The supervisor policy (the format of `killpath policy default`) that implements the spec's
 * asynchronous triggers and deadman: one rule per enabled trigger, halting the run. An
 * enforced cost cap or loop length also becomes a run limit, which the SDK enforces by itself
 * when the control plane is unreachable; in shadow mode it is only a rule, so nothing stops.
 */
export function policyFromSpec(spec: KillSwitchSpec): string {
  const a = spec.triggers.asynchronous;
  const d = spec.triggers.deadman;
  const enforced = (k: SpecTrigger) => a[k].enabled && a[k].mode === 'enforce';
  const rules: string[] = [];
  const rule = (name: SpecTrigger, description: string, when: string) => {
    if (!a[name].enabled) return;
    rules.push(
      `  - name: ${name}\n    description: ${JSON.stringify(description)}\n    when: ${when}\n    action: { level: halt, scope: run }${a[name].mode === 'shadow' ? '\n    mode: shadow' : ''}\n`,
    );
  };
  const count = (expr: string, n: number) => (n === 1 ? `${expr} > 0` : `${expr} >= ${n}`);
  rule(
    'cost_cap',
    `the run spent more than ${a.cost_cap.threshold} USD`,
    enforced('cost_cap')
      ? 'run.cost_usd > limits.max_cost_usd'
      : `run.cost_usd > ${dbl(a.cost_cap.threshold)}`,
  );
  rule(
    'loop_length',
    `the run took more than ${a.loop_length.threshold} steps`,
    enforced('loop_length') ? 'run.steps > limits.max_steps' : `run.steps > ${a.loop_length.threshold}`,
  );
  const w = `window(run, "${a.tool_error_rate.windowSeconds ?? 60}s")`;
  rule(
    'tool_error_rate',
    `more than ${Math.round(a.tool_error_rate.threshold * 1000) / 10} % of the run's tool calls failed over ${a.tool_error_rate.windowSeconds ?? 60} s`,
    `'${w}.tool_calls >= params.tool_error_min_calls && ${w}.tool_error_rate > ${dbl(a.tool_error_rate.threshold)}'`,
  );
  rule(
    'auth_denial',
    'the run attempted an effect it is not authorised for (refusals an operator degrade explains are not counted)',
    count('run.auth_denials - run.revoked_denials', a.auth_denial.threshold),
  );
  rule(
    'memory_schema',
    'the run tried to write memory that violates its schema',
    count('run.schema_violations', a.memory_schema.threshold),
  );
  rule(
    'anomaly',
    "the agent's own detector flagged the run",
    `run.anomaly_score >= ${dbl(a.anomaly.threshold)}`,
  );
  const limit = (k: SpecTrigger) => (enforced(k) ? String(a[k].threshold) : 'null');
  return `# killpath policy generated from the kill-switch spec "${spec.name}" by
#   killpath spec policy SPEC > policy.yaml
# Apply it with: killpath policy apply policy.yaml --comment "kill-switch spec ${spec.name}"
version: 1
description: ${JSON.stringify(`asynchronous triggers and deadman of the kill-switch spec ${spec.name}`)}

params:
  tool_error_min_calls: 5   # the error rate counts once the run made this many calls in the window

# Run limits (the SDK enforces them by itself too); null where the trigger is off or in shadow.
limits:
  default: { maxSteps: ${limit('loop_length')}, maxCostUsd: ${limit('cost_cap')} }

# Deadman: heartbeats every intervalMs; missed of them in a row halt the worker's runs and
# kill the process through its launcher.
deadman:
  default: { intervalMs: ${d.intervalMs}, missed: ${d.missed}, killAfterMs: 0 }

rules:${rules.length === 0 ? ' []\n' : `\n${rules.join('\n')}`}${approvalsYaml(spec)}`;
}

/** The spec's approval rules as the policy's `approvals:` section (empty when there are none). */
function approvalsYaml(spec: KillSwitchSpec): string {
  if (spec.approvals === undefined || spec.approvals.length === 0) return '';
  const rules = spec.approvals.map((a) =>
    [
      `  - name: ${a.name}`,
      `    action: ${a.action}`,
      ...(a.scopes !== undefined ? [`    scopes: [${a.scopes.join(', ')}]`] : []),
      ...(a.breakGlass !== undefined ? [`    breakGlass: ${a.breakGlass}`] : []),
      `    approvals: ${a.approvals}`,
      `    approvers: ${a.approvers}`,
      `    within: ${a.within}`,
      `    contact: ${JSON.stringify(a.contact)}`,
    ].join('\n'),
  );
  return `\n# Two people resume: these acts wait for approvals (killpath approve REQUEST --reason).\napprovals:\n${rules.join('\n')}\n`;
}
