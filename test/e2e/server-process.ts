import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

/** The `killpath` command of this checkout. */
export const KILLPATH_BIN = fileURLToPath(new URL('../../packages/cli/bin/killpath.js', import.meta.url));

/** A control plane running as its own OS process (`killpath serve`). */
export interface ServerProcess {
  url: string;
  port: number;
  adminToken: string;
  child: ChildProcess;
  /** SIGKILL, no cleanup: a crash. */
  crash(): Promise<void>;
  /** SIGTERM and wait. */
  stop(): Promise<void>;
}

/** Starts `killpath serve` on `dataDir` (port 0 picks a free one) and waits until it listens. */
export async function startServerProcess(
  dataDir: string,
  port = 0,
  extra: string[] = [],
): Promise<ServerProcess> {
  const child = spawn(
    process.execPath,
    [KILLPATH_BIN, 'serve', '--data-dir', dataDir, '--port', String(port), '--log-level', 'warn', ...extra],
    {
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  const exited = new Promise<void>((ok) => child.once('exit', () => ok()));
  const stderr: string[] = [];
  createInterface({ input: child.stderr! }).on('line', (l) => {
    stderr.push(l);
    if (process.env.KILLPATH_E2E_SERVER_LOG) console.error(`# server: ${l}`);
  });
  const url = await new Promise<string>((ok, fail) => {
    const timer = setTimeout(
      () => fail(new Error(`killpath serve did not start: ${stderr.join('\n')}`)),
      20_000,
    );
    createInterface({ input: child.stdout! }).on('line', (line) => {
      const m = /listening on (\S+)/.exec(line);
      if (m) {
        clearTimeout(timer);
        ok(m[1]!);
      }
    });
    child.once('exit', (code) => fail(new Error(`killpath serve exited with ${code}: ${stderr.join('\n')}`)));
  });
  if (process.env.KILLPATH_E2E_SERVER_LOG) console.error(`# server url ${url}`);
  return {
    url,
    port: Number(new URL(url).port),
    adminToken: readFileSync(join(dataDir, 'admin.token'), 'utf8').trim(),
    child,
    async crash() {
      child.kill('SIGKILL');
      await exited;
    },
    async stop() {
      child.kill('SIGTERM');
      await exited;
    },
  };
}

/** What a CLI run printed, and its exit code. */
export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs the `killpath` command of this checkout as its own process, without blocking this one. */
export function runCli(
  args: string[],
  opts: { env?: NodeJS.ProcessEnv; cwd?: string } = {},
): Promise<CliResult> {
  return new Promise((ok) => {
    const p = spawn(process.execPath, [KILLPATH_BIN, ...args], {
      ...(opts.cwd ? { cwd: opts.cwd } : {}),
      ...(opts.env ? { env: opts.env } : {}),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    p.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    p.once('exit', (code) => ok({ code, stdout, stderr }));
  });
}

/** Polls `probe` every 25 ms until it returns something truthy; throws naming `what` after `ms`. */
export async function until<T>(
  what: string,
  ms: number,
  probe: () => T | undefined | null | false | Promise<T | undefined | null | false>,
): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await probe();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((ok) => setTimeout(ok, 25));
  }
}
