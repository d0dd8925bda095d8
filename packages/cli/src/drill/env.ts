import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { startServer, type Alert, type RunningServer } from '@killpath/server';
import type { AuditRecord, AuditRecordOf, AuditType, Directive } from '@killpath/protocol';
import { auditRecordsOf } from '../audit-records.ts';
import { ApiClient } from '../api.ts';
import { FleetHarness, type AgentSpec } from '../fleet/harness.ts';
import { launch, type Launched } from '../fleet/launch.ts';
import type { KillSwitchSpec, SpecAgent } from '../killswitch-spec/types.ts';

/** The drill's scenario agent (see ./agent.ts). */
export const DRILL_AGENT = fileURLToPath(
  new URL(import.meta.url.endsWith('.ts') ? './agent.ts' : './agent.js', import.meta.url),
);

/** How a drill runs: against its own control plane or an existing deployment. */
export interface DrillEnvOptions {
  spec: KillSwitchSpec;
  /** Remote: the control plane's URL and a token that may mint agent tokens and issue directives there. */
  url: string | null;
  token: string | null;
  /** Remote: run every agent of the spec in this (staging) tenant instead of its own. */
  tenant: string | null;
  /** Local: the policy the control plane starts with (the spec's triggers). */
  policy: string;
  /** Local: supervisor/watchdog absence threshold, ms. */
  absentAfterMs: number;
  /** Keep the local data dir. */
  keep: boolean;
}

/** One agent of the spec as the drill runs it (tenant possibly replaced by the staging tenant). */
export interface DrillAgent extends SpecAgent {
  /** Its spec's signal-to-halt target for its autonomy level, ms. */
  targetMs: number;
}

/** What was running and in force at one moment of a drill (see {@link DrillEnv.mark}). */
export interface DrillMark {
  fleets: number;
  launched: number;
  /** Ids of the directives active then. */
  active: Set<string>;
}

/**
 * Where a drill runs and what it started: the control plane (its own, in this process, on a
 * temporary SQLite data dir; or a deployment's, by URL), the agent processes and launchers it
 * spawned, and a second control plane for S7. `close()` stops everything it started.
 */
export class DrillEnv {
  readonly mode: 'local' | 'remote';
  readonly api: ApiClient;
  readonly token: string;
  readonly server: RunningServer | null;
  readonly agents: DrillAgent[];
  /** A short random prefix for run ids, so drills never collide with each other or real runs. */
  readonly prefix: string;
  readonly #dataDir: string | null;
  readonly #keep: boolean;
  readonly #fleets: FleetHarness[] = [];
  readonly #launched: Launched[] = [];
  readonly #servers: RunningServer[] = [];

  private constructor(init: {
    mode: 'local' | 'remote';
    api: ApiClient;
    token: string;
    server: RunningServer | null;
    agents: DrillAgent[];
    dataDir: string | null;
    keep: boolean;
  }) {
    this.mode = init.mode;
    this.api = init.api;
    this.token = init.token;
    this.server = init.server;
    this.agents = init.agents;
    this.#dataDir = init.dataDir;
    this.#keep = init.keep;
    this.prefix = `d${randomBytes(3).toString('hex')}`;
  }

  static async open(opts: DrillEnvOptions): Promise<DrillEnv> {
    const agents = opts.spec.agents.map((a) => ({
      ...a,
      tenant: opts.tenant ?? a.tenant,
      targetMs: opts.spec.latency.signalToHaltMs[a.level],
    }));
    if (opts.url !== null) {
      if (opts.token === null) throw new Error('a remote drill needs --token (or KILLPATH_TOKEN)');
      const api = new ApiClient(opts.url, opts.token);
      return new DrillEnv({
        mode: 'remote',
        api,
        token: opts.token,
        server: null,
        agents,
        dataDir: null,
        keep: false,
      });
    }
    const dataDir = mkdtempSync(join(tmpdir(), 'killpath-drill-'));
    const server = await startServer({
      dataDir,
      port: 0,
      logLevel: 'error',
      policy: { path: 'drill policy (from the spec)', source: opts.policy },
      absentAfterMs: opts.absentAfterMs,
      escalationSlackMs: 1000,
    });
    const token = server.createdAdminToken!;
    return new DrillEnv({
      mode: 'local',
      api: new ApiClient(server.url, token),
      token,
      server,
      agents,
      dataDir,
      keep: opts.keep,
    });
  }

