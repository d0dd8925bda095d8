import { mkdirSync, readFileSync, rmdirSync, writeFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { sleep } from './proc.ts';

/*
 * Linux cgroup v2, the parts the launcher needs: find the unified hierarchy (from
 * /proc/self/mountinfo, never a hard-coded path), create one child cgroup per agent under the
 * launcher's own cgroup, list its processes (`cgroup.procs`), kill them all at once
 * (`cgroup.kill`, Linux ≥ 5.14), freeze and thaw them (`cgroup.freeze`, Linux ≥ 5.2), remove it.
 * No controller is enabled: kill and freeze are core cgroup v2 files, so this works beside v1
 * controllers (a hybrid hierarchy) and under a systemd service's own cgroup.
 */

/** A cgroup2 mount: where it is mounted and which cgroup of the hierarchy is its root. */
export interface Cgroup2Mount {
  mountPoint: string;
  root: string;
}

/** Undoes the octal escapes of /proc/self/mountinfo (`\040` for a space). */
function unescapeMountField(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_m, oct: string) => String.fromCharCode(parseInt(oct, 8)));
}

/** The first cgroup2 mount listed in a /proc/self/mountinfo text, or null. */
export function parseCgroup2Mount(mountinfo: string): Cgroup2Mount | null {
  for (const line of mountinfo.split('\n')) {
    const sep = line.indexOf(' - ');
    if (sep < 0) continue;
    const fsType = line.slice(sep + 3).split(' ')[0];
    if (fsType !== 'cgroup2') continue;
    const fields = line.slice(0, sep).split(' ');
    const root = fields[3];
    const mountPoint = fields[4];
    if (root === undefined || mountPoint === undefined) continue;
    return { root: unescapeMountField(root), mountPoint: unescapeMountField(mountPoint) };
  }
  return null;
}

/** This process's cgroup in the unified hierarchy (the `0::` line of /proc/self/cgroup), or null. */
export function parseOwnCgroup(procSelfCgroup: string): string | null {
  for (const line of procSelfCgroup.split('\n')) if (line.startsWith('0::')) return line.slice(3).trim();
  return null;
}

/** The directory of cgroup `path` (as /proc/self/cgroup names it) under `mount`. */
export function cgroupDir(mount: Cgroup2Mount, path: string): string {
  const rel =
    mount.root !== '/' && (path === mount.root || path.startsWith(`${mount.root}/`))
      ? path.slice(mount.root.length)
      : path;
  return join(mount.mountPoint, rel);
}

/** Where the launcher may create agent cgroups, or why it cannot. */
export type CgroupSupport = { ok: true; parent: string } | { ok: false; why: string };

/** Reads a file as text; a seam for tests of {@link cgroupSupport}. */
export type ReadText = (path: string) => string;

const readText: ReadText = (path) => readFileSync(path, 'utf8');

/**
 * Whether this process can run agents in cgroups of their own: Linux, a cgroup v2 hierarchy
 * mounted, this process's cgroup found in it and writable (a probe child is created and
 * removed), and the probe has `cgroup.kill` and `cgroup.freeze` (kernel ≥ 5.14). The parent is
 * this process's own cgroup. Takes a millisecond or two.
 */
export function cgroupSupport(read: ReadText = readText): CgroupSupport {
  if (process.platform !== 'linux')
    return { ok: false, why: `cgroups are Linux-only (this is ${process.platform})` };
  let mount: Cgroup2Mount | null;
  let own: string | null;
  try {
    mount = parseCgroup2Mount(read('/proc/self/mountinfo'));
    own = parseOwnCgroup(read('/proc/self/cgroup'));
  } catch (err) {
    return { ok: false, why: `cannot read /proc/self: ${(err as Error).message}` };
  }
  if (mount === null) return { ok: false, why: 'no cgroup v2 hierarchy is mounted (/proc/self/mountinfo)' };
  if (own === null) return { ok: false, why: 'this process has no cgroup v2 path (/proc/self/cgroup)' };
  const parent = cgroupDir(mount, own);
  if (!existsSync(join(parent, 'cgroup.procs')))
    return { ok: false, why: `this process's cgroup ${parent} is not visible under ${mount.mountPoint}` };
  const probe = join(parent, `killpath-probe-${randomBytes(4).toString('hex')}`);
  try {
    mkdirSync(probe);
  } catch (err) {
    return {
      ok: false,
      why: `cannot create a cgroup under ${parent}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
    };
  }
  try {
    for (const file of ['cgroup.kill', 'cgroup.freeze'])
      if (!existsSync(join(probe, file)))
        return { ok: false, why: `the kernel has no ${file} (cgroup v2 kill needs Linux ≥ 5.14)` };
    return { ok: true, parent };
  } finally {
    try {
      rmdirSync(probe);
    } catch {
      // An empty cgroup we just made: removal does not fail in practice.
    }
  }
}

/** One agent's cgroup. Every method is synchronous file I/O on cgroupfs, each a few µs. */
export class AgentCgroup {
  /** The cgroup's directory. */
  readonly dir: string;

  private constructor(dir: string) {
    this.dir = dir;
  }

  /** Creates `<parent>/<name>` (fails with the errno when it cannot). */
  static create(parent: string, name: string): AgentCgroup {
    const dir = join(parent, name);
    mkdirSync(dir);
    return new AgentCgroup(dir);
  }

  /** `<dir>/cgroup.procs`: a process writing its pid here moves itself in. */
  get procsFile(): string {
    return join(this.dir, 'cgroup.procs');
  }

  /** Pids of the processes in the cgroup now (empty once it is removed). */
  procs(): number[] {
    try {
      return readFileSync(this.procsFile, 'utf8')
        .split('\n')
        .filter((l) => l !== '')
        .map(Number);
    } catch {
      return [];
    }
  }

  /** `cgroup.events` as a record (`populated`, `frozen`); empty once removed. */
  events(): Record<string, string> {
    try {
      return Object.fromEntries(
        readFileSync(join(this.dir, 'cgroup.events'), 'utf8')
          .split('\n')
          .filter((l) => l !== '')
          .map((l) => l.split(' ') as [string, string]),
      );
    } catch {
      return {};
    }
  }

  /** True while any process (not a zombie) is in the cgroup. */
  populated(): boolean {
    return this.events().populated === '1';
  }

  /** SIGKILL to every process in the cgroup at once, whatever it did with sessions, groups or its environment. */
  kill(): void {
    writeFileSync(join(this.dir, 'cgroup.kill'), '1');
  }

  /**
   * Freezes (`true`) or thaws the cgroup and waits until the kernel reports it done (`frozen`
   * in `cgroup.events`), polling every `pollMs` up to `timeoutMs`; resolves with whether it was
   * confirmed.
   */
  async freeze(on: boolean, timeoutMs = 5000, pollMs = 1): Promise<boolean> {
    writeFileSync(join(this.dir, 'cgroup.freeze'), on ? '1' : '0');
    const want = on ? '1' : '0';
    const deadline = performance.now() + timeoutMs;
    for (;;) {
      const ev = this.events();
      if (ev.frozen === want || ev.populated === '0') return true;
      if (performance.now() > deadline) return false;
      await sleep(pollMs);
    }
  }

  /** Removes the (empty) cgroup, retrying for up to `timeoutMs`; false when it could not. */
  async remove(timeoutMs = 2000): Promise<boolean> {
    const deadline = performance.now() + timeoutMs;
    for (;;) {
      try {
        rmdirSync(this.dir);
        return true;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') return true;
        if (performance.now() > deadline) return false;
        await sleep(10);
      }
    }
  }
}
