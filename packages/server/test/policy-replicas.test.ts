/**
 * The active policy across replicas (issue 14): each control plane follows the store's latest
 * policy version, so a version applied on B is served by A (`GET /v1/policy`, the run limits in
 * its workers' heartbeat answers) and a rollback on A reaches B, without a restart. Two real
 * servers (`startServer`) on one SQLite file and on one fresh PostgreSQL database. A stored
 * version that does not compile on a replica is refused there once, loudly, and the current one
 * kept. Assertions are exact; waits are bounded polls, never timing assertions.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { KillpathError, type Principal, type WorkerSettings } from '@killpath/protocol';
import { mintToken } from '../src/auth/tokens.ts';
import { createLogger } from '../src/log.ts';
import type { Alert, AlertSink } from '../src/notify.ts';
import { DEFAULT_POLICY } from '../src/policy/default-policy.ts';
import { PolicyDesk } from '../src/policy/policy-desk.ts';
import { startServer, type RunningServer } from '../src/server.ts';
import { PgStore } from '../src/store/pg/pg-store.ts';
import { SqliteStore } from '../src/store/sqlite-store.ts';
import type { Store } from '../src/store/store.ts';
import { openPool } from '../src/store/pg/connect.ts';
import { migrate } from '../src/store/pg/schema.ts';
import { dropLeftovers, freshDatabase, requirePostgres } from './pg.ts';

after(() => dropLeftovers());

/** One database two replicas share: how each server reaches it, two stores on it, and how to drop it. */
interface Shared {
  /** What each of the two servers is started with (a store of its own on the database, or its URL). */
  server(): { store: Store } | { storeUrl: string };
  stores(): Promise<[Store, Store]>;
  done(): Promise<void>;
}

