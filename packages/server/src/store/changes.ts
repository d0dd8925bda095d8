import type { Directive } from '@killpath/protocol';
import type { SwitchboardChange } from './store.ts';

/**
 * The switchboard changes of revs `from + 1` to `to` (gapless, in rev order) from the directives
 * a backend read in one transaction: those issued in that range (`rev` in it) and those cleared
 * in it (`clearedRev` in it). Decided here for every backend, which only reads the two sets.
 *
 * A rev at which a directive was issued is an issue; the directives cleared at that same rev are
 * the ones it replaced. A rev at which a directive was only cleared is a clear. A rev with
 * neither is a bare step (no current code writes one; the hub still publishes it as a rev step).
 */
export function changesOf(
  from: number,
  to: number,
  issued: readonly Directive[],
  cleared: readonly Directive[],
): SwitchboardChange[] {
  const issuedAt = new Map<number, Directive>();
  for (const d of issued) issuedAt.set(d.rev, d);
  const clearedAt = new Map<number, Directive[]>();
  for (const d of cleared) {
    const at = d.clearedRev!;
    const list = clearedAt.get(at);
    if (list === undefined) clearedAt.set(at, [d]);
    else list.push(d);
  }
  const out: SwitchboardChange[] = [];
  for (let rev = from + 1; rev <= to; rev++) {
    const d = issuedAt.get(rev);
    const gone = clearedAt.get(rev) ?? [];
    if (d !== undefined) {
      out.push({ rev, issued: d, replaced: gone.filter((x) => x.id !== d.id).sort((a, b) => a.rev - b.rev) });
    } else if (gone.length > 0) {
      out.push({ rev, cleared: gone[0]! });
    } else {
      out.push({ rev });
    }
  }
  return out;
}
