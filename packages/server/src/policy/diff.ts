import type { CompiledPolicy } from './policy.ts';

/** Largest diff kept on a `policy.changed` record, in characters. */
const MAX_DIFF_CHARS = 32 * 1024;

/**
 * A unified line diff (`-` removed, `+` added, two lines of context, `@@` between hunks) of two
 * texts, from a longest-common-subsequence table. Policies are small (at most 48 KiB), so the
 * quadratic table is fine; beyond 2,000 lines a side the whole texts are shown as replaced.
 */
export function lineDiff(before: string, after: string): string {
  const a = before === '' ? [] : before.replace(/\n$/, '').split('\n');
  const b = after === '' ? [] : after.replace(/\n$/, '').split('\n');
  if (a.length > 2000 || b.length > 2000)
    return clip([...a.map((l) => `-${l}`), ...b.map((l) => `+${l}`)].join('\n'));
  const n = a.length;
  const m = b.length;
  const lcs: Uint16Array[] = Array.from({ length: n + 1 }, () => new Uint16Array(m + 1));
  for (let i = n - 1; i >= 0; i--) {
    for (let j = m - 1; j >= 0; j--)
      lcs[i]![j] = a[i] === b[j] ? lcs[i + 1]![j + 1]! + 1 : Math.max(lcs[i + 1]![j]!, lcs[i]![j + 1]!);
  }
  const ops: { t: ' ' | '-' | '+'; line: string }[] = [];
  let i = 0;
  let j = 0;
  while (i < n || j < m) {
    if (i < n && j < m && a[i] === b[j]) {
      ops.push({ t: ' ', line: a[i]! });
      i++;
      j++;
    } else if (i < n && (j === m || lcs[i + 1]![j]! >= lcs[i]![j + 1]!)) {
      ops.push({ t: '-', line: a[i]! });
      i++;
    } else {
      ops.push({ t: '+', line: b[j]! });
      j++;
    }
  }
  const keep = new Set<number>();
  ops.forEach((op, k) => {
    if (op.t === ' ') return;
    for (let c = Math.max(0, k - 2); c <= Math.min(ops.length - 1, k + 2); c++) keep.add(c);
  });
  const out: string[] = [];
  let last = -1;
  for (let k = 0; k < ops.length; k++) {
    if (!keep.has(k)) continue;
    if (last !== -1 && k !== last + 1) out.push('@@');
    out.push(`${ops[k]!.t}${ops[k]!.line}`);
    last = k;
  }
  return clip(out.join('\n'));
}

function clip(text: string): string {
  return text.length <= MAX_DIFF_CHARS
    ? text
    : `${text.slice(0, MAX_DIFF_CHARS)}\n… (diff clipped at ${MAX_DIFF_CHARS} characters)`;
}

/** Which rules a change added, removed or changed (by name), for the audit record and the CLI. */
export function ruleChanges(
  before: CompiledPolicy | null,
  after: CompiledPolicy,
): { added: string[]; removed: string[]; changed: string[] } {
  const old = new Map((before?.rules ?? []).map((r) => [r.name, r.digest]));
  const now = new Map(after.rules.map((r) => [r.name, r.digest]));
  return {
    added: [...now.keys()].filter((n) => !old.has(n)),
    removed: [...old.keys()].filter((n) => !now.has(n)),
    changed: [...now.entries()].filter(([n, d]) => old.has(n) && old.get(n) !== d).map(([n]) => n),
  };
}
