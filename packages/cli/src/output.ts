import type { AuditVerdict, AuditVerdictBrief } from '@killpath/protocol';

/** Renders rows as an aligned text table with a header. */
export function table(headers: string[], rows: (string | number | null)[][]): string {
  const cells = [headers, ...rows.map((r) => r.map((c) => (c === null ? '-' : String(c))))];
  const widths = headers.map((_, i) => Math.max(...cells.map((r) => (r[i] ?? '').length)));
  return cells
    .map((r) =>
      r
        .map((c, i) => (c ?? '').padEnd(widths[i]!))
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
}

/** Formats milliseconds for humans: `0.42 ms`, `12.3 ms`, `1.52 s`. */
export function ms(v: number | null | undefined): string {
  if (v === null || v === undefined || Number.isNaN(v)) return '-';
  if (v < 10) return `${v.toFixed(2)} ms`;
  if (v < 1000) return `${v.toFixed(1)} ms`;
  return `${(v / 1000).toFixed(2)} s`;
}

/** p-th percentile (0-100) of `values`, nearest-rank; NaN for an empty list. */
export function percentile(values: number[], p: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.min(sorted.length, Math.max(1, Math.ceil((p / 100) * sorted.length)));
  return sorted[rank - 1]!;
}

/**
 * A directive's scope as a person reads it: a run scope with its tenant (`run:acme/run-7`: a
 * run id lives inside its tenant), a feature or release scope of one tenant with `(in acme)`.
 */
export function scopeLabel(d: { scopeText: string; tenant: string | null | undefined }): string {
  if (d.tenant === null || d.tenant === undefined) return d.scopeText;
  if (d.scopeText.startsWith('run:') && !d.scopeText.includes('/'))
    return `run:${d.tenant}/${d.scopeText.slice(4)}`;
  if (d.scopeText.startsWith('feature:') || d.scopeText.startsWith('release:'))
    return `${d.scopeText} (in ${d.tenant})`;
  return d.scopeText;
}

/**
 * One line for a `GET /v1/audit/verify` answer. An admin's names the record count and head (or
 * the first bad record); a tenant's person learns only whether the whole log verifies.
 */
export function auditVerdictLine(v: AuditVerdict | AuditVerdictBrief): string {
  if ('brief' in v)
    return v.ok
      ? 'audit chain ok (the whole log verifies; its size, head and any bad record are shown to admins)'
      : 'audit chain BROKEN: the log does not verify (an admin token names the first bad record: killpath audit verify)';
  return v.ok
    ? `audit chain ok: ${v.records} records, head ${v.head.slice(0, 16)}…`
    : `audit chain BROKEN at record #${v.firstBad}: ${v.reason} (${v.records} records read)`;
}
