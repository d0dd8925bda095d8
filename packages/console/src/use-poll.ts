/** A Preact hook around {@link Poller}: polls while the component is mounted. */
import { useEffect, useRef, useState } from 'preact/hooks';
import { Poller, type PollState } from './poll.ts';

/**
 * Polls `load` every `intervalMs` while mounted; a change in `deps` starts over. Returns the
 * state and a function that loads again at once.
 */
export function usePoll<T>(
  load: () => Promise<T>,
  intervalMs: number,
  deps: readonly unknown[] = [],
): [PollState<T>, () => void] {
  const [state, setState] = useState<PollState<T>>({
    data: null,
    ok: false,
    error: null,
    lastOkAt: null,
    failingSince: null,
  });
  const poller = useRef<Poller<T> | null>(null);
  useEffect(() => {
    const p = new Poller(load, { intervalMs, onUpdate: (s) => setState(s) });
    poller.current = p;
    p.start();
    return () => p.stop();
  }, deps);
  return [state, () => void poller.current?.refresh()];
}
