/**
 * The break-glass banner: every active directive issued with a break-glass attestation (one
 * spanning every tenant) is shown above every view, with who attested, when and why, until the
 * directive is cleared.
 */
import type { Directive } from '@killpath/protocol';

/** Active directives carrying a break-glass attestation, oldest first. */
export function breakGlassInForce(directives: readonly Directive[]): Directive[] {
  return directives.filter((d) => d.clearedRev === null && d.breakGlass).sort((a, b) => a.rev - b.rev);
}

/** The banner, or nothing when no break-glass directive is in force. */
export function BreakGlassBanner({ directives }: { directives: readonly Directive[] }) {
  const inForce = breakGlassInForce(directives);
  if (inForce.length === 0) return null;
  return (
    <section class="break-glass" aria-label="Break-glass in force">
      {inForce.map((d) => (
        <p key={d.id} role="alert">
          <strong>Break-glass in force:</strong> {d.level} at <code>{d.scopeText}</code> (directive{' '}
          <code>{d.id}</code>, rev {d.rev}), attested by <strong>{d.breakGlass!.by}</strong> at{' '}
          <time dateTime={d.breakGlass!.at}>{new Date(d.breakGlass!.at).toLocaleString()}</time>:{' '}
          <q>{d.breakGlass!.why}</q>. Shown until the directive is cleared.
        </p>
      ))}
    </section>
  );
}
