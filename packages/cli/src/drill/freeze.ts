import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AuditRecord } from '@killpath/protocol';
import { alive } from '../fleet/launch.ts';
import type { Evidence } from '../launcher/evidence.ts';
import { why, type Scenario } from './context.ts';
import {
  check,
  journalCheck,
  journalChecks,
  permitsAfter,
  recoveryMs,
  sleep,
  startedAfter,
  summarize,
  targetChecks,
  timeline,
  until,
  type EventLine,
} from './measure.ts';
import { agentFor, launched } from './processes.ts';

/** CPU time (user + system clock ticks) a process has run so far, from `/proc`; null when unreadable. */
function cpuTicks(pid: number): number | null {
  try {
    const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    return Number(f[11]) + Number(f[12]);
  } catch {
    return null;
  }
}

/**
 * `level:freeze`: a run under the launcher is frozen (every process stopped at once, egress
 * cut), its evidence is taken while it stays frozen, and a resume thaws it. Held frozen past the
 * agent's lease, so the thaw shows the SDK resynchronising before its first effect.
 */
export const FREEZE: Scenario = {
  id: 'level:freeze',
  title:
    'freeze one run under the launcher: not one effect, the evidence written while frozen, thawed cleanly',
  path: 'ladder',
  async run(ctx) {
    if (!ctx.spec.mechanism.freeze)
      return { checks: [], skipped: 'the spec turns the freeze off (mechanism.freeze: false)' };
    const agent = agentFor(ctx, 3);
    const run = `${ctx.env.prefix}-frz`;
    // Evidence is written on the launcher's host, which is the drill's: beside a local drill's data.
    const own = ctx.env.dataDir === null ? mkdtempSync(join(tmpdir(), 'killpath-drill-evidence-')) : null;
    const evidenceDir = own ?? join(ctx.env.dataDir!, 'evidence');
    const { l, pid } = await launched(ctx, agent, run, 'demo', {}, ['--evidence-dir', evidenceDir]);
    try {
      await sleep(500);
      const d = await ctx.env.issue({
        level: 'freeze',
        scope: `run:${run}`,
        tenant: agent.tenant,
        ...why(ctx, 'freeze one run'),
      });
      const flip = ctx.env.flipWall(d);
      const frozen = await until(10_000, async () =>
        (await ctx.env.audit('process.frozen')).find((r) => r.data.directiveId === d.id),
      );
      // The launcher reports once the kernel confirmed every process stopped: nothing after this.
      const frozenWall = frozen ? Date.parse(frozen.ts) : flip;
      const ticks = cpuTicks(pid);

      let inspected: AuditRecord | null = null;
      let evidence: Evidence | null = null;
      if (frozen) {
        const asked = await ctx.env.api.post<{ requestId: string }>(
          `/v1/runs/${encodeURIComponent(run)}/inspect`,
          {
            justification: why(ctx, 'evidence of the frozen run').justification,
            // Core files hold the whole memory (large, secret): the e2e tests cover them.
            cores: false,
            tenant: agent.tenant,
          },
        );
        inspected = await until(30_000, async () =>
          (await ctx.env.audit('process.inspected')).find((r) => r.data.requestId === asked.requestId),
        );
        const path = typeof inspected?.data.path === 'string' ? inspected.data.path : null;
        if (path !== null && existsSync(path)) evidence = JSON.parse(readFileSync(path, 'utf8')) as Evidence;
      }
      // Frozen past the lease (and the window, up to 3 s as for an isolate): the thaw must
      // resynchronise before any effect.
      const holdUntil = frozenWall + Math.max(Math.min(ctx.windowMs, 3000), ctx.leaseMs + 500);
      await sleep(Math.max(0, holdUntil - Date.now()));
      const ticksBeforeThaw = cpuTicks(pid);
      const out = l.out as EventLine[];
      const covered = (r: string) => r === run || r === `${run}.child`;
      const linesWhileFrozen = out.filter((e) => typeof e.wall === 'number' && e.wall > frozenWall).length;
      const afterFreeze = startedAfter(out, covered, frozenWall);
      const effectsAfter = afterFreeze.read + afterFreeze.write + afterFreeze.irreversible;

      const cleared = await ctx.env.resume(d, 'drill: freeze measured, evidence taken');
      const resumeWall = ctx.env.clearWall(cleared);
      const thawed = await until(10_000, async () =>
        (await ctx.env.audit('process.thawed')).find((r) => r.data.directiveId === d.id),
      );
      const rec = await until(10_000, () => recoveryMs(l.out as EventLine[], covered, resumeWall));
      const lines = l.out as EventLine[];
      const firstEffect = lines.find(
        (e) =>
          e.type === 'effect.started' &&
          typeof e.wall === 'number' &&
          e.wall > frozenWall &&
          covered(String(e.runId)),
      );
      const resync = lines.find(
        (e) => e.type === 'stream.resync' && typeof e.wall === 'number' && e.wall > frozenWall,
      );
      const snapshot = lines.find(
        (e) =>
          e.type === 'stream.connected' &&
          typeof e.wall === 'number' &&
          e.wall > frozenWall &&
          (firstEffect === undefined || e.wall <= (firstEffect.wall as number)),
      );
      // What was in flight at the freeze settles after the thaw (its lease lapsed: writes abort).
      await sleep(300);
      const journal = await journalCheck(
        ctx.env.api,
        [run, `${run}.child`],
        lines.map((e) => ({ ...e, pid })),
        resumeWall,
      );
      const stillAlive = alive(pid);
      const permits = await permitsAfter(ctx.env.api, [run, `${run}.child`], d.rev, cleared.clearedRev);
      const gone = frozen ? frozenWall - flip : null;
      const listed = evidence?.processes.map((p) => p.pid) ?? [];
      return {
        signalToHalt: summarize(gone === null ? [] : [gone]),
        haltToRecoveryMs: rec,
        effectsAfterFlip: { read: startedAfter(out, covered, flip).read, ...permits },
        effectsAfterObserve: effectsAfter,
        journal,
        checks: [
          check(
            'launcher froze it',
            'invariant',
            frozen !== null,
            frozen
              ? `process.frozen ${Math.round(frozenWall - flip)} ms after the flip (${String(frozen.data.isolation)}, ${frozen.data.pids?.length ?? 0} process(es), kernel confirmed in ${String(frozen.data.ms)} ms)`
              : 'no process.frozen record',
          ),
          check(
            'no effect after the freeze',
            'invariant',
            effectsAfter === 0,
            `${effectsAfter} effect(s) of the run started after the launcher confirmed the freeze`,
          ),
          check(
            'not one instruction while frozen',
            'invariant',
            linesWhileFrozen === 0 && ticks !== null && ticks === ticksBeforeThaw,
            `${linesWhileFrozen} line(s) printed after the freeze; CPU ticks ${ticks ?? '?'} at the freeze, ${ticksBeforeThaw ?? '?'} before the thaw`,
          ),
          check(
            'no write permit after the flip',
            'invariant',
            permits.write + permits.irreversible === 0,
            `${permits.write + permits.irreversible} write/irreversible permit(s) granted at or after the freeze's rev`,
          ),
          check(
            'evidence written while frozen',
            'invariant',
            evidence !== null && evidence.frozen && listed.includes(pid),
            evidence
              ? `${String(inspected?.data.path)}: ${listed.length} process(es), frozen ${evidence.frozen}`
              : inspected
                ? `no evidence file: ${String(inspected.data.detail)}`
                : 'no process.inspected record',
          ),
          check(
            'thawed',
            'invariant',
            thawed !== null && stillAlive,
            thawed
              ? `process.thawed ${Date.parse(thawed.ts) - Math.round(resumeWall)} ms after the resume; the process ${stillAlive ? 'lives' : 'is GONE'}`
              : 'no process.thawed record',
          ),
          check(
            'lease resynchronised before the first effect',
            'invariant',
            firstEffect !== undefined && snapshot !== undefined,
            firstEffect === undefined
              ? 'no effect after the thaw'
              : snapshot
                ? `fresh snapshot ${Math.round((firstEffect.wall as number) - (snapshot.wall as number))} ms before the first effect${resync ? ` (resync: ${String(resync.reason)})` : ''}`
                : 'an effect started after the thaw with no fresh snapshot before it',
          ),
          ...journalChecks(journal),
          ...targetChecks(
            summarize(gone === null ? [] : [gone]),
            agent.targetMs,
            rec,
            ctx.spec.latency.haltToRecoveryMs,
          ),
        ],
        timeline: timeline(lines, covered, flip, -1500, Math.min(6000, holdUntil - flip + 1500)),
        notes: [
          'signal-to-halt here is flip → the launcher confirmed every process frozen; halt-to-recovery is resume → the first effect after the thaw',
          `held frozen ${Math.round(holdUntil - frozenWall)} ms (past the ${ctx.leaseMs} ms lease); evidence without core files (killpath inspect writes them unless --no-cores)`,
        ],
        targetMs: agent.targetMs,
      };
    } finally {
      await l.stop();
      if (own !== null) rmSync(own, { recursive: true, force: true });
    }
  },
};
