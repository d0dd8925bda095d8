import type { DatabaseSync } from 'node:sqlite';

/**
 * Schema version 11: which agent of a tenant owns each launcher id. A launcher id lives inside its
 * tenant (two tenants' launchers named alike are two launchers) and belongs to the one agent
 * that first used it; the binding never changes.
 */
export const OWNERS_SCHEMA = `
CREATE TABLE IF NOT EXISTS launchers (
  tenant TEXT NOT NULL,
  launcher_id TEXT NOT NULL,
  agent TEXT NOT NULL,
  bound_at TEXT NOT NULL,
  PRIMARY KEY (tenant, launcher_id)
);
`;

/** What the owner functions need from the store: its connection and its write transactions. */
export interface OwnersContext {
  db: DatabaseSync;
  tx<T>(fn: () => T): Promise<T>;
}

/** See {@link Store.bindLauncher}. */
export function bindLauncher(
  ctx: OwnersContext,
  tenant: string,
  launcherId: string,
  agent: string,
  at: Date,
): Promise<string> {
  return ctx.tx(() => {
    ctx.db
      .prepare('INSERT OR IGNORE INTO launchers (tenant, launcher_id, agent, bound_at) VALUES (?, ?, ?, ?)')
      .run(tenant, launcherId, agent, at.toISOString());
    return launcherOwner(ctx, tenant, launcherId)!;
  });
}

/** See {@link Store.launcherOwner}. */
export function launcherOwner(ctx: OwnersContext, tenant: string, launcherId: string): string | null {
  const row = ctx.db
    .prepare('SELECT agent FROM launchers WHERE tenant = ? AND launcher_id = ?')
    .get(tenant, launcherId) as { agent: string } | undefined;
  return row?.agent ?? null;
}
