/**
 * The console's shell: sign-in with a token, the header with who is signed in and whether the
 * control plane answers, the navigation between views, and the dialogs.
 */
import type { Directive, Level, Principal } from '@killpath/protocol';
import { useEffect, useMemo, useRef, useState } from 'preact/hooks';
import { ActionDialog, ResumeDialog } from './action-dialog.tsx';
import { BreakGlassBanner } from './break-glass.tsx';
import { Api, ApiError, isUnauthorized, type FetchLike } from './api.ts';
import { SessionContext, type Session } from './context.ts';
import { FleetView } from './fleet-view.tsx';
import { LIVE_INTERVAL_MS, liveLoader, type FleetQuery, type LiveData } from './live.ts';
import { errorText, targetScope, type Target } from './model.ts';
import { AuditView, CompensationsView, DirectivesView } from './other-views.tsx';
import { DrillsView } from './drills-view.tsx';
import { AlertsView } from './alerts-view.tsx';
import { PolicyView } from './policy-view.tsx';
import type { PollState } from './poll.ts';
import { clearToken, loadToken, saveToken } from './session.ts';
import { usePoll } from './use-poll.ts';
import { viewFromHash, viewsFor, type ViewId } from './views.ts';

const browserFetch: FetchLike = (url, init) => fetch(url, init);
const clock = (t: number | null) => (t === null ? '' : new Date(t).toLocaleTimeString());

type Dialog =
  { kind: 'action'; target: Target; level: Level } | { kind: 'resume'; directive: Directive } | null;

function SignIn({
  onSignedIn,
  message,
}: {
  onSignedIn(token: string, p: Principal): void;
  message: string | null;
}) {
  const [token, setToken] = useState('');
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const submit = async (e: Event) => {
    e.preventDefault();
    const t = token.trim();
    if (t === '') {
      setError('Enter a token.');
      return;
    }
    setBusy(true);
    setError(null);
    try {
      const p = await new Api(t, browserFetch).get<Principal>('/v1/whoami');
      if (p.role === 'agent') {
        setError('Agent tokens cannot use the console: sign in with a viewer, operator or admin token.');
        return;
      }
      onSignedIn(t, p);
    } catch (err) {
      setError(
        isUnauthorized(err)
          ? 'That token was not accepted (unknown, revoked or mistyped).'
          : `Sign-in failed: ${errorText(err as ApiError)}`,
      );
    } finally {
      setBusy(false);
    }
  };
  return (
    <main id="main" class="signin" tabIndex={-1}>
      <h1>killpath console</h1>
      {message && (
        <p class="notice" role="status">
          {message}
        </p>
      )}
      <form onSubmit={submit} noValidate>
        <label for="token">Access token</label>
        <p id="token-hint" class="hint">
          A viewer, operator or admin token (<code>killpath token create --role operator --tenant acme</code>
          ). It stays in this tab only and is forgotten on sign-out.
        </p>
        <input
          id="token"
          name="token"
          type="password"
          autocomplete="off"
          spellcheck={false}
          aria-describedby={error ? 'token-hint token-error' : 'token-hint'}
          aria-invalid={error !== null}
          value={token}
          onInput={(e) => setToken((e.currentTarget as HTMLInputElement).value)}
        />
        {error && (
          <p id="token-error" class="field-error" role="alert">
            {error}
          </p>
        )}
        <button type="submit" class="primary" disabled={busy}>
          {busy ? 'Signing in…' : 'Sign in'}
        </button>
      </form>
    </main>
  );
}

function ConnectionStatus({ live }: { live: PollState<LiveData> }) {
  if (live.ok) {
    return (
      // Not a live region: it changes every poll and would be read out twice a second.
      <p class="conn ok">Live · updated {clock(live.lastOkAt)}</p>
    );
  }
  if (live.failingSince === null) return <p class="conn">Connecting…</p>;
  return (
    <p class="conn down" role="alert">
      Control plane unreachable since {clock(live.failingSince)} ({errorText(live.error ?? {})}); retrying.
      {live.lastOkAt !== null && ` Figures shown are from ${clock(live.lastOkAt)}.`}
    </p>
  );
}

