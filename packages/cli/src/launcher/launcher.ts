import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import type { LauncherOrders, Release } from '@killpath/protocol';
import { AgentEgress } from './agent-egress.ts';
import type { EgressEvent } from './egress-proxy.ts';
import { OrdersEnforcer } from './orders.ts';
import { OrdersLink, reportLauncherEvents } from './orders-link.ts';
import { chooseBackend, type IsolationChoice } from './cgroup-backend.ts';
import type { OrphanPolicy } from './orphan-guard.ts';
import type { AgentHandle, ExitInfo, ProcessBackend } from './process-backend.ts';
import type { LauncherVoice } from './voice.ts';

/** Exit code of `killpath run` when the agent was killed, or not (re)started, by the switchboard. */
export const EXIT_STOPPED = 3;
/** Exit code when the control plane could not be reached before the start (fail closed: the agent is not started). */
export const EXIT_UNREACHABLE = 69;

/** Options of {@link Launcher}. */
export interface LauncherOptions {
  /**
   * The control plane's URL, or several replicas of one control plane: the launcher's orders
   * link and reports move from one to the next when one is lost, and the agent is given them all
   * (`KILLPATH_URL=a,b`).
   */
  url: string | readonly string[];
  /** Agent token of `tenant`/`agent`; handed to the agent too. */
  token: string;
  tenant: string;
  agent: string;
  runId: string | null;
  features: string[];
  /** The release the agent runs (`--release`): passed in its environment and on the launcher's stream. Default none. */
  release?: Release | null;
  command: string;
  args: string[];
  /** Default `launch-<uuid>`. */
  launcherId?: string;
  /** Run the agent in its own network namespace (Linux, root): isolation at the network layer. */
  netns?: boolean;
  /** `on-failure`: restart an agent that exits non-zero, unless the switchboard halts or kills it. Default `never`. */
  restart?: 'never' | 'on-failure';
  /** SIGTERM → SIGKILL grace when killing the agent's process group, in ms. Default 2000. */
  killGraceMs?: number;
  /** Where `killpath inspect` evidence is written (`<dir>/<launcher id>/<request id>/`). Default `<tmpdir>/killpath-evidence`. */
  evidenceDir?: string;
  /** How long to wait for the first orders before starting, in ms. Default 10 000. */
  startTimeoutMs?: number;
  /** CA file (PEM) the agent trusts for the control plane's certificate, passed as `KILLPATH_CA`; default none. */
  ca?: string | null;
  /** Environment the agent inherits (default `process.env`); the launcher adds its own variables. */
  env?: NodeJS.ProcessEnv;
  /**
   * What holds the agent's processes together: `auto` (default) its own cgroup v2 cgroup where
   * the launcher can create one, else its process group (logged); `cgroup` or `process-group`
   * to insist. Ignored when `backend` is given.
   */
  isolation?: IsolationChoice;
  /** `kill` (default): the agent dies if the launcher dies (SIGKILL included); `keep`: it outlives it. Ignored when `backend` is given. */
  orphanPolicy?: OrphanPolicy;
  backend?: ProcessBackend;
  /** Where the launcher's JSON log lines go. Default stderr. */
  log?: (line: string) => void;
  /**
   * Where the one human line goes when the agent is not started (a covering halt or kill, no
   * control plane), besides the JSON log. Default stderr, prefixed `killpath run: `.
   */
  tell?: (line: string) => void;
}

/**
 * The launcher behind `killpath run`: starts the agent in its own cgroup or process group
 * (optionally in its own network namespace) with its identity and token in the environment and
 * its egress through a proxy the launcher runs ({@link AgentEgress}), holds its own stream to the
 * control plane, and enforces what the switchboard orders whatever the agent does
 * ({@link OrdersEnforcer}: kill, freeze and `killpath inspect`, isolate; a halt is noted and the
 * launcher never restarts a halted or killed agent). It starts nothing unless the control plane
 * answered first, and refuses to start an agent the switchboard already halts, freezes or kills.
 */