  get url(): string {
    return this.api.url;
  }

  get dataDir(): string | null {
    return this.#dataDir;
  }

  /** Wall-clock time of a rev's commit: exact for an in-process control plane, else from `at` (ms). */
  commitWall(rev: number | null, at: string | null, server: RunningServer | null = this.server): number {
    const t = rev === null ? undefined : server?.controlPlane.flipTime(rev);
    if (t !== undefined) return performance.timeOrigin + t;
    return at === null ? Date.now() : Date.parse(at);
  }

  /** The flip's commit time. */
  flipWall(d: Directive, server: RunningServer | null = this.server): number {
    return this.commitWall(d.rev, d.issuedAt, server);
  }

  /** The resume's commit time. */
  clearWall(d: Directive, server: RunningServer | null = this.server): number {
    return this.commitWall(d.clearedRev, d.clearedAt, server);
  }

  /** Recent alerts the control plane raised (as its notification sink sent them). */
  async alerts(api: ApiClient = this.api): Promise<Alert[]> {
    return (await api.get<{ alerts: Alert[] }>('/v1/alerts')).alerts;
  }

  /** Audit records of one type (newest 5000), optionally after a seq, their payloads checked and typed. */
  async audit<K extends AuditType>(
    type: K,
    after = 0,
    api: ApiClient = this.api,
  ): Promise<AuditRecordOf<K>[]> {
    const { records } = await api.get<{ records: AuditRecord[] }>(
      `/v1/audit?type=${encodeURIComponent(type)}&after=${after}&limit=5000`,
    );
    return auditRecordsOf(records, type);
  }

  /** Issues a directive as an operator would (console button, API, CLI: the same endpoint). */
  async issue(body: Record<string, unknown>, api: ApiClient = this.api): Promise<Directive> {
    return (await api.post<{ directive: Directive }>('/v1/directives', body)).directive;
  }

  /**
   * Clears a directive; resolves with it cleared. A drill resumes its processes onto the release
   * they run (a rehearsal: the release is not at fault), and says so: the audit record marks the
   * override where the release check found them still running it.
   */
  async resume(d: Directive, why: string, api: ApiClient = this.api): Promise<Directive> {
    return (
      await api.post<{ directive: Directive }>(`/v1/directives/${d.id}/resume`, {
        justification: why,
        ...(d.scopeText === 'global' ? { breakGlass: why } : {}),
        sameRelease: 'drill: a rehearsal, the release is not at fault',
      })
    ).directive;
  }

  /** Starts agent processes (tracked: stopped by `close`). */
  async fleet(
    agents: AgentSpec[],
    env: Record<string, string>,
    opts: { script?: string; agentUrl?: string; api?: ApiClient } = {},
  ): Promise<FleetHarness> {
    const fleet = await FleetHarness.start({
      api: opts.api ?? this.api,
      ...(opts.agentUrl ? { agentUrl: opts.agentUrl } : {}),
      agents,
      env,
      ...(opts.script ? { script: opts.script } : {}),
      readyTimeoutMs: 30_000,
    });
    this.#fleets.push(fleet);
    return fleet;
  }

  /** Starts an agent under `killpath run` (tracked: stopped by `close`). */
  launch(opts: {
    tenant: string;
    agent: string;
    run: string;
    env: Record<string, string>;
    script: string;
    killGraceMs: number;
    url?: string;
    /** More `killpath run` options (e.g. `--evidence-dir DIR`). */
    extra?: string[];
  }): Launched {
    const l = launch({
      url: opts.url ?? this.url,
      token: this.token,
      tenant: opts.tenant,
      agent: opts.agent,
      run: opts.run,
      agentScript: opts.script,
      extra: ['--kill-grace', String(opts.killGraceMs), ...(opts.extra ?? [])],
      env: opts.env,
    });
    this.#launched.push(l);
    return l;
  }

