import { KillpathError } from './errors.ts';

/** The three parts of a release, in their canonical order. */
export const RELEASE_PARTS = ['code', 'model', 'prompt'] as const;

/** One part of a release: `code` (git sha or semver), `model` (`provider/model@version`), `prompt` (prompt version). */
export type ReleasePart = (typeof RELEASE_PARTS)[number];

/**
 * What a worker runs, declared when it connects. Any part may be missing; a release's identity
 * is the whole triple (two releases are the same when every part is equal, missing included).
 */
export type Release = Partial<Record<ReleasePart, string>>;

/**
 * Release values: letters, digits and `._:@/+~-`, 1 to 128 characters (a sha, a semver such as
 * `1.4.0+build.7`, `acme/planner@7`). No `=`, `,`, `;` nor whitespace: those separate parts.
 */
const VALUE = /^[A-Za-z0-9._:@/+~-]{1,128}$/;

/** True when `s` is a valid value of a release part. */
export function isReleaseValue(s: string): boolean {
  return VALUE.test(s);
}

/** True when `s` names a release part. */
export function isReleasePart(s: string): s is ReleasePart {
  return (RELEASE_PARTS as readonly string[]).includes(s);
}

/**
 * A release with its parts checked and in canonical order; `null` when no part is set.
 * @throws KillpathError `invalid_request` naming the bad part.
 */
export function checkRelease(r: Release | null | undefined): Release | null {
  if (r === null || r === undefined) return null;
  if (typeof r !== 'object' || Array.isArray(r))
    throw new KillpathError('invalid_request', 'release must be an object { code?, model?, prompt? }');
  const out: Release = {};
  for (const key of Object.keys(r)) {
    if (!isReleasePart(key))
      throw new KillpathError('invalid_request', `release has no part "${key}" (parts: code, model, prompt)`);
  }
  for (const part of RELEASE_PARTS) {
    const v = r[part];
    if (v === undefined) continue;
    if (typeof v !== 'string' || !isReleaseValue(v))
      throw new KillpathError(
        'invalid_request',
        `invalid release ${part} ${JSON.stringify(v)}: 1-128 characters of letters, digits and ._:@/+~-`,
      );
    out[part] = v;
  }
  return Object.keys(out).length === 0 ? null : out;
}

/**
 * Parses `code=4f2a1c,model=acme/planner@7,prompt=v42` (any subset, any order, each part once).
 * @throws KillpathError `invalid_request` for anything else.
 */
export function parseRelease(text: string): Release {
  const bad = (why: string): never => {
    throw new KillpathError('invalid_request', `invalid release "${text}": ${why}`);
  };
  const out: Release = {};
  if (text.trim() === '') bad('expected PART=VALUE[,PART=VALUE…] with parts code, model, prompt');
  for (const item of text.split(',')) {
    const eq = item.indexOf('=');
    const part = eq < 0 ? item : item.slice(0, eq);
    const value = eq < 0 ? '' : item.slice(eq + 1);
    if (!isReleasePart(part)) return bad(`"${part}" is not a release part (code, model, prompt)`);
    if (out[part] !== undefined) bad(`${part} is given twice`);
    if (!isReleaseValue(value)) bad(`${part} must be 1-128 characters of letters, digits and ._:@/+~-`);
    out[part] = value;
  }
  return checkRelease(out)!;
}

/** `code=4f2a1c,model=acme/planner@7,prompt=v42` (parts present only, canonical order); `(none)` for an empty release. */
export function formatRelease(r: Release | null | undefined): string {
  const parts = RELEASE_PARTS.filter((p) => r?.[p] !== undefined).map((p) => `${p}=${r![p]!}`);
  return parts.length === 0 ? '(none)' : parts.join(',');
}

/** True when `a` and `b` are the same release: every part equal, a missing part only equal to a missing one. */
export function sameRelease(a: Release | null | undefined, b: Release | null | undefined): boolean {
  return RELEASE_PARTS.every((p) => (a?.[p] ?? null) === (b?.[p] ?? null));
}

/** The distinct releases of a list (by {@link sameRelease}), sorted by their text, empty ones left out. */
export function distinctReleases(list: Iterable<Release | null | undefined>): Release[] {
  const byText = new Map<string, Release>();
  for (const r of list) {
    const checked = r === null || r === undefined ? null : pick(r);
    if (checked === null) continue;
    byText.set(formatRelease(checked), checked);
  }
  return [...byText.entries()].sort(([a], [b]) => a.localeCompare(b)).map(([, r]) => r);
}

function pick(r: Release): Release | null {
  const out: Release = {};
  for (const p of RELEASE_PARTS) if (typeof r[p] === 'string') out[p] = r[p];
  return Object.keys(out).length === 0 ? null : out;
}
