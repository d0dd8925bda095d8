import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import type { StreamDirective, InspectOrder, LauncherOrders, Release } from '@killpath/protocol';
import { writeEvidence } from './evidence.ts';
import { EgressProxy, type EgressEvent } from './egress-proxy.ts';
import { AgentNetns, unixTcpBridge } from './netns.ts';
import { OrdersLink, reportLauncherEvents } from './orders-link.ts';
import { chooseBackend, type IsolationChoice } from './cgroup-backend.ts';
import type { OrphanPolicy } from './orphan-guard.ts';
import type { AgentHandle, ExitInfo, ProcessBackend } from './process-backend.ts';

/** Exit code of `killpath run` when the agent was killed, or not (re)started, by the switchboard. */
export const EXIT_STOPPED = 3;
/** Exit code when the control plane could not be reached before the start (fail closed: the agent is not started). */
export const EXIT_UNREACHABLE = 69;

/** Options of {@link Launcher}. */
export interface LauncherOptions {
  url: string;
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
 * The launcher behind `killpath run`: starts the agent in its own process group (optionally in
 * its own network namespace) with its identity and token in the environment and its egress
 * through a proxy the launcher runs, holds its own stream to the control plane, and enforces
 * what the switchboard orders whatever the agent does:
 * - **kill**: SIGTERM to the agent's process group, SIGKILL after the grace (and to descendants
 *   that left the group); audited `process.killed` with the time it took;
 * - **isolate**: the proxy refuses new connections and cuts open ones; with `--netns`, the
 *   namespace's relay stops forwarding egress too (the control plane link stays); lifted when
 *   the isolate is cleared;
 * - **halt**: noted; the launcher never restarts a halted or killed agent.
 * It starts nothing unless the control plane answered first, and refuses to start an agent the
 * switchboard already halts or kills.
 */
export class Launcher {
  readonly id: string;
  readonly #o: Required<
    Omit<LauncherOptions, 'launcherId' | 'backend' | 'log' | 'env' | 'isolation' | 'orphanPolicy' | 'tell'>
  > & {
    env: NodeJS.ProcessEnv;
  };
  readonly #backend: ProcessBackend;
  readonly #log: (line: string) => void;
  #link: OrdersLink | null = null;
  #proxy: EgressProxy | null = null;
  #ns: AgentNetns | null = null;
  #bridge: { close(): Promise<void> } | null = null;
  #dir: string | null = null;
  #child: AgentHandle | null = null;
  #killing: Promise<void> | null = null;
  #killedBy: StreamDirective | null = null;
  #isolatedBy: StreamDirective | null = null;
  #isolating: Promise<void> = Promise.resolve();
  #frozenBy: StreamDirective | null = null;
  /** Freeze, thaw and inspections, one after the other. */
  #freezing: Promise<void> = Promise.resolve();
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
      url: opts.url.replace(/\/+$/, ''),
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
    if (this.#child?.alive()) await this.#child.terminate(this.#o.killGraceMs);
  }

  async #run(): Promise<number> {
    const o = this.#o;
    this.#link = new OrdersLink({
      url: o.url,
      token: o.token,
      launcherId: this.id,
      tenant: o.tenant,
      agent: o.agent,
      runId: o.runId,
      features: o.features,
      release: o.release,
      onOrders: (orders) => this.#apply(orders),
      onInspect: (order) => {
        this.#freezing = this.#freezing
          .then(() => this.#inspect(order))
          .catch((err: unknown) =>
            this.#say('error', 'inspection failed', { requestId: order.requestId, err: String(err) }),
          );
      },
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
        `not started: the control plane at ${o.url} did not answer (${(err as Error).message}); the agent never starts without it`,
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
    await this.#startEgress();
    // An isolation already in force applies before the agent's first byte can leave.
    this.#apply(this.#link.last ?? orders);
    await this.#isolating;
    let restarts = 0;
    for (;;) {
      const child = this.#spawn();
      const exit = await child.exited;
      await this.#killing;
      if (this.#killedBy !== null) return EXIT_STOPPED;
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

  /** Starts the egress proxy (and the namespace with its relay and the control-plane bridge). */
  async #startEgress(): Promise<void> {
    const cp = new URL(this.#o.url);
    const cpHost = cp.hostname.replace(/^\[|\]$/g, '');
    const cpPort = Number(cp.port || (cp.protocol === 'https:' ? 443 : 80));
    const allow = (host: string, port: number) =>
      port === cpPort && (host === cpHost || (isLoopback(host) && isLoopback(cpHost)));
    const onEvent = (e: EgressEvent) => this.#egress(e);
    if (!this.#o.netns) {
      this.#proxy = await EgressProxy.start({ host: '127.0.0.1', port: 0, onEvent, allow });
      return;
    }
    this.#dir = mkdtempSync(join(tmpdir(), 'killpath-launch-'));
    const proxyPath = join(this.#dir, 'egress.sock');
    const cpPath = join(this.#dir, 'control-plane.sock');
    this.#proxy = await EgressProxy.start({ unixPath: proxyPath, onEvent, allow });
    this.#bridge = await unixTcpBridge(cpPath, { host: cpHost, port: cpPort });
    this.#ns = await AgentNetns.create({
      forwards: [
        { port: 0, unixPath: proxyPath },
        { port: 0, unixPath: cpPath },
      ],
    });
    this.#say('info', 'network namespace ready', {
      netns: this.#ns.name,
      proxyPort: this.#ns.ports[0],
      controlPlanePort: this.#ns.ports[1],
    });
  }

  #spawn(): AgentHandle {
    const o = this.#o;
    const ns = this.#ns;
    // In a namespace the agent reaches the control plane through a TCP relay on its loopback,
    // with the control plane's own scheme (TLS passes through the relay untouched).
    const url = ns ? `${new URL(o.url).protocol}//127.0.0.1:${ns.ports[1]}` : o.url;
    const proxy = ns ? `http://127.0.0.1:${ns.ports[0]}` : this.#proxy!.url!;
    const noProxy = ns ? '127.0.0.1,localhost' : new URL(o.url).hostname;
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
    this.#child = child;
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
    if (last) this.#apply(last);
    return child;
  }

