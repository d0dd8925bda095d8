import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { type AuditRecord, type AuditVerdict, type Directive } from '@killpath/protocol';
import { GENESIS_HASH, chainRecord, hashRecord, verifyChain, type AuditEvent } from '../src/audit/chain.ts';
import { SqliteStore } from '../src/store/sqlite-store.ts';
import { rawExec, tamperableStore } from './tamper.ts';
import { directiveInput } from './store-contract.ts';
import { harness } from './harness.ts';

// ---------------------------------------------------------------------------------------------
// Pure chain functions

const TS = '2025-06-01T12:00:00.000Z';

function event(i: number, tenant: string | null = 'acme'): AuditEvent {
  return {
    type: 'operator_action',
    actor: `alice-${i}`,
    tenant,
    data: { action: 'test', i, nested: { list: [1, 'two', null, true] } },
  };
}

function pureChain(n: number): AuditRecord[] {
  const out: AuditRecord[] = [];
  let prev: AuditRecord | null = null;
  for (let i = 1; i <= n; i++) {
    prev = chainRecord(prev, event(i, i % 3 === 0 ? null : 'acme'), TS);
    out.push(prev);
  }
  return out;
}

function bad(v: AuditVerdict): { firstBad: number; records: number; reason: string } {
  assert.equal(v.ok, false, `expected a failed verdict, got ${JSON.stringify(v)}`);
  if (v.ok) throw new Error('unreachable');
  return v;
}

describe('chainRecord', () => {
  test('the first record has seq 1 and the genesis hash as prevHash', () => {
    const r = chainRecord(null, event(1), TS);
    assert.equal(r.seq, 1);
    assert.equal(r.prevHash, GENESIS_HASH);
    assert.equal(GENESIS_HASH, '0'.repeat(64));
    assert.equal(r.ts, TS);
    assert.equal(r.type, 'operator_action');
    assert.equal(r.actor, 'alice-1');
    assert.equal(r.tenant, 'acme');
    assert.deepEqual(r.data, event(1).data);
    assert.match(r.hash, /^[0-9a-f]{64}$/);
    assert.equal(r.hash, hashRecord(r));
  });

  test('a record links to its predecessor by seq and hash', () => {
    const a = chainRecord(null, event(1), TS);
    const b = chainRecord(a, event(2), TS);
    assert.equal(b.seq, 2);
    assert.equal(b.prevHash, a.hash);
    assert.notEqual(b.hash, a.hash);
    const c = chainRecord({ seq: 41, hash: 'f'.repeat(64) }, event(3), TS);
    assert.equal(c.seq, 42);
    assert.equal(c.prevHash, 'f'.repeat(64));
  });

  test('the same event at the same place and time hashes the same (deterministic)', () => {
    assert.equal(chainRecord(null, event(1), TS).hash, chainRecord(null, event(1), TS).hash);
  });
});

describe('hashRecord', () => {
  const base = chainRecord(null, event(1), TS);
  const { hash: _hash, ...fields } = base;

  test('is independent of key order in data (canonical JSON)', () => {
    const reordered = { ...fields, data: { nested: { list: [1, 'two', null, true] }, i: 1, action: 'test' } };
    assert.equal(hashRecord(reordered), base.hash);
  });

  test('covers every field but hash', () => {
    const changes: Record<string, Omit<AuditRecord, 'hash'>> = {
      seq: { ...fields, seq: 2 },
      ts: { ...fields, ts: '2025-06-01T12:00:00.001Z' },
      type: { ...fields, type: 'operator_actioN' },
      actor: { ...fields, actor: 'alice-2' },
      'tenant (value)': { ...fields, tenant: 'acmf' },
      'tenant (null)': { ...fields, tenant: null },
      'data (value)': { ...fields, data: { ...fields.data, i: 2 } },
      'data (nested)': { ...fields, data: { ...fields.data, nested: { list: [1, 'two', null, false] } } },
      'data (extra key)': { ...fields, data: { ...fields.data, extra: null } },
      prevHash: { ...fields, prevHash: `1${GENESIS_HASH.slice(1)}` },
    };
    for (const [name, changed] of Object.entries(changes)) {
      assert.notEqual(hashRecord(changed), base.hash, name);
    }
  });
});

