import { readFileSync } from 'node:fs';
import {
  DEFAULT_POLICY,
  parsePolicy,
  parseTelemetryLines,
  replayTelemetry,
  type ApplyResult,
  type PolicyVersion,
} from '@killpath/server';
import { KillpathError } from '@killpath/protocol';
import { CONNECTION_OPTIONS, intFlag, parse } from '../args.ts';
import { clientFor } from '../config.ts';
import { table } from '../output.ts';

export const POLICY_HELP = `killpath policy <subcommand> [options]

The supervisor's policy: rules (CEL conditions over run, agent and tenant telemetry), run
limits (also enforced by the SDK itself) and deadman settings, versioned and audited.

  policy show [--version N] [--json]        the active policy (or version N) and its rules
  policy apply FILE [--comment TEXT] [--dry-run] [--json]
                                            validate FILE and make it the active version
                                            (audited policy.changed with the diff); --dry-run
                                            only validates and prints the diff
  policy history [-n N] [--json]            versions, newest first
  policy rollback VERSION --reason TEXT     make an earlier version's text active again (a new version)
  policy test FILE --events JSONL [--expect RULE]… [--json]
                                            evaluate FILE offline against recorded telemetry
                                            (killpath serve --record-telemetry writes it); exit 1
                                            when an --expect rule did not fire
  policy check FILE                         validate FILE without a control plane
  policy default                            print the default policy (a starting point)

Policy changes need an admin token. --url URL --token TOKEN --data-dir DIR as for every command.`;

/** `killpath policy`. */
export async function policy(args: string[]): Promise<number> {
  const [sub, ...rest] = args;
  switch (sub) {
    case 'show':
      return show(rest);
    case 'apply':
      return apply(rest);
    case 'history':
      return history(rest);
    case 'rollback':
      return rollback(rest);
    case 'test':
      return test(rest);
    case 'check':
      return check(rest);
    case 'default':
      process.stdout.write(DEFAULT_POLICY);
      return 0;
    case undefined:
    case '--help':
    case '-h':
      console.log(POLICY_HELP);
      return sub === undefined ? 2 : 0;
    default:
      throw new KillpathError(
        'invalid_request',
        `unknown policy subcommand "${sub}" (show, apply, history, rollback, test, check, default)`,
      );
  }
}

function readText(path: string, what: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    throw new KillpathError(
      'invalid_request',
      `cannot read ${what} ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
    );
  }
}

function printProblems(file: string, problems: { path: string; message: string }[]): void {
  console.error(`killpath policy: ${file} is not a valid policy:`);
  for (const p of problems) console.error(`  ${p.path}: ${p.message}`);
}

async function show(args: string[]): Promise<number> {
  const { values } = parse(args, {
    ...CONNECTION_OPTIONS,
    version: { type: 'string' },
    json: { type: 'boolean' },
  });
  if (values.help) {
    console.log(POLICY_HELP);
    return 0;
  }
  const api = clientFor(values);
  const q = values.version === undefined ? '' : `?version=${intFlag('version', values.version, 0)}`;
  const v = await api.get<
    PolicyVersion & {
      active: boolean;
      rules: { name: string; when: string; mode: string; action: { level: string; scope: string } }[];
    }
  >(`/v1/policy${q}`);
  if (values.json) {
    console.log(JSON.stringify(v, null, 2));
    return 0;
  }
  console.log(
    `# policy v${v.version}${v.active ? ' (active)' : ''}, applied by ${v.actor} at ${v.createdAt}${v.comment ? `: ${v.comment}` : ''}${v.rollbackOf ? ` (rollback to v${v.rollbackOf})` : ''}`,
  );
  console.log(
    table(
      ['rule', 'mode', 'action', 'when'],
      v.rules.map((r) => [
        r.name,
        r.mode,
        `${r.action.level} ${r.action.scope}`,
        r.when.replace(/\s+/g, ' '),
      ]),
    ),
  );
  console.log('');
  process.stdout.write(v.source.endsWith('\n') ? v.source : `${v.source}\n`);
  return 0;
}

