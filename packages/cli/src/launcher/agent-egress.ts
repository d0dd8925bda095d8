import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EgressProxy, type EgressEvent } from './egress-proxy.ts';
import { AgentNetns, unixTcpBridge } from './netns.ts';
import type { LauncherVoice } from './voice.ts';

/** Options of {@link AgentEgress.start}. */
export interface AgentEgressOptions {
  /** The control plane's URL, or its replicas' URLs: the destinations an isolate leaves open. */
  url: string | readonly string[];
  /** Put the agent in its own network namespace (Linux, root). */
  netns: boolean;
  onEvent: (e: EgressEvent) => void;
  voice: LauncherVoice;
}

/** Where the agent is told to send its traffic: the control plane and its proxy. */
export interface AgentRoutes {
  /** The control plane URL(s) as the agent reaches them, comma-separated when there are several. */
  url: string;
  proxy: string;
  noProxy: string;
}

/**
 * The agent's way out: the egress proxy it is told to use (and, with `netns`, the network
 * namespace it runs in, whose only routes out are that proxy and a bridge to the control plane).
 * An isolate or a freeze {@link AgentEgress.cut}s it; {@link AgentEgress.restore} lifts that.
 */
export class AgentEgress {
  readonly proxy: EgressProxy;
  readonly ns: AgentNetns | null;
  readonly #bridges: { close(): Promise<void> }[];
  readonly #dir: string | null;
  readonly #urls: string[];

  private constructor(
    urls: string[],
    proxy: EgressProxy,
    ns: AgentNetns | null,
    bridges: { close(): Promise<void> }[],
    dir: string | null,
  ) {
    this.#urls = urls;
    this.proxy = proxy;
    this.ns = ns;
    this.#bridges = bridges;
    this.#dir = dir;
  }

  /** Starts the proxy (and the namespace with its relay and the control-plane bridge); on failure, undoes what it started. */
  static async start(o: AgentEgressOptions): Promise<AgentEgress> {
    const urls = typeof o.url === 'string' ? [o.url] : [...o.url];
    const cps = urls.map((u) => {
      const cp = new URL(u);
      return {
        host: cp.hostname.replace(/^\[|\]$/g, ''),
        port: Number(cp.port || (cp.protocol === 'https:' ? 443 : 80)),
      };
    });
    const allow = (host: string, port: number) =>
      cps.some((cp) => port === cp.port && (host === cp.host || (isLoopback(host) && isLoopback(cp.host))));
    if (!o.netns) {
      const proxy = await EgressProxy.start({ host: '127.0.0.1', port: 0, onEvent: o.onEvent, allow });
      return new AgentEgress(urls, proxy, null, [], null);
    }
    const dir = mkdtempSync(join(tmpdir(), 'killpath-launch-'));
    let proxy: EgressProxy | null = null;
    const bridges: { close(): Promise<void> }[] = [];
    try {
      const proxyPath = join(dir, 'egress.sock');
      proxy = await EgressProxy.start({ unixPath: proxyPath, onEvent: o.onEvent, allow });
      // One bridge per control plane (replica): the namespace's loopback port i+1 reaches replica i.
      const cpPaths = cps.map((_, i) =>
        join(dir, i === 0 ? 'control-plane.sock' : `control-plane-${i}.sock`),
      );
      for (const [i, cp] of cps.entries()) bridges.push(await unixTcpBridge(cpPaths[i]!, cp));
      const ns = await AgentNetns.create({
        forwards: [{ port: 0, unixPath: proxyPath }, ...cpPaths.map((unixPath) => ({ port: 0, unixPath }))],
      });
      o.voice.say('info', 'network namespace ready', {
        netns: ns.name,
        proxyPort: ns.ports[0],
        controlPlanePort: ns.ports[1],
      });
      return new AgentEgress(urls, proxy, ns, bridges, dir);
    } catch (err) {
      for (const b of bridges) await b.close().catch(() => {});
      await proxy?.close().catch(() => {});
      rmSync(dir, { recursive: true, force: true });
      throw err;
    }
  }

  /**
   * What the agent is given: in a namespace it reaches the control plane through a TCP relay on
   * its loopback, with the control plane's own scheme (TLS passes through the relay untouched).
   */
  routes(): AgentRoutes {
    const ns = this.ns;
    return {
      url: this.#urls
        .map((u, i) => (ns ? `${new URL(u).protocol}//127.0.0.1:${ns.ports[1 + i]}` : u))
        .join(','),
      proxy: ns ? `http://127.0.0.1:${ns.ports[0]}` : this.proxy.url!,
      noProxy: ns
        ? '127.0.0.1,localhost'
        : [...new Set(this.#urls.map((u) => new URL(u).hostname))].join(','),
    };
  }

  /** Refuses new connections and cuts open ones (the namespace's relay stops forwarding too); resolves with how many were cut. */
  async cut(): Promise<number> {
    const cut = this.proxy.isolate();
    if (this.ns !== null) await this.ns.cut([0]);
    return cut;
  }

  /** Lifts {@link AgentEgress.cut}. */
  async restore(): Promise<void> {
    this.proxy.release();
    if (this.ns !== null) await this.ns.restore([0]);
  }

  /** Attempts per destination so far. */
  destinations(): Map<string, number> {
    return this.proxy.destinations();
  }

  /** Stops everything {@link AgentEgress.start} started. */
  async close(): Promise<void> {
    await this.ns?.destroy().catch(() => {});
    for (const b of this.#bridges) await b.close().catch(() => {});
    await this.proxy.close().catch(() => {});
    if (this.#dir !== null) rmSync(this.#dir, { recursive: true, force: true });
  }
}

function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || host.startsWith('127.');
}
