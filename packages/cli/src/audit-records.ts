import { KillpathError, type AuditRecord, type AuditRecordOf, type AuditType } from '@killpath/protocol';
import { auditPayload } from '@killpath/protocol/schemas';

/**
 * The records of event `type` among `records`, each payload checked against the event's schema
 * in `@killpath/protocol/schemas` and typed by it: the drills and the runbook read fields of
 * these without casting.
 * @throws KillpathError `internal` naming the record when one of `type` has another payload (a
 *   control plane writing what its own protocol does not define: a measurement on it is void)
 */
export function auditRecordsOf<K extends AuditType>(records: AuditRecord[], type: K): AuditRecordOf<K>[] {
  const out: AuditRecordOf<K>[] = [];
  for (const r of records) {
    if (r.type !== type) continue;
    const data = auditPayload(r, type);
    if (data === null)
      throw new KillpathError(
        'internal',
        `audit record ${r.seq} (${type}) does not have the ${type} payload`,
      );
    out.push({ ...r, type, data: data as AuditRecordOf<K>['data'] });
  }
  return out;
}
