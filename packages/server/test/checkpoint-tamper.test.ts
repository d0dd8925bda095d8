/**
 * A kept checkpoint catches every change to the log it covers: each single-byte change of every
 * stored field of every record, each deletion, each reorder of two records and each truncation
 * of a random log, both left as is (the hash chain breaks too) and with the chain rewritten
 * after the change (only the Merkle root catches it). The counts are printed as diagnostics.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { checkpointText, type AuditRecord, type SignedCheckpoint } from '@killpath/protocol';
import { chainRecord } from '../src/audit/chain.ts';
import {
  checkpointSignatureProblem,
  keyIdOf,
  recordLeaf,
  signCheckpoint,
  type SigningKey,
} from '../src/audit/checkpoint.ts';
import { verifyLog, type TreeClaim } from '../src/audit/log-verify.ts';
import { MerkleFrontier, verifyConsistency } from '../src/audit/merkle.ts';
import { toAudit, type AuditRow } from '../src/store/sqlite-audit.ts';

/** Deterministic PRNG (mulberry32), so a failure names a reproducible log. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const SEED = 1606;
const RECORDS = 24;

function randomLog(rand: () => number, n: number, from: AuditRecord | null = null): AuditRecord[] {
  const types = [
    'directive.issued',
    'kill_switch.fired',
    'effect.intent',
    'operator_action',
    'session.halted',
  ];
  const words = ['halt', 'wire_transfer', 'acme', 'ünïcode', 'a"quote', 'line\nbreak', ''];
  const out: AuditRecord[] = [];
  let prev = from;
  for (let i = 0; i < n; i++) {
    const pick = <T>(xs: T[]): T => xs[Math.floor(rand() * xs.length)]!;
    const data: Record<string, unknown> = {
      directiveId: `d_${Math.floor(rand() * 1e6)}`,
      n: Math.floor(rand() * 1000),
      reason: pick(words),
      flags: [rand() < 0.5, null, pick(words)],
    };
    const rec = chainRecord(
      prev,
      {
        type: pick(types),
        actor: pick(['alice', 'bob', 'supervisor:cost']),
        tenant: rand() < 0.3 ? null : 'acme',
        data,
      },
      new Date(Date.UTC(2026, 11, 5, 12, 0, prev === null ? 0 : prev.seq)).toISOString(),
    );
    out.push(rec);
    prev = rec;
  }
  return out;
}

function toRow(r: AuditRecord): AuditRow {
  return {
    seq: r.seq,
    ts: r.ts,
    type: r.type,
    actor: r.actor,
    tenant: r.tenant,
    data: JSON.stringify(r.data),
    prev_hash: r.prevHash,
    hash: r.hash,
  };
}

function rootOf(records: AuditRecord[]): string {
  const f = new MerkleFrontier();
  for (const r of records) f.push(recordLeaf(r));
  return f.root().toString('hex');
}

/** Re-links and re-hashes every record from index `from` on, as an attacker covering tracks would. */
function rechain(records: AuditRecord[], from = 0): AuditRecord[] {
  const out = records.slice(0, from);
  for (let i = from; i < records.length; i++) {
    const r = records[i]!;
    out.push(
      chainRecord(out.at(-1) ?? null, { type: r.type, actor: r.actor, tenant: r.tenant, data: r.data }, r.ts),
    );
  }
  return out;
}

function newKey(): SigningKey {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  return {
    privateKey,
    info: {
      keyId: keyIdOf(publicKey),
      algorithm: 'Ed25519',
      publicKey: publicKey.export({ format: 'pem', type: 'spki' }).toString(),
      createdAt: new Date().toISOString(),
      retiredAt: null,
    },
  };
}

const FIELDS = ['ts', 'type', 'actor', 'tenant', 'data', 'prev_hash', 'hash'] as const;