export class Launcher {
  readonly id: string;
  readonly #o: Required<
    Omit<
      LauncherOptions,
      'url' | 'launcherId' | 'backend' | 'log' | 'env' | 'isolation' | 'orphanPolicy' | 'tell'
    >
  > & {
    env: NodeJS.ProcessEnv;
    /** The first control plane URL (messages). */
    url: string;
    /** Every control plane URL, without trailing slashes. */
    urls: string[];
  };
  readonly #backend: ProcessBackend;
  readonly #log: (line: string) => void;
  readonly #voice: LauncherVoice;
  readonly #orders: OrdersEnforcer;
  #link: OrdersLink | null = null;
  #egress: AgentEgress | null = null;
  #refusedLogged = new Set<string>();
  readonly #tell: (line: string) => void;
  #stopping = false;
  readonly #reports = new Set<Promise<void>>();
  readonly #seen = new Set<string>();
  /** Egress seen under a halt or kill, reported once per directive and destination. */
  readonly #stoppedEgress = new Set<string>();

  constructor(opts: LauncherOptions) {
    this.id = opts.launcherId ?? `launch-${randomUUID()}`;
    this.#o = {
      urls: (typeof opts.url === 'string' ? [opts.url] : [...opts.url]).map((u) => u.replace(/\/+$/, '')),
      get url(): string {
        return this.urls[0]!;
      },
      ca: opts.ca ?? null,
      token: opts.token,
      tenant: opts.tenant,
      agent: opts.agent,
      runId: opts.runId,
      features: opts.features,
      release: opts.release ?? null,
      command: opts.command,
      args: opts.args,
      netns: opts.netns ?? false,
      restart: opts.restart ?? 'never',
      killGraceMs: opts.killGraceMs ?? 2000,
      evidenceDir: opts.evidenceDir ?? join(tmpdir(), 'killpath-evidence'),
      startTimeoutMs: opts.startTimeoutMs ?? 10_000,
      env: opts.env ?? process.env,
    };
    this.#log = opts.log ?? ((line) => process.stderr.write(`${line}\n`));
    this.#tell = opts.tell ?? ((line) => process.stderr.write(`killpath run: ${line}\n`));
    this.#voice = {
      say: (level, msg, fields) => this.#say(level, msg, fields),
      report: (events) => this.#report(events),
    };
    if (opts.backend !== undefined) {
      this.#backend = opts.backend;
    } else {
      const orphanPolicy = opts.orphanPolicy ?? 'kill';
      const chosen = chooseBackend(opts.isolation ?? 'auto', orphanPolicy);
      this.#backend = chosen.backend;
      if (chosen.fallback !== null)
        this.#say(
          'warn',
          `cgroup isolation unavailable, falling back to the process group: ${chosen.fallback}`,
          {
            isolation: 'process-group',
            orphanPolicy,
          },
        );
      else
        this.#say('info', `agent isolation: ${chosen.backend.isolation}`, {
          isolation: chosen.backend.isolation,
          orphanPolicy,
        });
    }
    this.#orders = new OrdersEnforcer({
      launcherId: this.id,
      isolation: this.#backend.isolation,
      killGraceMs: this.#o.killGraceMs,
      evidenceDir: this.#o.evidenceDir,
      egress: () => this.#egress,
      onReleased: () => this.#refusedLogged.clear(),
      voice: this.#voice,
    });
  }

  /** Runs the agent until it exits, is killed, or {@link Launcher.stop}; resolves with the exit code for `killpath run`. */
  async run(): Promise<number> {
    try {
      return await this.#run();
    } finally {
      await this.#cleanup();
    }
  }

  /** Ends the agent (SIGTERM, SIGKILL after the grace) and makes {@link Launcher.run} return. */
  async stop(): Promise<void> {
    this.#stopping = true;
    const child = this.#orders.child;
    if (child?.alive()) await child.terminate(this.#o.killGraceMs);
  }

  async #run(): Promise<number> {
    const o = this.#o;
    this.#link = new OrdersLink({
      url: o.urls,
      token: o.token,
      launcherId: this.id,
      tenant: o.tenant,
      agent: o.agent,
      runId: o.runId,
      features: o.features,
      release: o.release,
      onOrders: (orders) => this.#orders.apply(orders),
      onInspect: (order) => this.#orders.inspect(order),
      onState: (state, detail) =>
        this.#say(state === 'connected' ? 'info' : 'warn', `control plane ${state}`, { detail }),
    });
    this.#link.start();
    let orders: LauncherOrders;
    try {
      orders = await this.#link.first(o.startTimeoutMs);
    } catch (err) {
      this.#say('error', 'control plane unreachable: the agent is not started (fail closed)', {
        err: (err as Error).message,
      });
      this.#tell(
        `not started: the control plane at ${o.urls.join(', ')} did not answer (${(err as Error).message}); the agent never starts without it`,
      );
      return EXIT_UNREACHABLE;
    }
    const stop = orders.kill ?? orders.freeze ?? orders.halt;
    if (stop !== null) {
      this.#say('error', `not starting: ${stop.level} ${stop.scopeText} (${stop.id}) covers this agent`, {
        directiveId: stop.id,
      });
      this.#tell(
        `not started: ${stop.level} ${stop.scopeText} (directive ${stop.id}) covers ${o.tenant}/${o.agent}${o.runId === null ? '' : ` run ${o.runId}`}; killpath status lists it, killpath resume ${stop.id} --reason TEXT clears it`,
      );
      this.#report([
        {
          type: 'process.restart_refused',
          directiveId: stop.id,
          detail: `start refused: ${stop.level} ${stop.scopeText}`,
        },
      ]);
      return EXIT_STOPPED;
    }
    this.#egress = await AgentEgress.start({
      url: o.urls,
      netns: o.netns,
      onEvent: (e) => this.#onEgress(e),
      voice: this.#voice,
    });
    // An isolation already in force applies before the agent's first byte can leave.
    this.#orders.apply(this.#link.last ?? orders);
    await this.#orders.isolating;
    let restarts = 0;
    for (;;) {
      const child = this.#spawn();
      const exit = await child.exited;
      await this.#orders.killing;
      if (this.#orders.killedBy !== null) return EXIT_STOPPED;
      this.#report([{ type: 'process.exited', pid: child.pid, code: exit.code, signal: exit.signal }]);
      this.#say('info', 'agent exited', { pid: child.pid, code: exit.code, signal: exit.signal });
      if (this.#stopping) return exitCode(exit);
      if (o.restart !== 'on-failure' || exit.code === 0) return exitCode(exit);
      const now = this.#link.last;
      const covering = now?.kill ?? now?.freeze ?? now?.halt ?? null;
      if (covering !== null) {
        this.#say(
          'warn',
          `not restarting: ${covering.level} ${covering.scopeText} (${covering.id}) covers this agent`,
          { directiveId: covering.id },
        );
        this.#report([
          {
            type: 'process.restart_refused',
            directiveId: covering.id,
            detail: `restart refused after exit ${exit.code ?? exit.signal}`,
          },
        ]);
        return EXIT_STOPPED;
      }
      const wait = Math.min(30_000, 500 * 2 ** Math.min(restarts++, 6));
      this.#say('info', 'restarting the agent (on-failure)', { inMs: wait, restarts });
      await new Promise((ok) => setTimeout(ok, wait));
      const again = this.#link.last;
      if (again?.kill || again?.freeze || again?.halt || this.#stopping) {
        const d = (again?.kill ?? again?.freeze ?? again?.halt)!;
        if (d)
          this.#report([
            { type: 'process.restart_refused', directiveId: d.id, detail: 'halted while waiting to restart' },
          ]);
        return EXIT_STOPPED;
      }
    }
  }

  #spawn(): AgentHandle {
    const o = this.#o;
    const ns = this.#egress!.ns;
    const { url, proxy, noProxy } = this.#egress!.routes();
    const env: NodeJS.ProcessEnv = {
      ...o.env,
      KILLPATH_URL: url,
      KILLPATH_TOKEN: o.token,
      KILLPATH_TENANT: o.tenant,
      KILLPATH_AGENT: o.agent,
      KILLPATH_FEATURES: o.features.join(','),
      KILLPATH_LAUNCHER_ID: this.id,
      ...(o.ca ? { KILLPATH_CA: o.ca } : {}),
      ...(o.runId !== null ? { KILLPATH_RUN_ID: o.runId } : {}),
      ...(o.release?.code !== undefined ? { KILLPATH_RELEASE_CODE: o.release.code } : {}),
      ...(o.release?.model !== undefined ? { KILLPATH_RELEASE_MODEL: o.release.model } : {}),
      ...(o.release?.prompt !== undefined ? { KILLPATH_RELEASE_PROMPT: o.release.prompt } : {}),
      HTTP_PROXY: proxy,
      HTTPS_PROXY: proxy,
      http_proxy: proxy,
      https_proxy: proxy,
      NO_PROXY: noProxy,
      no_proxy: noProxy,
      // Node ≥ 24 (and 22.21) route fetch and http through HTTP(S)_PROXY only when asked to.
      NODE_USE_ENV_PROXY: '1',
    };
    const child = this.#backend.start({
      command: o.command,
      args: o.args,
      env,
      stdio: 'inherit',
      netns: ns?.name ?? null,
    });
    this.#orders.child = child;
    this.#say('info', 'agent started', {
      pid: child.pid,
      command: o.command,
      netns: ns?.name ?? null,
      proxy,
    });
    this.#report([
      { type: 'process.started', pid: child.pid, detail: [o.command, ...o.args].join(' ').slice(0, 2000) },
    ]);
    // Orders that arrived while it was starting apply now.
    const last = this.#link?.last;
    if (last) this.#orders.apply(last);
    return child;
  }

  /**
   * Egress is logged once per new destination (the proxy counts every attempt; the totals are
   * logged when the launcher ends) and every refusal is logged; the first refusal per
   * destination and isolation is audited.
   */
  #onEgress(e: EgressEvent): void {
    if (e.phase !== 'start') return;
    const key = `${e.host}:${e.port}`;
    if (e.allowed) {
      if (!this.#seen.has(key)) {
        this.#seen.add(key);
        this.#say('info', 'egress to a new destination', { kind: e.kind, destination: key });
      }
      // Evidence for the control plane: an agent that reported halted but still reaches out has
      // not stopped, and its escalation's kill step must proceed (guarantee 8).
      const stop = this.#link?.last?.kill ?? this.#link?.last?.halt ?? null;
      const toControlPlane = this.#o.urls.some((u) => {
        const cp = new URL(u);
        return e.host === cp.hostname.replace(/^\[|\]$/g, '') && String(e.port) === cp.port;
      });
      if (stop !== null && !toControlPlane && !this.#stoppedEgress.has(`${stop.id} ${key}`)) {
        this.#stoppedEgress.add(`${stop.id} ${key}`);
        this.#report([{ type: 'egress.allowed', directiveId: stop.id, destination: key }]);
      }
      return;
    }
    this.#say('warn', 'egress refused', { kind: e.kind, destination: key, reason: e.reason });
    if (this.#refusedLogged.has(key)) return;
    this.#refusedLogged.add(key);
    this.#report([
      {
        type: 'egress.refused',
        directiveId: this.#orders.isolatedBy?.id ?? null,
        destination: key,
        detail: e.reason ?? 'isolated',
      },
    ]);
  }

  #report(events: Record<string, unknown>[]): void {
    const p = reportLauncherEvents(
      this.#o.urls,
      this.#o.token,
      this.id,
      events,
      (message) => this.#say('error', message, {}),
      this.#o.tenant,
    ).finally(() => this.#reports.delete(p));
    this.#reports.add(p);
  }

  #say(level: 'info' | 'warn' | 'error', msg: string, fields: Record<string, unknown>): void {
    this.#log(JSON.stringify({ ts: new Date().toISOString(), level, launcher: this.id, msg, ...fields }));
  }

  async #cleanup(): Promise<void> {
    this.#link?.close();
    // Unconditionally: an agent that exited on its own may have left children or daemons behind.
    await this.#orders.child?.terminate(this.#o.killGraceMs);
    await this.#orders.settled();
    if (this.#egress !== null)
      this.#say('info', 'egress destinations reached', {
        destinations: Object.fromEntries(this.#egress.destinations()),
      });
    await this.#egress?.close();
    // What the launcher did must reach the audit log before it exits (bounded: reports retry on their own).
    await Promise.race([
      Promise.allSettled([...this.#reports]),
      new Promise((ok) => setTimeout(ok, 5000).unref()),
    ]);
  }
}

function exitCode(exit: ExitInfo): number {
  if (exit.code !== null) return exit.code;
  return 128 + (exit.signal === 'SIGKILL' ? 9 : exit.signal === 'SIGTERM' ? 15 : 1);
}
