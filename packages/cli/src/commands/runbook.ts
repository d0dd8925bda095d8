import { writeFileSync } from 'node:fs';
import { KillpathError } from '@killpath/protocol';
import { parse } from '../args.ts';
import { findAgent, renderRunbook } from '../killswitch-spec/runbook.ts';
import { loadSpecOrReport } from './spec.ts';

export const RUNBOOK_HELP = `killpath runbook --spec FILE [--agent TENANT/AGENT] [--out RUNBOOK.md]

Renders the on-call runbook (Markdown) from a kill-switch spec, for the engineer at 02:00 who
has never seen the agent: what it does, how to kill it (console, API and CLI, with exact
commands), what will happen, how to know it worked, how to recover, when to escalate.

  --spec FILE           the kill-switch spec (killpath spec init writes one)
  --agent TENANT/AGENT  a runbook for this agent only (default: one for every agent of the
                        spec, shared sections once, the per-agent specifics in tables)
  --out FILE            write it to FILE instead of stdout

Commands in the runbook read KILLPATH_URL, KILLPATH_TOKEN and RUN_ID from the environment.
Exit 1 when the spec is not valid (every error printed as FILE:LINE: path: message).`;

/** `killpath runbook`. */
export async function runbook(args: string[]): Promise<number> {
  const { values } = parse(args, {
    spec: { type: 'string' },
    agent: { type: 'string' },
    out: { type: 'string' },
    help: { type: 'boolean', short: 'h' },
  });
  if (values.help) {
    console.log(RUNBOOK_HELP);
    return 0;
  }
  if (!values.spec)
    throw new KillpathError(
      'invalid_request',
      'usage: killpath runbook --spec FILE [--agent TENANT/AGENT] [--out RUNBOOK.md]',
    );
  const loaded = loadSpecOrReport(values.spec, 'runbook');
  if (loaded === null) return 1;
  const { spec, digest } = loaded;
  if (values.agent !== undefined && !findAgent(spec, values.agent)) {
    throw new KillpathError(
      'invalid_request',
      `--agent ${values.agent}: ${values.spec} does not cover it (its agents: ${spec.agents.map((a) => `${a.tenant}/${a.agent}`).join(', ')})`,
    );
  }
  const text = renderRunbook(spec, { source: values.spec, digest, agent: values.agent });
  if (values.out === undefined) {
    process.stdout.write(text);
    return 0;
  }
  try {
    writeFileSync(values.out, text);
  } catch (err) {
    throw new KillpathError(
      'invalid_request',
      `cannot write ${values.out}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
    );
  }
  console.log(`wrote ${values.out} (${text.split('\n').length - 1} lines) from ${values.spec}`);
  return 0;
}
