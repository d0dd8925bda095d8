/**
 * Guarantee 1 through the HTTP API of three control-plane replicas (`startServer` on one
 * PostgreSQL database, real sockets on 127.0.0.1): writers on every replica send permit batches
 * while an operator's halt commits on one of them. What is asserted is read back from the
 * database, exactly; nothing is timed.
 */
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { PermitRequest } from '@killpath/protocol';
import { startServer, type RunningServer } from '../src/server.ts';
import { openPool } from '../src/store/pg/connect.ts';
import { migrate } from '../src/store/pg/schema.ts';
import { grant } from './effects-contract.ts';
import { dropLeftovers, freshDatabase, requirePostgres } from './pg.ts';

const available = await requirePostgres();
after(dropLeftovers);
const dir = mkdtempSync(join(tmpdir(), 'killpath-pg-permits-'));
after(() => rmSync(dir, { recursive: true, force: true }));

/** A permit request as a worker sends it (the contract's grant without what the server adds). */
function permit(over: Partial<PermitRequest>): PermitRequest {
  const { tenant: _t, agent: _a, coolOffMs: _c, ...req } = grant(over);
  return req;
}

async function post(url: string, token: string, body: unknown): Promise<{ status: number; json: unknown }> {
  const res = await fetch(url, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  return { status: res.status, json: await res.json() };
}

describe('PostgreSQL replicas over HTTP', { skip: !available }, () => {
  test('guarantee 1: writers on three replicas send permit batches while a halt commits on one; from the database, no covered permit after the halt\u2019s rev', async () => {
    const db = await freshDatabase('permits_http');
    const sql = openPool(db.url, { max: 2 });
    const servers: RunningServer[] = [];
    try {
      await migrate(sql);
      for (const i of [0, 1, 2])
        servers.push(
          await startServer({
            logLevel: 'error',
            port: 0,
            admission: false,
            supervisor: false,
            watchdog: false,
            dataDir: join(dir, `replica-${i}`),
            storeUrl: db.url,
          }),
        );
      const admin = servers.find((s) => s.createdAdminToken !== null)!.createdAdminToken!;
      const mint = async (agent: string) => {
        const r = await post(`${servers[0]!.url}/v1/tokens`, admin, { role: 'agent', tenant: 'acme', agent });
        assert.equal(r.status, 201, JSON.stringify(r.json));
        return (r.json as { token: string }).token;
      };
      const bot = await mint('bot'); // covered by the halt
      const other = await mint('other'); // not covered
      const writers = 6; // two per replica
      const afterHalt = 5; // batches each writer sends once the halt has answered
      let sent = 0;
      let warm!: () => void;
      const warmedUp = new Promise<void>((r) => (warm = r));
      let haltAnswered = false;
      const late: number[][] = [];
      const writer = async (w: number) => {
        const url = `${servers[w % servers.length]!.url}/v1/permits/batch`;
        for (let n = 0, after = 0; after < afterHalt; n++) {
          const sentAfterHalt = haltAnswered;
          const [covered, free] = await Promise.all([
            post(url, bot, {
              requests: [0, 1].map((k) => permit({ runId: `c${(w + n + k) % 4}`, workerId: `w${w}` })),
            }),
            post(url, other, {
              requests: [0, 1].map((k) => permit({ runId: `f${(w + n + k) % 4}`, workerId: `v${w}` })),
            }),
          ]);
          assert.equal(covered.status, 200);
          assert.equal(free.status, 200);
          const statuses = [covered, free].flatMap((r) =>
            (r.json as { answers: { status: number }[] }).answers.map((a) => a.status),
          );
          if (sentAfterHalt) {
            late.push(statuses);
            after++;
          }
          if (++sent === writers * 3) warm();
        }
      };
      const running = Array.from({ length: writers }, (_, w) => writer(w));
      await warmedUp;
      const halt = await post(`${servers[1]!.url}/v1/directives`, admin, {
        level: 'halt',
        scope: 'agent:acme/bot',
        tenant: 'acme',
        reason: 'test',
        justification: 'guarantee 1 across replicas',
      });
      assert.equal(halt.status, 201, JSON.stringify(halt.json));
      const { id: haltId, rev: R } = (halt.json as { directive: { id: string; rev: number } }).directive;
      haltAnswered = true;
      await Promise.all(running);

      const count = async (agent: string, op: '<' | '>=') => {
        const [r] = await sql<{ n: string }[]>`
          SELECT count(*) AS n FROM permits WHERE tenant = 'acme' AND agent = ${agent}
            AND ${op === '<' ? sql`rev < ${R}` : sql`rev >= ${R}`}`;
        return Number(r!.n);
      };
      assert.equal(await count('bot', '>='), 0, 'no covered permit at or after the halt\u2019s rev');
      assert.ok((await count('bot', '<')) > 0, 'covered runs were granted before the halt');
      assert.ok((await count('other', '>=')) >= writers * afterHalt * 2, 'uncovered runs kept being granted');
      // Sent after the halt answered, on whichever replica: covered refused (409), uncovered granted (201).
      assert.equal(late.length, writers * afterHalt);
      for (const statuses of late) assert.deepEqual(statuses, [409, 409, 201, 201]);
      // Every covered permit's first audit record (its grant's commit) is before the halt's.
      const [order] = await sql<{ last: string | null; halt: string }[]>`
        WITH named AS (
          SELECT seq, data::jsonb ->> 'permitId' AS id FROM audit WHERE type = 'effect.intent'
          UNION ALL
          SELECT a.seq, r ->> 0 FROM audit a, jsonb_array_elements(a.data::jsonb -> 'rows') r
            WHERE a.type = 'ledger.committed'
        ), firsts AS (SELECT id, min(seq) AS seq FROM named GROUP BY id)
        SELECT max(f.seq) AS last,
          (SELECT min(seq) FROM audit WHERE data::jsonb ->> 'directiveId' = ${haltId}) AS halt
        FROM permits p JOIN firsts f ON f.id = p.id WHERE p.tenant = 'acme' AND p.agent = 'bot'`;
      assert.ok(Number(order!.last) < Number(order!.halt), JSON.stringify(order));
    } finally {
      await Promise.all(servers.map((s) => s.close()));
      await sql.end({ timeout: 1 });
      await db.drop();
    }
  });
});
