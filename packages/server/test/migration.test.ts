/**
 * Old on-disk formats are fixtures, never regenerated: `fixtures/schema-v1.db` was written by
 * the store as of schema version 1 (no `memory` column, no effect journal), `fixtures/schema-v4.db`
 * as of version 4 (no rehearsal records, no capability surfaces). Readers must keep accepting them.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { SCHEMA_VERSION, SqliteStore } from '../src/store/sqlite-store.ts';
import { DatabaseSync } from 'node:sqlite';
import { KillpathError, parseScope } from '@killpath/protocol';
import { grant } from './effects-contract.ts';
import { rehearsalInput } from './store-contract.ts';

const FIXTURE = fileURLToPath(new URL('./fixtures/schema-v1.db', import.meta.url));
const FIXTURE_V4 = fileURLToPath(new URL('./fixtures/schema-v4.db', import.meta.url));

test('a schema-v1 database opens, keeps its switchboard, audit chain and tokens, and gains the effect journal', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'killpath-v1-'));
  const path = join(dir, 'killpath.db');
  copyFileSync(FIXTURE, path);
  const s = new SqliteStore(path);
  try {
    assert.equal(await s.rev(), 3, 'two issues and one clear');
    const board = await s.switchboard();
    assert.equal(board.directives.length, 1);
    const kill = board.directives[0]!;
    assert.equal(kill.level, 'kill');
    assert.equal(kill.scopeText, 'run:r-old');
    assert.deepEqual(kill.capabilities, ['wire_transfer']);
    assert.equal(kill.memory, 'revert', 'the new column defaults for old rows');
    assert.equal((await s.listDirectives({ active: false })).length, 1);
    const verdict = await s.verifyAudit();
    assert.ok(verdict.ok, 'the old chain still verifies');
    assert.equal(verdict.records, 3);
    assert.equal(await s.countTokens(), 1);
    const [old] = await s.listTokens({});
    assert.deepEqual(
      [old?.expiresAt, old?.revokedAt, old?.revokedBy, old?.revokeReason],
      [null, null, null, null],
      'an old token never expires and is not revoked',
    );
    assert.equal((await s.revokeToken(old!.id, 'admin', 'rotated', () => []))?.revokeReason, 'rotated');
    // The journal works on the migrated file, and the old kill still refuses its tool.
    const [d] = await s.grantPermits([grant({ runId: 'r-old', capability: 'wire_transfer' })]);
    assert.equal(d?.kind, 'halted');
    const [ok] = await s.grantPermits([grant({ runId: 'r-old', capability: 'search.write' })]);
    assert.equal(ok?.kind, 'granted');
    assert.ok((await s.verifyAudit()).ok, 'new records chain onto the old ones');
  } finally {
    await s.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a schema-v4 database opens as version 15: its state is kept, drills, capability surfaces, releases, presence, acknowledgements, leases and forwarded telemetry start empty', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'killpath-v4-'));
  const path = join(dir, 'killpath.db');
  copyFileSync(FIXTURE_V4, path);
  const s = new SqliteStore(path);
  try {
    assert.equal(await s.rev(), 3, 'two issues and one clear');
    const board = await s.switchboard();
    assert.deepEqual(
      board.directives.map((d) => [d.level, d.scopeText, d.capabilities]),
      [['kill', 'agent:acme/bot', ['wire_transfer']]],
    );
    assert.equal((await s.getPolicy())?.comment, 'v1');
    assert.equal((await s.getRun('acme', 'r-old'))?.agent, 'bot');
    const verdict = await s.verifyAudit();
    assert.ok(verdict.ok, 'the old chain still verifies');
    assert.equal(verdict.records, 4);
    // New tables, empty; the agent with a run is known, without capabilities.
    assert.deepEqual(await s.listDrills({ limit: 10 }), []);
    assert.deepEqual(await s.agentSurfaces(), [{ tenant: 'acme', agent: 'bot', capabilities: [] }]);
    const r = await s.recordDrill(rehearsalInput(), 'alice', (x) => [
      { type: 'drill.recorded', actor: 'alice', tenant: 'acme', data: { drillId: x.id } },
    ]);
    assert.equal(r.auditSeq, 5, 'the record chains onto the old ones');
    assert.deepEqual(await s.noteCapabilities('acme', 'bot', ['llm'], new Date('2025-06-01T00:00:00.000Z')), [
      'llm',
    ]);
    // Version 6: the old directive recorded no release (its resume checks none); a release scope
    // and a permit carrying a release work on the migrated file.
    assert.deepEqual(board.directives[0]!.releases, []);
    const rel = await s.issueDirective(
      {
        level: 'halt',
        scope: parseScope('release:prompt=v42'),
        tenant: 'acme',
        capabilities: null,
        rate: null,
        escalation: [],
        escalatedFrom: null,
        graceMs: 0,
        drain: 'discard',
        memory: 'revert',
        reason: 'bad prompt',
        justification: 'INC-17',
        actor: 'alice',
        idempotencyKey: null,
        releases: [{ code: 'c1', prompt: 'v42' }],
      },
      () => [],
    );
    assert.deepEqual((await s.getDirective(rel.directive.id))?.releases, [{ code: 'c1', prompt: 'v42' }]);
    const [onBad] = await s.grantPermits([grant({ runId: 'r-new', release: { prompt: 'v42' } })]);
    assert.equal(onBad?.kind, 'halted', 'a permit on the stopped prompt is refused');
    const [onGood] = await s.grantPermits([grant({ runId: 'r-new2', release: { prompt: 'v43' } })]);
    assert.equal(onGood?.kind, 'granted');
    // Version 12: the old run kept its tenant; the same id in another tenant is another run, and
    // an idempotency key is unique per tenant's run.
    assert.equal(
      (await s.registerRun({ ...(await s.getRun('acme', 'r-old'))!, tenant: 'globex', agent: 'g' })).agent,
      'g',
    );
    assert.equal((await s.getRun('acme', 'r-old'))?.agent, 'bot');
    const [a, g] = await s.grantPermits([
      grant({ runId: 'r-old', idempotencyKey: 'k' }),
      grant({ runId: 'r-old', tenant: 'globex', agent: 'g', idempotencyKey: 'k' }),
    ]);
    assert.deepEqual([a?.kind, g?.kind], ['granted', 'granted']);
    await s.recordHalted([
      { tenant: 'acme', runId: 'r-old', directiveId: 'd1', at: '2025-06-01T00:00:00.000Z' },
    ]);
    // Version 13: presence, acknowledgements and leases start empty, and work on the old file.
    assert.deepEqual(await s.presenceSince(0, 10), { rows: [], version: 0 });
    assert.deepEqual(await s.acksOf(board.directives[0]!.id), []);
    assert.equal(await s.getLease('leader'), null);
    assert.equal((await s.acquireLease('leader', 'a', 1000, 1)).epoch, 1);
    assert.equal(await s.revCommittedAt(board.directives[0]!.rev), board.directives[0]!.issuedAt);
    // Version 14: forwarded telemetry starts empty.
    assert.deepEqual(await s.telemetryAfter(0, 0, 10), []);
    // Version 15: a withdrawal stays, so an acknowledgement taken before it and written after it does not count.
    const w = { tenant: 'acme', agent: 'bot', workerId: 'w1' };
    assert.equal(await s.retractAck('d-old', w, '2025-06-01T00:00:02.000Z'), false);
    await s.recordAcks([
      { directiveId: 'd-old', ...w, rev: 1, runs: [], at: '2025-06-01T00:00:01.000Z', replica: 'r' },
    ]);
    assert.deepEqual(await s.acksOf('d-old'), []);
    assert.ok((await s.verifyAudit()).ok);
  } finally {
    await s.close();
  }
  const raw = new DatabaseSync(path, { readOnly: true });
  try {
    assert.deepEqual(
      { ...(raw.prepare(`SELECT value FROM meta WHERE key = 'schema'`).get() as object) },
      { value: '15' },
    );
  } finally {
    raw.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('meta.schema is read: a database of a newer schema version is refused with a clear error, not misread', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'killpath-newer-'));
  const path = join(dir, 'killpath.db');
  try {
    const s = new SqliteStore(path);
    assert.equal(s.schemaVersion(), SCHEMA_VERSION);
    await s.close();
    const raw = new DatabaseSync(path);
    raw.exec(`UPDATE meta SET value = '${SCHEMA_VERSION + 1}' WHERE key = 'schema'`);
    raw.close();
    assert.throws(
      () => new SqliteStore(path),
      (err: unknown) =>
        err instanceof KillpathError &&
        err.code === 'invalid_request' &&
        err.message.includes(
          `schema version ${SCHEMA_VERSION + 1}, newer than this killpath's ${SCHEMA_VERSION}`,
        ),
    );
    const after = new DatabaseSync(path, { readOnly: true });
    assert.deepEqual(
      { ...(after.prepare(`SELECT value FROM meta WHERE key = 'schema'`).get() as object) },
      { value: String(SCHEMA_VERSION + 1) },
      'the refused database is left as it was',
    );
    after.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a schema-v14 database gains halt_acks.withdrawn_at; its acknowledgements still count', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'killpath-v14-'));
  const path = join(dir, 'killpath.db');
  const w = { tenant: 'acme', agent: 'bot', workerId: 'w1' };
  const ack = { directiveId: 'd1', ...w, rev: 3, runs: ['r1'], at: '2026-01-01T00:00:00.000Z', replica: 'r' };
  try {
    const first = new SqliteStore(path);
    await first.recordAcks([ack]);
    await first.close();
    // What version 14 wrote: no withdrawn_at.
    const raw = new DatabaseSync(path);
    raw.exec(
      `ALTER TABLE halt_acks DROP COLUMN withdrawn_at; UPDATE meta SET value = '14' WHERE key = 'schema'`,
    );
    raw.close();
    const s = new SqliteStore(path);
    try {
      assert.equal(s.schemaVersion(), SCHEMA_VERSION);
      assert.deepEqual(await s.acksOf('d1'), [ack]);
      assert.equal(await s.retractAck('d1', w, '2026-01-01T00:00:01.000Z'), true);
      assert.deepEqual(await s.acksOf('d1'), []);
    } finally {
      await s.close();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
