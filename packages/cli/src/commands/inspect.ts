import { KillpathError, isIdentifier, type AuditRecord, type AuditRecordOf } from '@killpath/protocol';
import { auditRecordsOf } from '../audit-records.ts';
import { CONNECTION_OPTIONS, intFlag, parse } from '../args.ts';
import { clientFor } from '../config.ts';

export const INSPECT_HELP = `killpath inspect --run R --reason TEXT [--tenant T] [--no-cores] [--timeout MS] [--json]

Takes the evidence of a frozen run (killpath kill --run R --level freeze) while it stays frozen:
the launcher that holds it writes, on the agent's host, an evidence.json with the process tree,
open files and connections (from /proc; never the environment, which holds secrets) and a core
file of each process where gdb's gcore is installed (it says so where it is not). Prints where
each launcher wrote it. Then: killpath resume <freeze-id> thaws it; killpath step <id> up kills it.

Options:
  --run R          the frozen run (required)
  --reason TEXT    why (audited with your identity; required)
  --tenant T       the run's tenant, for an admin token spanning every tenant
  --no-cores       skip the core files (they hold the process memory: large, and secret)
  --timeout MS     how long to wait for the launchers' reports (default 180000)

Exit codes: 0 when every launcher wrote its evidence; 1 when one refused or did not report
in time; 2 for a usage or request error (e.g. the run is not frozen).`;

const sleep = (ms: number) => new Promise((ok) => setTimeout(ok, ms));

/** `killpath inspect`: asks the frozen run's launchers for its evidence and waits for their reports. */
export async function inspect(args: string[]): Promise<number> {
  const { values } = parse(args, {
    ...CONNECTION_OPTIONS,
    run: { type: 'string' },
    reason: { type: 'string' },
    tenant: { type: 'string' },
    'no-cores': { type: 'boolean' },
    timeout: { type: 'string' },
    json: { type: 'boolean' },
  });
  if (values.help) {
    console.log(INSPECT_HELP);
    return 0;
  }
  const run = values.run;
  if (run === undefined || !isIdentifier(run))
    throw new KillpathError('invalid_request', '--run R is required (see killpath inspect --help)');
  if (!values.reason)
    throw new KillpathError('invalid_request', '--reason is required: it goes to the audit log');
  if (values.tenant !== undefined && !isIdentifier(values.tenant))
    throw new KillpathError('invalid_request', '--tenant must be an identifier');
  const timeoutMs = intFlag('timeout', values.timeout, 180_000);
  const api = clientFor(values);
  const accepted = await api.post<{ requestId: string; launchers: string[] }>(
    `/v1/runs/${encodeURIComponent(run)}/inspect`,
    {
      justification: values.reason,
      cores: !values['no-cores'],
      ...(values.tenant !== undefined ? { tenant: values.tenant } : {}),
    },
  );
  if (!values.json)
    console.error(
      `inspecting run ${run} through ${accepted.launchers.join(', ')} (request ${accepted.requestId}); the agent stays frozen`,
    );
  const deadline = Date.now() + timeoutMs;
  let reports: AuditRecordOf<'process.inspected'>[] = [];
  while (Date.now() < deadline) {
    const { records } = await api.get<{ records: AuditRecord[] }>(
      '/v1/audit?type=process.inspected&limit=500',
    );
    reports = auditRecordsOf(records, 'process.inspected').filter(
      (r) => r.data.requestId === accepted.requestId,
    );
    if (new Set(reports.map((r) => r.data.launcherId)).size >= accepted.launchers.length) break;
    await sleep(250);
  }
  if (values.json) {
    console.log(JSON.stringify({ ...accepted, reports: reports.map((r) => r.data) }, null, 2));
  } else {
    for (const r of reports)
      console.log(
        r.data.path
          ? `${r.data.launcherId}: ${r.data.path} (${String(r.data.detail)})`
          : `${r.data.launcherId}: ${String(r.data.detail)}`,
      );
  }
  const written = reports.filter((r) => typeof r.data.path === 'string').length;
  if (written < accepted.launchers.length) {
    if (!values.json)
      console.error(
        `${accepted.launchers.length - written} of ${accepted.launchers.length} launcher(s) wrote no evidence within ${timeoutMs} ms`,
      );
    return 1;
  }
  return 0;
}
