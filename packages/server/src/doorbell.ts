/**
 * A doorbell tells a switchboard view that some process committed a switchboard change, so the
 * view reads what changed from the store (`changesSince`). It is only a doorbell: a ring carries
 * at most the rev committed, the truth is always the store's rev log, and a view that misses a
 * ring still learns the change at its next read (the next ring, a catch-up on relisten, the poll).
 */
export interface Doorbell {
  /**
   * True when every commit to the store rings this doorbell from inside this process (the
   * embedded SQLite store, which one process owns): then nothing can change the store behind
   * the view's back, no poll is needed and the view always vouches for what it holds.
   */
  readonly inProcess: boolean;
  /**
   * Starts listening. `ring(rev)` on every notification (`rev` null when the notification did not
   * carry one); `listening()` each time the listener is (re)established, when a catch-up is due
   * because rings may have been missed while it was down; `lost(reason)` when it drops (it keeps
   * trying to listen again). Resolves once listening for the first time (or rejects), with the
   * handle that stops this listener: no handler of it is called after its `close` resolves.
   */
  listen(handlers: DoorbellHandlers): Promise<{ close(): Promise<void> }>;
}

/** What a {@link Doorbell} calls. */
export interface DoorbellHandlers {
  ring(rev: number | null): void;
  listening(): void;
  lost(reason: string): void;
}

/**
 * The doorbell of a store this process alone writes (SQLite): the store rings it after each
 * directive commit is durable. It is never down.
 */
export class InProcessDoorbell implements Doorbell {
  readonly inProcess = true;
  readonly #listeners = new Set<DoorbellHandlers>();

  /** Called by the store once a commit at `rev` is durable. */
  ring(rev: number): void {
    for (const h of this.#listeners) h.ring(rev);
  }

  async listen(handlers: DoorbellHandlers): Promise<{ close(): Promise<void> }> {
    this.#listeners.add(handlers);
    handlers.listening();
    return {
      close: async () => {
        this.#listeners.delete(handlers);
      },
    };
  }
}
