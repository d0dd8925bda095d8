import { createHash } from 'node:crypto';
import { canonicalJson, type AuditRecord, type AuditVerdict } from '@killpath/protocol';

/** The hash that precedes the first record of a chain. */
export const GENESIS_HASH = '0'.repeat(64);

/** An audit event before it is placed on the chain. */
export interface AuditEvent {
  type: string;
  actor: string;
  tenant: string | null;
  data: Record<string, unknown>;
}

/**
 * SHA-256 over the canonical JSON (RFC 8785) of every field of the record but `hash`.
 * Canonical JSON makes the hash independent of key order and number formatting.
 */
export function hashRecord(r: Omit<AuditRecord, 'hash'>): string {
  const text = canonicalJson({
    seq: r.seq,
    ts: r.ts,
    type: r.type,
    actor: r.actor,
    tenant: r.tenant,
    data: r.data,
    prevHash: r.prevHash,
  });
  return createHash('sha256').update(text).digest('hex');
}

/** Places an event on the chain after `prev` (null for the first record). */
export function chainRecord(
  prev: { seq: number; hash: string } | null,
  event: AuditEvent,
  ts: string,
): AuditRecord {
  const base = {
    seq: prev === null ? 1 : prev.seq + 1,
    ts,
    type: event.type,
    actor: event.actor,
    tenant: event.tenant,
    data: event.data,
    prevHash: prev === null ? GENESIS_HASH : prev.hash,
  };
  return { ...base, hash: hashRecord(base) };
}

/**
 * Walks a chain in order and names the first record that does not verify: a changed field
 * (its hash no longer matches), a broken link (its `prevHash` is not the previous hash) or a
 * gap in `seq` (a record removed).
 */
export function verifyChain(records: Iterable<AuditRecord>): AuditVerdict {
  let prev: AuditRecord | null = null;
  let count = 0;
  for (const r of records) {
    count++;
    const expectedSeq = prev === null ? 1 : prev.seq + 1;
    if (r.seq !== expectedSeq) {
      return {
        ok: false,
        records: count,
        firstBad: r.seq,
        reason: `expected seq ${expectedSeq}, found ${r.seq} (a record is missing)`,
      };
    }
    const expectedPrev = prev === null ? GENESIS_HASH : prev.hash;
    if (r.prevHash !== expectedPrev) {
      return {
        ok: false,
        records: count,
        firstBad: r.seq,
        reason: 'prevHash does not match the previous record',
      };
    }
    if (hashRecord(r) !== r.hash) {
      return {
        ok: false,
        records: count,
        firstBad: r.seq,
        reason: 'hash does not match the record contents',
      };
    }
    prev = r;
  }
  return { ok: true, records: count, head: prev === null ? GENESIS_HASH : prev.hash };
}
