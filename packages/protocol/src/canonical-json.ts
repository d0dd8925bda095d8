/**
 * The canonical JSON of `value` (RFC 8785, JSON Canonicalization Scheme): object keys sorted by
 * UTF-16 code units at every level, no whitespace, numbers and strings as ECMAScript serialises
 * them, members whose value JSON drops (`undefined`, functions) left out. The same data always
 * gives the same text, whatever its key order. The one implementation every package uses: audit
 * record hashes and checkpoint leaves (server), effect argument digests (SDK), spec digests (CLI).
 *
 * Text for text what the `canonicalize` package (its reference implementation) gives, which the
 * test suite checks over generated values, written for the audit path's hot loop: every record
 * is hashed when it is appended and again when a checkpoint or a verification reads it.
 * @throws TypeError when `value` has no JSON form (a cycle, a BigInt, NaN or Infinity, a lone
 *   surrogate, or nothing at all such as `undefined`)
 */
export function canonicalJson(value: unknown): string {
  let text: string | undefined;
  try {
    text = canon(value, []);
  } catch (err) {
    throw new TypeError(`not serialisable as canonical JSON: ${(err as Error).message}`, { cause: err });
  }
  if (text === undefined) throw new TypeError('not serialisable as canonical JSON: no JSON value');
  return text;
}

/** A lone surrogate (one not in a pair): `u` mode reads a pair as one code point. */
const LONE_SURROGATE = /\p{Cs}/u;

function str(s: string): string {
  if (LONE_SURROGATE.test(s)) throw new Error('Lone surrogate is not allowed');
  return JSON.stringify(s);
}

/** `path` holds the objects being serialised (a cycle is one of them again); it is short. */
function canon(v: unknown, path: object[]): string | undefined {
  switch (typeof v) {
    case 'string':
      return str(v);
    case 'number':
      if (Number.isNaN(v)) throw new Error('NaN is not allowed');
      if (!Number.isFinite(v)) throw new Error('Infinity is not allowed');
      return JSON.stringify(v);
    case 'object':
      break;
    default:
      // booleans; undefined, functions and symbols have no JSON text; a BigInt throws.
      return JSON.stringify(v);
  }
  if (v === null) return 'null';
  if (path.includes(v)) throw new Error('Circular reference detected');
  path.push(v);
  try {
    const o = v as { toJSON?: unknown };
    if (typeof o.toJSON === 'function') return canon((o.toJSON as () => unknown).call(v), path);
    if (Array.isArray(v)) {
      let out = '[';
      for (let i = 0; i < v.length; i++) {
        const item: unknown = v[i];
        if (i > 0) out += ',';
        // Like the reference: undefined and symbols become null, a function nothing at all.
        out += canon(item === undefined || typeof item === 'symbol' ? null : item, path) ?? '';
      }
      return `${out}]`;
    }
    const rec = v as Record<string, unknown>;
    let out = '{';
    let first = true;
    for (const key of Object.keys(rec).sort()) {
      const member = rec[key];
      if (member === undefined || typeof member === 'symbol') continue;
      if (!first) out += ',';
      first = false;
      out += `${str(key)}:${String(canon(member, path))}`;
    }
    return `${out}}`;
  } finally {
    path.pop();
  }
}
