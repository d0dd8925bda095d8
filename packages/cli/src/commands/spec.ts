import { existsSync, writeFileSync } from 'node:fs';
import { KillpathError } from '@killpath/protocol';
import { parse } from '../args.ts';
import { SpecError, loadSpec, policyFromSpec, type LoadedSpec } from '../killswitch-spec/load-spec.ts';
import { SPEC_TEMPLATE } from '../killswitch-spec/template.ts';

export const SPEC_HELP = `killpath spec <subcommand> [options]

The kill-switch specification: one YAML file with the six components of a kill switch (scope,
triggers, mechanism, latency targets, side effects, rehearsal cadence) and who to escalate to,
for the agents it covers. The drill judges rehearsals against it; killpath runbook turns it
into the on-call runbook. No control plane is needed.

  spec init [FILE] [--force]     write a commented spec, filled in for the demo fleet
                                 (default ./killpath.spec.yaml; --force overwrites FILE)
  spec check FILE [--json]       validate FILE: "ok" with its digest and any warnings, or every
                                 error as FILE:LINE: path: message (exit 1)
  spec policy FILE               print the supervisor policy implementing FILE's asynchronous
                                 triggers and deadman (apply it with killpath policy apply)`;

/** Default file `killpath spec init` writes. */
export const DEFAULT_SPEC_FILE = 'killpath.spec.yaml';

/** `killpath spec`. */
export async function spec(args: string[]): Promise<number> {
  const [sub, ...rest] = args;
  switch (sub) {
    case 'init':
      return init(rest);
    case 'check':
      return check(rest);
    case 'policy':
      return policy(rest);
    case undefined:
    case '--help':
    case '-h':
      console.log(SPEC_HELP);
      return sub === undefined ? 2 : 0;
    default:
      throw new KillpathError('invalid_request', `unknown spec subcommand "${sub}" (init, check, policy)`);
  }
}

/**
 * Loads a spec for a command, printing every error as `FILE:LINE: path: message` on stderr.
 * Returns null when the spec is invalid (the caller exits 1).
 */
export function loadSpecOrReport(file: string, command: string): LoadedSpec | null {
  try {
    return loadSpec(file);
  } catch (err) {
    if (!(err instanceof SpecError)) throw err;
    console.error(
      `killpath ${command}: ${file} is not a valid kill-switch spec (${err.errors.length} error${err.errors.length === 1 ? '' : 's'}):`,
    );
    for (const e of err.errors)
      console.error(`${file}:${e.line === null ? '' : `${e.line}:`} ${e.path}: ${e.message}`);
    return null;
  }
}

async function init(args: string[]): Promise<number> {
  const { values, positionals } = parse(
    args,
    { force: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } },
    true,
  );
  if (values.help) {
    console.log(SPEC_HELP);
    return 0;
  }
  if (positionals.length > 1)
    throw new KillpathError('invalid_request', 'usage: killpath spec init [FILE] [--force]');
  const file = positionals[0] ?? DEFAULT_SPEC_FILE;
  if (existsSync(file) && !values.force) {
    throw new KillpathError(
      'invalid_request',
      `${file} already exists; not overwriting it (pass --force to replace it with the template)`,
    );
  }
  try {
    writeFileSync(file, SPEC_TEMPLATE);
  } catch (err) {
    throw new KillpathError(
      'invalid_request',
      `cannot write ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
    );
  }
  console.log(
    `wrote ${file}: a kill-switch spec for the demo fleet; edit it for your agents, then run killpath spec check ${file}`,
  );
  return 0;
}

async function check(args: string[]): Promise<number> {
  const { values, positionals } = parse(
    args,
    { json: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } },
    true,
  );
  if (values.help) {
    console.log(SPEC_HELP);
    return 0;
  }
  if (positionals.length !== 1)
    throw new KillpathError('invalid_request', 'usage: killpath spec check FILE [--json]');
  const file = positionals[0]!;
  if (values.json) {
    try {
      const r = loadSpec(file);
      console.log(
        JSON.stringify(
          {
            ok: true,
            file,
            name: r.spec.name,
            agents: r.spec.agents.length,
            digest: r.digest,
            warnings: r.warnings,
            spec: r.spec,
          },
          null,
          2,
        ),
      );
      return 0;
    } catch (err) {
      if (!(err instanceof SpecError)) throw err;
      console.log(JSON.stringify({ ok: false, file, errors: err.errors }, null, 2));
      return 1;
    }
  }
  const r = loadSpecOrReport(file, 'spec check');
  if (r === null) return 1;
  console.log(
    `ok: ${r.spec.name}, ${r.spec.agents.length} agent${r.spec.agents.length === 1 ? '' : 's'}, digest ${r.digest}`,
  );
  for (const w of r.warnings) console.log(`warning: ${w}`);
  return 0;
}

async function policy(args: string[]): Promise<number> {
  const { values, positionals } = parse(args, { help: { type: 'boolean', short: 'h' } }, true);
  if (values.help) {
    console.log(SPEC_HELP);
    return 0;
  }
  if (positionals.length !== 1)
    throw new KillpathError('invalid_request', 'usage: killpath spec policy FILE');
  const r = loadSpecOrReport(positionals[0]!, 'spec policy');
  if (r === null) return 1;
  process.stdout.write(policyFromSpec(r.spec));
  return 0;
}
