import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import {
  KillpathError,
  RELEASE_PARTS,
  checkRelease,
  formatRelease,
  isIdentifier,
  isLoopbackHost,
  type Release,
  type ReleasePart,
} from '@killpath/protocol';
import type { Clock } from './clock.ts';
import type { JournalSink } from './journal.ts';
import type { MemoryCommitter } from './staged-memory.ts';
import type { MemorySchema } from './memory-schema.ts';
import type { Transport } from './transport.ts';

/** Options for {@link connect}. */
export interface ConnectOptions {
  /**
   * Control plane base URL, e.g. `http://127.0.0.1:7070`; or several replicas of one control
   * plane (one store), as an array or one comma-separated string (`KILLPATH_URL=http://a:7070,http://b:7070`
   * passed as is works): the worker holds one stream at a time, starting at a replica its worker
   * id picks, and moves to another when that one is lost or refuses it (see `Replicas`).
   */
  url: string | readonly string[];
  /** An `agent` token for this tenant and agent; sent as `Authorization: Bearer <token>`. */
  token: string;
  /** The tenant this worker belongs to (an identifier). */
  tenant: string;
  /** The agent this worker runs (an identifier). */
  agent: string;
  /** Features the runs of this worker use (`feature:F` directives cover them). Default none. */
  features?: readonly string[];
  /**
   * How long {@link Client.ready} waits for the first snapshot before it rejects with
   * `unavailable` (naming the URL and the last error), in ms. The client keeps retrying in the
   * background either way. Default: no limit (ready waits, and holds the process open, until
   * the control plane answers).
   */
  readyTimeoutMs?: number;
  /**
   * Where the client tells a human what it cannot journal as an event: "control plane
   * unreachable at URL, retrying" once per outage, then once a minute while it lasts. Default
   * `console.warn` with a `killpath: ` prefix.
   */
  logger?: Logger;
  /**
   * The release this worker runs: `code` (git sha or semver), `model` (`provider/model@version`),
   * `prompt` (prompt version); any part may be missing. `release:PART=V` directives cover its
   * runs, and a resume is checked against the releases a directive stopped. Each part missing
   * here defaults to the `KILLPATH_RELEASE_CODE`, `KILLPATH_RELEASE_MODEL` or
   * `KILLPATH_RELEASE_PROMPT` environment variable (the launcher sets them from its `--release`).
   */
  release?: Release;
  /** Lease length in ms: with no stream message for this long, every run is halted. Default 3 000. */
  leaseMs?: number;
  /**
   * Heartbeat period in ms. Default 5 000. The control plane answers each heartbeat with the
   * interval its deadman expects for this agent; the worker beats at the smaller of the two.
   */
  heartbeatMs?: number;
  /**
   * Run limits this worker enforces by itself, without the control plane (and so also while it
   * is unreachable): a run whose `run.step()` count exceeds `maxSteps`, or whose
   * `run.recordCost` total exceeds `maxCostUsd`, is halted locally at once. The control plane's
   * policy may set stricter ones (they arrive with heartbeat answers); the stricter wins.
   * Default: none of its own.
   */
  limits?: { maxSteps?: number; maxCostUsd?: number };
  /** The schema memory writes of this agent's runs must follow (`run.stage`); a run may bring its own. Default none. */
  memorySchema?: MemorySchema;
  /** How often changed run counters are sent to the control plane (`POST /v1/telemetry`), in ms; 0 turns telemetry off. Default 250. */
  telemetryMs?: number;
  /** Monotonic clock and timers. Default {@link systemClock}. */
  clock?: Clock;
  /**
   * Default {@link nodeHttpTransport} (with `ca` when given), one shared by every client of the
   * process connected without a transport of its own: their acks and halted reports of one
   * event-loop turn go to the control plane together (one request per token). A transport given
   * here is this client's, and its reports share a request only with clients given the same
   * object. {@link fetchTransport} is the portable one, for a runtime without `node:http`.
   */
  transport?: Transport;
  /** Where SDK events go. Default: dropped. */
  sink?: JournalSink;
  /** This worker's id; default `crypto.randomUUID()`. */
  workerId?: string;
  /** Where runs commit staged memory writes (`run.stage`, `run.commitStep`); a run may bring its own. Default none. */
  memory?: MemoryCommitter;
  /**
   * Id of the launcher (`killpath run`) that started this process, reported in heartbeats so the
   * control plane can order that launcher to kill or isolate it. Default: the
   * `KILLPATH_LAUNCHER_ID` environment variable, which the launcher sets.
   */
  launcherId?: string;
  /**
   * CA certificate(s), PEM, trusted for an `https://` control plane's certificate (a private CA),
   * beside the system's. Default: the file named by the `KILLPATH_CA` environment variable
   * (which `killpath run --ca FILE` sets), else the system's CAs only. Used by the default
   * transport; a `transport` passed in brings its own.
   */
  ca?: string | Buffer | readonly (string | Buffer)[];
  /**
   * Allow plain `http://` to a host other than this machine (tokens and directives then cross
   * the network unencrypted; a warning is logged). Default false, or `KILLPATH_INSECURE=1`.
   * Loopback (`127.0.0.0/8`, `::1`, `localhost`) is always allowed, and so is anything when a
   * `transport` is passed (the caller owns that wire).
   */
  insecure?: boolean;
}

