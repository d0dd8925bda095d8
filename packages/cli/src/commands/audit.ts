import { KillpathError, type AuditRecord, type AuditVerdict } from '@killpath/protocol';
import { CONNECTION_OPTIONS, intFlag, parse } from '../args.ts';
import { clientFor } from '../config.ts';
import { auditKey, auditCheckpoint, rotateKey, verifyCheckpoint } from './audit-checkpoint.ts';

export const AUDIT_HELP = `killpath audit verify [--json]
killpath audit verify --checkpoint FILE [--key PUBKEY.pem] [--save FILE] [--json]
killpath audit tail [-n N] [--type T[,T…]] [--follow] [--json]
killpath audit key [--json]
killpath audit checkpoint [--now] [--out FILE]
killpath audit rotate-key --reason TEXT

verify      recomputes the hash chain and names the first bad record (exit 1 if any).
            With --checkpoint (a file printed by "audit checkpoint" or sent to a webhook): checks
            its Ed25519 signature and proves that the log now extends it (RFC 6962 consistency);
            fails naming the records missing (deleted from the end, older copy restored) or
            altered. --key pins the public key (else the control plane's keys are used);
            --save writes the log's new signed checkpoint to keep for next time.
tail        prints the last N records (default 20); --follow keeps printing new ones.
key         prints the public key checkpoints are signed with (and earlier ones).
checkpoint  prints the latest signed checkpoint (JSON, keep it off this machine);
            --now signs one of every record written so far first.
rotate-key  replaces the signing key (admin); earlier checkpoints still verify.`;

function line(r: AuditRecord): string {
  const d = r.data;
  const bits = ['directiveId', 'level', 'scope', 'action', 'justification', 'timeToStopMs', 'reason']
    .filter((k) => d[k] !== undefined && d[k] !== null)
    .map((k) => `${k}=${typeof d[k] === 'string' ? d[k] : JSON.stringify(d[k])}`);
  return `#${r.seq} ${r.ts} ${r.type} by ${r.actor}${r.tenant ? ` [${r.tenant}]` : ''} ${bits.join(' ')}`;
}

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
    const v = await api.get<AuditVerdict>('/v1/audit/verify');
    if (values.json) console.log(JSON.stringify(v, null, 2));
    else if (v.ok) console.log(`audit chain ok: ${v.records} records, head ${v.head.slice(0, 16)}…`);
    else console.log(`audit chain BROKEN at record #${v.firstBad}: ${v.reason} (${v.records} records read)`);
    return v.ok ? 0 : 1;
  }
  if (sub === 'tail') {
    const n = intFlag('n', values.n, 20);
    let records = (
      await api.get<{ records: AuditRecord[] }>(
        `/v1/audit?order=desc&limit=${Math.max(1, Math.min(n, 5000))}${only}`,
      )
    ).records.reverse();
    let after = records.at(-1)?.seq ?? 0;
    for (const r of records) console.log(values.json ? JSON.stringify(r) : line(r));
    while (values.follow) {
      await new Promise((ok) => setTimeout(ok, 500));
      records = (await api.get<{ records: AuditRecord[] }>(`/v1/audit?after=${after}&limit=1000${only}`))
        .records;
      for (const r of records) console.log(values.json ? JSON.stringify(r) : line(r));
      after = records.at(-1)?.seq ?? after;
    }
    return 0;
  }
  throw new KillpathError(
    'invalid_request',
    `unknown audit command "${sub}" (verify, tail, key, checkpoint or rotate-key)`,
  );
}
