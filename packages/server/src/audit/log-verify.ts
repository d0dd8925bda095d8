import type { AuditRecord } from '@killpath/protocol';
import { GENESIS_HASH, hashRecord } from './chain.ts';
import { recordLeaf } from './checkpoint.ts';
import { LedgerCheck, type LedgerFindings, type LedgerRow } from './ledger.ts';
import { EMPTY_ROOT, LeafHashes, MerkleFrontier, consistencyProof } from './merkle.ts';

/** A checkpoint's claim, without its signature: the first `size` records hash to `rootHash`. */
export interface TreeClaim {
  size: number;
  rootHash: string;
  /** When it was signed (for messages). */
  timestamp: string;
}

/** What {@link verifyLog} found. */
export interface LogFindings {
  ok: boolean;
  /** Records read. */
  records: number;
  /** Tree hash of all of them (hex). */
  rootHash: string;
  /** The chain's first bad record and why, or nulls. */
  chain: { ok: boolean; firstBad: number | null; reason: string | null };
  /** The effect ledger's rows against the records that committed them ({@link LedgerCheck}), when given. */
  ledger: LedgerFindings | null;
  /** One sentence per problem, naming records (and ledger rows). */
  problems: string[];
  /** Consistency proof (hex) from the kept checkpoint's size to `records`, when the log extends it. */
  proof: string[];
}

function range(a: number, b: number): string {
  return a === b ? `#${a}` : `#${a}–#${b}`;
}

/**
 * Verifies an audit log in one pass: the hash chain (names the first bad record), the Merkle
 * tree over the records, the `kept` checkpoint (the log must extend it: its first `kept.size`
 * records hash to its root) and the checkpoints the store holds (`stored`, any order: each must
 * match too, which catches a truncation even without a kept copy, unless they were deleted with
 * it). With `ledgerRows` (read after the records, in the same read transaction), the effect
 * ledger's rows are checked against the `ledger.committed` records (`ledger.ts`). Pure and
 * synchronous: callers run it in a worker thread for large logs.
 */
export function verifyLog(
  records: Iterable<AuditRecord>,
  kept: TreeClaim | null,
  stored: readonly TreeClaim[] = [],
  ledgerRows?: () => Iterable<LedgerRow>,
): LogFindings {
  const ledgerCheck = ledgerRows === undefined ? null : new LedgerCheck();
  const leaves = new LeafHashes();
  // Roots of the prefixes someone claims, taken from the frontier as it passes their sizes.
  const wanted = new Set([...stored.map((s) => s.size), ...(kept === null ? [] : [kept.size])]);
  const roots = new Map<number, string>([[0, EMPTY_ROOT.toString('hex')]]);
  const frontier = new MerkleFrontier();
  let chain: LogFindings['chain'] = { ok: true, firstBad: null, reason: null };
  let prev: AuditRecord | null = null;
  for (const r of records) {
    if (chain.ok) {
      const expectedSeq = prev === null ? 1 : prev.seq + 1;
      let reason: string | null = null;
      if (r.seq !== expectedSeq) reason = `expected seq ${expectedSeq}, found ${r.seq} (a record is missing)`;
      else if (r.prevHash !== (prev === null ? GENESIS_HASH : prev.hash))
        reason = 'prevHash does not match the previous record';
      else if (hashRecord(r) !== r.hash) reason = 'hash does not match the record contents';
      if (reason !== null) chain = { ok: false, firstBad: r.seq, reason };
    }
    ledgerCheck?.see(r);
    const leaf = recordLeaf(r);
    leaves.push(leaf);
    frontier.push(leaf);
    if (wanted.has(frontier.size)) roots.set(frontier.size, frontier.root().toString('hex'));
    prev = r;
  }
  const n = leaves.length;
  const problems: string[] = [];
  if (!chain.ok) problems.push(`record #${chain.firstBad}: ${chain.reason}`);
  const ledger = ledgerCheck === null ? null : ledgerCheck.check(ledgerRows!());
  if (ledger !== null) problems.push(...ledger.problems);

  // Stored checkpoints that still match bound where a change can be.
  const matches = new Map<number, boolean>();
  const rootAt = (size: number): string => roots.get(size)!;
  const sortedStored = [...stored].sort((a, b) => a.size - b.size);
  for (const s of sortedStored) {
    if (s.size > n) {
      problems.push(
        `the database holds a checkpoint of ${s.size} records (signed ${s.timestamp}) but the log has ${n}: records ${range(n + 1, s.size)} are missing`,
      );
      break;
    }
    const ok = rootAt(s.size) === s.rootHash;
    matches.set(s.size, ok);
    if (!ok) {
      problems.push(
        `the first ${s.size} records no longer hash to the root of the stored checkpoint signed ${s.timestamp}: ${where(s.size)}`,
      );
      break;
    }
  }

  function where(size: number): string {
    const lastGood = Math.max(0, ...[...matches].filter(([s, ok]) => ok && s < size).map(([s]) => s));
    const named =
      !chain.ok && chain.firstBad !== null && chain.firstBad <= size
        ? ` (record #${chain.firstBad} is the first bad link)`
        : '';
    return `a record among ${range(lastGood + 1, size)} was altered, removed or reordered, or an older copy of the database was restored${named}`;
  }

  let proof: string[] = [];
  if (kept !== null) {
    if (kept.size > n) {
      problems.push(
        `the log has ${n} records but the checkpoint signed ${kept.timestamp} covers ${kept.size}: records ${range(n + 1, kept.size)} are missing (deleted from the end, or the database was restored to an older copy)`,
      );
    } else if (rootAt(kept.size) !== kept.rootHash) {
      problems.push(
        `the first ${kept.size} records no longer hash to the root of the checkpoint signed ${kept.timestamp}: ${where(kept.size)}`,
      );
    } else {
      proof = consistencyProof(leaves, kept.size, n).map((h) => h.toString('hex'));
    }
  }
  return {
    ok: problems.length === 0,
    records: n,
    rootHash: frontier.root().toString('hex'),
    chain,
    ledger,
    problems,
    proof,
  };
}
