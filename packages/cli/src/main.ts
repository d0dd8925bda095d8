import { KillpathError } from '@killpath/protocol';
import { inCliWords } from './cli-words.ts';
const HELP = `killpath — the kill path for fleets of autonomous AI agents

Usage: killpath <command> [options]        (killpath <command> --help for details)

  serve            start the control plane (embedded SQLite, or PostgreSQL replicas: --store URL)
  migrate          apply the schema to a PostgreSQL store (--store URL) before serving on it
  demo             start a control plane and a demo fleet, walk every scope, verify the audit chain
  kill             stop agents at one scope (--run, --agent, --tenant, --feature, --global) at any
                   level: --level throttle|degrade|isolate|halt|freeze|kill (--hard = kill)
  step ID up|down  move a directive one level up or down the ladder
  resume ID        clear a directive, with a justification (or every one at a scope: --agent T/A, …)
  approve REQ      approve a pending request (a resume or policy change the policy's approval rules gate)
  approvals        list approval requests (default: pending)
  run -- CMD       launch an agent under a launcher that enforces kill, freeze and isolate on its processes
  inspect --run R  take the evidence of a frozen run (process tree, files, connections, cores)
  mcp-gateway -- CMD  an MCP server in front of another: the kill path for any MCP client
  status           fleet and active directives
  audit verify     check the hash-chained audit log (--checkpoint FILE: against a kept signed checkpoint)
  audit checkpoint print the latest signed checkpoint of the audit log, to keep off this machine
  audit tail       print recent audit records
  token            create (--ttl), list, revoke ID, rotate-admin: the tokens of a control plane
  journal RUN      a run's side-effect ledger: intended versus landed, cancelled timers, discarded tasks
  compensations    landed writes of halted runs with their compensation descriptors
  policy           the supervisor's rules: show, apply FILE, history, rollback N, test FILE --events
  watchdog         run the deadman's watchdog as its own process (admin token)
  spec             the kill-switch specification: init [FILE], check FILE, policy FILE
  runbook          render the on-call runbook from a spec: --spec FILE [--agent T/A] [--out FILE]
  drill            rehearse S1–S8, every scope and level on real processes; history, due, show

Where the control plane is: --url and --token, else KILLPATH_URL and KILLPATH_TOKEN,
else ./.killpath/server.json and ./.killpath/admin.token (written by killpath serve).
Replicas of one control plane: --url repeated or a comma list (KILLPATH_URL=A,B); each request
goes to the next one when one is unreachable or answers 503 (docs/deployment.md).
An https:// control plane with a private CA: --ca FILE or KILLPATH_CA. Plain http:// is refused
to any host but this machine unless --insecure (see docs/security.md).`;

/** One command, loaded on use: `killpath kill` never loads the server, Hono, CEL or SQLite. */
interface Command {
  run: (args: string[]) => Promise<number>;
  help: string;
}

const COMMANDS: Record<string, () => Promise<Command>> = {
  serve: async () => import('./commands/serve.ts').then((m) => ({ run: m.serve, help: m.SERVE_HELP })),
  migrate: async () =>
    import('./commands/migrate.ts').then((m) => ({ run: m.migrate, help: m.MIGRATE_HELP })),
  demo: async () => import('./commands/demo.ts').then((m) => ({ run: m.demo, help: m.DEMO_HELP })),
  kill: async () => import('./commands/directives.ts').then((m) => ({ run: m.kill, help: m.KILL_HELP })),
  resume: async () =>
    import('./commands/directives.ts').then((m) => ({ run: m.resume, help: m.RESUME_HELP })),
  approve: async () =>
    import('./commands/approve.ts').then((m) => ({ run: m.approve, help: m.APPROVE_HELP })),
  approvals: async () =>
    import('./commands/approve.ts').then((m) => ({ run: m.approvals, help: m.APPROVE_HELP })),
  step: async () => import('./commands/directives.ts').then((m) => ({ run: m.step, help: m.STEP_HELP })),
  run: async () => import('./commands/run.ts').then((m) => ({ run: m.run, help: m.RUN_HELP })),
  'mcp-gateway': async () =>
    import('./commands/mcp-gateway.ts').then((m) => ({ run: m.mcpGateway, help: m.MCP_GATEWAY_HELP })),
  inspect: async () =>
    import('./commands/inspect.ts').then((m) => ({ run: m.inspect, help: m.INSPECT_HELP })),
  status: async () => import('./commands/status.ts').then((m) => ({ run: m.status, help: m.STATUS_HELP })),
  audit: async () => import('./commands/audit.ts').then((m) => ({ run: m.audit, help: m.AUDIT_HELP })),
  token: async () => import('./commands/token.ts').then((m) => ({ run: m.token, help: m.TOKEN_HELP })),
  journal: async () =>
    import('./commands/journal.ts').then((m) => ({ run: m.journal, help: m.JOURNAL_HELP })),
  compensations: async () =>
    import('./commands/journal.ts').then((m) => ({ run: m.compensations, help: m.COMPENSATIONS_HELP })),
  policy: async () => import('./commands/policy.ts').then((m) => ({ run: m.policy, help: m.POLICY_HELP })),
  watchdog: async () =>
    import('./commands/watchdog.ts').then((m) => ({ run: m.watchdog, help: m.WATCHDOG_HELP })),
  spec: async () => import('./commands/spec.ts').then((m) => ({ run: m.spec, help: m.SPEC_HELP })),
  runbook: async () =>
    import('./commands/runbook.ts').then((m) => ({ run: m.runbook, help: m.RUNBOOK_HELP })),
  drill: async () => import('./commands/drill.ts').then((m) => ({ run: m.drill, help: m.DRILL_HELP })),
};

/**
 * Runs the CLI with `argv` (without node and script) and returns the exit code: 0 on success,
 * 1 when a check fails (e.g. a broken audit chain), 2 for a usage or request error. Errors are
 * one clear line on stderr, never a stack trace (set KILLPATH_DEBUG=1 for one).
 */
export async function main(argv: string[]): Promise<number> {
  const [name, ...args] = argv;
  if (name === undefined || name === 'help' || name === '--help' || name === '-h') {
    const topic = name === 'help' ? args[0] : undefined;
    const load = topic === undefined ? undefined : COMMANDS[topic];
    console.log(load ? (await load()).help : HELP);
    return name === undefined ? 2 : 0;
  }
  if (name === '--version' || name === '-v') {
    console.log('killpath 0.1.0');
    return 0;
  }
  const load = COMMANDS[name];
  if (!load) {
    console.error(`killpath: unknown command "${name}" (see killpath --help)`);
    return 2;
  }
  try {
    return await (await load()).run(args);
  } catch (err) {
    if (process.env.KILLPATH_DEBUG) console.error(err);
    if (err instanceof KillpathError) {
      console.error(
        `killpath ${name}: ${inCliWords(err)}${err.code === 'invalid_request' || err.code === 'unavailable' ? '' : ` (${err.code})`}`,
      );
      return 2;
    }
    console.error(`killpath ${name}: ${(err as Error).message ?? String(err)}`);
    return 2;
  }
}
