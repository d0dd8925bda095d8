/**
 * Signed audit checkpoints across replicas (issue 14, work that must happen once): two control
 * planes (`startServer`, each with its own `--data-dir` and so its own signing key) on one fresh
 * PostgreSQL database.
 * - only the leader lease's holder signs: every stored checkpoint is signed with its key, the
 *   other replica refuses to sign (409 `conflict`) and its key is not registered;
 * - restarting the replica that does not hold the lease leaves the current key as it was;
 * - the holder stops: the new holder makes its key the current one, signs with it, and the log
 *   verifies over checkpoints of both keys (the store's verifyLog, and each checkpoint's
 *   signature against the listed keys).
 * Waits are for events (the lease changing hands), never timing assertions.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import postgres from 'postgres';
import { KillpathError, type ConsistencyVerdict } from '@killpath/protocol';
import { checkpointSignatureProblem } from '../src/audit/checkpoint.ts';
import { mintToken } from '../src/auth/tokens.ts';
import { startServer, type RunningServer } from '../src/server.ts';
import { migrate } from '../src/store/pg/schema.ts';
import { dropLeftovers, freshDatabase, requirePostgres } from './pg.ts';

after(() => dropLeftovers());

/** Resolves once `cond` holds (checked every 50 ms), failing with `what` after `limitMs`. */
async function until(cond: () => boolean, what: string, limitMs = 20_000): Promise<void> {
  const end = Date.now() + limitMs;
  while (!cond()) {
    if (Date.now() > end) assert.fail(`timed out waiting for ${what}`);
    await new Promise((ok) => setTimeout(ok, 50));
  }
}