describe('verifyChain', () => {
  test('an empty chain verifies with the genesis hash as head', () => {
    assert.deepEqual(verifyChain([]), { ok: true, records: 0, head: GENESIS_HASH });
  });

  test('an intact chain verifies and reports its length and head', () => {
    const chain = pureChain(7);
    assert.deepEqual(verifyChain(chain), { ok: true, records: 7, head: chain[6]!.hash });
  });

  test('accepts any iterable, read once in order', () => {
    const chain = pureChain(4);
    function* gen() {
      yield* chain;
    }
    assert.deepEqual(verifyChain(gen()), { ok: true, records: 4, head: chain[3]!.hash });
  });

  test('a changed field names that record', () => {
    const chain = pureChain(5);
    chain[2] = { ...chain[2]!, actor: 'mallory' };
    const v = bad(verifyChain(chain));
    assert.equal(v.firstBad, 3);
    assert.equal(v.records, 3);
    assert.match(v.reason, /hash/);
  });

  test('a changed hash names that record, not its successor', () => {
    const chain = pureChain(5);
    chain[1] = { ...chain[1]!, hash: 'a'.repeat(64) };
    assert.equal(bad(verifyChain(chain)).firstBad, 2);
  });

  test('a broken link names the record whose prevHash is wrong', () => {
    const chain = pureChain(5);
    chain[3] = { ...chain[3]!, prevHash: 'b'.repeat(64) };
    const v = bad(verifyChain(chain));
    assert.equal(v.firstBad, 4);
    assert.match(v.reason, /prevHash/);
  });

  test('a rehashed record still breaks the link to its successor', () => {
    const chain = pureChain(5);
    const { hash: _h, ...rest } = { ...chain[1]!, actor: 'mallory' };
    chain[1] = { ...rest, hash: hashRecord(rest) };
    const v = bad(verifyChain(chain));
    assert.equal(v.firstBad, 3);
    assert.match(v.reason, /prevHash/);
  });

  test('a removed record names the record after the gap', () => {
    for (let k = 1; k < 6; k++) {
      const chain = pureChain(6);
      chain.splice(k - 1, 1);
      const v = bad(verifyChain(chain));
      assert.equal(v.firstBad, k + 1, `removed ${k}`);
      assert.match(v.reason, /missing/);
    }
  });

  test('swapped records name the first out of place', () => {
    const chain = pureChain(5);
    [chain[1], chain[2]] = [chain[2]!, chain[1]!];
    assert.equal(bad(verifyChain(chain)).firstBad, 3);
  });

  test('a duplicated record is caught', () => {
    const chain = pureChain(4);
    chain.splice(2, 0, chain[1]!);
    assert.equal(bad(verifyChain(chain)).firstBad, 2);
  });

  test('a chain that does not start at genesis is caught', () => {
    const chain = pureChain(3);
    assert.equal(bad(verifyChain(chain.slice(1))).firstBad, 2);
    const foreign = chainRecord({ seq: 0, hash: 'c'.repeat(64) }, event(1), TS);
    assert.equal(bad(verifyChain([foreign])).firstBad, 1);
  });

  test('only the first of several bad records is named', () => {
    const chain = pureChain(6);
    chain[4] = { ...chain[4]!, type: 'x' };
    chain[1] = { ...chain[1]!, type: 'x' };
    const v = bad(verifyChain(chain));
    assert.equal(v.firstBad, 2);
    assert.equal(v.records, 2);
  });

  test('truncating the tail is invisible to the chain alone: only a remembered head shows it', () => {
    const chain = pureChain(5);
    const v = verifyChain(chain.slice(0, 4));
    assert.deepEqual(v, { ok: true, records: 4, head: chain[3]!.hash });
    assert.notEqual(v.ok && v.head, chain[4]!.hash);
  });
});

// ---------------------------------------------------------------------------------------------
// The chain as the SQLite store keeps it, tampered with in place

