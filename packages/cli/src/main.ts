import { KillpathError } from '@killpath/protocol';
import { AUDIT_HELP, audit } from './commands/audit.ts';
import { KILL_HELP, RESUME_HELP, STEP_HELP, kill, resume, step } from './commands/directives.ts';
import { RUN_HELP, run } from './commands/run.ts';
import { SERVE_HELP, serve } from './commands/serve.ts';
import { STATUS_HELP, status } from './commands/status.ts';
import { TOKEN_HELP, token } from './commands/token.ts';
import { DEMO_HELP, demo } from './commands/demo.ts';
import { COMPENSATIONS_HELP, JOURNAL_HELP, compensations, journal } from './commands/journal.ts';
import { POLICY_HELP, policy } from './commands/policy.ts';
import { WATCHDOG_HELP, watchdog } from './commands/watchdog.ts';
import { SPEC_HELP, spec } from './commands/spec.ts';
import { RUNBOOK_HELP, runbook } from './commands/runbook.ts';
import { DRILL_HELP, drill } from './commands/drill.ts';

const HELP = `killpath — the kill path for fleets of autonomous AI agents

Usage: killpath <command> [options]        (killpath <command> --help for details)

  serve            start the control plane (embedded SQLite)
  demo             start a control plane and a demo fleet, walk every scope, verify the audit chain
  kill             stop agents at one scope (--run, --agent, --tenant, --feature, --global) at any
                   level: --level throttle|degrade|isolate|halt|kill (--hard = kill)
  step ID up|down  move a directive one level up or down the ladder
  resume ID        clear a directive, with a justification (or every one at a scope: --agent T/A, …)
  run -- CMD       launch an agent under a launcher that enforces kill and isolate on its process
  status           fleet and active directives
  audit verify     check the hash-chained audit log
  audit tail       print recent audit records
  token create     mint a token for a role and tenant
  journal RUN      a run's side-effect ledger: intended versus landed, cancelled timers, discarded tasks
  compensations    landed writes of halted runs with their compensation descriptors
  policy           the supervisor's rules: show, apply FILE, history, rollback N, test FILE --events
  watchdog         run the deadman's watchdog as its own process (admin token)
  spec             the kill-switch specification: init [FILE], check FILE, policy FILE
  runbook          render the on-call runbook from a spec: --spec FILE [--agent T/A] [--out FILE]
  drill            rehearse S1–S8, every scope and level on real processes; history, due, show

Where the control plane is: --url and --token, else KILLPATH_URL and KILLPATH_TOKEN,
else ./.killpath/server.json and ./.killpath/admin.token (written by killpath serve).`;

const COMMANDS: Record<string, { run: (args: string[]) => Promise<number>; help: string }> = {
  serve: { run: serve, help: SERVE_HELP },
  demo: { run: demo, help: DEMO_HELP },
  kill: { run: kill, help: KILL_HELP },
  resume: { run: resume, help: RESUME_HELP },
  step: { run: step, help: STEP_HELP },
  run: { run, help: RUN_HELP },
  status: { run: status, help: STATUS_HELP },
  audit: { run: audit, help: AUDIT_HELP },
  token: { run: token, help: TOKEN_HELP },
  journal: { run: journal, help: JOURNAL_HELP },
  compensations: { run: compensations, help: COMPENSATIONS_HELP },
  policy: { run: policy, help: POLICY_HELP },
  watchdog: { run: watchdog, help: WATCHDOG_HELP },
  spec: { run: spec, help: SPEC_HELP },
  runbook: { run: runbook, help: RUNBOOK_HELP },
  drill: { run: drill, help: DRILL_HELP },
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
    console.log(topic && COMMANDS[topic] ? COMMANDS[topic].help : HELP);
    return name === undefined ? 2 : 0;
  }
  if (name === '--version' || name === '-v') {
    console.log('killpath 0.1.0');
    return 0;
  }
  const cmd = COMMANDS[name];
  if (!cmd) {
    console.error(`killpath: unknown command "${name}" (see killpath --help)`);
    return 2;
  }
  try {
    return await cmd.run(args);
  } catch (err) {
    if (process.env.KILLPATH_DEBUG) console.error(err);
    if (err instanceof KillpathError) {
      console.error(
        `killpath ${name}: ${err.message}${err.code === 'invalid_request' || err.code === 'unavailable' ? '' : ` (${err.code})`}`,
      );
      return 2;
    }
    console.error(`killpath ${name}: ${(err as Error).message ?? String(err)}`);
    return 2;
  }
}
