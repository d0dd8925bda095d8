import canonicalize from 'canonicalize';

/**
 * The canonical JSON of `value` (RFC 8785, JSON Canonicalization Scheme): object keys sorted by
 * UTF-16 code units at every level, no whitespace, numbers and strings as ECMAScript serialises
 * them, members whose value JSON drops (`undefined`, functions) left out. The same data always
 * gives the same text, whatever its key order. The one implementation every package uses: audit
 * record hashes and checkpoint leaves (server), effect argument digests (SDK), spec digests (CLI).
 * @throws TypeError when `value` has no JSON form (a cycle, a BigInt, NaN or Infinity, a lone
 *   surrogate, or nothing at all such as `undefined`)
 */
export function canonicalJson(value: unknown): string {
  let text: string | undefined;
  try {
    text = canonicalize(value);
  } catch (err) {
    throw new TypeError(`not serialisable as canonical JSON: ${(err as Error).message}`, { cause: err });
  }
  if (text === undefined) throw new TypeError('not serialisable as canonical JSON: no JSON value');
  return text;
}
