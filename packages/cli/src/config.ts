import { join, resolve } from 'node:path';
import { KillpathError, isLoopbackHost } from '@killpath/protocol';
import { ApiClient } from './api.ts';

/** Where the CLI finds the control plane: flags, then `KILLPATH_URL`/`KILLPATH_TOKEN`, then the data dir. */
export interface Connection {
  /** The first control plane URL (where a single one is wanted: messages, an agent's default). */
  url: string;
  /** Every control plane URL (replicas of one control plane), in the order given; `url` is the first. */
  urls: string[];
  token: string;
  /** The CA file trusted for the control plane's certificate (`--ca`, `KILLPATH_CA`), absolute; null: the system's. */
  ca: string | null;
  /** Plain HTTP to a host other than this machine was allowed with `--insecure`. */
  insecure: boolean;
}

// getBuiltinModule, not an import: node:fs's ESM facade reads every export, which loads its
// streams and perf_hooks (about a third of a short command's start-up).
const { existsSync, readFileSync } = process.getBuiltinModule('node:fs');

const trusted = new Set<string>();

/**
 * Trusts the CA certificates in `file` (PEM) for this process's TLS connections, beside the
 * system's: every `fetch` of the CLI (API calls, launcher and watchdog links) then accepts a
 * control plane certificate they issued.
 * @throws KillpathError `invalid_request` when the file is unreadable or holds no certificate
 */
export function trustCa(file: string): void {
  if (trusted.has(file)) return;
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new KillpathError(
      'invalid_request',
      `cannot read --ca ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
    );
  }
  const certs = text.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
  if (certs.length === 0) throw new KillpathError('invalid_request', `--ca ${file} holds no PEM certificate`);
  try {
    // Loaded here, not at start-up: a command without --ca never pays for node:tls.
    const tls = process.getBuiltinModule('node:tls');
    tls.setDefaultCACertificates([...tls.getCACertificates('default'), ...certs]);
  } catch (err) {
    throw new KillpathError('invalid_request', `--ca ${file}: ${(err as Error).message}`);
  }
  trusted.add(file);
}

/**
 * Refuses plain HTTP to a host other than this machine (bearer tokens would cross the network
 * in clear) unless `insecure`, which prints a warning instead.
 * @throws KillpathError `invalid_request` naming the host and the ways out
 */
export function checkTransport(url: string, insecure: boolean, what = 'control plane'): void {
  const u = new URL(url);
  if (u.protocol !== 'http:' || isLoopbackHost(u.hostname)) return;
  if (!insecure)
    throw new KillpathError(
      'invalid_request',
      `refusing plain HTTP to the ${what} at ${u.host}: tokens would cross the network unencrypted; use https:// (--ca FILE for a private CA) or pass --insecure`,
    );
  console.error(
    `killpath: warning: --insecure: talking plain HTTP to ${u.host}; tokens cross the network unencrypted`,
  );
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
  flags: {
    url?: string | readonly string[] | undefined;
    token?: string | undefined;
    'data-dir'?: string | undefined;
    ca?: string | undefined;
    insecure?: boolean | undefined;
  },
  env = process.env,
): Connection {
  const dataDir = resolve(flags['data-dir'] ?? env.KILLPATH_DATA_DIR ?? '.killpath');
  const given = typeof flags.url === 'string' ? [flags.url] : flags.url;
  let url: string | null =
    given !== undefined && given.length > 0 ? given.join(',') : (env.KILLPATH_URL ?? null);
  if (url === null || url === '') {
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
  const urls = [...new Set(url.split(',').map((u) => u.trim().replace(/\/+$/, '')))];
  const insecure = flags.insecure === true || env.KILLPATH_INSECURE === '1';
  for (const u of urls) {
    let parsed: URL;
    try {
      parsed = new URL(u);
    } catch {
      throw new KillpathError('invalid_request', `--url "${u}" is not a URL`);
    }
    if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:')
      throw new KillpathError('invalid_request', `--url "${u}" is not an http(s) URL`);
    checkTransport(u, insecure);
  }
  const caFile = flags.ca ?? (env.KILLPATH_CA || undefined);
  const ca = caFile === undefined ? null : resolve(caFile);
  if (ca !== null) trustCa(ca);
  return { url: urls[0]!, urls, token, ca, insecure };
}

/** An API client for the resolved connection. */
export function clientFor(flags: Parameters<typeof resolveConnection>[0]): ApiClient {
  const c = resolveConnection(flags);
  return new ApiClient(c.urls, c.token);
}