test('every single-byte change, deletion, reorder and truncation of a random log is caught by a kept checkpoint', (t) => {
  const rand = prng(SEED);
  const log = randomLog(rand, RECORDS);
  const rows = log.map(toRow);
  const kept: TreeClaim = { size: log.length, rootHash: rootOf(log), timestamp: '2026-12-05T12:00:30.000Z' };

  // No false alarm: the log as kept, and the log grown by more records, both verify.
  assert.deepEqual(verifyLog(rows.map(toAudit), kept).problems, []);
  const grown = [...log, ...randomLog(rand, 9, log.at(-1)!)];
  const g = verifyLog(grown.map(toRow).map(toAudit), kept);
  assert.deepEqual(g.problems, []);
  assert.ok(
    verifyConsistency(
      kept.size,
      grown.length,
      Buffer.from(kept.rootHash, 'hex'),
      Buffer.from(g.rootHash, 'hex'),
      g.proof.map((h) => Buffer.from(h, 'hex')),
    ),
    'the proof from the kept size to the grown log verifies',
  );

  const counts: Record<string, { tried: number; caught: number }> = {};
  const missed: string[] = [];
  const check = (kind: string, what: string, records: AuditRecord[]): void => {
    const c = (counts[kind] ??= { tried: 0, caught: 0 });
    c.tried++;
    const v = verifyLog(records, kept);
    if (!v.ok && v.problems.length > 0) c.caught++;
    else missed.push(`${kind}: ${what}`);
  };

  // Single-byte changes of every stored field (the stored text, as a tamperer edits the file).
  for (let i = 0; i < rows.length; i++) {
    for (const field of FIELDS) {
      const text = rows[i]![field];
      if (text === null) continue;
      const bytes = Buffer.from(text, 'utf8');
      for (let b = 0; b < bytes.length; b++) {
        const changed = Buffer.from(bytes);
        changed[b] = changed[b]! ^ (1 + Math.floor(rand() * 255));
        const mutated = rows.map((r, j) => (j === i ? { ...r, [field]: changed.toString('utf8') } : r));
        check('byte changed', `record #${i + 1} ${field} byte ${b}`, mutated.map(toAudit));
        // The same change with the chain re-hashed after it: only the tree can tell.
        if (field !== 'prev_hash' && field !== 'hash')
          check(
            'byte changed, chain rewritten',
            `record #${i + 1} ${field} byte ${b}`,
            rechain(mutated.map(toAudit), i),
          );
      }
    }
    // The seq itself (renumbering), one bit at a time of its low byte.
    for (let bit = 0; bit < 8; bit++)
      check(
        'byte changed',
        `record #${i + 1} seq bit ${bit}`,
        rows.map((r, j) => (j === i ? { ...r, seq: r.seq ^ (1 << bit) } : r)).map(toAudit),
      );
  }
  // Deletions of each record (the last one is a truncation by one).
  for (let i = 0; i < log.length; i++) {
    const without = log.filter((_, j) => j !== i);
    check('record deleted', `#${i + 1}`, without);
    check('record deleted, chain rewritten', `#${i + 1}`, rechain(without, i));
  }
  // Every pair of records swapped.
  for (let i = 0; i < log.length; i++)
    for (let j = i + 1; j < log.length; j++) {
      const swapped = rows.map((r, k) =>
        k === i ? { ...rows[j]!, seq: r.seq } : k === j ? { ...rows[i]!, seq: r.seq } : r,
      );
      check('records reordered', `#${i + 1} ⇄ #${j + 1}`, swapped.map(toAudit));
      check('records reordered, chain rewritten', `#${i + 1} ⇄ #${j + 1}`, rechain(swapped.map(toAudit), i));
    }
  // Truncations: the last k records gone, k = 1 … all.
  for (let k = 1; k <= log.length; k++) check('truncated', `last ${k}`, log.slice(0, log.length - k));
  // Rollback: an older copy restored, then new records written after it.
  for (let k = 1; k <= log.length; k++) {
    const older = log.slice(0, log.length - k);
    check('older copy restored, then written to', `from #${older.length}`, [
      ...older,
      ...randomLog(rand, k + 3, older.at(-1) ?? null),
    ]);
  }

  let total = 0;
  for (const [kind, c] of Object.entries(counts)) {
    t.diagnostic(`${kind}: ${c.caught} of ${c.tried} caught`);
    total += c.tried;
  }
  t.diagnostic(
    `tamper total: ${total - missed.length} of ${total} caught (log of ${RECORDS} records, seed ${SEED})`,
  );
  assert.deepEqual(missed, [], 'every tampering is caught');
  assert.ok(counts['byte changed']!.tried > 1000, 'thousands of byte changes tried');
  assert.equal(counts['records reordered']!.tried, (RECORDS * (RECORDS - 1)) / 2);
  assert.equal(counts['truncated']!.tried, RECORDS);
});

test('missing and altered records are named', () => {
  const log = randomLog(prng(7), 12);
  const kept: TreeClaim = { size: 12, rootHash: rootOf(log), timestamp: 'T' };
  const truncated = verifyLog(log.slice(0, 9), kept);
  assert.match(
    truncated.problems.join('\n'),
    /log has 9 records but the checkpoint signed T covers 12: records #10–#12 are missing/,
  );
  const altered = log.map((r, i) => (i === 4 ? { ...r, actor: 'mallory' } : r));
  const v = verifyLog(altered, kept);
  assert.equal(v.chain.firstBad, 5);
  assert.match(v.problems.join('\n'), /record #5: hash does not match/);
  // With stored checkpoints of 4 and 8 records that still match up to 4, the change is placed in #5–#8.
  const stored = [4, 8].map((size) => ({
    size,
    rootHash: rootOf(log.slice(0, size)),
    timestamp: `S${size}`,
  }));
  const rewritten = rechain(altered, 4);
  const w = verifyLog(rewritten, kept, stored);
  assert.ok(w.chain.ok, 'the rewritten chain verifies on its own');
  assert.match(w.problems.join('\n'), /stored checkpoint signed S8: a record among #5–#8 was altered/);
  // A stored checkpoint beyond the log's end names the missing records even without a kept one.
  assert.match(verifyLog(log.slice(0, 6), null, stored).problems.join('\n'), /records #7–#8 are missing/);
});

test('a checkpoint signed by another key, or altered after signing, is rejected', () => {
  const ours = newKey();
  const theirs = newKey();
  const claim = {
    origin: 'killpath/test',
    size: 3,
    rootHash: 'ab'.repeat(32),
    timestamp: new Date().toISOString(),
  };
  const good = signCheckpoint(ours, claim);
  assert.equal(checkpointSignatureProblem(good, [ours.info]), null);
  const foreign = signCheckpoint(theirs, claim);
  assert.match(checkpointSignatureProblem(foreign, [ours.info])!, /not a trusted key/);
  // Another key's signature presented under our key id.
  const forged: SignedCheckpoint = { ...foreign, keyId: ours.info.keyId };
  assert.match(checkpointSignatureProblem(forged, [ours.info])!, /does not verify/);
  // Our signature over a different size or root.
  for (const altered of [
    { ...good, size: 2 },
    { ...good, rootHash: 'cd'.repeat(32) },
    { ...good, origin: 'killpath/other' },
  ])
    assert.match(checkpointSignatureProblem(altered, [ours.info])!, /does not verify/);
  // Their public key listed under our id is refused (the id is derived from the key).
  assert.match(
    checkpointSignatureProblem(forged, [{ keyId: ours.info.keyId, publicKey: theirs.info.publicKey }])!,
    /does not match its id/,
  );
  assert.ok(checkpointText(good).includes(`size 3\n`));
});
