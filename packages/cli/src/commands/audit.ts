import {
  KillpathError,
  type AuditRecord,
  type AuditVerdict,
  type AuditVerdictBrief,
} from '@killpath/protocol';
import { CONNECTION_OPTIONS, intFlag, parse } from '../args.ts';
import { clientFor } from '../config.ts';
import { auditVerdictLine } from '../output.ts';
import { auditKey, auditCheckpoint, rotateKey, verifyCheckpoint } from './audit-checkpoint.ts';

export const AUDIT_HELP = `killpath audit verify [--json]
killpath audit verify --checkpoint FILE [--key PUBKEY.pem] [--save FILE] [--json]
killpath audit tail [-n N] [--type T[,T…]] [--follow] [--json]
killpath audit tail --after SEQ [--limit N] [--type T[,T…]] [--json]
killpath audit key [--json]
killpath audit checkpoint [--now] [--out FILE]
killpath audit rotate-key --reason TEXT

verify      recomputes the hash chain and names the first bad record (exit 1 if any), and
            checks every effect ledger row against the ledger.committed record that committed
            it (a changed, deleted or inserted row is named). With a
            tenant's token it says only whether the whole log verifies (count, head and the bad
            record are shown to admins).
            With --checkpoint (a file printed by "audit checkpoint" or sent to a webhook): checks
            its Ed25519 signature and proves that the log now extends it (RFC 6962 consistency);
            fails naming the records missing (deleted from the end, older copy restored) or
            altered. --key pins the public key (else the control plane's keys are used);
            --save writes the log's new signed checkpoint to keep for next time.
tail        prints the last N records (default 20, any N: fetched page by page), each with the
            run, tool, class, status and directive it concerns; --follow keeps printing new
            ones. --after SEQ pages forward: the records after SEQ, oldest first, at most
            --limit (default 1000), and the command for the next page.
key         prints the public key checkpoints are signed with (and earlier ones).
checkpoint  prints the latest signed checkpoint (JSON, keep it off this machine);
            --now signs one of every record written so far first.
rotate-key  replaces the signing key (admin); earlier checkpoints still verify.`;

/**
 * What a text line shows of a record's data, in this order: the run (or runs) and the tool it
 * concerns, the effect's class and final status, the directive, and then why.
 */
const SHOWN: [key: string, label: string][] = [
  ['runId', 'run'],
  ['runs', 'runs'],
  ['capability', 'tool'],
  ['class', 'class'],
  ['status', 'status'],
  ['outcome', 'outcome'],
  ['directiveId', 'directive'],
  ['level', 'level'],
  ['scope', 'scope'],
  ['action', 'action'],
  ['timeToStopMs', 'timeToStopMs'],
  ['error', 'error'],
  ['reason', 'reason'],
  ['justification', 'justification'],
];

/** One audit record as a line: seq, time, type, actor, tenant, then what it is about (see {@link SHOWN}). */
export function auditLine(r: AuditRecord): string {
  // directive.issued carries the whole directive: show its id, level and scope like the others.
  const inner = r.data.directive;
  const d: Record<string, unknown> =
    inner !== null && typeof inner === 'object' && !Array.isArray(inner)
      ? {
          directiveId: (inner as { id?: unknown }).id,
          level: (inner as { level?: unknown }).level,
          scope: (inner as { scopeText?: unknown }).scopeText,
          ...r.data,
        }
      : r.data;
  const bits = SHOWN.filter(
    ([k]) => d[k] !== undefined && d[k] !== null && !(Array.isArray(d[k]) && d[k].length === 0),
  ).map(([k, label]) => {
    // A run scope names its tenant: run ids live inside tenants (run:acme/run-7).
    if (k === 'scope' && typeof d[k] === 'string' && /^run:[^/]+$/.test(d[k]) && r.tenant)
      return `${label}=run:${r.tenant}/${d[k].slice(4)}`;
    return `${label}=${typeof d[k] === 'string' ? d[k] : Array.isArray(d[k]) ? d[k].join(',') : JSON.stringify(d[k])}`;
  });
  return `#${r.seq} ${r.ts} ${r.type} by ${r.actor}${r.tenant ? ` [${r.tenant}]` : ''}${bits.length ? ` ${bits.join(' ')}` : ''}`;
}

/** Records per request when paging through the audit log (the API's largest page). */
const PAGE = 5000;

