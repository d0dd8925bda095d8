import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, readlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseStat } from './proc.ts';

/*
 * The evidence of a frozen agent, read from /proc while it stays frozen: the process tree,
 * open files, sockets with their connections, and a core file of each process where gdb's
 * `gcore` is installed. Never the environment (/proc/<pid>/environ holds the agent's token and
 * whatever secrets it was given): it is not read at all.
 */

const GCORE_CANDIDATES = ['/usr/bin/gcore', '/usr/local/bin/gcore', '/bin/gcore'];

/** Absolute path of gdb's `gcore`, or null. */
export function gcoreBinary(): string | null {
  return GCORE_CANDIDATES.find((p) => existsSync(p)) ?? null;
}

/** One open file descriptor of a process. */
export interface OpenFile {
  fd: number;
  /** The link target: a path, `socket:[inode]`, `pipe:[inode]`, `anon_inode:…`. */
  target: string;
  /** For a socket: its connection, as /proc/<pid>/net lists it. */
  connection?: Connection;
}

/** A socket from /proc/<pid>/net/{tcp,tcp6,udp,udp6,unix}. */
export interface Connection {
  proto: 'tcp' | 'tcp6' | 'udp' | 'udp6' | 'unix';
  local: string;
  remote: string | null;
  /** TCP state (`ESTABLISHED`, `LISTEN`, …) or the unix socket path. */
  state: string;
}

/** One process of the agent, as /proc showed it while frozen. */
export interface ProcessEvidence {
  pid: number;
  ppid: number;
  pgrp: number;
  state: string;
  /** argv, NUL-separated in /proc; arguments are the agent's own (the environment is never read). */
  cmdline: string[];
  exe: string | null;
  cwd: string | null;
  /** Selected lines of /proc/<pid>/status. */
  status: Record<string, string>;
  files: OpenFile[];
  /** The core file written, or null (see `coreNote`). */
  core: string | null;
}

/** The evidence file (`evidence.json`). */
export interface Evidence {
  requestId: string;
  runId: string;
  actor: string;
  launcherId: string;
  isolation: string;
  takenAt: string;
  frozen: boolean;
  processes: ProcessEvidence[];
  /** Why there are no core files (gcore missing, not asked for) or which failed; null when every core was written. */
  coreNote: string | null;
}

const TCP_STATES: Record<string, string> = {
  '01': 'ESTABLISHED',
  '02': 'SYN_SENT',
  '03': 'SYN_RECV',
  '04': 'FIN_WAIT1',
  '05': 'FIN_WAIT2',
  '06': 'TIME_WAIT',
  '07': 'CLOSE',
  '08': 'CLOSE_WAIT',
  '09': 'LAST_ACK',
  '0A': 'LISTEN',
  '0B': 'CLOSING',
};

/** `0100007F:1F90` → `127.0.0.1:8080`; IPv6 as 8 groups. */
function hexAddr(text: string): string {
  const [addr = '', port = '0'] = text.split(':');
  const p = parseInt(port, 16);
  if (addr.length === 8) {
    const b = Buffer.from(addr, 'hex');
    return `${b[3]}.${b[2]}.${b[1]}.${b[0]}:${p}`;
  }
  const words: string[] = [];
  for (let i = 0; i < 32; i += 8) {
    const w = Buffer.from(addr.slice(i, i + 8), 'hex')
      .reverse()
      .toString('hex');
    words.push(w.slice(0, 4), w.slice(4, 8));
  }
  return `[${words.join(':')}]:${p}`;
}

