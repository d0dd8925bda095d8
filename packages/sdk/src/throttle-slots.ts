import type { StreamDirective } from '@killpath/protocol';
import type { Clock } from './clock.ts';

/** Slots kept before the passed ones are pruned. */
const MAX_SLOTS = 10_000;

/**
 * The next free slot of each throttle: `a:<directive>` per agent (shared by this worker's runs),
 * `r:<run>:<directive>` per run, as clock ms. Internal.
 */
export class ThrottleSlots {
  private readonly slots = new Map<string, number>();
  private readonly clock: Clock;

  constructor(clock: Clock) {
    this.clock = clock;
  }

  /**
   * Reserves the next slot of `throttle` for an effect of run `runId`: slots are spaced
   * `1000 / perSecond` ms apart (a token bucket of depth one, so the rate holds from the first
   * effect, without a burst), per run or shared by this worker's runs of the agent. Returns the
   * wait in ms. A re-dialled throttle is a new directive, so its slots start afresh.
   */
  reserve(runId: string, throttle: StreamDirective): number {
    const rate = throttle.rate;
    if (rate === null || !(rate.perSecond > 0)) return 0;
    const key = rate.per === 'agent' ? `a:${throttle.id}` : `r:${runId}:${throttle.id}`;
    const now = this.clock.now();
    const slot = Math.max(now, this.slots.get(key) ?? now);
    this.slots.set(key, slot + 1000 / rate.perSecond);
    if (this.slots.size > MAX_SLOTS) this.prune(now);
    return slot - now;
  }

  private prune(now: number): void {
    for (const [key, next] of this.slots) if (next < now) this.slots.delete(key);
  }
}