/** `killpath audit verify|tail`. */
export async function audit(args: string[]): Promise<number> {
  const [sub, ...rest] = args;
  const { values } = parse(rest, {
    ...CONNECTION_OPTIONS,
    json: { type: 'boolean' },
    checkpoint: { type: 'string' },
    key: { type: 'string' },
    save: { type: 'string' },
    now: { type: 'boolean' },
    out: { type: 'string' },
    reason: { type: 'string' },
    n: { type: 'string', short: 'n' },
    follow: { type: 'boolean', short: 'f' },
    type: { type: 'string' },
    after: { type: 'string' },
    limit: { type: 'string' },
  });
  const only = values.type ? `&type=${encodeURIComponent(values.type)}` : '';
  if (values.help || sub === undefined || sub === '--help' || sub === '-h') {
    console.log(AUDIT_HELP);
    return sub === undefined ? 2 : 0;
  }
  const api = clientFor(values);
  if (sub === 'verify' && values.checkpoint !== undefined) return verifyCheckpoint(api, values);
  if (sub === 'key') return auditKey(api, values);
  if (sub === 'checkpoint') return auditCheckpoint(api, values);
  if (sub === 'rotate-key') return rotateKey(api, values);
  if (sub === 'verify') {
    // An admin's answer names the count and head; a tenant's token learns only ok or not.
    const v = await api.get<AuditVerdict | AuditVerdictBrief>('/v1/audit/verify');
    console.log(values.json ? JSON.stringify(v, null, 2) : auditVerdictLine(v));
    return v.ok ? 0 : 1;
  }
  if (sub === 'tail') {
    const print = (r: AuditRecord) => console.log(values.json ? JSON.stringify(r) : auditLine(r));
    if (values.after !== undefined) {
      // Forward paging: the records after SEQ, oldest first, at most --limit of them.
      const after = intFlag('after', values.after, 0);
      const limit = intFlag('limit', values.limit, 1000);
      let cursor = after;
      let printed = 0;
      while (printed < limit) {
        const { records } = await api.get<{ records: AuditRecord[] }>(
          `/v1/audit?after=${cursor}&limit=${Math.min(PAGE, limit - printed)}${only}`,
        );
        records.forEach(print);
        printed += records.length;
        if (records.length === 0) break;
        cursor = records.at(-1)!.seq;
      }
      if (printed === limit)
        console.error(
          `${printed} records after #${after} printed; more may follow: killpath audit tail --after ${cursor} --limit ${limit}`,
        );
      return 0;
    }
    // The last N records, fetched newest first a page at a time, printed oldest first; never a
    // silent cap: when fewer than N exist, the count says so.
    const n = values.limit !== undefined ? intFlag('limit', values.limit, 20) : intFlag('n', values.n, 20);
    const newestFirst: AuditRecord[] = [];
    let before: number | null = null;
    // What the server counts of the records this token may see (a lower bound past its cap).
    let total: { n: number; exact: boolean } | null = null;
    while (newestFirst.length < n) {
      const got: { records: AuditRecord[]; total?: number; totalExact?: boolean } = await api.get(
        `/v1/audit?order=desc&limit=${Math.min(PAGE, n - newestFirst.length)}${before === null ? '' : `&before=${before}`}${only}`,
      );
      if (total === null && got.total !== undefined)
        total = { n: got.total, exact: got.totalExact !== false };
      const page = got.records;
      newestFirst.push(...page);
      if (page.length === 0) break;
      before = page.at(-1)!.seq;
    }
    newestFirst.reverse().forEach(print);
    const kind = values.type ? ` of type ${values.type}` : '';
    if (!values.json) {
      if (newestFirst.length < n) console.error(`${newestFirst.length} records: all there are${kind}`);
      else if (total !== null)
        console.error(
          `${newestFirst.length} of ${total.exact ? '' : 'at least '}${total.n} records${kind}, the newest; older ones: killpath audit tail --after SEQ --limit N`,
        );
    }
    let after = newestFirst.at(-1)?.seq ?? 0;
    while (values.follow) {
      await new Promise((ok) => setTimeout(ok, 500));
      const { records } = await api.get<{ records: AuditRecord[] }>(
        `/v1/audit?after=${after}&limit=1000${only}`,
      );
      records.forEach(print);
      after = records.at(-1)?.seq ?? after;
    }
    return 0;
  }
  throw new KillpathError(
    'invalid_request',
    `unknown audit command "${sub}" (verify, tail, key, checkpoint or rotate-key)`,
  );
}
