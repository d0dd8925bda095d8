/**
 * A line diff of two texts (the policy view's diff between two versions): the longest common
 * subsequence of lines, as kept, removed and added lines in order. Policies are at most 48 KB,
 * so the quadratic table stays small; no DOM here, unit-tested under Node.
 */

/** One line of a diff. */
export interface DiffLine {
  op: 'same' | 'removed' | 'added';
  text: string;
  /** Its number in the old text (kept and removed lines), or null. */
  oldNo: number | null;
  /** Its number in the new text (kept and added lines), or null. */
  newNo: number | null;
}

/** The lines of `before` and `after` as a diff, in order. */
export function lineDiff(before: string, after: string): DiffLine[] {
  const a = before.split('\n');
  const b = after.split('\n');
  // Common prefix and suffix first: a policy change touches a few lines of many.
  let start = 0;
  while (start < a.length && start < b.length && a[start] === b[start]) start++;
  let endA = a.length;
  let endB = b.length;
  while (endA > start && endB > start && a[endA - 1] === b[endB - 1]) {
    endA--;
    endB--;
  }
  const midA = a.slice(start, endA);
  const midB = b.slice(start, endB);
  const n = midA.length;
  const m = midB.length;
  // lcs[i][j]: length of the longest common subsequence of midA[i..] and midB[j..].
  const lcs: Uint32Array[] = Array.from({ length: n + 1 }, () => new Uint32Array(m + 1));
  for (let i = n - 1; i >= 0; i--)
    for (let j = m - 1; j >= 0; j--)
      lcs[i]![j] = midA[i] === midB[j] ? lcs[i + 1]![j + 1]! + 1 : Math.max(lcs[i + 1]![j]!, lcs[i]![j + 1]!);
  const out: DiffLine[] = [];
  for (let k = 0; k < start; k++) out.push({ op: 'same', text: a[k]!, oldNo: k + 1, newNo: k + 1 });
  let i = 0;
  let j = 0;
  while (i < n || j < m) {
    if (i < n && j < m && midA[i] === midB[j]) {
      out.push({ op: 'same', text: midA[i]!, oldNo: start + i + 1, newNo: start + j + 1 });
      i++;
      j++;
    } else if (i < n && (j === m || lcs[i + 1]![j]! >= lcs[i]![j + 1]!)) {
      out.push({ op: 'removed', text: midA[i]!, oldNo: start + i + 1, newNo: null });
      i++;
    } else {
      out.push({ op: 'added', text: midB[j]!, oldNo: null, newNo: start + j + 1 });
      j++;
    }
  }
  for (let k = 0; k < a.length - endA; k++)
    out.push({ op: 'same', text: a[endA + k]!, oldNo: endA + k + 1, newNo: endB + k + 1 });
  return out;
}

/**
 * The changed lines with `context` kept lines around each change; runs of kept lines further
 * away become one `null` (shown as "…").
 */
export function diffHunks(lines: readonly DiffLine[], context = 3): (DiffLine | null)[] {
  const near = new Array<boolean>(lines.length).fill(false);
  lines.forEach((l, i) => {
    if (l.op === 'same') return;
    for (let k = Math.max(0, i - context); k <= Math.min(lines.length - 1, i + context); k++) near[k] = true;
  });
  const out: (DiffLine | null)[] = [];
  lines.forEach((l, i) => {
    if (near[i]) out.push(l);
    else if (out.at(-1) !== null) out.push(null);
  });
  if (out[0] === null) out.shift();
  if (out.at(-1) === null) out.pop();
  return out;
}