/** The contract's directive input, with a justification whose apostrophe exercises canonical JSON. */
const input = (over: Parameters<typeof directiveInput>[0] = {}) =>
  directiveInput({ justification: "ticket INC-1: it's spending", ...over });

function issueEvents(d: Directive): AuditEvent[] {
  return [
    {
      type: 'operator_action',
      actor: d.actor,
      tenant: d.tenant,
      data: { action: 'directive.issue', directiveId: d.id, justification: d.justification },
    },
    { type: 'directive.issued', actor: d.actor, tenant: d.tenant, data: { directive: d } },
    {
      type: 'kill_switch.fired',
      actor: d.actor,
      tenant: d.tenant,
      data: { directiveId: d.id, rev: d.rev, level: d.level },
    },
  ];
}

/** A store holding a chain of several kinds of records, some with a tenant and some without. */
async function builtStore(): Promise<{ store: SqliteStore; records: AuditRecord[] }> {
  const store = tamperableStore();
  const a = await store.issueDirective(input(), (r) => issueEvents(r.directive));
  await store.issueDirective(
    input({ scope: 'global', tenant: null, level: 'kill', capabilities: ['wire_transfer'], graceMs: 0 }),
    (r) => issueEvents(r.directive),
  );
  await store.appendAudit([
    {
      type: 'session.halted',
      actor: 'worker:w1',
      tenant: 'acme',
      data: { workerId: 'w1', runs: ['r1', 'r2'], timeToStopMs: 1.25 },
    },
    {
      type: 'watchdog.absent',
      actor: 'supervisor',
      tenant: null,
      data: { sinceMs: 1500, note: 'ünïcödé "quoted" \\ back' },
    },
  ]);
  await store.clearDirective(a.directive.id, (d) => [
    {
      type: 'directive.cleared',
      actor: 'bob',
      tenant: d.tenant,
      data: { directiveId: d.id, rev: d.clearedRev },
    },
  ]);
  const records = await store.listAudit({ limit: 1000 });
  return { store, records };
}

function sql(v: string | number | null): string {
  if (v === null) return 'NULL';
  if (typeof v === 'number') return String(v);
  return `'${v.replaceAll("'", "''")}'`;
}

/** A different character in the same place: keeps hex hex and digits digits. */
function flipChar(s: string, i: number): string {
  const ch = s[i]!;
  const next = /[0-9]/.test(ch) ? String((Number(ch) + 1) % 10) : ch === 'a' ? 'b' : 'a';
  return s.slice(0, i) + next + s.slice(i + 1);
}

/** Changes one character inside a JSON string (a key or a value) so the text stays valid JSON. */
function flipInsideJsonString(json: string): string {
  let inString = false;
  let escaped = false;
  let last = -1;
  for (let i = 0; i < json.length; i++) {
    const ch = json[i]!;
    if (inString) {
      if (escaped) escaped = false;
      else if (ch === '\\') escaped = true;
      else if (ch === '"') inString = false;
      else if (/[A-Za-z0-9]/.test(ch)) last = i;
    } else if (ch === '"') inString = true;
  }
  assert.ok(last >= 0, `no string character in ${json}`);
  const out = flipChar(json, last);
  assert.notDeepEqual(JSON.parse(out), JSON.parse(json), 'the flip changes the parsed data');
  return out;
}

interface Tamper {
  field: string;
  /** The SET clause for the record, or null when the tamper does not apply to it. */
  set(r: AuditRecord): string | null;
  /** The seq verification must name, given the tampered record and the chain length. */
  expect(r: AuditRecord, n: number): number;
}

