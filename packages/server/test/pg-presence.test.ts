/**
 * The presence and lease concepts on PostgreSQL, each case on a fresh database (`test/pg.ts`).
 * The cases that issue directives run once the PostgreSQL store has its directives concept (the
 * whole store contract, `storeContract`, runs them then).
 */
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { openPool } from '../src/store/pg/connect.ts';
import { PgPresence } from '../src/store/pg/pg-presence.ts';
import { migrate } from '../src/store/pg/schema.ts';
import { dropLeftovers, freshDatabase, freshPgStore, requirePostgres } from './pg.ts';
import { leaseContract, presenceContract, telemetryContract } from './presence-contract.ts';

const available = await requirePostgres();
after(dropLeftovers);

if (available) {
  const directivesBuilt = await (async () => {
    const s = await freshPgStore('presence_probe');
    try {
      await s.rev();
      return true;
    } catch {
      return false;
    } finally {
      await s.close();
    }
  })();
  describe('PgStore presence and leases', () => {
    presenceContract(() => freshPgStore('presence'), directivesBuilt);
    leaseContract(() => freshPgStore('lease'), directivesBuilt);
    telemetryContract(() => freshPgStore('telemetry'));
  });

  describe('PostgreSQL leases across replicas', () => {
    test('replicas racing for an expired lease: exactly one takes it, at exactly the next epoch', async () => {
      const db = await freshDatabase('lease_race');
      const pools = Array.from({ length: 4 }, () => openPool(db.url, { max: 2 }));
      try {
        await migrate(pools[0]!);
        const leases = pools.map((p) => new PgPresence(p));
        const t = 1_000_000;
        await leases[0]!.acquireLease('leader', 'r0', 1000, t);
        for (let round = 1; round <= 10; round++) {
          const now = t + round * 2000;
          const results = await Promise.all(
            leases.map((l, i) => l.acquireLease('leader', `r${(i + round) % 4}-${round}`, 1000, now)),
          );
          const holders = new Set(results.map((r) => r.holder));
          assert.equal(holders.size, 1, `round ${round}: one holder, whoever asked`);
          assert.deepEqual(
            results.map((r) => r.epoch),
            [round + 1, round + 1, round + 1, round + 1],
          );
        }
      } finally {
        await Promise.all(pools.map((p) => p.end({ timeout: 1 })));
        await db.drop();
      }
    });

    test('presence written by two replicas at once: versions are in commit order, a reader resuming misses nothing', async () => {
      const db = await freshDatabase('presence_race');
      const pools = Array.from({ length: 2 }, () => openPool(db.url, { max: 4 }));
      try {
        await migrate(pools[0]!);
        const [a, b] = pools.map((p) => new PgPresence(p));
        const row = (workerId: string, replica: string) => ({
          tenant: 'acme',
          agent: 'bot',
          workerId,
          replica,
          connected: true,
          pid: 1,
          features: [],
          runs: [],
          launcher: null,
          release: null,
          declared: null,
          ackedRev: 0,
          lastContactAt: 1,
          lastHeartbeatAt: 1,
          goneAt: null,
          removed: false,
        });
        let seen = 0;
        const got = new Set<string>();
        const writes: Promise<number>[] = [];
        for (let i = 0; i < 40; i++) {
          writes.push(a!.putPresence([row(`a${i}`, 'A')]), b!.putPresence([row(`b${i}`, 'B')]));
          if (i % 5 === 0) {
            const page = await a!.presenceSince(seen, 1000);
            for (const r of page.rows) got.add(r.workerId);
            seen = page.version;
          }
        }
        const versions = await Promise.all(writes);
        assert.deepEqual(
          [...versions].sort((x, y) => x - y),
          Array.from({ length: 80 }, (_, i) => i + 1),
          'one version per write, gapless',
        );
        const page = await b!.presenceSince(seen, 1000);
        for (const r of page.rows) got.add(r.workerId);
        assert.equal(page.version, 80);
        assert.equal(got.size, 80, 'every worker read exactly by resuming from the last version seen');
      } finally {
        await Promise.all(pools.map((p) => p.end({ timeout: 1 })));
        await db.drop();
      }
    });
  });
}
