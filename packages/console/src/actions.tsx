/** The buttons of one target: kill, halt and the rest of the ladder. Nothing for who may not act. */
import { useContext } from 'preact/hooks';
import { SessionContext } from './context.ts';
import { levelsOffered, targetLabel, type Target } from './model.ts';

export function Actions({ target }: { target: Target }) {
  const session = useContext(SessionContext)!;
  const levels = levelsOffered(session.principal, target);
  if (levels.length === 0) return null;
  const label = targetLabel(target);
  return (
    <div class="actions" role="group" aria-label={`Actions on ${label}`}>
      <button
        type="button"
        class="danger"
        aria-label={`Kill ${label}`}
        onClick={() => session.openAction(target, 'kill')}
      >
        Kill
      </button>
      <button
        type="button"
        class="warn"
        aria-label={`Halt ${label}`}
        onClick={() => session.openAction(target, 'halt')}
      >
        Halt
      </button>
      <button
        type="button"
        aria-label={`More actions on ${label} (throttle, degrade, isolate, freeze, one tool)`}
        onClick={() => session.openAction(target, 'throttle')}
      >
        More…
      </button>
    </div>
  );
}
