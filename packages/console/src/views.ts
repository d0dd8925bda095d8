/**
 * The console's views. Each appears once the capability behind it exists on the control
 * plane; a new one (policy rules, say) is one entry here and one component in
 * `app.tsx`'s table.
 */
import type { Principal } from '@killpath/protocol';

/** Identifiers of the views, also their URL fragments (`#fleet`). */
export type ViewId = 'fleet' | 'directives' | 'alerts' | 'audit' | 'compensations' | 'drills' | 'policy';

/** One view in the navigation. */
export interface ViewSpec {
  id: ViewId;
  label: string;
  /** Whether this principal sees the view at all. */
  available(p: Principal): boolean;
}

const human = (p: Principal) => p.role !== 'agent';
/** The policy spans every tenant: only admins read it. */
const admin = (p: Principal) => p.role === 'admin';

/** Every view, in navigation order; the first is the default. */
export const VIEWS: readonly ViewSpec[] = [
  { id: 'fleet', label: 'Fleet', available: human },
  { id: 'directives', label: 'Directives', available: human },
  { id: 'alerts', label: 'Alerts', available: human },
  { id: 'audit', label: 'Audit log', available: human },
  { id: 'compensations', label: 'Compensations', available: human },
  { id: 'drills', label: 'Drills', available: human },
  { id: 'policy', label: 'Policy', available: admin },
];

/** The views a principal sees. */
export function viewsFor(p: Principal): ViewSpec[] {
  return VIEWS.filter((v) => v.available(p));
}

/** The view named by a URL fragment (`#audit`), or the first available one. */
export function viewFromHash(hash: string, p: Principal): ViewId {
  const id = hash.replace(/^#\/?/, '');
  const views = viewsFor(p);
  return (views.find((v) => v.id === id) ?? views[0] ?? VIEWS[0]!).id;
}
