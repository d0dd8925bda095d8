import type { Clock } from '@killpath/protocol';
import type { Doorbell } from './doorbell.ts';
import type { Fleet } from './fleet.ts';
import type { AutomationPolicy } from './ladder.ts';
import type { Logger } from './log.ts';
import type { Metrics } from './metrics.ts';
import type { AlertSink } from './notify.ts';
import type { CoolOffPolicy } from './permits.ts';
import type { Store } from './store/store.ts';
import type { StreamHub } from './stream/hub.ts';

/** What a `ControlPlane` is built from: its collaborators, and the settings of its parts. */
export interface ControlPlaneOptions {
  /** The durable state: directives and rev, permits, audit, tokens, fleet, drills, policy. */
  store: Store;
  /** Workers' push streams. */
  hub: StreamHub;
  /** The fleet as this process hears it (workers, runs, heartbeats). */
  fleet: Fleet;
  metrics: Metrics;
  log: Logger;
  /** Cool-off of irreversible effects (default `DEFAULT_COOL_OFF_MS` for every capability). */
  coolOff?: CoolOffPolicy;
  /** Where alerts go (default: the log, at warn). */
  alerts?: AlertSink;
  /** Which ladder steps may be taken automatically (default `DEFAULT_AUTOMATION`). */
  automation?: AutomationPolicy;
  /** Extra time after a halt's grace before its kill step (default `DEFAULT_ESCALATION_SLACK_MS`). */
  escalationSlackMs?: number;
  /** Keep-alive interval of the launchers' streams, in ms (default 1,000). */
  keepaliveMs?: number;
  /** Time for escalation deadlines; default the system clock (tests pass a manual one). */
  clock?: Clock;
  /**
   * What tells the view that another process committed: the store's own (an in-process one for
   * SQLite, LISTEN for PostgreSQL) unless given; none when the store has none.
   */
  doorbell?: Doorbell;
  /**
   * The workers' lease in ms (default 3,000, the SDK's default): a view whose store or doorbell
   * has been unreachable for half of it stops renewing workers' leases.
   */
  leaseMs?: number;
  /** The view's safety-net poll in ms (see `SwitchboardViewOptions.pollMs`); tests and tuning. */
  viewPollMs?: number;
  /**
   * This replica's id: unique per process among replicas on one database (default a random
   * one). A process that alone serves its store (SQLite) may pass a stable one, so that after
   * a restart it holds the leader lease again at once instead of waiting for it to expire.
   */
  replicaId?: string;
  /** The leader lease's ttl and poll interval, in ms (defaults in `leadership.ts`). */
  lease?: { ttlMs?: number; pollMs?: number };
  /** The presence sync's interval in ms (default in `presence-sync.ts`). */
  presenceSyncMs?: number;
}