async function sqliteShared(): Promise<Shared> {
  const dir = mkdtempSync(join(tmpdir(), 'kp-policy-replicas-'));
  const path = join(dir, 'killpath.db');
  return {
    server: () => ({ store: new SqliteStore(path) }),
    stores: async () => [new SqliteStore(path), new SqliteStore(path)],
    async done() {
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

async function pgShared(): Promise<Shared> {
  const db = await freshDatabase('policy_replicas');
  const sql = openPool(db.url, { max: 1 });
  await migrate(sql);
  await sql.end({ timeout: 1 });
  return {
    server: () => ({ storeUrl: db.url }),
    stores: async () => [await PgStore.open(db.url, { max: 2 }), await PgStore.open(db.url, { max: 2 })],
    done: () => db.drop(),
  };
}

/** Waits until `ok()` holds (checked every 20 ms), failing with `what` after `ms`. */
async function until(ok: () => Promise<boolean>, what: string, ms = 20_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await ok())) {
    if (Date.now() > end) assert.fail(`not within ${ms} ms: ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

const OPERATOR: Principal = { tokenId: 'tok-1', name: 'alice', role: 'admin', tenant: '*', agent: null };
const TIGHTER = DEFAULT_POLICY.replace('maxSteps: 200', 'maxSteps: 50');

function cases(name: string, shared: () => Promise<Shared>): void {
  describe(`the active policy across two replicas: ${name}`, () => {
    test('a version applied on B is served by A and reaches A’s heartbeat answers; a rollback on A reaches B', async () => {
      const db = await shared();
      const dirs = [mkdtempSync(join(tmpdir(), 'kp-pol-a-')), mkdtempSync(join(tmpdir(), 'kp-pol-b-'))];
      let a: RunningServer | null = null;
      let b: RunningServer | null = null;
      try {
        const common = {
          port: 0,
          logLevel: 'silent' as const,
          supervisor: false,
          watchdog: false,
          admission: false as const,
        };
        a = await startServer({ ...common, dataDir: dirs[0]!, ...db.server() });
        b = await startServer({ ...common, dataDir: dirs[1]!, ...db.server() });
        const store = a.controlPlane.store;
        const admin = (await mintToken(store, { role: 'admin', tenant: '*' }, 'test')).secret;
        const agent = (await mintToken(store, { role: 'agent', tenant: 'acme', agent: 'bot' }, 'test'))
          .secret;
        const call = async (s: RunningServer, method: string, path: string, token: string, body?: unknown) =>
          fetch(`${s.url}${path}`, {
            method,
            headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
            ...(body === undefined ? {} : { body: JSON.stringify(body) }),
          });
        const policyOf = async (s: RunningServer) =>
          (await (await call(s, 'GET', '/v1/policy', admin)).json()) as {
            version: number;
            source: string;
            active: boolean;
          };
        const limitsOf = async (s: RunningServer) => {
          const res = await call(s, 'POST', '/v1/workers/w9/heartbeat', agent, {
            rev: 0,
            features: [],
            runs: [],
            pid: 1234,
            sinceContactMs: 5,
          });
          assert.equal(res.status, 200);
          return ((await res.json()) as WorkerSettings).limits;
        };

        assert.equal((await policyOf(a)).version, 1);
        assert.deepEqual(await limitsOf(a), { maxSteps: 200, maxCostUsd: 5 });

        // Applied on B: A serves v2 and sends its workers the new run limit.
        const applied = await call(b, 'POST', '/v1/policy', admin, { source: TIGHTER, comment: 'INC-14' });
        assert.equal(applied.status, 201);
        assert.equal(((await applied.json()) as { version: number }).version, 2);
        await until(async () => (await policyOf(a!)).version === 2, 'A serves v2');
        const onA = await policyOf(a);
        assert.equal(onA.source, TIGHTER);
        assert.equal(onA.active, true);
        assert.deepEqual(await limitsOf(a), { maxSteps: 50, maxCostUsd: 5 });
        assert.equal((a.triggers.status()['policy'] as { version: number }).version, 2);

        // Rolled back on A (A diffs against v2, the store's latest): B follows to v3, v1's text.
        const back = await call(a, 'POST', '/v1/policy/rollback', admin, { version: 1, comment: 'undo' });
        assert.equal(back.status, 201);
        const backBody = (await back.json()) as { version: number; changes: { changed: string[] } };
        assert.equal(backBody.version, 3);
        await until(async () => (await policyOf(b!)).version === 3, 'B serves v3');
        assert.equal((await policyOf(b)).source, DEFAULT_POLICY);
        assert.deepEqual(await limitsOf(b), { maxSteps: 200, maxCostUsd: 5 });

        // B, following, knows v3 is active: rolling back to v1 again is the same text (409 there too).
        const again = await call(b, 'POST', '/v1/policy/rollback', admin, { version: 1, comment: 'again' });
        assert.equal(again.status, 409);
        const history = (await (await call(b, 'GET', '/v1/policy/history', admin)).json()) as {
          active: number;
          total: number;
        };
        assert.deepEqual([history.active, history.total], [3, 3]);

        // The two-person flow across replicas: a gate applied on A is followed by B (B's change is
        // asked for, not applied), approved on A by another admin, and B follows A's commit.
        const gated = `${DEFAULT_POLICY}approvals:\n  - { name: policy_change, action: policy.apply, approvals: 1, approvers: admin, within: 30m }\n`;
        assert.equal((await call(a, 'POST', '/v1/policy', admin, { source: gated })).status, 201);
        await until(async () => (await policyOf(b!)).version === 4, 'B serves v4 (the gate)');
        const ada = (await mintToken(store, { role: 'admin', tenant: '*', name: 'ada' }, 'test')).secret;
        const bob = (await mintToken(store, { role: 'admin', tenant: '*', name: 'bob' }, 'test')).secret;
        const asked = await call(b, 'POST', '/v1/policy', ada, {
          source: gated.replace('maxSteps: 200', 'maxSteps: 60'),
          comment: 'two people',
        });
        assert.equal(asked.status, 202, 'B gates the change: it follows v4');
        const { approval } = (await asked.json()) as { approval: { id: string } };
        const ok = await call(a, 'POST', `/v1/approvals/${approval.id}/approve`, bob, {
          justification: 'reviewed',
        });
        assert.equal(ok.status, 200, await ok.clone().text());
        assert.equal((await policyOf(a)).version, 5);
        await until(async () => (await policyOf(b!)).version === 5, 'B serves v5 (approved on A)');
        assert.deepEqual(await limitsOf(b), { maxSteps: 60, maxCostUsd: 5 });
      } finally {
        await a?.close();
        await b?.close();
        await db.done();
        for (const d of dirs) rmSync(d, { recursive: true, force: true });
      }
    });

    test('a stored version that does not compile on this replica: refused once (logged, alerted), the current one kept', async () => {
      const db = await shared();
      const alerts: Omit<Alert, 'at' | 'checkpoint'>[] = [];
      const sink: AlertSink = { notify: (x) => void alerts.push(x) };
      const lines: string[] = [];
      const stores = await db.stores();
      try {
        const desk = await PolicyDesk.open(
          stores[0],
          sink,
          createLogger('info', (l) => void lines.push(l)),
        );
        assert.equal(desk.current.version, 1);
        assert.equal(await desk.follow(), false, 'nothing newer');
        // What an older server would meet: a text a newer one validated (here: a rule it cannot parse).
        await stores[1].putPolicy(
          {
            source: 'rules:\n  - { name: a, when: "run.nope", action: { level: halt } }',
            digest: 'x',
            actor: 'newer-replica',
            comment: null,
            rollbackOf: null,
          },
          () => [],
        );
        assert.equal(await desk.follow(), false);
        assert.equal(await desk.follow(), false);
        assert.equal(desk.current.version, 1);
        assert.equal(desk.active.policy.limitsFor('acme', 'bot').maxSteps, 200);
        assert.deepEqual(
          alerts.map((x) => [x.kind, x.summary]),
          [
            [
              'policy.changed',
              'policy v2 (applied by newer-replica) does not compile on this replica: it keeps running v1',
            ],
          ],
        );
        const refused = lines
          .map((l) => JSON.parse(l) as { msg: string; version?: number })
          .filter((l) => l.msg.startsWith('a policy version stored by another replica does not compile'));
        assert.deepEqual(
          refused.map((l) => l.version),
          [2],
        );
      } finally {
        await stores[0].close();
        await stores[1].close();
        await db.done();
      }
    });

    test('two applies over the same version: one is stored as the next version, the other is a conflict (no version over a stale one)', async () => {
      const db = await shared();
      const stores = await db.stores();
      try {
        const alerts: AlertSink = { notify: () => {} };
        const desk = await PolicyDesk.open(stores[0], alerts, createLogger('silent'));
        const texts = [TIGHTER, DEFAULT_POLICY.replace('maxSteps: 200', 'maxSteps: 70')];
        const results = await Promise.allSettled(texts.map((source) => desk.apply(OPERATOR, source)));
        const ok = results.filter((r) => r.status === 'fulfilled');
        const refused = results.filter((r) => r.status === 'rejected');
        assert.deepEqual(
          ok.map((r) => [r.value.version, r.value.created]),
          [[2, true]],
        );
        assert.equal(refused.length, 1);
        assert.equal((refused[0]!.reason as KillpathError).code, 'conflict');
        assert.equal(await stores[1].countPolicies(), 2);
        assert.equal(desk.current.version, 2);
        const stored = (await stores[1].getPolicy(2))!;
        assert.equal(stored.source, texts[results.findIndex((r) => r.status === 'fulfilled')]);
      } finally {
        await stores[0].close();
        await stores[1].close();
        await db.done();
      }
    });

    test('two replicas starting at once with one --policy file: both start, the file is stored once', async () => {
      const db = await shared();
      const stores = await db.stores();
      try {
        const alerts: AlertSink = { notify: () => {} };
        const file = { path: 'policy.yaml', source: TIGHTER };
        const desks = await Promise.all(
          stores.map((s) => PolicyDesk.open(s, alerts, createLogger('silent'), file)),
        );
        assert.deepEqual(
          desks.map((d) => [d.current.version, d.current.source]),
          [
            [2, TIGHTER],
            [2, TIGHTER],
          ],
        );
        assert.equal(await stores[0].countPolicies(), 2);
      } finally {
        await stores[0].close();
        await stores[1].close();
        await db.done();
      }
    });
  });
}

cases('SQLite (two stores on one file)', sqliteShared);
if (await requirePostgres()) cases('PostgreSQL', pgShared);