const TAMPERS: Tamper[] = [
  // A negative seq sorts first: the tampered record is named by the seq it now carries.
  { field: 'seq (renumbered)', set: (r) => `seq = ${-r.seq}`, expect: (r) => -r.seq },
  // A seq moved past the end leaves a hole: like a deletion, the record after the gap is named
  // (for the last record, the record itself under its new seq).
  {
    field: 'seq (moved)',
    set: (r) => `seq = ${r.seq + 1000}`,
    expect: (r, n) => (r.seq < n ? r.seq + 1 : r.seq + 1000),
  },
  { field: 'ts', set: (r) => `ts = ${sql(flipChar(r.ts, r.ts.length - 2))}`, expect: (r) => r.seq },
  { field: 'type', set: (r) => `type = ${sql(flipChar(r.type, r.type.length - 1))}`, expect: (r) => r.seq },
  {
    field: 'actor',
    set: (r) => `actor = ${sql(flipChar(r.actor, r.actor.length - 1))}`,
    expect: (r) => r.seq,
  },
  {
    field: 'tenant (value)',
    set: (r) => `tenant = ${sql(r.tenant === null ? 'acme' : flipChar(r.tenant, r.tenant.length - 1))}`,
    expect: (r) => r.seq,
  },
  {
    field: 'tenant (nulled)',
    set: (r) => (r.tenant === null ? null : 'tenant = NULL'),
    expect: (r) => r.seq,
  },
  { field: 'tenant (empty)', set: () => `tenant = ''`, expect: (r) => r.seq },
  {
    field: 'data (one character)',
    set: (r) => `data = ${sql(flipInsideJsonString(JSON.stringify(r.data)))}`,
    expect: (r) => r.seq,
  },
  {
    field: 'data (a key added)',
    set: (r) => `data = ${sql(JSON.stringify({ ...r.data, approvedBy: 'mallory' }))}`,
    expect: (r) => r.seq,
  },
  { field: 'prevHash', set: (r) => `prev_hash = ${sql(flipChar(r.prevHash, 0))}`, expect: (r) => r.seq },
  { field: 'hash', set: (r) => `hash = ${sql(flipChar(r.hash, 63))}`, expect: (r) => r.seq },
];

// The chain's shape (length, which records have a tenant) is deterministic: learned once so
// every record gets its own named test case.
const SHAPE = await (async () => {
  const { store, records } = await builtStore();
  await store.close();
  return records;
})();
const N = SHAPE.length;