/** Receives the client's few human-readable lines (see {@link ConnectOptions.logger}). */
export interface Logger {
  /** One line, without a trailing newline. */
  warn(message: string): void;
}

/** The default {@link Logger}: `console.warn` (stderr), each line prefixed `killpath: `. */
export const consoleLogger: Logger = Object.freeze({
  warn: (message: string): void => console.warn(`killpath: ${message}`),
});

/** Validated connect options with defaults applied. Internal. */
export interface ResolvedOptions {
  /** The control plane URL without a trailing slash (the first of `bases`). */
  base: string;
  /** Every replica's URL without a trailing slash, in the order given, duplicates dropped. */
  bases: readonly string[];
  /** The full push stream URL with its query. */
  streamUrl: string;
  workerId: string;
  tenant: string;
  agent: string;
  features: readonly string[];
  /** The declared release, or `null` when no part is set. */
  release: Readonly<Release> | null;
  leaseMs: number;
  heartbeatMs: number;
  launcherId: string | null;
  limits: { maxSteps: number | null; maxCostUsd: number | null };
  telemetryMs: number;
  /** `null`: no limit. */
  readyTimeoutMs: number | null;
  /** CA certificates to trust, or null for the system's. */
  ca: (string | Buffer)[] | null;
  /** A warning to log once (plain HTTP allowed by `insecure`), or null. */
  warning: string | null;
}

/**
 * Validates {@link ConnectOptions} and applies the defaults (lease 3 000 ms, heartbeat
 * 5 000 ms, random worker id). Internal.
 * @throws KillpathError `invalid_request` for a malformed url, identifier or timing
 */
export function resolveOptions(options: ConnectOptions): ResolvedOptions {
  const bases = checkUrls(options.url);
  const base = bases[0]!;
  const env = typeof process === 'object' ? process.env : {};
  const insecure = options.insecure ?? env.KILLPATH_INSECURE === '1';
  // A transport passed in is the caller's own wire (a test double, a tunnel): only the built-in ones are checked.
  const warnings =
    options.transport === undefined
      ? bases.map((b) => checkTransport(b, insecure)).filter((w) => w !== null)
      : [];
  const warning = warnings.length === 0 ? null : warnings.join('; ');
  const ca = resolveCa(options.ca, env.KILLPATH_CA);
  for (const [what, id] of [
    ['tenant', options.tenant],
    ['agent', options.agent],
  ] as const) {
    if (!isIdentifier(id)) throw new KillpathError('invalid_request', `invalid ${what} "${id}"`);
  }
  const features = Object.freeze([...(options.features ?? [])]);
  for (const f of features) {
    if (!isIdentifier(f)) throw new KillpathError('invalid_request', `invalid feature "${f}"`);
  }
  const launcherId =
    options.launcherId ??
    (typeof process === 'object' ? process.env.KILLPATH_LAUNCHER_ID : undefined) ??
    null;
  if (launcherId !== null && !isIdentifier(launcherId))
    throw new KillpathError('invalid_request', `invalid launcherId "${launcherId}"`);
  const workerId = options.workerId ?? randomUUID();
  if (!isIdentifier(workerId)) throw new KillpathError('invalid_request', `invalid workerId "${workerId}"`);
  const release = resolveRelease(options.release);
  return {
    base,
    bases,
    streamUrl: streamUrl(base, workerId, options.tenant, options.agent, features, release),
    workerId,
    tenant: options.tenant,
    agent: options.agent,
    features,
    release,
    leaseMs: positive('leaseMs', options.leaseMs ?? 3_000),
    heartbeatMs: positive('heartbeatMs', options.heartbeatMs ?? 5_000),
    launcherId,
    limits: {
      maxSteps: limit('limits.maxSteps', options.limits?.maxSteps),
      maxCostUsd: limit('limits.maxCostUsd', options.limits?.maxCostUsd),
    },
    readyTimeoutMs:
      options.readyTimeoutMs === undefined ? null : positive('readyTimeoutMs', options.readyTimeoutMs),
    telemetryMs: options.telemetryMs === 0 ? 0 : positive('telemetryMs', options.telemetryMs ?? 250),
    ca,
    warning,
  };
}