function printApply(r: ApplyResult, what: string): void {
  if (r.unchanged) {
    console.log(`unchanged: the file is the active policy v${r.version}`);
    return;
  }
  const c = r.changes;
  const summary =
    [
      c.added.length ? `added ${c.added.join(', ')}` : '',
      c.removed.length ? `removed ${c.removed.join(', ')}` : '',
      c.changed.length ? `changed ${c.changed.join(', ')}` : '',
    ]
      .filter(Boolean)
      .join('; ') || 'rules unchanged';
  console.log(
    r.dryRun ? `valid (dry run, nothing applied): ${summary}` : `${what} policy v${r.version}: ${summary}`,
  );
  if (r.diff) console.log(r.diff);
}

async function apply(args: string[]): Promise<number> {
  const { values, positionals } = parse(
    args,
    {
      ...CONNECTION_OPTIONS,
      comment: { type: 'string' },
      'dry-run': { type: 'boolean' },
      json: { type: 'boolean' },
    },
    true,
  );
  if (values.help) {
    console.log(POLICY_HELP);
    return 0;
  }
  if (positionals.length !== 1)
    throw new KillpathError(
      'invalid_request',
      'usage: killpath policy apply FILE [--comment TEXT] [--dry-run]',
    );
  const file = positionals[0]!;
  const source = readText(file, 'policy file');
  const local = parsePolicy(source);
  if (!local.ok) {
    printProblems(file, local.problems);
    return 2;
  }
  const api = clientFor(values);
  const r = await api.post<ApplyResult>('/v1/policy', {
    source,
    ...(values.comment ? { comment: values.comment } : {}),
    ...(values['dry-run'] ? { dryRun: true } : {}),
  });
  if (values.json) console.log(JSON.stringify(r, null, 2));
  else printApply(r, 'applied');
  return 0;
}

async function history(args: string[]): Promise<number> {
  const { values } = parse(args, {
    ...CONNECTION_OPTIONS,
    n: { type: 'string', short: 'n' },
    json: { type: 'boolean' },
  });
  if (values.help) {
    console.log(POLICY_HELP);
    return 0;
  }
  const limit = intFlag('n', values.n, 20);
  if (limit < 1 || limit > 1000) throw new KillpathError('invalid_request', '-n must be from 1 to 1000');
  const api = clientFor(values);
  const r = await api.get<{ active: number; total?: number; versions: Omit<PolicyVersion, 'source'>[] }>(
    `/v1/policy/history?limit=${limit}`,
  );
  if (values.json) {
    console.log(JSON.stringify(r, null, 2));
    return 0;
  }
  // The server counts the versions (an older server does not: versions are numbered from 1 and
  // never deleted, so the newest one's number is how many there are).
  const total = r.total ?? Math.max(r.active, ...r.versions.map((v) => v.version));
  console.log(
    `${r.versions.length} of ${total} version(s), newest first${r.versions.length < total ? `; -n ${Math.min(total, 1000)} lists ${total > 1000 ? 'the newest 1000' : 'them all'}` : ''}`,
  );
  console.log(
    table(
      ['version', 'applied', 'by', 'comment'],
      r.versions.map((v) => [
        `${v.version}${v.version === r.active ? ' *' : ''}`,
        v.createdAt,
        v.actor,
        `${v.rollbackOf ? `[rollback to v${v.rollbackOf}] ` : ''}${v.comment ?? ''}`,
      ]),
    ),
  );
  return 0;
}

