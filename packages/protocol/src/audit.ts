import type { z } from 'zod';
import type { AUDIT_PAYLOADS, AuditRecordSchema, AuditType } from './schemas/audit.ts';

export type { AuditType } from './schemas/audit.ts';

/** One record of the hash-chained audit log (see {@link AuditRecordSchema}). */
export type AuditRecord = z.infer<typeof AuditRecordSchema>;

/** The payload (`data`) of each audit event with a typed payload, by name (see {@link AUDIT_PAYLOADS}). */
export type AuditPayloads = { [K in AuditType]: z.infer<(typeof AUDIT_PAYLOADS)[K]> };

/** An audit record of event `K`, its `data` typed. */
export type AuditRecordOf<K extends AuditType> = Omit<AuditRecord, 'type' | 'data'> & {
  type: K;
  data: AuditPayloads[K];
};

/** An audit event of `K` as the control plane writes it (before it is chained). */
export interface AuditEventOf<K extends AuditType> {
  type: K;
  actor: string;
  tenant: string | null;
  data: AuditPayloads[K];
}

/**
 * True when `r` is an audit record of event `type`, narrowing its `data` to that event's payload
 * (the control plane writes each from one definition; `auditPayload` in
 * `@killpath/protocol/schemas` checks one a reader does not trust).
 */
export function isAudit<K extends AuditType>(r: AuditRecord, type: K): r is AuditRecord & AuditRecordOf<K> {
  return r.type === type;
}

/**
 * An audit event of `type`, its payload checked against the event's type at compile time (the
 * control plane builds every typed event through this). Pure: no validation at run time.
 */
export function auditEvent<K extends AuditType>(
  type: K,
  actor: string,
  tenant: string | null,
  data: AuditPayloads[K],
): AuditEventOf<K> {
  return { type, actor, tenant, data };
}