describe('audit chain in the SQLite store', () => {
  test('an untouched chain of every record kind verifies', async () => {
    const { store, records } = await builtStore();
    try {
      assert.ok(records.length >= 9, `chain has ${records.length} records`);
      assert.deepEqual(
        records.map((r) => r.seq),
        records.map((_, i) => i + 1),
      );
      assert.ok(records.some((r) => r.tenant === null) && records.some((r) => r.tenant !== null));
      assert.deepEqual(await store.verifyAudit(), {
        ok: true,
        records: records.length,
        head: records.at(-1)!.hash,
      });
    } finally {
      await store.close();
    }
  });

  test('records read back from the store verify as a pure chain too', async () => {
    const { store, records } = await builtStore();
    try {
      assert.equal(verifyChain(records).ok, true);
      for (const r of records) assert.equal(hashRecord(r), r.hash, `record ${r.seq}`);
    } finally {
      await store.close();
    }
  });

  for (const t of TAMPERS) {
    describe(`tampered ${t.field}`, () => {
      for (let seq = 1; seq <= N; seq++) {
        if (t.set(SHAPE[seq - 1]!) === null) continue;
        test(`of record ${seq} of ${N} is named`, async () => {
          const { store, records } = await builtStore();
          try {
            const rec = records[seq - 1]!;
            assert.equal(rec.tenant, SHAPE[seq - 1]!.tenant, 'the chain is built the same way every time');
            const set = t.set(rec);
            assert.ok(set !== null);
            rawExec(store, `UPDATE audit SET ${set} WHERE seq = ${seq}`);
            const v = bad(await store.verifyAudit());
            assert.equal(v.firstBad, t.expect(rec, N), v.reason);
          } finally {
            await store.close();
          }
        });
      }
    });
  }

  describe('deleted record', () => {
    for (let seq = 1; seq < N; seq++) {
      test(`${seq} of ${N}: the record after the gap is named`, async () => {
        const { store } = await builtStore();
        try {
          rawExec(store, `DELETE FROM audit WHERE seq = ${seq}`);
          const v = bad(await store.verifyAudit());
          assert.equal(v.firstBad, seq + 1);
        } finally {
          await store.close();
        }
      });
    }

    test(`${N} of ${N} (the tail): the chain still verifies, but its head moves back`, async () => {
      // A hash chain cannot see its own truncation; an auditor who remembers the head can.
      const { store, records } = await builtStore();
      try {
        rawExec(store, `DELETE FROM audit WHERE seq = ${N}`);
        const v = await store.verifyAudit();
        assert.deepEqual(v, { ok: true, records: N - 1, head: records[N - 2]!.hash });
      } finally {
        await store.close();
      }
    });
  });

  test('re-formatting stored data without changing it still verifies (hashes are over canonical JSON)', async () => {
    const { store, records } = await builtStore();
    try {
      const r = records[1]!;
      const reordered = Object.fromEntries(Object.entries(r.data).reverse());
      rawExec(store, `UPDATE audit SET data = ${sql(JSON.stringify(reordered, null, 2))} WHERE seq = 2`);
      assert.equal((await store.verifyAudit()).ok, true);
    } finally {
      await store.close();
    }
  });

  // Guarantee 9: verification names the first bad record. A flipped byte that leaves the data
  // column unparseable must be reported as that record, not crash the verifier.
  for (const seq of [1, 5]) {
    test(`data of record ${seq} no longer valid JSON is named, not thrown`, async () => {
      const { store } = await builtStore();
      try {
        rawExec(store, `UPDATE audit SET data = substr(data, 1, length(data) - 1) || ']' WHERE seq = ${seq}`);
        let v: AuditVerdict;
        try {
          v = await store.verifyAudit();
        } catch (err) {
          assert.fail(`verifyAudit threw instead of naming record ${seq}: ${String(err)}`);
        }
        assert.equal(bad(v).firstBad, seq);
      } finally {
        await store.close();
      }
    });
  }

  test('GET /v1/audit/verify names a record whose data is no longer valid JSON (200, not 500)', async () => {
    const h = await harness();
    try {
      const admin = await h.token('admin', '*');
      const res = await h.req('POST', '/v1/agents/acme/bot/kill', {
        token: admin,
        body: { justification: 'INC-1' },
      });
      assert.equal(res.status, 201);
      rawExec(h.store, `UPDATE audit SET data = '{"action":' WHERE seq = 2`);
      const verdict = await h.req('GET', '/v1/audit/verify', { token: admin });
      assert.equal(verdict.status, 200, await verdict.clone().text());
      const v = (await verdict.json()) as AuditVerdict;
      assert.equal(bad(v).firstBad, 2);
    } finally {
      await h.close();
    }
  });

  test('GET /v1/audit/verify names a tampered record', async () => {
    const h = await harness();
    try {
      const admin = await h.token('admin', '*');
      assert.equal(
        (await h.req('POST', '/v1/agents/acme/bot/kill', { token: admin, body: { justification: 'INC-1' } }))
          .status,
        201,
      );
      const ok = (await (await h.req('GET', '/v1/audit/verify', { token: admin })).json()) as AuditVerdict;
      assert.equal(ok.ok, true);
      assert.equal(ok.records, 4);
      rawExec(h.store, `UPDATE audit SET actor = 'mallory' WHERE seq = 3`);
      const res = await h.req('GET', '/v1/audit/verify', { token: admin });
      assert.equal(res.status, 200);
      assert.equal(bad((await res.json()) as AuditVerdict).firstBad, 3);
    } finally {
      await h.close();
    }
  });

  test('a later good record does not hide an earlier tampered one', async () => {
    const { store } = await builtStore();
    try {
      rawExec(store, `UPDATE audit SET actor = 'mallory' WHERE seq IN (3, 6)`);
      const v = bad(await store.verifyAudit());
      assert.equal(v.firstBad, 3);
      assert.equal(v.records, 3);
    } finally {
      await store.close();
    }
  });

  test('appending after a tamper keeps naming the tampered record', async () => {
    const { store } = await builtStore();
    try {
      rawExec(store, `UPDATE audit SET type = 'x' WHERE seq = 2`);
      await store.appendAudit([{ type: 'operator_action', actor: 'bob', tenant: null, data: {} }]);
      assert.equal(bad(await store.verifyAudit()).firstBad, 2);
    } finally {
      await store.close();
    }
  });
});
