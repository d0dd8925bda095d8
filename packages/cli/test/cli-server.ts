import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startServer, type RunningServer, type ServerOptions } from '@killpath/server';

/** A control plane in this process for CLI tests, on a fresh data dir and a free port. */
export interface CliServer {
  server: RunningServer;
  dir: string;
  url: string;
  /** The admin token minted at the first start. */
  token: string;
  /** `--url URL --token TOKEN`, to append to a CLI argv. */
  conn: string[];
  /** Closes the server and removes the data dir. */
  close(): Promise<void>;
}

/**
 * Starts a control plane without its supervisor and watchdog (CLI tests drive everything),
 * logging errors only, in a temporary data dir named after `name`. Close it in `after`.
 */
export async function startCliServer(name: string, options: ServerOptions = {}): Promise<CliServer> {
  const dir = mkdtempSync(join(tmpdir(), `killpath-${name}-`));
  let server: RunningServer;
  try {
    server = await startServer({
      dataDir: dir,
      port: 0,
      logLevel: 'error',
      supervisor: false,
      watchdog: false,
      ...options,
    });
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  const token = server.createdAdminToken!;
  return {
    server,
    dir,
    url: server.url,
    token,
    conn: ['--url', server.url, '--token', token],
    async close() {
      try {
        await server.close();
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
  };
}
