import { z } from 'zod';
import { StreamDirectiveSchema } from './directives.ts';

/**
 * The frames of the two push streams (workers' `GET /v1/stream`, launchers'
 * `GET /v1/launchers/stream`), as their readers check them. A revision is a safe integer ≥ 0.
 * Fields a newer control plane adds are dropped, not refused.
 */

const rev = z.number().int().min(0);

/** First message on every worker stream: the whole switchboard this worker may see. */
export const SnapshotMessageSchema = z.object({
  type: z.literal('snapshot'),
  /**
   * The protocol version (`PROTOCOL_VERSION`; a number, or a string such as `"2.1"`; absent from
   * the first servers). A reader refuses a newer major before it reads anything else.
   */
  v: z.union([z.number(), z.string()]).optional(),
  rev,
  directives: z.array(StreamDirectiveSchema),
  /** How often keep-alives come, in ms; the worker's lease must be longer. */
  keepaliveMs: z.number(),
});

/**
 * One revision step. Every rev bump reaches every stream so that gaps are detectable; a step
 * this worker may not see carries neither `issued` nor `cleared`.
 */
export const DeltaMessageSchema = z.object({
  type: z.literal('delta'),
  rev,
  issued: StreamDirectiveSchema.optional(),
  /** Id of a directive cleared at this rev. */
  cleared: z.string().optional(),
  /** Ids of directives the issued one replaces, cleared at the same rev (a re-dialled throttle, a step on the ladder). */
  replaced: z.array(z.string()).optional(),
});

/** Sent every `keepaliveMs` with the current rev; renews the worker's lease. */
export const KeepaliveMessageSchema = z.object({ type: z.literal('keepalive'), rev });

/** Everything a worker stream carries (the SSE `event` is the `type`, the `data` is the JSON). */
export const StreamMessageSchema = z.discriminatedUnion('type', [
  SnapshotMessageSchema,
  DeltaMessageSchema,
  KeepaliveMessageSchema,
]);

/**
 * What the control plane orders a launcher (`killpath run`) to enforce on the agent process it
 * started, sent on the launcher's own stream on connect and on every change. Each field is the
 * highest directive of that kind covering the launcher's identity or a run its agent hosts, or `null`.
 */
export const LauncherOrdersSchema = z.object({
  type: z.literal('orders'),
  rev,
  /** End the agent's process group: SIGTERM, then SIGKILL after the launcher's grace. */
  kill: StreamDirectiveSchema.nullable(),
  /** Cut the agent off from everything external (egress proxy, network namespace). */
  isolate: StreamDirectiveSchema.nullable(),
  /** The agent is halted: the launcher must not restart it. */
  halt: StreamDirectiveSchema.nullable(),
  /**
   * Freeze every process of the agent (cgroup freeze, or SIGSTOP) and cut its egress; thaw when
   * it is cleared. Absent from control planes older than the freeze level (read as `null`).
   */
  freeze: StreamDirectiveSchema.nullable().optional(),
});

/**
 * An operator asked for the evidence of a frozen agent (`killpath inspect`): the launcher writes
 * the process tree, open files, connections (and core files where `gcore` is installed) while
 * the agent stays frozen, and reports `process.inspected` with `requestId`.
 */
export const InspectOrderSchema = z.object({
  type: z.literal('inspect'),
  requestId: z.string(),
  /** The run asked about. */
  runId: z.string(),
  /** Who asked (the operator's token name), for the evidence file. */
  actor: z.string(),
  /** Write a core file of each process where gcore is installed. */
  cores: z.boolean(),
});

/** Everything a launcher stream carries. */
export const LauncherMessageSchema = z.discriminatedUnion('type', [
  LauncherOrdersSchema,
  InspectOrderSchema,
  KeepaliveMessageSchema,
]);
