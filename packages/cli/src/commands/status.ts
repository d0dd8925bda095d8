import { flagWords, type Directive, type FleetWorker } from '@killpath/protocol';
import { CONNECTION_OPTIONS, parse } from '../args.ts';
import { clientFor } from '../config.ts';
import { table } from '../output.ts';

export const STATUS_HELP = `killpath status [--json]

Shows the fleet (workers, their runs, last heartbeat, observed rev, state) and the active directives.`;

/** `killpath status`. */
export async function status(args: string[]): Promise<number> {
  const { values } = parse(args, { ...CONNECTION_OPTIONS, json: { type: 'boolean' } });
  if (values.help) {
    console.log(STATUS_HELP);
    return 0;
  }
  const api = clientFor(values);
  const [fleet, dirs] = await Promise.all([
    api.get<{ rev: number; workers: FleetWorker[] }>('/v1/fleet'),
    api.get<{ rev: number; directives: Directive[] }>('/v1/directives?active=true'),
  ]);
  if (values.json) {
    console.log(
      JSON.stringify({ rev: fleet.rev, workers: fleet.workers, directives: dirs.directives }, null, 2),
    );
    return 0;
  }
  console.log(`control plane ${api.url}  rev ${fleet.rev}\n`);
  console.log(`fleet: ${fleet.workers.length} worker(s)`);
  if (fleet.workers.length > 0) {
    console.log(
      table(
        ['tenant', 'agent', 'worker', 'pid', 'state', 'flags', 'rev', 'heartbeat', 'runs'],
        fleet.workers.map((w) => [
          w.tenant,
          w.agent,
          w.workerId.slice(0, 12),
          w.pid,
          w.connected ? w.state : `${w.state} (disconnected)`,
          flagWords(w.flags).join(', ') || null,
          w.observedRev,
          w.lastHeartbeatAgoMs === null ? null : `${(w.lastHeartbeatAgoMs / 1000).toFixed(1)}s ago`,
          w.runs.map((r) => `${r.runId}${r.state === 'running' ? '' : `[${r.state}]`}`).join(' ') || null,
        ]),
      ),
    );
  }
  console.log(`\nactive directives: ${dirs.directives.length}`);
  if (dirs.directives.length > 0) {
    console.log(
      table(
        ['id', 'rev', 'level', 'scope', 'tools', 'actor', 'reason'],
        dirs.directives.map((d) => [
          d.id,
          d.rev,
          d.level,
          d.scopeText,
          d.capabilities?.join(',') ?? null,
          d.actor,
          d.reason,
        ]),
      ),
    );
  }
  return 0;
}
