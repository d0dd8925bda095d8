/** Small pieces the framework adapters (`./ai-sdk`, `./openai-agents`, `./langchain`) share. Internal. */

/** Longest tool call id turned into an idempotency key (the control plane takes keys up to 256 characters). */
const MAX_CALL_ID = 200;

/**
 * The idempotency key of one tool call, `<framework>:<toolCallId>`, so that a replayed call of
 * the same run never runs twice; `undefined` (no key) without a usable id.
 */
export function toolCallKey(framework: string, toolCallId: unknown): string | undefined {
  if (typeof toolCallId !== 'string' || toolCallId === '' || toolCallId.length > MAX_CALL_ID)
    return undefined;
  return `${framework}:${toolCallId}`;
}

/** Handles `promise`'s rejection with `onError` (so it is never reported as unhandled). */
export function settleQuietly(promise: Promise<unknown>, onError: (err: unknown) => void = () => {}): void {
  promise.then(undefined, onError);
}

/**
 * Passes `source` through, and tells when it is over: `done` resolves when the stream ends or
 * its reader cancels it, and rejects when it fails. When `signal` aborts first, the source is
 * cancelled (a provider that ignores its abort signal still stops here), `done` rejects with
 * the signal's reason, and the stream ends with `lastParts(reason)` when given (the framework's
 * own way to say a stream failed; called a microtask later), else errors with the reason.
 */
export function endsWhenDone<T>(
  source: ReadableStream<T>,
  signal: AbortSignal,
  lastParts?: (reason: unknown) => T[],
): { stream: ReadableStream<T>; done: Promise<void> } {
  let finish: () => void = () => {};
  let fail: (err: unknown) => void = () => {};
  const done = new Promise<void>((resolve, reject) => {
    finish = resolve;
    fail = reject;
  });
  settleQuietly(done);
  const reader = source.getReader();
  let over = false;
  let controllerRef: ReadableStreamDefaultController<T> | null = null;
  const end = (err?: unknown): boolean => {
    if (over) return false;
    over = true;
    signal.removeEventListener('abort', onAbort);
    if (err === undefined) finish();
    else fail(err);
    return true;
  };
  const onAbort = (): void => {
    if (!end(signal.reason)) return;
    settleQuietly(reader.cancel(signal.reason));
    const c = controllerRef;
    if (c === null) return;
    if (lastParts === undefined) {
      c.error(signal.reason);
      return;
    }
    // A microtask later: a stop that covers the whole run aborts `run.signal` right after the
    // effects, in the same turn, and `lastParts` may want to know.
    queueMicrotask(() => {
      try {
        for (const part of lastParts(signal.reason)) c.enqueue(part);
        c.close();
      } catch {
        // The reader cancelled the stream meanwhile: nothing to end.
      }
    });
  };
  const stream = new ReadableStream<T>({
    start(controller) {
      controllerRef = controller;
      if (signal.aborted) onAbort();
      else signal.addEventListener('abort', onAbort, { once: true });
    },
    async pull(controller) {
      let next: Awaited<ReturnType<typeof reader.read>>;
      try {
        next = await reader.read();
      } catch (err) {
        if (end(err)) controller.error(err);
        return;
      }
      if (over) return;
      if (next.done) {
        end();
        controller.close();
      } else {
        controller.enqueue(next.value);
      }
    },
    cancel(reason) {
      end();
      return reader.cancel(reason);
    },
  });
  return { stream, done };
}
