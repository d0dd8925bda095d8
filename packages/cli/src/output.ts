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
