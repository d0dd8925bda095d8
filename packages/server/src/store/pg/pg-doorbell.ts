import { randomUUID } from 'node:crypto';
import postgres from 'postgres';
import type { Doorbell, DoorbellHandlers } from '../../doorbell.ts';
import { REV_CHANNEL } from './tx.ts';

/** Options of {@link PgDoorbell}. */
export interface PgDoorbellOptions {
  /**
   * How often the doorbell checks its own listener, in ms (default 500): it notifies a ping of its
   * own on the channel and expects to hear it back. A listener that has heard none of its pings
   * for two intervals and a half is reported lost (a silently dead TCP connection included,
   * which the driver would notice only at its keep-alive, a minute later).
   */
  pingMs?: number;
  /** `application_name` of the doorbell's connections (default `killpath-doorbell`). */
  applicationName?: string;
}

/**
 * The doorbell of the PostgreSQL store: `LISTEN killpath_rev` on a connection of its own (a
 * session connection: a transaction pooler in between would lose it), through postgres.js
 * `sql.listen(channel, onnotify, onlisten)`. Every directive commit notifies its rev in its own
 * transaction (`tx.ts` `bumpRev`), so a ring comes only after the commit is visible. The driver
 * re-establishes a dropped listener with backoff and calls `onlisten` each time, which the view
 * answers with a catch-up from the rev log (notifications sent meanwhile are lost: the log is
 * the truth). Pings of its own on the channel prove the listener alive; see
 * {@link PgDoorbellOptions.pingMs}.
 */
export class PgDoorbell implements Doorbell {
  readonly inProcess = false;
  readonly #url: string;
  readonly #pingMs: number;
  readonly #appName: string;

  constructor(url: string, opts: PgDoorbellOptions = {}) {
    this.#url = url;
    this.#pingMs = opts.pingMs ?? 500;
    this.#appName = opts.applicationName ?? 'killpath-doorbell';
  }

  async listen(h: DoorbellHandlers): Promise<{ close(): Promise<void> }> {
    const sql = postgres(this.#url, {
      max: 1,
      idle_timeout: 0,
      max_lifetime: null,
      connect_timeout: 5,
      fetch_types: false,
      onnotice: () => {},
      connection: { application_name: this.#appName },
    });
    const id = randomUUID().slice(0, 8);
    const mine = `ping:${id}:`;
    let heard = performance.now();
    let up = false;
    let closed = false;
    let n = 0;
    const alive = () => {
      heard = performance.now();
      if (!up && !closed) {
        up = true;
        h.listening();
      }
    };
    const onnotify = (payload: string) => {
      if (closed) return;
      if (payload.startsWith('ping:')) {
        if (payload.startsWith(mine)) alive();
        return;
      }
      const rev = Number(payload);
      h.ring(Number.isSafeInteger(rev) ? rev : null);
    };
    const onlisten = () => {
      if (closed) return;
      // A (re)listen: whatever was notified while it was down is lost, so the view catches up.
      heard = performance.now();
      up = true;
      h.listening();
    };
    try {
      await sql.listen(REV_CHANNEL, onnotify, onlisten);
    } catch (err) {
      await sql.end({ timeout: 0 });
      throw err;
    }
    const timer = setInterval(() => {
      if (closed) return;
      if (up && performance.now() - heard > 2.5 * this.#pingMs) {
        up = false;
        h.lost(`no notification heard on ${REV_CHANNEL} for ${Math.round(performance.now() - heard)} ms`);
      }
      sql`SELECT pg_notify(${REV_CHANNEL}, ${mine + String(++n)})`.catch(() => {
        // The database is unreachable: the view's own reads say so too; the ping stays unheard.
      });
    }, this.#pingMs);
    timer.unref();
    return {
      close: async () => {
        closed = true;
        clearInterval(timer);
        await sql.end({ timeout: 1 });
      },
    };
  }
}