async function rollback(args: string[]): Promise<number> {
  const { values, positionals } = parse(
    args,
    { ...CONNECTION_OPTIONS, reason: { type: 'string' }, json: { type: 'boolean' } },
    true,
  );
  if (values.help) {
    console.log(POLICY_HELP);
    return 0;
  }
  if (positionals.length !== 1 || !/^\d+$/.test(positionals[0]!))
    throw new KillpathError('invalid_request', 'usage: killpath policy rollback VERSION --reason TEXT');
  if (!values.reason || values.reason.trim() === '')
    throw new KillpathError('invalid_request', '--reason is required: every policy change is audited');
  const api = clientFor(values);
  const r = await api.post<ApplyResult>('/v1/policy/rollback', {
    version: Number(positionals[0]),
    comment: values.reason,
  });
  if (values.json) console.log(JSON.stringify(r, null, 2));
  else printApply(r, `rolled back to v${positionals[0]} as`);
  return 0;
}

async function check(args: string[]): Promise<number> {
  const { values, positionals } = parse(args, { help: { type: 'boolean', short: 'h' } }, true);
  if (values.help) {
    console.log(POLICY_HELP);
    return 0;
  }
  if (positionals.length !== 1)
    throw new KillpathError('invalid_request', 'usage: killpath policy check FILE');
  const r = parsePolicy(readText(positionals[0]!, 'policy file'));
  if (!r.ok) {
    printProblems(positionals[0]!, r.problems);
    return 2;
  }
  console.log(
    `valid: ${r.policy.rules.length} rules (${r.policy.rules.map((x) => `${x.name}${x.mode === 'shadow' ? ' [shadow]' : ''}`).join(', ')})`,
  );
  return 0;
}

async function test(args: string[]): Promise<number> {
  const { values, positionals } = parse(
    args,
    {
      help: { type: 'boolean', short: 'h' },
      events: { type: 'string' },
      expect: { type: 'string', multiple: true },
      json: { type: 'boolean' },
    },
    true,
  );
  if (values.help) {
    console.log(POLICY_HELP);
    return 0;
  }
  if (positionals.length !== 1 || !values.events)
    throw new KillpathError(
      'invalid_request',
      'usage: killpath policy test FILE --events JSONL [--expect RULE]…',
    );
  const file = positionals[0]!;
  const p = parsePolicy(readText(file, 'policy file'));
  if (!p.ok) {
    printProblems(file, p.problems);
    return 2;
  }
  for (const e of values.expect ?? []) {
    if (!p.policy.rules.some((r) => r.name === e))
      throw new KillpathError('invalid_request', `--expect ${e}: no such rule in ${file}`);
  }
  const updates = parseTelemetryLines(readText(values.events, 'events file'));
  const r = replayTelemetry(p.policy, updates);
  const missing = (values.expect ?? []).filter(
    (e) => (r.rules[e]?.fired ?? 0) + (r.rules[e]?.shadow ?? 0) === 0,
  );
  if (values.json) {
    console.log(JSON.stringify({ ...r, missing }, null, 2));
  } else {
    console.log(`# ${r.updates} run updates replayed against ${file}`);
    console.log(
      table(
        ['rule', 'mode', 'fired', 'errors'],
        p.policy.rules.map((x) => [
          x.name,
          x.mode,
          x.mode === 'shadow' ? r.rules[x.name]!.shadow : r.rules[x.name]!.fired,
          r.rules[x.name]!.errors ? `${r.rules[x.name]!.errors} (${r.rules[x.name]!.lastError})` : 0,
        ]),
      ),
    );
    if (r.fires.length > 0) {
      console.log('');
      const t0 = updates.length ? Math.min(...updates.map((u) => u.at)) : 0;
      console.log(
        table(
          ['at +s', 'rule', 'mode', 'would issue', 'values'],
          r.fires.map((f) => [
            ((f.receivedAt - t0) / 1000).toFixed(3),
            f.rule,
            f.mode,
            `${f.level ?? `held (${f.wanted})`} ${f.scope}`,
            Object.entries(f.values)
              .filter(([, v]) => v !== 0)
              .map(([k, v]) => `${k}=${v}`)
              .join(' '),
          ]),
        ),
      );
    }
    for (const m of missing) console.error(`expected rule ${m} to fire, it did not`);
  }
  return missing.length > 0 ? 1 : 0;
}