/** Sockets by inode in a process's network namespace. */
function sockets(pid: number): Map<string, Connection> {
  const out = new Map<string, Connection>();
  for (const proto of ['tcp', 'tcp6', 'udp', 'udp6'] as const) {
    let text: string;
    try {
      text = readFileSync(`/proc/${pid}/net/${proto}`, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n').slice(1)) {
      const f = line.trim().split(/\s+/);
      if (f.length < 10) continue;
      const remote = hexAddr(f[2]!);
      out.set(f[9]!, {
        proto,
        local: hexAddr(f[1]!),
        remote: /^(0\.0\.0\.0|\[0000(:0000)+\]):0$/.test(remote) ? null : remote,
        state: proto.startsWith('tcp') ? (TCP_STATES[f[3]!] ?? f[3]!) : 'UDP',
      });
    }
  }
  try {
    for (const line of readFileSync(`/proc/${pid}/net/unix`, 'utf8').split('\n').slice(1)) {
      const f = line.trim().split(/\s+/);
      if (f.length < 7) continue;
      out.set(f[6]!, { proto: 'unix', local: f[7] ?? '', remote: null, state: f[7] ?? '(unnamed)' });
    }
  } catch {
    // no unix table visible
  }
  return out;
}

const STATUS_KEYS = [
  'Name',
  'State',
  'PPid',
  'Uid',
  'Gid',
  'Threads',
  'VmRSS',
  'VmSize',
  'SigBlk',
  'SigIgn',
  'SigCgt',
];

function readProcess(pid: number): Omit<ProcessEvidence, 'core'> | null {
  let stat;
  try {
    stat = parseStat(pid, readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return null;
  }
  if (stat === null) return null;
  const safe = <T>(f: () => T, d: T): T => {
    try {
      return f();
    } catch {
      return d;
    }
  };
  const status: Record<string, string> = {};
  for (const line of safe(() => readFileSync(`/proc/${pid}/status`, 'utf8'), '').split('\n')) {
    const i = line.indexOf(':');
    const key = line.slice(0, i);
    if (STATUS_KEYS.includes(key)) status[key] = line.slice(i + 1).trim();
  }
  const socks = sockets(pid);
  const files: OpenFile[] = [];
  for (const name of safe(() => readdirSync(`/proc/${pid}/fd`), [] as string[])) {
    const target = safe(() => readlinkSync(`/proc/${pid}/fd/${name}`), '?');
    const m = /^socket:\[(\d+)\]$/.exec(target);
    const connection = m ? socks.get(m[1]!) : undefined;
    files.push({ fd: Number(name), target, ...(connection ? { connection } : {}) });
  }
  files.sort((a, b) => a.fd - b.fd);
  return {
    pid,
    ppid: stat.ppid,
    pgrp: stat.pgrp,
    state: stat.state,
    cmdline: safe(() => readFileSync(`/proc/${pid}/cmdline`, 'utf8'), '')
      .split('\0')
      .filter((a) => a !== ''),
    exe: safe(() => readlinkSync(`/proc/${pid}/exe`), null),
    cwd: safe(() => readlinkSync(`/proc/${pid}/cwd`), null),
    status,
    files,
  };
}

/** Runs `gcore -o <prefix> <pid>`, bounded by `timeoutMs`; resolves with the core's path or an error message. */
function gcore(
  bin: string,
  prefix: string,
  pid: number,
  timeoutMs: number,
): Promise<{ path: string } | { error: string }> {
  return new Promise((ok) => {
    execFile(bin, ['-o', prefix, String(pid)], { timeout: timeoutMs, killSignal: 'SIGKILL' }, (err) => {
      const path = `${prefix}.${pid}`;
      if (existsSync(path) && !err) ok({ path });
      else ok({ error: err ? err.message.split('\n')[0]!.slice(0, 300) : 'no core written' });
    });
  });
}

/** What {@link writeEvidence} needs. */
export interface EvidenceRequest {
  dir: string;
  requestId: string;
  runId: string;
  actor: string;
  launcherId: string;
  isolation: string;
  pids: number[];
  frozen: boolean;
  /** Write core files (where gcore is installed). */
  cores: boolean;
  /**
   * Called around each core: gdb attaches with ptrace, which cannot stop a task held by the
   * cgroup freezer, so the cgroup backend turns its freeze into a SIGSTOP for the duration (see
   * `AgentHandle.holdStopped`). Resolves when the process can be traced.
   */
  hold?: <T>(fn: () => Promise<T>) => Promise<T>;
  /** Per core, in ms. Default 120 000. */
  coreTimeoutMs?: number;
}

/**
 * Writes `<dir>/evidence.json` (and `<dir>/core.<pid>` files) for the agent's processes; returns
 * the file's path and what it holds. The directory is created 0700: a core holds the agent's
 * memory, secrets included.
 */
export async function writeEvidence(req: EvidenceRequest): Promise<{ path: string; evidence: Evidence }> {
  mkdirSync(req.dir, { recursive: true, mode: 0o700 });
  const processes: ProcessEvidence[] = [];
  for (const pid of req.pids) {
    const p = readProcess(pid);
    if (p) processes.push({ ...p, core: null });
  }
  let coreNote: string | null = null;
  const bin = gcoreBinary();
  if (!req.cores) coreNote = 'core files not asked for';
  else if (bin === null) coreNote = 'no core files: gdb (gcore) is not installed on the agent host';
  else {
    const failed: string[] = [];
    const take = async () => {
      for (const p of processes) {
        const r = await gcore(bin, join(req.dir, 'core'), p.pid, req.coreTimeoutMs ?? 120_000);
        if ('path' in r) p.core = r.path;
        else failed.push(`${p.pid}: ${r.error}`);
      }
    };
    await (req.hold ? req.hold(take) : take());
    if (failed.length > 0) coreNote = `gcore failed for ${failed.join('; ')}`;
  }
  const evidence: Evidence = {
    requestId: req.requestId,
    runId: req.runId,
    actor: req.actor,
    launcherId: req.launcherId,
    isolation: req.isolation,
    takenAt: new Date().toISOString(),
    frozen: req.frozen,
    processes,
    coreNote,
  };
  const path = join(req.dir, 'evidence.json');
  writeFileSync(path, `${JSON.stringify(evidence, null, 2)}\n`, { mode: 0o600 });
  return { path, evidence };
}
