/**
 * Where the operator's token is kept: the tab's sessionStorage (gone with the tab), never
 * localStorage. Sign-out removes it.
 */

/** The part of the Storage interface used here. */
export interface KeyValueStore {
  getItem(key: string): string | null;
  setItem(key: string, value: string): void;
  removeItem(key: string): void;
}

/** Key of the token in sessionStorage. */
export const TOKEN_KEY = 'killpath.console.token';

/** The saved token, or null. */
export function loadToken(store: KeyValueStore): string | null {
  const t = store.getItem(TOKEN_KEY);
  return t === null || t.trim() === '' ? null : t;
}

/** Saves the token (trimmed: a pasted token often carries a newline). */
export function saveToken(store: KeyValueStore, token: string): string {
  const t = token.trim();
  store.setItem(TOKEN_KEY, t);
  return t;
}

/** Forgets the token. */
export function clearToken(store: KeyValueStore): void {
  store.removeItem(TOKEN_KEY);
}