function Console({
  api,
  principal,
  onSignOut,
}: {
  api: Api;
  principal: Principal;
  onSignOut(message: string | null): void;
}) {
  const [view, setView] = useState<ViewId>(() => viewFromHash(location.hash, principal));
  const [dialog, setDialog] = useState<Dialog>(null);
  const [notice, setNotice] = useState<string | null>(null);
  const [refreshKey, setRefreshKey] = useState(0);
  // The fleet page polled: read by the loader at each poll, so paging needs no new poller.
  const [fleetQuery, setFleetQuery] = useState<FleetQuery>({});
  const fleetQueryRef = useRef<FleetQuery>({});
  const load = useMemo(() => liveLoader(api, () => fleetQueryRef.current), [api]);
  const [live, refreshLive] = usePoll(load, LIVE_INTERVAL_MS, [load]);
  const onFleetQuery = (q: FleetQuery) => {
    fleetQueryRef.current = q;
    setFleetQuery(q);
    refreshLive();
  };

  useEffect(() => {
    const onHash = () => setView(viewFromHash(location.hash, principal));
    addEventListener('hashchange', onHash);
    return () => removeEventListener('hashchange', onHash);
  }, [principal]);

  useEffect(() => {
    if (isUnauthorized(live.error))
      onSignOut('The control plane no longer accepts this token (revoked or expired). Sign in again.');
  }, [live.error]);

  const session: Session = useMemo(
    () => ({
      api,
      principal,
      openAction: (target, level) => setDialog({ kind: 'action', target, level }),
      openResume: (directive) => setDialog({ kind: 'resume', directive }),
    }),
    [api, principal],
  );

  const changed = (text: string) => {
    setDialog(null);
    setNotice(text);
    setRefreshKey((k) => k + 1);
    refreshLive();
  };

  const views = viewsFor(principal);
  const who = principal.tenant === '*' ? 'every tenant' : `tenant ${principal.tenant}`;
  return (
    <SessionContext.Provider value={session}>
      <a class="skip" href="#main">
        Skip to content
      </a>
      <header class="top">
        <h1>killpath</h1>
        <p class="who">
          Signed in as <strong>{principal.name}</strong> · {principal.role} · {who}
          {principal.role === 'viewer' && <span class="detail"> (read-only)</span>}
        </p>
        <ConnectionStatus live={live} />
        <button type="button" onClick={() => onSignOut(null)}>
          Sign out
        </button>
      </header>
      <nav aria-label="Views">
        <ul>
          {views.map((v) => (
            <li key={v.id}>
              <a href={`#${v.id}`} aria-current={view === v.id ? 'page' : undefined}>
                {v.label}
              </a>
            </li>
          ))}
        </ul>
      </nav>
      <BreakGlassBanner directives={live.data?.directives ?? []} />
      <div class="notice-area" role="status" aria-live="polite">
        {notice && (
          <p class="notice">
            {notice}{' '}
            <button type="button" class="link" onClick={() => setNotice(null)}>
              Dismiss
            </button>
          </p>
        )}
      </div>
      <main id="main" tabIndex={-1} class={live.ok || live.data === null ? '' : 'stale'}>
        <h2>{views.find((v) => v.id === view)?.label}</h2>
        {view === 'fleet' && <FleetView data={live.data} query={fleetQuery} onQuery={onFleetQuery} />}
        {view === 'directives' && <DirectivesView refreshKey={refreshKey} />}
        {view === 'audit' && <AuditView />}
        {view === 'compensations' && <CompensationsView />}
        {view === 'drills' && <DrillsView />}
        {view === 'alerts' && <AlertsView />}
        {view === 'policy' && <PolicyView />}
      </main>
      {dialog?.kind === 'action' && (
        <ActionDialog
          target={dialog.target}
          level={dialog.level}
          onClose={() => setDialog(null)}
          onIssued={(d, created) =>
            changed(
              created
                ? `${d.level} issued on ${d.scopeText}: directive ${d.id} at rev ${d.rev}.`
                : `Already in force: the same ${d.level} on ${targetScope(dialog.target)} is directive ${d.id}.`,
            )
          }
        />
      )}
      {dialog?.kind === 'resume' && (
        <ResumeDialog
          directive={dialog.directive}
          onClose={() => setDialog(null)}
          onResumed={(d) => changed(`Resumed: ${d.level} on ${d.scopeText} (directive ${d.id}) is cleared.`)}
          onRequested={(a) =>
            changed(
              `Resume needs approval: request ${a.id} (${a.summary}) needs ${a.needed} approval${a.needed === 1 ? '' : 's'} by ${a.approverRole === 'admin' ? 'an admin' : 'an operator of the tenant or an admin'} other than you, by ${new Date(a.expiresAt).toLocaleTimeString()}.${a.contact ? ` Call ${a.contact}.` : ''} They run: killpath approve ${a.id} --reason "…"`,
            )
          }
        />
      )}
    </SessionContext.Provider>
  );
}

/** The whole page: sign-in until a token is accepted, then the console. */
export function App() {
  const [auth, setAuth] = useState<{ token: string; principal: Principal } | null>(null);
  const [restoring, setRestoring] = useState(() => loadToken(sessionStorage) !== null);
  const [message, setMessage] = useState<string | null>(null);

  useEffect(() => {
    const token = loadToken(sessionStorage);
    if (token === null) return;
    new Api(token, browserFetch)
      .get<Principal>('/v1/whoami')
      .then((p) => setAuth({ token, principal: p }))
      .catch((err: unknown) => {
        if (isUnauthorized(err)) clearToken(sessionStorage);
        setMessage(
          isUnauthorized(err)
            ? 'The saved token is no longer accepted. Sign in again.'
            : `Could not reach the control plane: ${errorText(err as ApiError)}`,
        );
      })
      .finally(() => setRestoring(false));
  }, []);

  const api = useMemo(() => (auth ? new Api(auth.token, browserFetch) : null), [auth?.token]);

  if (restoring) return <p class="empty">Signing in…</p>;
  if (!auth || !api) {
    return (
      <SignIn
        message={message}
        onSignedIn={(token, principal) => {
          setMessage(null);
          setAuth({ token: saveToken(sessionStorage, token), principal });
        }}
      />
    );
  }
  return (
    <Console
      api={api}
      principal={auth.principal}
      onSignOut={(msg) => {
        clearToken(sessionStorage);
        setAuth(null);
        setMessage(msg ?? 'Signed out.');
      }}
    />
  );
}