/**
 * Plain HTTP is for this machine only: to any other host it would carry the bearer token in
 * clear. Returns the warning to log when `insecure` allows it anyway.
 */
function checkTransport(base: string, insecure: boolean): string | null {
  const u = new URL(base);
  if (u.protocol !== 'http:' || isLoopbackHost(u.hostname)) return null;
  if (!insecure)
    throw new KillpathError(
      'invalid_request',
      `refusing plain HTTP to the control plane at ${u.host}: the token would cross the network unencrypted; use https:// (connect({ ca }) or KILLPATH_CA for a private CA) or pass insecure: true`,
    );
  return `insecure: plain HTTP to ${u.host}; the token crosses the network unencrypted`;
}

function resolveCa(ca: ConnectOptions['ca'], file: string | undefined): (string | Buffer)[] | null {
  if (ca !== undefined) {
    const list = (Array.isArray(ca) ? [...ca] : [ca]) as (string | Buffer)[];
    if (list.length === 0 || !list.every((c) => String(c).includes('-----BEGIN CERTIFICATE-----')))
      throw new KillpathError('invalid_request', 'ca must be PEM certificate text');
    return list;
  }
  if (file === undefined || file === '') return null;
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new KillpathError('invalid_request', `cannot read KILLPATH_CA ${file}: ${(err as Error).message}`, {
      cause: err,
    });
  }
  if (!text.includes('-----BEGIN CERTIFICATE-----'))
    throw new KillpathError('invalid_request', `KILLPATH_CA ${file} holds no PEM certificate`);
  return [text];
}

/**
 * The URL option as a list: an array, or a string split at commas; each one checked, trailing
 * slashes dropped, duplicates dropped.
 */
function checkUrls(url: string | readonly string[]): string[] {
  const list =
    typeof url === 'string' ? url.split(',').map((u) => u.trim()) : Array.isArray(url) ? url : null;
  if (list === null || list.length === 0 || list.some((u) => typeof u !== 'string' || u === ''))
    throw new KillpathError('invalid_request', `invalid control plane url "${String(url)}"`);
  return [...new Set(list.map(checkUrl))];
}

function checkUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') throw new Error('not http(s)');
  } catch (err) {
    throw new KillpathError('invalid_request', `invalid control plane url "${url}"`, { cause: err });
  }
  return url.replace(/\/+$/, '');
}

function limit(name: string, v: number | undefined): number | null {
  if (v === undefined) return null;
  if (typeof v !== 'number' || !Number.isFinite(v) || v < 0)
    throw new KillpathError('invalid_request', `${name} must be a non-negative number`);
  return v;
}

function positive(name: string, ms: number): number {
  if (typeof ms !== 'number' || !Number.isFinite(ms) || ms <= 0)
    throw new KillpathError('invalid_request', `${name} must be a positive number of ms`);
  return ms;
}

const RELEASE_ENV: Record<ReleasePart, string> = {
  code: 'KILLPATH_RELEASE_CODE',
  model: 'KILLPATH_RELEASE_MODEL',
  prompt: 'KILLPATH_RELEASE_PROMPT',
};

/** The option's parts, each missing one from its environment variable; checked, frozen. */
function resolveRelease(option: Release | undefined): Readonly<Release> | null {
  if (option !== undefined && (typeof option !== 'object' || option === null || Array.isArray(option)))
    throw new KillpathError('invalid_request', 'release must be an object { code?, model?, prompt? }');
  const env = typeof process === 'object' ? process.env : {};
  const merged: Release = { ...option };
  for (const part of RELEASE_PARTS) {
    const fromEnv = env[RELEASE_ENV[part]];
    if (merged[part] === undefined && fromEnv !== undefined && fromEnv !== '') merged[part] = fromEnv;
  }
  const release = checkRelease(merged);
  return release === null ? null : Object.freeze(release);
}

/** `features` and `release` are left out when empty, so the server never sees an empty name. */
function streamUrl(
  base: string,
  workerId: string,
  tenant: string,
  agent: string,
  features: readonly string[],
  release: Readonly<Release> | null,
): string {
  const url = new URL(`${base}/v1/stream`);
  url.searchParams.set('worker', workerId);
  url.searchParams.set('tenant', tenant);
  url.searchParams.set('agent', agent);
  if (features.length > 0) url.searchParams.set('features', features.join(','));
  if (release !== null) url.searchParams.set('release', formatRelease(release));
  return url.toString();
}
