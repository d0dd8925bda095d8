import { createServer, connect, type Server, type Socket } from 'node:net';

/**
 * A TCP relay between agents and their control plane, owned by the drill: `cut()` is a network
 * partition (open connections are destroyed, new ones are reset at once), `heal()` ends it.
 * Loopback only.
 */
export class PartitionRelay {
  readonly #server: Server;
  readonly #open = new Set<Socket>();
  #cut = false;
  port = 0;

  private constructor(server: Server) {
    this.#server = server;
  }

  /** Listens on 127.0.0.1 (a free port) and forwards to `target` (an http://host:port URL). */
  static async start(target: string): Promise<PartitionRelay> {
    const to = new URL(target);
    const server = createServer();
    const relay = new PartitionRelay(server);
    server.on('connection', (inbound) => {
      if (relay.#cut) {
        inbound.resetAndDestroy();
        return;
      }
      const outbound = connect({ host: to.hostname, port: Number(to.port || 80) });
      for (const s of [inbound, outbound]) {
        relay.#open.add(s);
        s.once('close', () => relay.#open.delete(s));
        s.on('error', () => {
          inbound.destroy();
          outbound.destroy();
        });
      }
      inbound.pipe(outbound).pipe(inbound);
    });
    await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
    relay.port = (server.address() as { port: number }).port;
    return relay;
  }

  /** The URL agents use instead of the control plane's. */
  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  /** Starts the partition: every open connection is reset, new ones are refused. */
  cut(): void {
    this.#cut = true;
    for (const s of this.#open) s.resetAndDestroy();
    this.#open.clear();
  }

  /** Ends the partition. */
  heal(): void {
    this.#cut = false;
  }

  async close(): Promise<void> {
    this.cut();
    await new Promise<void>((ok) => this.#server.close(() => ok()));
  }
}
