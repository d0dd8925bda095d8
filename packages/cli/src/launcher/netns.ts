import { spawn, spawnSync, execFile, type ChildProcess } from 'node:child_process';
import { existsSync, lstatSync, rmSync } from 'node:fs';
import { connect, createServer, type Socket } from 'node:net';
import { isAbsolute } from 'node:path';
import { createInterface } from 'node:readline';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { KillpathError } from '@killpath/protocol';

/*
 * Network-layer isolation without firewall tools: the agent runs in a network namespace whose
 * only interface is loopback (no veth, no route), so any direct connection to an outside
 * address fails. Its only way out is the relay (netns-relay.ts) inside the namespace, which
 * pipes 127.0.0.1 ports to path-based unix sockets served on the host (egress proxy, control
 * plane bridge). Cutting a forward in the relay cuts that path whatever the agent does.
 *
 * This does not isolate the filesystem: an agent in the namespace can still connect to any
 * unix socket path it can open, and an agent running as root can leave the namespace (setns to
 * /proc/1/ns/net). Run the agent as an unprivileged user for the cut to hold against it.
 */

/** Prefix of every namespace killpath creates, so leftovers can be found with `ip netns list`. */
export const NETNS_PREFIX = 'kp-';

/** Longest unix socket path Linux accepts (sun_path is 108 bytes with the trailing NUL). */
const MAX_UNIX_PATH_BYTES = 107;

const IP_CANDIDATES = ['/usr/sbin/ip', '/sbin/ip', '/usr/bin/ip', '/bin/ip'];

/**
 * Absolute path of iproute2's `ip`, or null. An absolute path, so that the agent's own PATH
 * cannot choose which `ip` starts it.
 */
export function ipBinary(): string | null {
  return IP_CANDIDATES.find((p) => existsSync(p)) ?? null;
}

function requireIp(): string {
  const ip = ipBinary();
  if (!ip)
    throw new KillpathError('unavailable', 'network namespaces need iproute2 (`ip`), which is not installed');
  return ip;
}

/** `[ip, 'netns', 'exec', name, command, ...args]`: `ip` execs into the command, so the pid is the command's. */
export function netnsExecArgv(name: string, command: string, args: string[]): string[] {
  return [requireIp(), 'netns', 'exec', name, command, ...args];
}

/**
 * Whether this process can run agents in network namespaces: Linux, root, iproute2 present,
 * and a probe namespace can be created (and is deleted again). Takes a few ms.
 */
export function netnsSupported(): { ok: true } | { ok: false; why: string } {
  if (process.platform !== 'linux')
    return { ok: false, why: `network namespaces are Linux-only (this is ${process.platform})` };
  if (process.getuid?.() !== 0) return { ok: false, why: 'network namespaces need root' };
  const ip = ipBinary();
  if (!ip) return { ok: false, why: 'network namespaces need iproute2 (`ip`), which is not installed' };
  const probe = `${NETNS_PREFIX}probe-${randomBytes(4).toString('hex')}`;
  const add = spawnSync(ip, ['netns', 'add', probe], { encoding: 'utf8', timeout: 5_000 });
  if (add.status !== 0)
    return {
      ok: false,
      why: `cannot create a network namespace: ${(add.stderr || String(add.error)).trim()}`,
    };
  spawnSync(ip, ['netns', 'del', probe], { timeout: 5_000 });
  return { ok: true };
}

/** Names of the network namespaces whose name starts with `prefix` (default `kp-`); empty when `ip` is missing. */
export function listNetns(prefix: string = NETNS_PREFIX): string[] {
  const ip = ipBinary();
  if (!ip) return [];
  const out = spawnSync(ip, ['netns', 'list'], { encoding: 'utf8', timeout: 5_000 });
  return (out.stdout ?? '')
    .split('\n')
    .map((line) => line.split(' ')[0] ?? '')
    .filter((name) => name.startsWith(prefix));
}

