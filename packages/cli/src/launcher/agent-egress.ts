import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EgressProxy, type EgressEvent } from './egress-proxy.ts';
import { AgentNetns, unixTcpBridge } from './netns.ts';
import type { LauncherVoice } from './voice.ts';

/** Options of {@link AgentEgress.start}. */
export interface AgentEgressOptions {
  /** The control plane's URL: the one destination an isolate leaves open. */
  url: string;
  /** Put the agent in its own network namespace (Linux, root). */
  netns: boolean;
  onEvent: (e: EgressEvent) => void;
  voice: LauncherVoice;
}

/** Where the agent is told to send its traffic: the control plane and its proxy. */
export interface AgentRoutes {
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
  readonly #bridge: { close(): Promise<void> } | null;
  readonly #dir: string | null;
  readonly #url: string;

  private constructor(
    url: string,
    proxy: EgressProxy,
    ns: AgentNetns | null,
    bridge: { close(): Promise<void> } | null,
    dir: string | null,
  ) {
    this.#url = url;
    this.proxy = proxy;
    this.ns = ns;
    this.#bridge = bridge;
    this.#dir = dir;
  }

  /** Starts the proxy (and the namespace with its relay and the control-plane bridge); on failure, undoes what it started. */
  static async start(o: AgentEgressOptions): Promise<AgentEgress> {
    const cp = new URL(o.url);
    const cpHost = cp.hostname.replace(/^\[|\]$/g, '');
    const cpPort = Number(cp.port || (cp.protocol === 'https:' ? 443 : 80));
    const allow = (host: string, port: number) =>
      port === cpPort && (host === cpHost || (isLoopback(host) && isLoopback(cpHost)));
    if (!o.netns) {
      const proxy = await EgressProxy.start({ host: '127.0.0.1', port: 0, onEvent: o.onEvent, allow });
      return new AgentEgress(o.url, proxy, null, null, null);
    }
    const dir = mkdtempSync(join(tmpdir(), 'killpath-launch-'));
    let proxy: EgressProxy | null = null;
    let bridge: { close(): Promise<void> } | null = null;
    try {
      const proxyPath = join(dir, 'egress.sock');
      const cpPath = join(dir, 'control-plane.sock');
      proxy = await EgressProxy.start({ unixPath: proxyPath, onEvent: o.onEvent, allow });
      bridge = await unixTcpBridge(cpPath, { host: cpHost, port: cpPort });
      const ns = await AgentNetns.create({
        forwards: [
          { port: 0, unixPath: proxyPath },
          { port: 0, unixPath: cpPath },
        ],
      });
      o.voice.say('info', 'network namespace ready', {
        netns: ns.name,
        proxyPort: ns.ports[0],
        controlPlanePort: ns.ports[1],
      });
      return new AgentEgress(o.url, proxy, ns, bridge, dir);
    } catch (err) {
      await bridge?.close().catch(() => {});
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
      url: ns ? `${new URL(this.#url).protocol}//127.0.0.1:${ns.ports[1]}` : this.#url,
      proxy: ns ? `http://127.0.0.1:${ns.ports[0]}` : this.proxy.url!,
      noProxy: ns ? '127.0.0.1,localhost' : new URL(this.#url).hostname,
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
    await this.#bridge?.close().catch(() => {});
    await this.proxy.close().catch(() => {});
    if (this.#dir !== null) rmSync(this.#dir, { recursive: true, force: true });
  }
}

function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || host.startsWith('127.');
}
