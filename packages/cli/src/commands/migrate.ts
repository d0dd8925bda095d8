import { PG_SCHEMA_VERSION, migrateStore, redactStoreUrl } from '@killpath/server';
import { KillpathError } from '@killpath/protocol';
import { parse } from '../args.ts';
import { storeFlag } from './serve.ts';

export const MIGRATE_HELP = `killpath migrate --store URL

Applies the control plane's schema to a PostgreSQL database (brings it up to this killpath's
version), in one transaction. Run it once before the first killpath serve --store URL, and after
upgrading killpath; serve refuses a database whose schema is older or newer. Safe to run again
(nothing to do) and from several machines at once (they take turns).

  --store URL          postgres://user@host:port/db (also KILLPATH_STORE)

The SQLite store needs no migrate: serve brings its file up to date when it opens it.`;

/** `killpath migrate`: applies the PostgreSQL schema. */
export async function migrate(args: string[]): Promise<number> {
  const { values } = parse(args, {
    store: { type: 'string' },
    help: { type: 'boolean', short: 'h' },
  });
  if (values.help) {
    console.log(MIGRATE_HELP);
    return 0;
  }
  const url = storeFlag(values.store);
  if (url === undefined)
    throw new KillpathError(
      'invalid_request',
      'killpath migrate needs --store postgres://user@host:port/db (or KILLPATH_STORE)',
    );
  const r = await migrateStore(url);
  if (r.applied.length === 0)
    console.log(`${redactStoreUrl(url)}: schema version ${r.to} is current, nothing to do`);
  else {
    console.log(
      `${redactStoreUrl(url)}: schema version ${r.from} → ${r.to} (${PG_SCHEMA_VERSION} is this killpath's)`,
    );
    for (const m of r.applied) console.log(`  ${m.version}  ${m.name}`);
  }
  return 0;
}
