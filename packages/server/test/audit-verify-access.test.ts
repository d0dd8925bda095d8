/**
 * `GET /v1/audit/verify` (issue 11 item 8): the log is one chain over every tenant's records, so
 * an admin learns its size, head and first bad record, a tenant's operator or viewer only whether
 * it verifies, an agent nothing; and concurrent verifications share one read-and-hash of the log.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { AuditVerdict } from '@killpath/protocol';
import type { LogFindings, TreeClaim } from '../src/audit/log-verify.ts';
import { expectWireError, harness, type Harness } from './harness.ts';
import { rawExec } from './tamper.ts';

async function kill(h: Harness, token: string, tenant: string, agent = 'bot'): Promise<void> {
  const res = await h.req('POST', `/v1/agents/${tenant}/${agent}/kill`, {
    token,
    body: { justification: `INC-${tenant}` },
  });
  assert.equal(res.status, 201, await res.text());
}

async function verify(h: Harness, token: string): Promise<{ status: number; body: unknown }> {
  const res = await h.req('GET', '/v1/audit/verify', { token });
  return { status: res.status, body: await res.json() };
}

describe('who learns what from GET /v1/audit/verify', () => {
  test('an admin gets the count and head; a tenant operator or viewer only ok; an agent 403', async () => {
    const h = await harness();
    try {
      const admin = await h.token('admin', '*');
      const opAcme = await h.token('operator', 'acme');
      const viewerAcme = await h.token('viewer', 'acme');
      const opBeta = await h.token('operator', 'beta');
      const agent = await h.token('agent', 'acme', 'bot');
      await kill(h, opAcme, 'acme');
      await kill(h, opBeta, 'beta');

      const full = await verify(h, admin);
      assert.equal(full.status, 200);
      const v = full.body as AuditVerdict;
      assert.equal(v.ok, true);
      assert.ok(v.ok && v.records >= 4 && /^[0-9a-f]{64}$/.test(v.head), JSON.stringify(v));

      for (const [who, token] of [
        ['acme operator', opAcme],
        ['acme viewer', viewerAcme],
        ['beta operator', opBeta],
      ] as const) {
        const brief = await verify(h, token);
        assert.equal(brief.status, 200, who);
        // Exactly this: no count, no head, no checkpoint, nothing of another tenant.
        assert.deepEqual(brief.body, { ok: true, brief: true }, who);
      }
      await expectWireError(
        await h.req('GET', '/v1/audit/verify', { token: agent }),
        403,
        'forbidden',
        'agent',
      );

      // A broken chain: the admin is told where; a tenant only that it does not verify.
      rawExec(h.store, `UPDATE audit SET actor = 'mallory' WHERE seq = 2`);
      const broken = (await verify(h, admin)).body as AuditVerdict;
      assert.ok(!broken.ok && broken.firstBad === 2, JSON.stringify(broken));
      assert.deepEqual((await verify(h, viewerAcme)).body, { ok: false, brief: true });
    } finally {
      await h.close();
    }
  });
});

/** Holds every `verifyLog` call of the store open until `release()`, counting them. */
function gate(h: Harness): { calls: () => number; started: Promise<void>; release: () => void } {
  const real = h.store.verifyLog.bind(h.store);
  let calls = 0;
  let open!: () => void;
  const opened = new Promise<void>((r) => (open = r));
  let started!: () => void;
  const startedP = new Promise<void>((r) => (started = r));
  h.store.verifyLog = async (kept: TreeClaim | null): Promise<LogFindings> => {
    calls++;
    started();
    await opened;
    return real(kept);
  };
  return { calls: () => calls, started: startedP, release: open };
}

/** Lets every request that can progress reach its next wait (no time is measured). */
async function settle(): Promise<void> {
  for (let i = 0; i < 20; i++) await new Promise((r) => setImmediate(r));
}

describe('concurrent verifications share one run', () => {
  test('four concurrent calls (admin, operator, viewer) cost one full read and hash of the log', async () => {
    const h = await harness();
    try {
      const admin = await h.token('admin', '*');
      const op = await h.token('operator', 'acme');
      const viewer = await h.token('viewer', 'acme');
      await kill(h, op, 'acme');
      await h.cp.flushAudit();
      const g = gate(h);
      const answers = [admin, op, viewer, admin].map((t) => verify(h, t));
      await g.started;
      await settle();
      g.release();
      const got = await Promise.all(answers);
      assert.equal(g.calls(), 1, 'one verification for four concurrent calls');
      assert.ok(got.every((a) => a.status === 200));
      assert.deepEqual(got[0]!.body, got[3]!.body);
      assert.deepEqual(got[1]!.body, { ok: true, brief: true });
    } finally {
      await h.close();
    }
  });

  test('a call made after a record was appended to a running verification gets a run that covers it', async () => {
    const h = await harness();
    try {
      const admin = await h.token('admin', '*');
      const op = await h.token('operator', 'acme');
      await kill(h, op, 'acme');
      await h.cp.flushAudit();
      const g = gate(h);
      const first = verify(h, admin);
      await g.started;
      await kill(h, op, 'acme', 'bot2');
      await h.cp.flushAudit();
      const head = (await h.store.listAudit({ desc: true, limit: 1 }))[0]!.seq;
      const second = verify(h, admin);
      const third = verify(h, admin);
      await settle();
      g.release();
      const [a, b, c] = await Promise.all([first, second, third]);
      assert.equal(g.calls(), 2, 'the later callers share one new run');
      assert.ok((b.body as { records: number }).records >= head, JSON.stringify(b.body));
      assert.deepEqual(b.body, c.body);
      assert.ok((a.body as { records: number }).records <= head);
    } finally {
      await h.close();
    }
  });
});
