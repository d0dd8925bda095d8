import type { AuditQuery, AuditStore } from '../store/store.ts';

/** How a listing is cut into steps; see {@link listAuditInSteps}. */
export interface AuditSteps {
  /** Seqs one step scans at most. Default 10,000 (a few ms of a filtered scan on SQLite here). */
  seqs?: number;
  /** Records one step reads and encodes at most. Default 500 (about 250 KB of answer). */
  records?: number;
  /** Frees the event loop between steps. Default: until the loop's next turn (`setImmediate`). */
  pause?: () => Promise<void>;
}

const nextTurn = () => new Promise<void>((ok) => setImmediate(ok));

/**
 * The records `store.listAudit(q)` would answer, as JSON text: the contents of the `records`
 * array (comma-separated records, no brackets), and how many. Read in steps, each scanning at
 * most `seqs` seqs and reading at most `records` records, encoded as it is read, with the event
 * loop free between steps: on SQLite every read runs on the loop, and a filtered listing of a
 * long log (a rare type, a tenant's share) otherwise scans the whole log in one synchronous
 * stretch, and 5,000 records are about 25 ms to read and encode. `head` is the newest seq when
 * the listing starts; a listing reads no record after it.
 */
export async function listAuditInSteps(
  store: Pick<AuditStore, 'listAudit'>,
  q: Omit<AuditQuery, 'limit'> & { limit: number },
  head: number,
  steps: AuditSteps = {},
): Promise<{ count: number; json: string }> {
  const seqs = steps.seqs ?? 10_000;
  const most = steps.records ?? 500;
  const pause = steps.pause ?? nextTurn;
  const filter = {
    ...(q.tenant !== undefined ? { tenant: q.tenant } : {}),
    ...(q.types !== undefined ? { types: q.types } : {}),
  };
  // Records lie strictly between `low` and `high`; the listing narrows that range from one end.
  let low = q.afterSeq ?? 0;
  let high = Math.min(q.beforeSeq ?? Infinity, head + 1);
  const parts: string[] = [];
  let count = 0;
  for (let first = true; count < q.limit && high - low > 1; first = false) {
    if (!first) await pause();
    const limit = Math.min(q.limit - count, most);
    const [from, to] = q.desc
      ? [Math.max(low, high - seqs - 1), high]
      : [low, Math.min(high, low + seqs + 1)];
    const rows = await store.listAudit({
      ...filter,
      afterSeq: from,
      beforeSeq: to,
      limit,
      desc: q.desc === true,
    });
    if (rows.length > 0) parts.push(JSON.stringify(rows).slice(1, -1));
    count += rows.length;
    // A full step may have stopped inside its window: go on from its last record; else the window is done.
    const last = rows.length === limit ? rows.at(-1)!.seq : q.desc ? from + 1 : to - 1;
    if (q.desc) high = last;
    else low = last;
  }
  return { count, json: parts.join(',') };
}

/**
 * What `store.countAudit(q, cap)` answers for a filtered count, taken in steps of at most `seqs`
 * seqs from `head` down, with the event loop free between steps (each step is one scan on
 * SQLite; the newest `cap` records in one go are about 20 ms here). `head` is the newest seq
 * when the count starts. Unfiltered counts are one lookup: ask the store directly.
 */
export async function countAuditInSteps(
  store: Pick<AuditStore, 'countAudit'>,
  q: Pick<AuditQuery, 'tenant' | 'types'>,
  head: number,
  cap: number,
  steps: Omit<AuditSteps, 'records'> = {},
): Promise<{ count: number; exact: boolean }> {
  const seqs = steps.seqs ?? 10_000;
  const pause = steps.pause ?? nextTurn;
  const floor = Math.max(0, head - cap);
  let count = 0;
  for (let upTo = head; upTo > floor;) {
    if (upTo < head) await pause();
    const span = Math.min(seqs, upTo - floor);
    count += (await store.countAudit(q, span, upTo)).count;
    upTo -= span;
  }
  return { count, exact: floor === 0 };
}
