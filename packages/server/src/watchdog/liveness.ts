/** The two automatic components that watch each other. */
export type Component = 'supervisor' | 'watchdog';

/**
 * Liveness beats of the supervisor and the watchdog, kept by the control plane: each beats
 * here (in process, or the external watchdog through `POST /v1/watchdog/beat`), and each reads
 * the other's age to raise its absence.
 */
export class Liveness {
  readonly #now: () => number;
  readonly #startedAt: number;
  readonly #last = new Map<Component, { at: number; id: string }>();

  constructor(now: () => number = () => performance.now()) {
    this.#now = now;
    this.#startedAt = now();
  }

  beat(component: Component, id: string): void {
    this.#last.set(component, { at: this.#now(), id });
  }

  /** Ms since the component's last beat, or since this registry started when it never beat; and who beat last. */
  age(component: Component): { ms: number; id: string | null; seen: boolean } {
    const last = this.#last.get(component);
    return last
      ? { ms: this.#now() - last.at, id: last.id, seen: true }
      : { ms: this.#now() - this.#startedAt, id: null, seen: false };
  }
}

/**
 * Raises a component's absence once per outage: `onAbsent` when its age first exceeds
 * `absentAfterMs`, `onBack` when it beats again after that.
 */
export class AbsenceWatch {
  readonly #absentAfterMs: number;
  readonly #onAbsent: (ageMs: number) => void;
  readonly #onBack: (ageMs: number) => void;
  #absent = false;

  constructor(absentAfterMs: number, onAbsent: (ageMs: number) => void, onBack: (ageMs: number) => void) {
    this.#absentAfterMs = absentAfterMs;
    this.#onAbsent = onAbsent;
    this.#onBack = onBack;
  }

  /** True while the watched component is considered absent. */
  get absent(): boolean {
    return this.#absent;
  }

  check(ageMs: number): void {
    if (!this.#absent && ageMs > this.#absentAfterMs) {
      this.#absent = true;
      this.#onAbsent(ageMs);
    } else if (this.#absent && ageMs <= this.#absentAfterMs) {
      this.#absent = false;
      this.#onBack(ageMs);
    }
  }
}
