/**
 * Runs `fn` with a signal that aborts when `a` or `b` does (with the first one's reason), and
 * removes its listeners when `fn` settles: no `AbortSignal.any` holding on to a long-lived
 * parent. With one signal missing, `fn` gets the other as it is.
 */
export async function withJoinedSignal<T>(
  a: AbortSignal,
  b: AbortSignal | undefined,
  fn: (signal: AbortSignal) => Promise<T>,
): Promise<T> {
  if (b === undefined) return fn(a);
  const joined = new AbortController();
  const onA = (): void => joined.abort(a.reason);
  const onB = (): void => joined.abort(b.reason);
  if (a.aborted) onA();
  else if (b.aborted) onB();
  else {
    a.addEventListener('abort', onA, { once: true });
    b.addEventListener('abort', onB, { once: true });
  }
  try {
    return await fn(joined.signal);
  } finally {
    a.removeEventListener('abort', onA);
    b.removeEventListener('abort', onB);
  }
}