  /** Applies new orders: kill once; isolate and release as they come. */
  #apply(orders: LauncherOrders): void {
    if (orders.kill !== null && this.#killing === null && this.#child?.alive()) {
      const d = orders.kill;
      const child = this.#child;
      this.#killedBy = d;
      this.#say('warn', `killing the agent: ${d.level} ${d.scopeText} (${d.id})`, {
        pid: child.pid,
        graceMs: this.#o.killGraceMs,
      });
      this.#killing = child.terminate(this.#o.killGraceMs).then((r) => {
        this.#say('warn', `agent ended (${this.#backend.isolation})`, {
          pid: child.pid,
          signal: r.signal,
          ms: Math.round(r.ms),
          ended: r.ended,
          survivors: r.survivors,
        });
        this.#report([
          {
            type: 'process.killed',
            directiveId: d.id,
            pid: child.pid,
            signal: r.signal,
            ms: r.ms,
            isolation: this.#backend.isolation,
            pids: r.ended.slice(0, 1000),
            ...(r.survivors.length > 0 ? { detail: `survivors: ${r.survivors.join(',')}` } : {}),
          },
        ]);
      });
    }
    const fz = orders.freeze ?? null;
    if (fz !== null && this.#frozenBy === null && this.#killing === null && this.#child?.alive()) {
      this.#frozenBy = fz;
      const child = this.#child;
      this.#freezing = this.#freezing.then(() => this.#freeze(child, fz));
    } else if (fz === null && this.#frozenBy !== null) {
      const was = this.#frozenBy;
      this.#frozenBy = null;
      const child = this.#child;
      if (child) this.#freezing = this.#freezing.then(() => this.#thaw(child, was));
    }
    const iso = orders.isolate;
    if (this.#proxy === null) return; // not started yet: applied right after the egress starts
    if (iso !== null && this.#isolatedBy === null) {
      this.#isolatedBy = iso;
      this.#isolating = this.#isolating.then(() => this.#isolate(iso));
    } else if (iso === null && this.#isolatedBy !== null) {
      const was = this.#isolatedBy;
      this.#isolatedBy = null;
      this.#isolating = this.#isolating.then(() => this.#release(was));
    }
  }

  async #isolate(d: StreamDirective): Promise<void> {
    const started = performance.now();
    const cut = this.#proxy?.isolate() ?? 0;
    if (this.#ns !== null) await this.#ns.cut([0]);
    const ms = performance.now() - started;
    this.#say('warn', `agent isolated: ${d.scopeText} (${d.id})`, {
      cut,
      ms: Math.round(ms * 1000) / 1000,
      netns: this.#ns?.name ?? null,
    });
    this.#report([{ type: 'process.isolated', directiveId: d.id, pid: this.#child?.pid ?? 0, cut, ms }]);
  }

  /**
   * Freezes every process of the agent (not one more instruction runs), then cuts its egress as
   * an isolate does; audited `process.frozen` with the processes and the time to confirmed.
   */
  async #freeze(child: AgentHandle, d: StreamDirective): Promise<void> {
    if (this.#killing !== null || !child.alive()) return;
    const r = await child.freeze();
    const cut = this.#proxy?.isolate() ?? 0;
    if (this.#ns !== null) await this.#ns.cut([0]);
    this.#say('warn', `agent frozen: ${d.scopeText} (${d.id})`, {
      pid: child.pid,
      pids: r.pids,
      ms: r.ms,
      confirmed: r.confirmed,
      cut,
      isolation: this.#backend.isolation,
    });
    this.#report([
      {
        type: 'process.frozen',
        directiveId: d.id,
        pid: child.pid,
        pids: r.pids.slice(0, 1000),
        ms: r.ms,
        cut,
        isolation: this.#backend.isolation,
        ...(r.confirmed ? {} : { detail: 'the kernel did not confirm the freeze in time' }),
      },
    ]);
  }

  /** Thaws the agent (the freeze was cleared) and restores egress unless an isolate is in force. */
  async #thaw(child: AgentHandle, d: StreamDirective): Promise<void> {
    if (this.#killing !== null || !child.alive() || !child.frozen()) return;
    const r = await child.thaw();
    if (this.#isolatedBy === null) {
      this.#proxy?.release();
      if (this.#ns !== null) await this.#ns.restore([0]);
    }
    this.#say('info', `agent thawed (${d.id} cleared)`, { pid: child.pid, pids: r.pids, ms: r.ms });
    this.#report([
      {
        type: 'process.thawed',
        directiveId: d.id,
        pid: child.pid,
        pids: r.pids.slice(0, 1000),
        ms: r.ms,
        isolation: this.#backend.isolation,
      },
    ]);
  }

  /** Writes the evidence of the frozen agent (`killpath inspect`); refuses when it is not frozen. */
  async #inspect(order: InspectOrder): Promise<void> {
    const child = this.#child;
    if (child === null || !child.alive() || !child.frozen()) {
      this.#say('warn', 'inspection refused: the agent is not frozen', { requestId: order.requestId });
      this.#report([
        {
          type: 'process.inspected',
          requestId: order.requestId,
          pid: child?.pid ?? 0,
          detail: 'refused: the agent is not frozen',
        },
      ]);
      return;
    }
    const dir = join(this.#o.evidenceDir, this.id, order.requestId);
    const pids = child.processes();
    const started = performance.now();
    const { path, evidence } = await writeEvidence({
      dir,
      requestId: order.requestId,
      runId: order.runId,
      actor: order.actor,
      launcherId: this.id,
      isolation: this.#backend.isolation,
      pids,
      frozen: child.frozen(),
      cores: order.cores,
      hold: (fn) => child.holdForTrace(fn),
    });
    const cores = evidence.processes.filter((p) => p.core !== null).length;
    const detail = `${evidence.processes.length} processes, ${cores} core files${evidence.coreNote ? ` (${evidence.coreNote})` : ''}`;
    this.#say('warn', 'evidence written (the agent stays frozen)', {
      requestId: order.requestId,
      path,
      detail,
      ms: Math.round(performance.now() - started),
    });
    this.#report([
      {
        type: 'process.inspected',
        requestId: order.requestId,
        pid: child.pid,
        pids: pids.slice(0, 1000),
        path,
        ms: performance.now() - started,
        isolation: this.#backend.isolation,
        detail,
      },
    ]);
  }

  async #release(d: StreamDirective): Promise<void> {
    // A freeze keeps egress cut until it is thawed.
    if (this.#frozenBy === null) this.#proxy?.release();
    if (this.#ns !== null && this.#frozenBy === null) await this.#ns.restore([0]);
    this.#refusedLogged.clear();
    this.#say('info', `isolation lifted (${d.id} cleared)`, {});
    this.#report([{ type: 'process.released', directiveId: d.id, pid: this.#child?.pid ?? 0 }]);
  }

  /**
   * Egress is logged once per new destination (the proxy counts every attempt; the totals are
   * logged when the launcher ends) and every refusal is logged; the first refusal per
   * destination and isolation is audited.
   */
  #egress(e: EgressEvent): void {
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
      const cp = new URL(this.#o.url);
      const toControlPlane = e.host === cp.hostname.replace(/^\[|\]$/g, '') && String(e.port) === cp.port;
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
        directiveId: this.#isolatedBy?.id ?? null,
        destination: key,
        detail: e.reason ?? 'isolated',
      },
    ]);
  }

  #report(events: Record<string, unknown>[]): void {
    const p = reportLauncherEvents(
      this.#o.url,
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
    if (this.#child !== null) await this.#child.terminate(this.#o.killGraceMs);
    await this.#isolating.catch(() => {});
    await this.#freezing.catch(() => {});
    if (this.#proxy !== null)
      this.#say('info', 'egress destinations reached', {
        destinations: Object.fromEntries(this.#proxy.destinations()),
      });
    await this.#ns?.destroy().catch(() => {});
    await this.#bridge?.close().catch(() => {});
    await this.#proxy?.close().catch(() => {});
    if (this.#dir !== null) rmSync(this.#dir, { recursive: true, force: true });
    // What the launcher did must reach the audit log before it exits (bounded: reports retry on their own).
    await Promise.race([
      Promise.allSettled([...this.#reports]),
      new Promise((ok) => setTimeout(ok, 5000).unref()),
    ]);
  }
}

function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || host.startsWith('127.');
}

function exitCode(exit: ExitInfo): number {
  if (exit.code !== null) return exit.code;
  return 128 + (exit.signal === 'SIGKILL' ? 9 : exit.signal === 'SIGTERM' ? 15 : 1);
}