  /**
   * A second control plane on its own data dir (S7: one whose supervisor is down), with the
   * same policy; local drills only. Stopped by `close`.
   */
  async auxServer(opts: {
    supervisor: boolean;
    policy: string;
    absentAfterMs: number;
  }): Promise<{ server: RunningServer; api: ApiClient }> {
    if (this.#dataDir === null) throw new Error('a second control plane needs a local drill');
    const server = await startServer({
      dataDir: join(this.#dataDir, `aux-${this.#servers.length + 1}`),
      port: 0,
      logLevel: 'error',
      supervisor: opts.supervisor,
      policy: { path: 'drill policy (from the spec)', source: opts.policy },
      absentAfterMs: opts.absentAfterMs,
    });
    this.#servers.push(server);
    return { server, api: new ApiClient(server.url, server.createdAdminToken!) };
  }

  /** What is running and in force now, so that {@link cleanUpSince} can undo what comes after. */
  async mark(): Promise<DrillMark> {
    const { directives } = await this.api.get<{ directives: Directive[] }>(
      '/v1/directives?active=true&limit=5000',
    );
    return {
      fleets: this.#fleets.length,
      launched: this.#launched.length,
      active: new Set(directives.map((d) => d.id)),
    };
  }

  /**
   * Undoes what a scenario left behind, so that one failure never cascades into the next
   * scenario: clears every directive that became active after `mark` and stops every agent
   * process started after it (but `keep`, the shared fleet). On this drill's own control plane
   * every new directive is the drill's; on a deployment only those that name the drill's runs or
   * were issued by the drill's own token (or escalated from one of those) are touched, never an
   * operator's. Returns one line per thing undone (empty when the scenario cleaned up after itself).
   */
  async cleanUpSince(mark: DrillMark, keep: FleetHarness | null): Promise<string[]> {
    const undone: string[] = [];
    const { directives } = await this.api.get<{ directives: Directive[] }>(
      '/v1/directives?active=true&limit=5000',
    );
    const fresh = directives.filter((d) => !mark.active.has(d.id));
    const me = this.mode === 'remote' ? (await this.api.get<{ name: string }>('/v1/whoami')).name : null;
    const ours = (d: Directive): boolean =>
      me === null ||
      d.actor === me ||
      d.scopeText.includes(this.prefix) ||
      fresh.some((o) => d.actor === `escalation:${o.id}` && ours(o));
    for (const d of fresh.filter(ours)) {
      try {
        await this.resume(d, `drill cleanup: ${d.level} ${d.scopeText} was left in force by a scenario`);
        undone.push(`cleared ${d.level} ${d.scopeText} (${d.id}) left in force`);
      } catch (err) {
        undone.push(`could not clear ${d.level} ${d.scopeText} (${d.id}): ${(err as Error).message}`);
      }
    }
    const fleets = this.#fleets.slice(mark.fleets).filter((f) => f !== keep && f.running > 0);
    const launched = this.#launched
      .slice(mark.launched)
      .filter((l) => l.proc.exitCode === null && l.proc.signalCode === null);
    await Promise.all([...fleets.map((f) => f.stop(1000)), ...launched.map((l) => l.stop())]);
    const processes = fleets.length + launched.length;
    if (processes > 0) undone.push(`stopped ${processes} agent process group(s) left running`);
    return undone;
  }

  /** Stops every process and server this drill started, and removes its data dir unless kept. */
  async close(): Promise<void> {
    await Promise.all([...this.#fleets.map((f) => f.stop(1000)), ...this.#launched.map((l) => l.stop())]);
    for (const s of this.#servers) await s.close().catch(() => {});
    await this.server?.close().catch(() => {});
    if (this.#dataDir !== null && !this.#keep) rmSync(this.#dataDir, { recursive: true, force: true });
  }
}
