/**
 * The kill-switch specification (`killpath spec init|check`): one YAML file with the six
 * components of seed 002 (scope, triggers, mechanism, latency targets, side effects, rehearsal
 * cadence), plus who to escalate to. It is the contract the drill judges a rehearsal against
 * and the source of the on-call runbook (`killpath runbook`).
 *
 * These are the types of a *validated* spec (defaults filled in); `loadSpec` / `parseSpec` in
 * `./spec.ts` produce them or explain every error.
 */

/** Autonomy level of an agent (seed 002): sets its signal-to-halt target and its cadence. */
export type AutonomyLevel = 3 | 4 | 5;

/** Scopes the switch can act at, smallest blast radius first. */
export const SPEC_SCOPES = ['capability', 'run', 'agent', 'tenant', 'global'] as const;
export type SpecScope = (typeof SPEC_SCOPES)[number];

/** Asynchronous triggers the supervisor evaluates (the default policy's rules). */
export const SPEC_TRIGGERS = [
  'cost_cap',
  'loop_length',
  'tool_error_rate',
  'auth_denial',
  'memory_schema',
  'anomaly',
] as const;
export type SpecTrigger = (typeof SPEC_TRIGGERS)[number];

/** One tool an agent may call, with its effect class (which decides what a halt does to it in flight). */
export interface SpecTool {
  name: string;
  class: 'read' | 'write' | 'irreversible';
  /** A write's compensation action (what to run to undo it), listed by `killpath compensations`. */
  compensation: string | null;
  /** What the tool does, in one line, for the runbook. */
  description: string | null;
}

/** One agent the spec covers. */
export interface SpecAgent {
  tenant: string;
  agent: string;
  level: AutonomyLevel;
  /** What the agent does (runbook section 1), one paragraph. */
  description: string;
  tools: SpecTool[];
  /** Whether the agent writes to long-term memory (changes what a halt does to staged writes). */
  memory: boolean;
  /** Features its runs declare (a feature flip stops them). */
  features: string[];
  /**
   * The command that starts one session of the agent (what `killpath run … -- <command>`
   * launches), for the runbook's replacement-session step; absent when the spec does not say.
   */
  command?: string;
}

/** How one asynchronous trigger is set. */
export interface SpecTriggerSetting {
  enabled: boolean;
  /** cost_cap: USD; loop_length: steps; tool_error_rate: ratio 0–1; auth_denial / memory_schema: count; anomaly: score 0–1. */
  threshold: number;
  /** tool_error_rate only: the window in seconds. */
  windowSeconds: number | null;
  /** shadow: record what it would do, fire nothing. */
  mode: 'enforce' | 'shadow';
}

/** A validated kill-switch specification. */
export interface KillSwitchSpec {
  version: 1;
  /** Name of the fleet or agent this spec is for (used in records and the runbook's title). */
  name: string;
  /** Where the control plane and console are, for the runbook's commands. */
  controlPlane: { url: string; consoleUrl: string };
  agents: SpecAgent[];

  /** 1 — Scope: the scopes the switch is rehearsed at (must include run and agent). */
  scope: { levels: SpecScope[] };

  /** 2 — Triggers. */
  triggers: {
    /** Operator paths: console button (role-gated), API (auth + break-glass for global), CLI. */
    synchronous: ('console' | 'api' | 'cli')[];
    asynchronous: Record<SpecTrigger, SpecTriggerSetting>;
    /** Watchdog deadman: a worker missing `missed` heartbeats of `intervalMs` is halted and killed. */
    deadman: { intervalMs: number; missed: number };
  };

  /** 3 — Mechanism: cooperative gate first, a process-level fallback. */
  mechanism: {
    primary: 'cooperative';
    fallback: 'process-signal' | 'network-isolation' | 'none';
    /** SIGTERM → SIGKILL grace of the launcher, ms. */
    killGraceMs: number;
    /** Egress isolation of launched agents. */
    isolation: 'proxy' | 'netns' | 'none';
    /**
     * Grace of a halt, ms: queued tasks may drain inside it (`sideEffects.queue: drain`), and a
     * worker that has not reported halted by then is escalated to a kill. In-flight writes are
     * aborted at once whatever the grace.
     */
    haltGraceMs: number;
    /**
     * Whether the runbook offers a freeze (and the drill rehearses it): the launcher stops every
     * process of the agent at once (`cgroup.freeze`, or SIGSTOP to its process group), cuts its
     * egress and keeps its memory, so `killpath inspect` can take the evidence before a thaw
     * (resume) or a kill. Needs the agent under `killpath run`. Default true.
     */
    freeze: boolean;
  };

  /** 4 — Latency targets, ms. */
  latency: {
    signalToHaltMs: Record<AutonomyLevel, number>;
    haltToRecoveryMs: number;
  };

  /** 5 — Side effects: what a halt leaves behind. */
  sideEffects: {
    /** What happens to in-flight calls of each class. */
    inFlight: { read: 'complete' | 'abort'; write: 'abort' | 'complete'; irreversible: 'cool-off' | 'abort' };
    /** Staged memory writes at a halt. */
    memory: 'revert' | 'commit';
    /** Queued tasks at a halt. */
    queue: 'discard' | 'drain';
    /** Kept for post-incident review. */
    preserve: string[];
    /** Purged after a halt. */
    purge: string[];
    /** Audit events the switch must emit (checked by the drill). */
    auditEvents: string[];
  };

  /** 6 — Rehearsal cadence. */
  rehearsal: {
    /** Days between rehearsals per autonomy level (monthly = 30, quarterly = 91). */
    cadenceDays: Record<AutonomyLevel, number>;
    /** Material changes that make a rehearsal due at once. */
    onChange: ('tools' | 'autonomy' | 'memory')[];
    /** How long a drill watches after each flip, ms (seed: queue state after a window). */
    windowMs: number;
  };

  /** Who to call, in order: the runbook's decision tree. */
  escalation: { when: string; contact: string }[];

  /**
   * Approval rules (the policy's `approvals:`): acts that wait for a second person, and whom to
   * call for it. Absent (the default, and then it does not change the spec's digest): one person resumes.
   */
  approvals?: SpecApproval[];
}

/** One approval rule, as in the policy (see `killpath policy default`). */
export interface SpecApproval {
  name: string;
  action: 'resume' | 'policy.apply';
  /** Resume rules: scope kinds covered. */
  scopes?: ('global' | 'tenant' | 'agent' | 'feature' | 'release' | 'run')[];
  /** Resume rules: also a directive issued with break-glass. */
  breakGlass?: boolean;
  approvals: number;
  approvers: 'admin' | 'operator';
  /** A duration like 15m. */
  within: string;
  /** Whom to call for the approval. */
  contact: string;
}
