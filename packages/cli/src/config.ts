import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { KillpathError } from '@killpath/protocol';
import { ApiClient } from './api.ts';

/** Where the CLI finds the control plane: flags, then `KILLPATH_URL`/`KILLPATH_TOKEN`, then the data dir. */
export interface Connection {
  url: string;
  token: string;
}

function readIf(path: string): string | null {
  return existsSync(path) ? readFileSync(path, 'utf8').trim() : null;
}

/**
 * Resolves URL and token: `--url`/`--token`, then the environment, then `<dataDir>/server.json`
 * and `<dataDir>/admin.token` (default data dir `./.killpath`).
 * @throws KillpathError `invalid_request` naming what is missing and how to provide it.
 */
export function resolveConnection(
  flags: { url?: string | undefined; token?: string | undefined; 'data-dir'?: string | undefined },
  env = process.env,
): Connection {
  const dataDir = resolve(flags['data-dir'] ?? env.KILLPATH_DATA_DIR ?? '.killpath');
  let url = flags.url ?? env.KILLPATH_URL ?? null;
  if (url === null) {
    const info = readIf(join(dataDir, 'server.json'));
    if (info !== null) {
      try {
        url = (JSON.parse(info) as { url?: string }).url ?? null;
      } catch {
        throw new KillpathError('invalid_request', `${join(dataDir, 'server.json')} is not valid JSON`);
      }
    }
  }
  const token = flags.token ?? env.KILLPATH_TOKEN ?? readIf(join(dataDir, 'admin.token'));
  if (url === null) {
    throw new KillpathError(
      'invalid_request',
      `no control plane URL: pass --url, set KILLPATH_URL, or run where ${dataDir}/server.json exists (killpath serve writes it)`,
    );
  }
  if (!token) {
    throw new KillpathError(
      'invalid_request',
      `no token: pass --token, set KILLPATH_TOKEN, or run where ${dataDir}/admin.token exists`,
    );
  }
  try {
    new URL(url);
  } catch {
    throw new KillpathError('invalid_request', `--url "${url}" is not a URL`);
  }
  return { url, token };
}

/** An API client for the resolved connection. */
export function clientFor(flags: Parameters<typeof resolveConnection>[0]): ApiClient {
  const c = resolveConnection(flags);
  return new ApiClient(c.url, c.token);
}