function run(file: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(file, args, { timeout: 5_000, encoding: 'utf8' }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${args.join(' ')}: ${(stderr || err.message).trim()}`, { cause: err }));
      else resolve(stdout);
    });
  });
}

/**
 * Makes `path` ready to listen on as a unix socket: absolute, short enough, and a stale socket
 * left there by a crashed run (nobody accepts on it) is removed. A live socket is `conflict`;
 * anything that is not a socket is refused, never deleted.
 */
export async function prepareUnixPath(path: string): Promise<void> {
  if (!isAbsolute(path))
    throw new KillpathError('invalid_request', `unix socket path must be absolute: ${path}`);
  if (Buffer.byteLength(path) > MAX_UNIX_PATH_BYTES) {
    throw new KillpathError(
      'invalid_request',
      `unix socket path is longer than ${MAX_UNIX_PATH_BYTES} bytes: ${path}`,
    );
  }
  let stat;
  try {
    stat = lstatSync(path);
  } catch {
    return;
  }
  if (!stat.isSocket())
    throw new KillpathError('invalid_request', `refusing to replace a file that is not a socket: ${path}`);
  const live = await new Promise<boolean>((resolve) => {
    const probe = connect({ path });
    probe.once('connect', () => {
      probe.destroy();
      resolve(true);
    });
    probe.once('error', () => resolve(false));
  });
  if (live) throw new KillpathError('conflict', `another process is listening on ${path}`);
  rmSync(path, { force: true });
}

/** The relay script, next to this module: `.ts` when running from source, `.js` from dist. */
export function netnsRelayScript(): string {
  return fileURLToPath(
    new URL(import.meta.url.endsWith('.ts') ? './netns-relay.ts' : './netns-relay.js', import.meta.url),
  );
}

/** Options of {@link AgentNetns.create}. */
export interface AgentNetnsOptions {
  /** Namespace name; default `kp-<8 hex>`. Letters, digits, `._-`, at most 32 characters. */
  name?: string;
  /** Ports inside the namespace (on 127.0.0.1; 0 = pick) piped to host unix socket paths. */
  forwards: { port: number; unixPath: string }[];
  /** Relay script to run; default {@link netnsRelayScript}. */
  relayScript?: string;
  /** How long to wait for the relay to listen, in ms. Default 5000. */
  readyTimeoutMs?: number;
}

/** How long a relay command may take before the relay is presumed stuck, in ms. */
const COMMAND_TIMEOUT_MS = 2_000;

/**
 * A network namespace for one agent: loopback only, plus the relay that forwards chosen
 * inside ports to host unix sockets. Start the agent in it with {@link AgentNetns.execArgv}
 * (or `LaunchSpec.netns`); call {@link AgentNetns.destroy} when done.
 */
export class AgentNetns {
  /** The namespace's name (`ip netns list`). */
  readonly name: string;
  /** The ports inside the namespace, same order as the forwards. */
  readonly ports: number[];
  readonly #ip: string;
  readonly #relay: ChildProcess;
  readonly #relayExited: Promise<void>;
  readonly #pending = new Map<string, (reply: string | null) => void>();
  #nextId = 1;
  #relayAlive = true;
  #destroyed: Promise<void> | null = null;

  private constructor(
    name: string,
    ip: string,
    ports: number[],
    relay: ChildProcess,
    relayExited: Promise<void>,
  ) {
    this.name = name;
    this.#ip = ip;
    this.ports = ports;
    this.#relay = relay;
    this.#relayExited = relayExited.then(() => {
      this.#relayAlive = false;
      for (const resolve of this.#pending.values()) resolve(null);
      this.#pending.clear();
    });
  }

  /**
   * Creates the namespace, brings loopback up, starts the relay and waits until it listens.
   * Throws `KillpathError` (`invalid_request` for bad options, `unavailable` when the system
   * cannot do it); on failure nothing is left behind.
   */
  static async create(opts: AgentNetnsOptions): Promise<AgentNetns> {
    const name = opts.name ?? `${NETNS_PREFIX}${randomBytes(4).toString('hex')}`;
    if (!/^[A-Za-z0-9_.-]{1,32}$/.test(name) || name.startsWith('.')) {
      throw new KillpathError('invalid_request', `bad network namespace name: ${JSON.stringify(name)}`);
    }
    if (opts.forwards.length === 0)
      throw new KillpathError('invalid_request', 'a namespace needs at least one forward');
    for (const f of opts.forwards) {
      if (!Number.isInteger(f.port) || f.port < 0 || f.port > 65_535)
        throw new KillpathError('invalid_request', `bad forward port: ${f.port}`);
      if (!isAbsolute(f.unixPath))
        throw new KillpathError('invalid_request', `forward unixPath must be absolute: ${f.unixPath}`);
    }
    const ip = requireIp();
    try {
      await run(ip, ['netns', 'add', name]);
    } catch (err) {
      throw new KillpathError(
        'unavailable',
        `cannot create network namespace ${name}: ${(err as Error).message}`,
        { cause: err },
      );
    }
    let relay: ChildProcess | null = null;
    try {
      await run(ip, ['-n', name, 'link', 'set', 'lo', 'up']);
      const script = opts.relayScript ?? netnsRelayScript();
      relay = spawn(ip, ['netns', 'exec', name, process.execPath, script, JSON.stringify(opts.forwards)], {
        stdio: ['pipe', 'pipe', 'pipe'],
      });
      relay.on('error', () => {});
      // Writing a command to a relay that just died is EPIPE: the exit is handled, not the write.
      relay.stdin?.on('error', () => {});
      const exited = new Promise<void>((resolve) => relay?.once('exit', () => resolve()));
      const lines = createInterface({ input: relay.stdout as NodeJS.ReadableStream });
      const stderr: string[] = [];
      relay.stderr?.setEncoding('utf8').on('data', (chunk: string) => {
        if (stderr.join('').length < 4_000) stderr.push(chunk);
      });
      const ports = await new Promise<number[]>((resolve, reject) => {
        const timer = setTimeout(
          () => reject(new Error('relay did not start in time')),
          opts.readyTimeoutMs ?? 5_000,
        );
        const fail = (why: string) => {
          clearTimeout(timer);
          reject(new Error(why));
        };
        void exited.then(() => fail(`relay exited: ${stderr.join('').trim().slice(-500)}`));
        lines.once('line', (line) => {
          clearTimeout(timer);
          if (line.startsWith('ready ')) resolve(line.slice(6).split(' ').map(Number));
          else fail(`relay: ${line}`);
        });
      });
      const netns = new AgentNetns(name, ip, ports, relay, exited);
      lines.on('line', (line) => netns.#onReply(line));
      return netns;
    } catch (err) {
      relay?.kill('SIGKILL');
      await run(ip, ['netns', 'del', name]).catch(() => {});
      throw new KillpathError(
        'unavailable',
        `cannot set up network namespace ${name}: ${(err as Error).message}`,
        { cause: err },
      );
    }
  }

  /** `[ip, 'netns', 'exec', name, command, ...args]` with `ip` as an absolute path. */
  execArgv(command: string, args: string[]): string[] {
    return [this.#ip, 'netns', 'exec', this.name, command, ...args];
  }

  /**
   * Network-layer cut: the relay stops forwarding the forwards at `indexes` (new connections
   * are reset) and resets their open connections; other forwards keep working. Resolves once
   * the relay confirmed. If the relay is gone, nothing is forwarded anyway and this resolves.
   */
  async cut(indexes: number[]): Promise<void> {
    await this.#command('cut', indexes, true);
  }

  /** Forwards the forwards at `indexes` again. Throws `unavailable` if the relay is gone. */
  async restore(indexes: number[]): Promise<void> {
    await this.#command('restore', indexes, false);
  }

  /** Pids of every process inside the namespace (relay included while it runs). */
  async pids(): Promise<number[]> {
    const out = await run(this.#ip, ['netns', 'pids', this.name]).catch(() => '');
    return out
      .split('\n')
      .map(Number)
      .filter((pid) => Number.isInteger(pid) && pid > 0);
  }

  /**
   * Stops the relay, SIGKILLs whatever else still runs inside the namespace (leftovers of the
   * agent: everything in it descends from the agent or the relay) and deletes the namespace.
   * Idempotent. The host-side unix sockets belong to their servers and are not touched.
   */
  destroy(): Promise<void> {
    this.#destroyed ??= (async () => {
      this.#relay.stdin?.end();
      const stopped = await Promise.race([
        this.#relayExited.then(() => true),
        sleep(1_000).then(() => false),
      ]);
      if (!stopped) {
        this.#relay.kill('SIGKILL');
        await this.#relayExited;
      }
      for (const pid of await this.pids()) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // Already gone.
        }
      }
      await run(this.#ip, ['netns', 'del', this.name]).catch(() => {});
    })();
    return this.#destroyed;
  }

  #onReply(line: string): void {
    const [id] = line.split(' ', 1);
    const resolve = id === undefined ? undefined : this.#pending.get(id);
    if (!resolve) return;
    this.#pending.delete(id as string);
    resolve(line);
  }

  async #command(verb: 'cut' | 'restore', indexes: number[], okIfGone: boolean): Promise<void> {
    if (indexes.some((i) => !Number.isInteger(i) || i < 0 || i >= this.ports.length)) {
      throw new KillpathError('invalid_request', `bad forward index in [${indexes.join(', ')}]`);
    }
    if (indexes.length === 0) return;
    if (!this.#relayAlive || this.#destroyed) {
      if (okIfGone) return;
      throw new KillpathError('unavailable', `the relay of ${this.name} is gone`);
    }
    const id = String(this.#nextId++);
    const reply = new Promise<string | null>((resolve) => {
      this.#pending.set(id, resolve);
      setTimeout(() => resolve(null), COMMAND_TIMEOUT_MS).unref();
    });
    this.#relay.stdin?.write(`${id} ${verb} ${indexes.join(' ')}\n`);
    const line = await reply;
    this.#pending.delete(id);
    if (line === `${id} ok`) return;
    if (line === null && okIfGone && !this.#relayAlive) return;
    throw new KillpathError(
      'unavailable',
      `relay of ${this.name} did not confirm ${verb}: ${line ?? 'no reply'}`,
    );
  }
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/**
 * Host side of a forward: listens on the unix socket `unixPath` and pipes each connection to
 * TCP `target` (e.g. the control plane, so an agent in a namespace keeps its connection).
 * `close()` stops listening, destroys open connections and removes the socket file.
 */
export async function unixTcpBridge(
  unixPath: string,
  target: { host: string; port: number },
): Promise<{ close(): Promise<void> }> {
  await prepareUnixPath(unixPath);
  const open = new Set<Socket>();
  const server = createServer((inside) => {
    const outside = connect({ host: target.host, port: target.port });
    for (const socket of [inside, outside]) {
      open.add(socket);
      socket.on('error', () => {});
      socket.once('close', () => {
        open.delete(socket);
        inside.destroy();
        outside.destroy();
      });
    }
    inside.pipe(outside);
    outside.pipe(inside);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(unixPath, () => {
      server.off('error', reject);
      resolve();
    });
  });
  let closed: Promise<void> | null = null;
  return {
    close() {
      closed ??= new Promise<void>((resolve) => {
        server.close(() => {
          rmSync(unixPath, { force: true });
          resolve();
        });
        for (const socket of open) socket.destroy();
      });
      return closed;
    },
  };
}
