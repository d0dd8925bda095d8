import type { JournalSink, SdkEvent } from '@killpath/sdk';

/**
 * A journal sink that tells listeners when the gate may have changed: a switchboard revision
 * applied, a lease expired, or a stream (re)connected. Pass it as `sink` to `connect`; the gateway
 * re-checks its sessions' tool lists on each. Another sink may be chained after it.
 */
export class SwitchboardWatcher implements JournalSink {
  private readonly listeners = new Set<() => void>();
  private readonly next: JournalSink | null;
  private scheduled = false;

  constructor(next: JournalSink | null = null) {
    this.next = next;
  }

  /** @inheritdoc */
  record(event: SdkEvent): void {
    this.next?.record(event);
    if (event.type !== 'rev.applied' && event.type !== 'lease.expired' && event.type !== 'stream.connected')
      return;
    // Listeners run after the client finished applying the change (never inside it), once per burst.
    if (this.scheduled) return;
    this.scheduled = true;
    queueMicrotask(() => {
      this.scheduled = false;
      for (const l of this.listeners) l();
    });
  }

  /** Calls `listener` after each change; returns the function that removes it. */
  onChange(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
}
