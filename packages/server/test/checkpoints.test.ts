/**
 * Signed checkpoints end to end in the control plane: the checkpointer signs every N records or
 * T ms, stores and sends each one, the routes serve the key and the latest checkpoint, and
 * `POST /v1/audit/verify` (hashing in a worker thread on a file database) proves a kept
 * checkpoint is extended, or names what is missing or altered; keys rotate and old checkpoints
 * still verify. Old fixture databases gain checkpoints over their old records.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { AuditKeys, ConsistencyVerdict, SignedCheckpoint } from '@killpath/protocol';
import { Authenticator, mintToken } from '../src/auth/tokens.ts';
import { Checkpointer } from '../src/audit/checkpointer.ts';
import {
  checkpointSignatureProblem,
  loadOrCreateSigningKey,
  signCheckpoint,
} from '../src/audit/checkpoint.ts';
import { verifyConsistency } from '../src/audit/merkle.ts';
import { ControlPlane } from '../src/control-plane.ts';
import { Fleet } from '../src/fleet.ts';
import { createApp } from '../src/http/app.ts';
import { createLogger } from '../src/log.ts';
import { Metrics } from '../src/metrics.ts';
import type { Alert, AlertSink } from '../src/notify.ts';
import { rawExec, tamperableStore } from './tamper.ts';
import { StreamHub } from '../src/stream/hub.ts';
import { expectWireError } from './harness.ts';

class Sink implements AlertSink {
  readonly recent: Alert[] = [];
  checkpoint: SignedCheckpoint | null = null;
  notify(a: Omit<Alert, 'at' | 'checkpoint'>): void {
    this.recent.push({ ...a, at: new Date().toISOString(), checkpoint: this.checkpoint });
  }
}

async function setup(
  dbFile: string | null,
  opts: { everyRecords?: number; everyMs?: number; now?: () => number } = {},
) {
  const dir = mkdtempSync(join(tmpdir(), 'killpath-ckpt-'));
  const path = dbFile ?? join(dir, 'killpath.db');
  const store = tamperableStore(path);
  const log = createLogger('silent');
  const alerts = new Sink();
  const cp = new ControlPlane({
    store,
    hub: new StreamHub(60_000, await store.rev()),
    fleet: new Fleet(),
    metrics: new Metrics(),
    log,
    alerts,
    keepaliveMs: 60_000,
  });
  await cp.start();
  const keyPath = join(dir, 'audit-signing.key');
  const { key } = loadOrCreateSigningKey(keyPath);
  const checkpoints = new Checkpointer({ store, key, keyPath, alerts, log, tickMs: 3_600_000, ...opts });
  await checkpoints.start();
  const app = createApp(cp, new Authenticator(store), log, undefined, { checkpoints });
  const admin = (await mintToken(store, { role: 'admin', tenant: '*' }, 'test')).secret;
  const operator = (await mintToken(store, { role: 'operator', tenant: 'acme' }, 'test')).secret;
  const req = (method: string, p: string, token: string, body?: unknown) =>
    app.request(p, {
      method,
      headers: {
        authorization: `Bearer ${token}`,
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
  const halt = (n: number) =>
    req('POST', '/v1/directives', admin, {
      level: 'halt',
      scope: `run:r${n}`,
      tenant: 'acme',
      reason: `halt ${n}`,
      justification: 'test',
    });
  return {
    dir,
    path,
    store,
    cp,
    alerts,
    checkpoints,
    keyPath,
    admin,
    operator,
    req,
    halt,
    async close() {
      await checkpoints.stop(false);
      cp.stop();
      await cp.flushAudit();
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

test('the checkpointer signs every N records and after T ms, stores, sends and attaches each checkpoint', async () => {
  let now = 1_000_000;
  const h = await setup(null, { everyRecords: 5, everyMs: 10_000, now: () => now });
  try {
    const first = h.checkpoints.latest;
    assert.ok(first !== null, 'records at start (key, tokens) are signed at once');
    assert.ok(statSync(h.keyPath).mode % 0o1000 === 0o600, 'the key file is 0600');
    for (let i = 0; i < 3; i++) assert.equal((await h.halt(i)).status, 201);
    await h.cp.flushAudit();
    await h.checkpoints.tick();
    // Three halts write more than five records (operator_action, directive.issued, kill_switch.fired).
    const second = h.checkpoints.latest!;
    assert.ok(second.size > first.size, 'signed after N records');
    const size = (await h.store.listAudit({ desc: true, limit: 1 }))[0]!.seq;
    assert.equal(size, second.size + 1, 'the audit.checkpoint record follows the signed records');
    // Its own record alone never makes another checkpoint due; T ms and one new record do.
    now += 60_000;
    await h.checkpoints.tick();
    assert.equal(
      h.checkpoints.latest,
      second,
      'an audit.checkpoint record alone does not trigger a checkpoint',
    );
    assert.equal((await h.halt(9)).status, 201);
    await h.cp.flushAudit();
    await h.checkpoints.tick();
    assert.ok(h.checkpoints.latest!.size > second.size, 'signed after T ms with new records');
    const sent = h.alerts.recent.filter((a) => a.kind === 'audit.checkpoint');
    assert.ok(sent.length >= 3, 'each checkpoint went to the alert sink (webhooks)');
    assert.deepEqual(sent.at(-1)!.details.checkpoint, h.checkpoints.latest);
    // Every alert carries the latest checkpoint (here: the alert of a degrade).
    const degrade = await h.req('POST', '/v1/directives', h.admin, {
      level: 'degrade',
      scope: 'agent:acme/bot',
      tenant: 'acme',
      reason: 'read only',
      justification: 'test',
    });
    assert.equal(degrade.status, 201);
    const other = h.alerts.recent.filter((a) => a.kind !== 'audit.checkpoint').at(-1);
    assert.equal(other?.kind, 'degraded');
    assert.deepEqual(other.checkpoint, h.checkpoints.latest, 'other alerts carry the latest checkpoint');
    const keys = (await (await h.req('GET', '/v1/audit/key', h.operator)).json()) as AuditKeys;
    for (const c of [first, second, h.checkpoints.latest!])
      assert.equal(checkpointSignatureProblem(c, [keys.current]), null);
    // The log lists its signed heads.
    const recs = await h.store.listAudit({ types: ['audit.checkpoint'] });
    assert.deepEqual(
      recs.map((r) => r.data.size),
      [first.size, second.size, h.checkpoints.latest!.size],
    );
  } finally {
    await h.close();
  }
});

test('POST /v1/audit/verify proves a kept checkpoint is extended and names truncation, rollback and alteration', async () => {
  const h = await setup(null);
  try {
    for (let i = 0; i < 4; i++) await h.halt(i);
    await h.cp.flushAudit();
    const keptRes = await h.req('POST', '/v1/audit/checkpoint', h.admin, {});
    assert.equal(keptRes.status, 200);
    const kept = (await keptRes.json()) as SignedCheckpoint;
    assert.deepEqual(await (await h.req('GET', '/v1/audit/checkpoint', h.admin)).json(), kept);
    for (let i = 4; i < 8; i++) await h.halt(i);

    const ok = (await (
      await h.req('POST', '/v1/audit/verify', h.admin, { checkpoint: kept })
    ).json()) as ConsistencyVerdict;
    assert.deepEqual(ok.problems, []);
    assert.ok(ok.ok && ok.head.size > kept.size);
    assert.ok(
      verifyConsistency(
        kept.size,
        ok.head.size,
        Buffer.from(kept.rootHash, 'hex'),
        Buffer.from(ok.head.rootHash, 'hex'),
        ok.proof.map((x) => Buffer.from(x, 'hex')),
      ),
    );

    // Non-admins may read the key, not checkpoints.
    await expectWireError(await h.req('GET', '/v1/audit/checkpoint', h.operator), 403, 'forbidden');
    await expectWireError(
      await h.req('POST', '/v1/audit/verify', h.operator, { checkpoint: kept }),
      403,
      'forbidden',
    );
    // Bad input: not a checkpoint. Another log's checkpoint: a failed verification.
    await expectWireError(
      await h.req('POST', '/v1/audit/verify', h.admin, { checkpoint: { size: 1 } }),
      400,
      'invalid_request',
    );
    const other = (await (
      await h.req('POST', '/v1/audit/verify', h.admin, { checkpoint: { ...kept, origin: 'killpath/other' } })
    ).json()) as ConsistencyVerdict;
    assert.equal(other.ok, false);
    assert.match(
      other.problems.join('\n'),
      /is of log killpath\/other but this database holds log killpath\//,
    );

    // An altered record: named by the chain, and the kept root no longer matches.
    rawExec(h.store, `UPDATE audit SET actor = 'mallory' WHERE seq = 3`);
    let v = (await (
      await h.req('POST', '/v1/audit/verify', h.admin, { checkpoint: kept })
    ).json()) as ConsistencyVerdict;
    assert.equal(v.ok, false);
    assert.equal(v.chain.firstBad, 3);
    assert.match(v.problems.join('\n'), /record #3: hash does not match/);
    assert.match(v.problems.join('\n'), new RegExp(`first ${kept.size} records no longer hash`));
    rawExec(h.store, `UPDATE audit SET actor = (SELECT actor FROM audit WHERE seq = 2) WHERE seq = 3`);

    // Records deleted from the end (and the stored checkpoints with them): the kept copy names them.
    rawExec(h.store, `DELETE FROM audit WHERE seq > ${kept.size - 2}; DELETE FROM checkpoints`);
    v = (await (
      await h.req('POST', '/v1/audit/verify', h.admin, { checkpoint: kept })
    ).json()) as ConsistencyVerdict;
    assert.equal(v.ok, false);
    assert.match(
      v.problems.join('\n'),
      new RegExp(
        `log has ${kept.size - 2} records but the checkpoint .* covers ${kept.size}: records #${kept.size - 1}–#${kept.size} are missing`,
      ),
    );
  } finally {
    await h.close();
  }
});

test('rotating the key signs with the new one at once; checkpoints of the old key still verify; a foreign key is refused', async () => {
  const h = await setup(null);
  try {
    await h.halt(1);
    const old = (await (await h.req('POST', '/v1/audit/checkpoint', h.admin, {})).json()) as SignedCheckpoint;
    const before = statSync(h.keyPath).mtimeMs;
    await expectWireError(
      await h.req('POST', '/v1/audit/key/rotate', h.operator, { reason: 'x' }),
      403,
      'forbidden',
    );
    await expectWireError(
      await h.req('POST', '/v1/audit/key/rotate', h.admin, { reason: ' ' }),
      400,
      'invalid_request',
    );
    const r = (await (
      await h.req('POST', '/v1/audit/key/rotate', h.admin, { reason: 'laptop lost' })
    ).json()) as {
      previous: string;
      current: string;
      checkpoint: SignedCheckpoint;
    };
    assert.equal(r.previous, old.keyId);
    assert.notEqual(r.current, old.keyId);
    assert.equal(r.checkpoint.keyId, r.current);
    assert.ok(statSync(h.keyPath).mode % 0o1000 === 0o600 && statSync(h.keyPath).mtimeMs >= before);
    const keys = (await (await h.req('GET', '/v1/audit/key', h.admin)).json()) as AuditKeys;
    assert.equal(keys.current.keyId, r.current);
    assert.deepEqual(
      keys.previous.map((k) => [k.keyId, k.retiredAt !== null]),
      [[old.keyId, true]],
    );
    const rotated = await h.store.listAudit({ types: ['operator_action'], desc: true, limit: 1 });
    assert.equal(rotated[0]!.data.action, 'audit.key.rotated');
    assert.equal(rotated[0]!.data.reason, 'laptop lost');
    // The old checkpoint still verifies (its key is listed as earlier), and the head is signed by the new key.
    const v = (await (
      await h.req('POST', '/v1/audit/verify', h.admin, { checkpoint: old })
    ).json()) as ConsistencyVerdict;
    assert.deepEqual(v.problems, []);
    assert.equal(v.head.keyId, r.current);
    // A checkpoint signed by a key this control plane never held is refused.
    const { key: foreign } = loadOrCreateSigningKey(join(h.dir, 'foreign.key'));
    const forged = signCheckpoint(foreign, {
      origin: old.origin,
      size: old.size,
      rootHash: old.rootHash,
      timestamp: old.timestamp,
    });
    const f = (await (
      await h.req('POST', '/v1/audit/verify', h.admin, { checkpoint: forged })
    ).json()) as ConsistencyVerdict;
    assert.equal(f.ok, false);
    assert.match(f.problems[0]!, /not a trusted key/);
  } finally {
    await h.close();
  }
});

for (const fixture of ['schema-v1.db', 'schema-v4.db']) {
  test(`an old ${fixture} gains a log id and checkpoints over its old records, verified in a worker`, async () => {
    const tmp = mkdtempSync(join(tmpdir(), 'killpath-fixture-'));
    const path = join(tmp, 'killpath.db');
    copyFileSync(fileURLToPath(new URL(`./fixtures/${fixture}`, import.meta.url)), path);
    const h = await setup(path);
    try {
      const c = h.checkpoints.latest!;
      assert.match(c.origin, /^killpath\/[0-9a-f-]{36}$/);
      assert.ok(c.size >= 3, 'the old records are covered');
      const v = (await (
        await h.req('POST', '/v1/audit/verify', h.admin, { checkpoint: c })
      ).json()) as ConsistencyVerdict;
      assert.deepEqual(v.problems, []);
      assert.equal(v.chain.ok, true);
    } finally {
      await h.close();
      rmSync(tmp, { recursive: true, force: true });
    }
  });
}

test('a restart resumes from the stored frontier; a log shorter than the stored checkpoint raises an alert', async () => {
  const h = await setup(null);
  const { path, keyPath } = h;
  const dir = mkdtempSync(join(tmpdir(), 'killpath-restart-'));
  const copy = join(dir, 'killpath.db');
  try {
    for (let i = 0; i < 3; i++) await h.halt(i);
    const c = (await (await h.req('POST', '/v1/audit/checkpoint', h.admin, {})).json()) as SignedCheckpoint;
    await h.checkpoints.stop(false);
    await h.cp.flushAudit();
    await h.store.close();
    copyFileSync(path, copy);
    for (const truncate of [false, true]) {
      const store = tamperableStore(copy);
      if (truncate) rawExec(store, `DELETE FROM audit WHERE seq > 2`);
      const alerts = new Sink();
      const { key } = loadOrCreateSigningKey(keyPath);
      const k = new Checkpointer({
        store,
        key,
        keyPath,
        alerts,
        log: createLogger('silent'),
        tickMs: 3_600_000,
      });
      await k.start();
      if (!truncate) {
        assert.equal(k.latest!.size >= c.size, true);
        assert.deepEqual(
          alerts.recent.filter((a) => a.kind === 'audit.inconsistent'),
          [],
        );
      } else {
        const a = alerts.recent.find((x) => x.kind === 'audit.inconsistent');
        assert.ok(a, 'the truncation was noticed at start');
        assert.match(a.summary, /has 2 records but a stored checkpoint covers/);
      }
      await k.stop(false);
      await store.close();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
    rmSync(h.dir, { recursive: true, force: true });
  }
});
