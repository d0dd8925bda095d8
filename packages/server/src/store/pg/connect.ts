import postgres from 'postgres';
import { KillpathError } from '@killpath/protocol';

/** A pool of connections to the control plane's PostgreSQL database (postgres.js). */
export type Sql = postgres.Sql;
/** One transaction's handle (postgres.js), what the `tx.ts` helpers and concept modules take. */
export type Tx = postgres.TransactionSql;

/** Options of {@link openPool}. Times are in milliseconds unless named otherwise. */
export interface PoolOptions {
  /** Connections in this replica's pool; default 10. Every replica opens its own. */
  max?: number;
  /**
   * Longest a statement may run before PostgreSQL cancels it; default 10,000 ms. The kill path's
   * statements take milliseconds; this bounds a stuck one so the caller answers `unavailable`
   * instead of hanging (workers fail closed meanwhile).
   */
  statementTimeoutMs?: number;
  /** Longest a statement waits for a row lock; default 5,000 ms (a wedged holder becomes an error, not a queue). */
  lockTimeoutMs?: number;
  /**
   * A session idle inside an open transaction longer than this is ended by PostgreSQL, releasing
   * its locks (the rev row, the audit head); default 10,000 ms.
   */
  idleInTransactionTimeoutMs?: number;
  /** An idle pooled connection is closed after this many seconds; default 30. */
  idleTimeoutSeconds?: number;
  /** Giving up on opening a connection after this many seconds; default 5. */
  connectTimeoutSeconds?: number;
  /** `application_name` shown in `pg_stat_activity`; default `killpath`. */
  applicationName?: string;
}

/**
 * Checks that `url` is a PostgreSQL URL (`postgres://` or `postgresql://`, with a host and a
 * database); the message is one line for the CLI.
 * @throws KillpathError `invalid_request` naming what is wrong
 */
export function checkStoreUrl(url: string): URL {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new KillpathError(
      'invalid_request',
      `the store URL ${redact(url)} is not a URL (postgres://user@host:port/db)`,
    );
  }
  if (u.protocol !== 'postgres:' && u.protocol !== 'postgresql:')
    throw new KillpathError(
      'invalid_request',
      `the store URL ${redact(url)} is not a PostgreSQL URL: it must start with postgres:// (postgres://user@host:port/db)`,
    );
  if (u.hostname === '')
    throw new KillpathError(
      'invalid_request',
      `the store URL ${redact(url)} names no host (postgres://user@host:port/db)`,
    );
  if (u.pathname.length <= 1)
    throw new KillpathError(
      'invalid_request',
      `the store URL ${redact(url)} names no database (postgres://user@host:port/db)`,
    );
  return u;
}

/** The URL with its password replaced by `***`, for messages and logs. */
export function redact(url: string): string {
  try {
    const u = new URL(url);
    if (u.password !== '') u.password = '***';
    return u.toString();
  } catch {
    return url.replace(/:[^:@/]*@/, ':***@');
  }
}

/**
 * Opens a pool on `url` (connections are made lazily, on first use). Every connection is set up
 * with the statement, lock and idle-in-transaction timeouts of `options`, UTC, and an
 * application name; notices (e.g. "relation already exists") are not printed. The URL's query
 * can set the pool (`max`, `idle_timeout`, `connect_timeout` in seconds), TLS (`sslmode`) and any
 * server setting (`statement_timeout=5000`, …), which then wins over these defaults.
 * @throws KillpathError `invalid_request` for a URL that is not a PostgreSQL URL
 */
export function openPool(url: string, options: PoolOptions = {}): Sql {
  const query = checkStoreUrl(url).searchParams;
  const fromUrl = (key: string): number | undefined => {
    const v = query.get(key);
    if (v === null) return undefined;
    const n = Number(v);
    if (!Number.isInteger(n) || n < 1)
      throw new KillpathError(
        'invalid_request',
        `the store URL's ${key}=${v} must be a positive whole number`,
      );
    return n;
  };
  return postgres(url, {
    max: options.max ?? fromUrl('max') ?? 10,
    idle_timeout: options.idleTimeoutSeconds ?? fromUrl('idle_timeout') ?? 30,
    connect_timeout: options.connectTimeoutSeconds ?? fromUrl('connect_timeout') ?? 5,
    onnotice: () => {},
    connection: {
      application_name: options.applicationName ?? 'killpath',
      statement_timeout: options.statementTimeoutMs ?? 10_000,
      lock_timeout: options.lockTimeoutMs ?? 5_000,
      idle_in_transaction_session_timeout: options.idleInTransactionTimeoutMs ?? 10_000,
      TimeZone: 'UTC',
    },
  });
}

/**
 * Whether `err` says the database could not be reached or answered (connection refused, closed,
 * timed out), as opposed to a statement PostgreSQL refused.
 */
export function isConnectionError(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return (
    typeof code === 'string' &&
    (code.startsWith('08') ||
      code === '57P01' ||
      code === '57P03' ||
      code === 'CONNECT_TIMEOUT' ||
      code === 'CONNECTION_CLOSED' ||
      code === 'CONNECTION_ENDED' ||
      code === 'CONNECTION_DESTROYED' ||
      code === 'ECONNREFUSED' ||
      code === 'ENOTFOUND' ||
      code === 'EAI_AGAIN' ||
      code === 'ECONNRESET' ||
      code === 'ETIMEDOUT')
  );
}
