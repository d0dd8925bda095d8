import type { LogFindings, TreeClaim } from './log-verify.ts';

/** What {@link VerifyRuns} needs of the store. */
export interface VerifySource {
  /** Reads and hashes the whole log (in a worker thread on a file database). */
  verifyLog(kept: TreeClaim | null): Promise<LogFindings>;
  /** The seq of the newest stored audit record (0 when empty): cheap, one indexed row. */
  auditHead(): Promise<number>;
}

interface Running {
  /** The newest record stored when the run began: the run reads at least up to it. */
  head: number;
  findings: Promise<LogFindings>;
}

/**
 * Verifications of the audit log, one at a time and coalesced: a verification asked while one
 * with the same kept checkpoint is running shares that run when the run began after the newest
 * record the caller could have written (nothing was appended since it began), and otherwise
 * waits for the next run, which every caller that arrives meanwhile shares too. So any number
 * of concurrent calls costs one full read and hash of the log, two when records were appended
 * in between, and every answer covers every record stored before its call.
 */
export class VerifyRuns {
  readonly #source: VerifySource;
  #tail: Promise<unknown> = Promise.resolve();
  readonly #running = new Map<string, Running>();
  readonly #waiting = new Map<string, Promise<LogFindings>>();
  /** Full verifications run so far (each reads and hashes the whole log). */
  runs = 0;

  constructor(source: VerifySource) {
    this.#source = source;
  }

  /** Verifies the log (against `kept`, if given); callers flush queued audit records first. */
  async verify(kept: TreeClaim | null): Promise<LogFindings> {
    const key = kept === null ? '' : `${kept.size}:${kept.rootHash}:${kept.timestamp}`;
    const head = await this.#source.auditHead();
    const running = this.#running.get(key);
    if (running !== undefined && running.head >= head) return running.findings;
    const waiting = this.#waiting.get(key);
    if (waiting !== undefined) return waiting;
    const next = this.#tail.then(async () => {
      let startHead: number;
      try {
        startHead = await this.#source.auditHead();
      } finally {
        this.#waiting.delete(key);
      }
      this.runs++;
      const findings = this.#source.verifyLog(kept);
      this.#running.set(key, { head: startHead, findings });
      try {
        return await findings;
      } finally {
        if (this.#running.get(key)?.findings === findings) this.#running.delete(key);
      }
    });
    this.#waiting.set(key, next);
    this.#tail = next.catch(() => {});
    return next;
  }
}