if (await requirePostgres()) {
  test('only the leader lease holder signs checkpoints; its key becomes current on election, not at every start', async () => {
    const db = await freshDatabase('ckpt_leader');
    const dirs = [0, 1].map(() => mkdtempSync(join(tmpdir(), 'killpath-ckpt-leader-')));
    const admin = postgres(db.url, { max: 1, onnotice: () => {} });
    const servers: RunningServer[] = [];
    try {
      await migrate(admin);
      const common = {
        port: 0,
        logLevel: 'silent' as const,
        supervisor: false,
        watchdog: false,
        admission: false as const,
        keepaliveMs: 200,
        lease: { ttlMs: 1000, pollMs: 100 },
        storeUrl: db.url,
      };
      const start = async (dir: string) => {
        const s = await startServer({ ...common, dataDir: dir });
        servers.push(s);
        return s;
      };
      const a = await start(dirs[0]!);
      let b = await start(dirs[1]!);
      let store = a.controlPlane.store;
      const keyA = a.checkpoints.key.info.keyId;
      const keyB = b.checkpoints.key.info.keyId;
      assert.notEqual(keyA, keyB, 'each replica has its own key (its own data dir)');
      assert.equal(a.controlPlane.leadership.leading, true, 'the first replica took the free lease');
      assert.equal(b.controlPlane.leadership.leading, false);
      assert.equal(a.checkpoints.signing, true);
      assert.equal(b.checkpoints.signing, false, 'the replica without the lease does not sign');

      const current = async () => (await store.auditKeys()).find((k) => k.retiredAt === null)?.keyId;
      const signedBy = async () =>
        (await admin<{ key_id: string }[]>`SELECT DISTINCT key_id FROM checkpoints ORDER BY key_id`).map(
          (r) => r.key_id,
        );
      assert.equal(await current(), keyA);
      const listed = async () =>
        Object.fromEntries((await store.auditKeys()).map((k) => [k.keyId, k.retiredAt === null]));
      assert.deepEqual(
        await listed(),
        { [keyA]: true, [keyB]: false },
        "B's start listed its key without making it current",
      );

      await mintToken(store, { role: 'operator', tenant: 'acme' }, 'test');
      const first = await a.checkpoints.checkpointNow();
      assert.equal(first.keyId, keyA);
      await assert.rejects(
        b.checkpoints.checkpointNow(true),
        (err: unknown) => err instanceof KillpathError && err.code === 'conflict',
        'a replica without the lease refuses to sign',
      );
      // Over HTTP too: the wire error shape, 409.
      const token = (await mintToken(store, { role: 'admin', tenant: '*' }, 'test')).secret;
      const res = await fetch(`${b.url}/v1/audit/checkpoint`, {
        method: 'POST',
        headers: { authorization: `Bearer ${token}` },
      });
      assert.equal(res.status, 409);
      assert.equal(((await res.json()) as { error: { code: string } }).error.code, 'conflict');
      // B still answers a verification, with a head signed by its key, which the listed keys verify.
      const verdict = (await (
        await fetch(`${b.url}/v1/audit/verify`, {
          method: 'POST',
          headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
          body: JSON.stringify({ checkpoint: first }),
        })
      ).json()) as ConsistencyVerdict;
      assert.equal(verdict.ok, true, verdict.problems.join('; '));
      assert.equal(verdict.head.keyId, keyB);
      assert.equal(verdict.head.origin, first.origin);
      assert.equal(checkpointSignatureProblem(verdict.head, await store.auditKeys()), null);

      // Restarting the replica without the lease changes nothing about keys or signers.
      await b.close();
      b = await start(dirs[1]!);
      assert.equal(b.checkpoints.key.info.keyId, keyB, 'same data dir, same key');
      assert.equal(b.checkpoints.signing, false);
      assert.equal(await current(), keyA, "B's restart did not make its key the current one");
      assert.deepEqual(await listed(), { [keyA]: true, [keyB]: false });
      await a.checkpoints.checkpointNow(true);
      assert.deepEqual(await signedBy(), [keyA], "only the holder's checkpoints are stored");

      // The holder stops (hands the lease back): B takes it, its key becomes current, it signs.
      await a.close();
      store = b.controlPlane.store;
      await until(() => b.checkpoints.signing, 'B to take the lease and sign');
      assert.equal(b.controlPlane.leadership.leading, true);
      assert.equal(await current(), keyB, "the new holder's key is the current one");
      const keys = await store.auditKeys();
      assert.deepEqual(
        keys.map((k) => k.keyId).sort(),
        [keyA, keyB].sort(),
        "A's key stays listed (retired)",
      );
      await mintToken(store, { role: 'operator', tenant: 'acme' }, 'after takeover');
      const later = await b.checkpoints.checkpointNow();
      assert.equal(later.keyId, keyB);
      assert.ok(later.size > first.size);
      assert.deepEqual(await signedBy(), [keyA, keyB].sort());

      // The log verifies over checkpoints of both keys.
      const found = await store.verifyLog({
        size: first.size,
        rootHash: first.rootHash,
        timestamp: first.timestamp,
      });
      assert.deepEqual(found.problems, []);
      assert.equal(found.ok, true);
      for (const c of [first, later]) assert.equal(checkpointSignatureProblem(c, keys), null);
      const stored = await admin<{ size: number }[]>`SELECT size FROM checkpoints`;
      assert.ok(stored.length >= 3, 'every checkpoint stored was checked by verifyLog');
    } finally {
      for (const s of servers.reverse()) await s.close().catch(() => {});
      await admin.end({ timeout: 1 });
      await db.drop();
      for (const d of dirs) rmSync(d, { recursive: true, force: true });
    }
  });

  test('a deposed holder stops signing at once; the next holder signs with its own key', async () => {
    const db = await freshDatabase('ckpt_deposed');
    const dirs = [0, 1].map(() => mkdtempSync(join(tmpdir(), 'killpath-ckpt-deposed-')));
    const admin = postgres(db.url, { max: 1, onnotice: () => {} });
    const servers: RunningServer[] = [];
    try {
      await migrate(admin);
      const common = {
        port: 0,
        logLevel: 'silent' as const,
        supervisor: false,
        watchdog: false,
        admission: false as const,
        keepaliveMs: 200,
        lease: { ttlMs: 1000, pollMs: 100 },
        storeUrl: db.url,
        checkpointEveryRecords: 1,
      };
      for (const d of dirs) servers.push(await startServer({ ...common, dataDir: d }));
      const [a, b] = servers as [RunningServer, RunningServer];
      assert.equal(a.checkpoints.signing, true);
      // Another holder takes the lease (a later epoch) and keeps it: A is deposed at its next renewal.
      await admin`UPDATE leases SET holder = 'intruder', epoch = epoch + 1, expires_at = ${Date.now() + 3_600_000}
        WHERE name = 'leader'`;
      await until(() => !a.controlPlane.leadership.leading, 'A to notice it lost the lease');
      await until(() => !a.checkpoints.signing, 'A to stop signing');
      const count = async () =>
        Number((await admin<{ n: string }[]>`SELECT count(*) AS n FROM checkpoints`)[0]!.n);
      const before = await count();
      await mintToken(a.controlPlane.store, { role: 'operator', tenant: 'acme' }, 'while nobody signs');
      await a.checkpoints.tick();
      await b.checkpoints.tick();
      assert.equal(await count(), before, 'neither replica signs while another holds the lease');
      await assert.rejects(
        a.checkpoints.checkpointNow(true),
        (err: unknown) => err instanceof KillpathError && err.code === 'conflict',
      );
      // The lease is free again: whichever replica takes it signs with its own key, now current.
      await admin`UPDATE leases SET expires_at = 0 WHERE name = 'leader'`;
      await until(
        () => a.checkpoints.signing || b.checkpoints.signing,
        'a replica to take the lease and sign',
      );
      const holder = a.checkpoints.signing ? a : b;
      const other = holder === a ? b : a;
      assert.equal(other.checkpoints.signing, false, 'one signer');
      const signed = await holder.checkpoints.checkpointNow(true);
      assert.equal(signed.keyId, holder.checkpoints.key.info.keyId);
      const keys = await holder.controlPlane.store.auditKeys();
      assert.equal(keys.find((k) => k.retiredAt === null)?.keyId, signed.keyId);
      assert.equal((await holder.controlPlane.store.verifyLog(null)).ok, true);
    } finally {
      for (const s of servers.reverse()) await s.close().catch(() => {});
      await admin.end({ timeout: 1 });
      await db.drop();
      for (const d of dirs) rmSync(d, { recursive: true, force: true });
    }
  });

  test("a checkpoint signed by a holder deposed before it noticed is refused in the store's transaction (fenced)", async () => {
    const db = await freshDatabase('ckpt_fenced');
    const dir = mkdtempSync(join(tmpdir(), 'killpath-ckpt-fenced-'));
    const admin = postgres(db.url, { max: 1, onnotice: () => {} });
    let a: RunningServer | null = null;
    try {
      await migrate(admin);
      // Renewals far apart: A goes on believing it holds the lease after another took it.
      a = await startServer({
        port: 0,
        logLevel: 'silent',
        supervisor: false,
        watchdog: false,
        admission: false,
        lease: { ttlMs: 120_000, pollMs: 60_000 },
        storeUrl: db.url,
        dataDir: dir,
      });
      assert.equal(a.checkpoints.signing, true);
      const count = async () =>
        Number((await admin<{ n: string }[]>`SELECT count(*) AS n FROM checkpoints`)[0]!.n);
      const before = await count();
      await admin`UPDATE leases SET holder = 'intruder', epoch = epoch + 1 WHERE name = 'leader'`;
      assert.equal(a.checkpoints.signing, true, 'A has not noticed yet');
      await assert.rejects(
        a.checkpoints.checkpointNow(true),
        (err: unknown) =>
          err instanceof KillpathError && err.code === 'conflict' && /deposed holder/.test(err.message),
      );
      assert.equal(await count(), before, 'nothing stored');
    } finally {
      await a?.close().catch(() => {});
      await admin.end({ timeout: 1 });
      await db.drop();
      rmSync(dir, { recursive: true, force: true });
    }
  });
}
