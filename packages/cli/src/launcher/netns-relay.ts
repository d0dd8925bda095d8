/**
 * The relay that runs inside an agent's network namespace (started by `AgentNetns.create` as
 * `ip netns exec NS node netns-relay.js '<forwards json>'`). It is the namespace's only way out:
 * it listens on 127.0.0.1 ports inside the namespace and pipes each accepted connection to a
 * path-based unix socket on the host filesystem (those cross network namespaces).
 *
 * Importing this module has no side effect; it runs only as the main module. It imports nothing
 * but `node:` builtins so the built `dist/launcher/netns-relay.js` runs with plain `node`.
 *
 * Protocol, one line each way:
 * - argv[2]: JSON `[{ "port": 0, "unixPath": "/abs/path.sock" }, …]` (port 0 = pick one).
 * - stdout: `ready <port> <port> …` once every forward listens (same order as the forwards),
 *   or `error <message>` before exiting 1.
 * - stdin: `<id> cut <index> …`, `<id> restore <index> …`, `<id> ping`; answered on stdout with
 *   `<id> ok` or `<id> err <message>`.
 * - stdin closing (the launcher died or is done) ends the relay: the namespace is then cut off.
 */
import { realpathSync } from 'node:fs';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

/** One forward: a 127.0.0.1 port inside the namespace piped to a unix socket path on the host. */
export interface RelayForward {
  /** Port on 127.0.0.1 inside the namespace; 0 picks a free one. */
  port: number;
  /** Absolute path of the host-side unix socket each connection is piped to. */
  unixPath: string;
}

interface ForwardState {
  forward: RelayForward;
  server: Server;
  cut: boolean;
  open: Set<{ inside: Socket; outside: Socket }>;
}

/** Validates the forwards argument; throws a plain Error (the relay reports it as `error …`). */
export function parseForwards(json: string | undefined): RelayForward[] {
  const value: unknown = JSON.parse(json ?? 'null');
  if (!Array.isArray(value) || value.length === 0)
    throw new Error('expected a non-empty JSON array of forwards');
  return value.map((item: unknown, i) => {
    const { port, unixPath } = (item ?? {}) as { port?: unknown; unixPath?: unknown };
    if (typeof port !== 'number' || !Number.isInteger(port) || port < 0 || port > 65_535)
      throw new Error(`forward ${i}: bad port`);
    if (typeof unixPath !== 'string' || !unixPath.startsWith('/'))
      throw new Error(`forward ${i}: unixPath must be absolute`);
    return { port, unixPath };
  });
}

function pipeConnection(state: ForwardState, inside: Socket): void {
  inside.on('error', () => {});
  if (state.cut) {
    // Keep listening while cut (so nothing else can take the port) but answer with a reset.
    inside.resetAndDestroy();
    return;
  }
  const outside = connect({ path: state.forward.unixPath });
  outside.on('error', () => {});
  const pair = { inside, outside };
  state.open.add(pair);
  const done = () => {
    state.open.delete(pair);
    inside.destroy();
    outside.destroy();
  };
  inside.once('close', done);
  outside.once('close', done);
  inside.pipe(outside);
  outside.pipe(inside);
}

function listen(state: ForwardState): Promise<number> {
  return new Promise((resolve, reject) => {
    state.server.once('error', reject);
    state.server.listen({ host: '127.0.0.1', port: state.forward.port }, () => {
      state.server.off('error', reject);
      const address = state.server.address();
      resolve(typeof address === 'object' && address ? address.port : 0);
    });
  });
}

function command(states: ForwardState[], line: string): string {
  const [id = '?', verb, ...rest] = line.trim().split(/\s+/);
  if (verb === 'ping') return `${id} ok`;
  if (verb !== 'cut' && verb !== 'restore') return `${id} err unknown command`;
  const indexes = rest.map(Number);
  if (indexes.some((i) => !Number.isInteger(i) || !states[i])) return `${id} err bad index`;
  for (const i of indexes) {
    const state = states[i] as ForwardState;
    state.cut = verb === 'cut';
    if (!state.cut) continue;
    for (const { inside, outside } of state.open) {
      inside.resetAndDestroy();
      outside.destroy();
    }
    state.open.clear();
  }
  return `${id} ok`;
}

/**
 * Runs the relay until `input` ends: listens on every forward, writes `ready …` to `output`,
 * then obeys commands. Resolves when it has shut down.
 */
export async function runRelay(
  forwards: RelayForward[],
  input: NodeJS.ReadableStream,
  output: NodeJS.WritableStream,
): Promise<void> {
  const states: ForwardState[] = forwards.map((forward) => {
    const state: ForwardState = { forward, server: createServer(), cut: false, open: new Set() };
    state.server.on('connection', (socket) => pipeConnection(state, socket));
    return state;
  });
  const ports = await Promise.all(states.map(listen));
  output.write(`ready ${ports.join(' ')}\n`);
  const lines = createInterface({ input });
  for await (const line of lines) {
    if (line.trim() !== '') output.write(`${command(states, line)}\n`);
  }
  for (const state of states) {
    state.server.close();
    for (const { inside, outside } of state.open) {
      inside.destroy();
      outside.destroy();
    }
  }
}

/** True when this file is the entry point (`import.meta.main` needs Node ≥ 24.2; older ones compare paths). */
function runAsMain(): boolean {
  if (typeof import.meta.main === 'boolean') return import.meta.main;
  const entry = process.argv[1];
  try {
    return entry !== undefined && realpathSync(entry) === realpathSync(fileURLToPath(import.meta.url));
  } catch {
    return false;
  }
}

if (runAsMain()) {
  try {
    await runRelay(parseForwards(process.argv[2]), process.stdin, process.stdout);
    process.exit(0);
  } catch (err) {
    process.stdout.write(`error ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  }
}
