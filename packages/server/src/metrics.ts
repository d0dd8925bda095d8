import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/** The control plane's Prometheus metrics, on a registry of its own (no global singleton). */
export class Metrics {
  readonly registry = new Registry();
  readonly rev = new Gauge({
    name: 'killpath_rev',
    help: 'Current switchboard revision',
    registers: [this.registry],
  });
  readonly streams = new Gauge({
    name: 'killpath_stream_connections',
    help: 'Connected worker streams',
    registers: [this.registry],
  });
  readonly directives = new Counter({
    name: 'killpath_directives_issued_total',
    help: 'Directives committed, by level',
    labelNames: ['level'] as const,
    registers: [this.registry],
  });
  readonly cleared = new Counter({
    name: 'killpath_directives_cleared_total',
    help: 'Directives cleared (resumed)',
    registers: [this.registry],
  });
  readonly signalToHalt = new Histogram({
    name: 'killpath_signal_to_halt_seconds',
    help: 'Flip (directive commit) to a worker reporting its covered effects settled, measured at the control plane',
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [this.registry],
  });
  readonly requests = new Counter({
    name: 'killpath_http_requests_total',
    help: 'HTTP requests by method and status',
    labelNames: ['method', 'status'] as const,
    registers: [this.registry],
  });
  readonly shed = new Counter({
    name: 'killpath_http_shed_total',
    help: 'Requests shed by admission control under overload (429), by priority',
    labelNames: ['priority'] as const,
    registers: [this.registry],
  });
  readonly auditRecords = new Counter({
    name: 'killpath_audit_records_total',
    help: 'Audit records appended',
    registers: [this.registry],
  });

  readonly foreignRuns = new Counter({
    name: 'killpath_foreign_runs_dropped_total',
    help: 'Runs a worker reported that another agent of its tenant registered, left out of its report, by route',
    labelNames: ['route'] as const,
    registers: [this.registry],
  });

  constructor() {
    collectDefaultMetrics({ register: this.registry });
  }
}
