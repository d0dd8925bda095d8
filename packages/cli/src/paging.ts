import { intFlag } from './args.ts';

/** Flags of every paged list command: one page (`--limit`, `--cursor`) or every page (`--all`). */
export const PAGE_OPTIONS = {
  limit: { type: 'string' },
  cursor: { type: 'string' },
  all: { type: 'boolean' },
} as const;

/** The API's largest page. */
export const MAX_PAGE = 5000;

/** `limit=…&cursor=…` of one page request, from the flags (default page 1,000; --all asks the largest). */
export function pageParams(
  values: { limit?: string | undefined; cursor?: string | undefined; all?: boolean | undefined },
  cursor: string | null,
): URLSearchParams {
  const q = new URLSearchParams();
  const limit = values.all ? MAX_PAGE : intFlag('limit', values.limit, 1000);
  q.set('limit', String(Math.max(1, Math.min(MAX_PAGE, limit))));
  if (cursor !== null) q.set('cursor', cursor);
  return q;
}

/**
 * Fetches the first page (from `--cursor`, if given) and, with `--all`, every page after it,
 * merging them with `merge`. The result's `cursor` is null once every page was read.
 */
export async function pages<P extends { cursor: string | null }>(
  values: { cursor?: string | undefined; all?: boolean | undefined },
  fetchPage: (cursor: string | null) => Promise<P>,
  merge: (into: P, next: P) => void,
): Promise<P> {
  const first = await fetchPage(values.cursor ?? null);
  if (!values.all) return first;
  while (first.cursor !== null) {
    const next = await fetchPage(first.cursor);
    merge(first, next);
    first.cursor = next.cursor;
  }
  return first;
}

/** Quotes a word for a shell command line when it needs it. */
const shellWord = (w: string) => (/^[\w@%+=:,./-]+$/.test(w) ? w : `'${w.replace(/'/g, `'\\''`)}'`);

/** The command that prints the next page: `words` (the command and its filters) then `--cursor`. */
export function nextPageCommand(words: (string | undefined | false)[], cursor: string): string {
  return [...words.filter((w): w is string => typeof w === 'string'), '--cursor', cursor]
    .map(shellWord)
    .join(' ');
}
