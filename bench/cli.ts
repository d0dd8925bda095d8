/**
 * `npm run bench:cli`: how long `killpath kill` takes from process start to the committed
 * directive, beside `node -e 0` (process start to exit) measured in the same run on the same
 * machine, and their ratio (goal ≤ 2.5×). Printed, never asserted.
 *
 * A control plane runs in this process, so the commit's instant is its own (`flipTime`, the
 * monotonic clock of this process, taken right after the commit). Each trial spawns
 * `node packages/cli/bin/killpath.js kill --tenant bench --reason …` with KILLPATH_URL and
 * KILLPATH_TOKEN set (as an on-call would have them), measures spawn → commit, then resumes
 * the directive (not timed). Trials of the two commands alternate, so both see the same load.
 *
 * Environment: TRIALS (default 15), CLI_TRACE=1 (runs one more kill with
 * `--cpu-prof` into a temporary directory and says where it is), BENCH_CLI_BEFORE=PATH (another
 * build's `bin/killpath.js`, timed in the same trials: a before → after on the same load).
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startServer } from '@killpath/server';
import { ApiClient, ms, percentile, table } from '@killpath/cli';
import type { Directive } from '@killpath/protocol';

const TRIALS = Number(process.env.TRIALS ?? 15);
const BIN = fileURLToPath(new URL('../packages/cli/bin/killpath.js', import.meta.url));
const BEFORE = process.env.BENCH_CLI_BEFORE;

const dir = mkdtempSync(join(tmpdir(), 'killpath-bench-cli-'));
const server = await startServer({ dataDir: dir, port: 0, logLevel: 'warn' });
const cp = server.controlPlane;
const api = new ApiClient(server.url, server.createdAdminToken!);
const env = { ...process.env, KILLPATH_URL: server.url, KILLPATH_TOKEN: server.createdAdminToken! };

// The rev of each committed directive, in commit order: publish runs right after the commit.
const published: number[] = [];
const publish = cp.hub.publish.bind(cp.hub);
cp.hub.publish = (rev, change) => {
  if (change.issued !== undefined) published.push(rev);
  publish(rev, change);
};

/** Spawns `args`, resolves with the start instant (this process's monotonic clock) and the exit code. */
function run(args: string[]): Promise<{ start: number; exit: number; end: number; stderr: string }> {
  const start = performance.now();
  const child = spawn(process.execPath, args, { env, stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
  return new Promise((ok) =>
    child.once('exit', (code) => ok({ start, exit: code ?? -1, end: performance.now(), stderr })),
  );
}

async function killOnce(extra: string[] = [], bin = BIN): Promise<number> {
  const before = published.length;
  const r = await run([
    ...extra,
    bin,
    'kill',
    '--tenant',
    'bench',
    '--reason',
    'bench:cli trial',
    '--justification',
    'benchmark',
  ]);
  if (r.exit !== 0 || published.length !== before + 1)
    throw new Error(`killpath kill failed (exit ${r.exit}): ${r.stderr.trim()}`);
  const rev = published[before]!;
  const committed = cp.flipTime(rev)!;
  const { directives } = await api.get<{ directives: Directive[] }>('/v1/directives');
  for (const d of directives.filter((x) => x.rev === rev))
    await api.post(`/v1/directives/${d.id}/resume`, { justification: 'benchmark' });
  return committed - r.start;
}

console.log(`killpath bench:cli: ${TRIALS} trials each, node ${process.version}, ${process.arch}\n`);
const bare: number[] = [];
const kill: number[] = [];
const killBefore: number[] = [];
// One of each first, not counted: the disk cache warms for all.
await run(['-e', '0']);
await killOnce();
if (BEFORE !== undefined) await killOnce([], BEFORE);
for (let i = 0; i < TRIALS; i++) {
  const r = await run(['-e', '0']);
  bare.push(r.end - r.start);
  kill.push(await killOnce());
  if (BEFORE !== undefined) killBefore.push(await killOnce([], BEFORE));
}
const row = (name: string, v: number[]) => [
  name,
  `${v.length}`,
  ms(percentile(v, 50)),
  ms(percentile(v, 90)),
  ms(Math.min(...v)),
  ms(Math.max(...v)),
];
console.log(
  table(
    ['command', 'trials', 'p50', 'p90', 'min', 'max'],
    [
      row('node -e 0 (start → exit)', bare),
      row('killpath kill (start → commit)', kill),
      ...(BEFORE === undefined ? [] : [row(`  the same, ${BEFORE}`, killBefore)]),
    ],
  ),
);
console.log(
  `\nkillpath kill / node -e 0: ${(percentile(kill, 50) / percentile(bare, 50)).toFixed(2)}× at p50, ` +
    `${(Math.min(...kill) / Math.min(...bare)).toFixed(2)}× at the minimum (the least disturbed trial of each; goal ≤ 2.5×)`,
);
if (BEFORE !== undefined)
  console.log(
    `${BEFORE} / node -e 0: ${(percentile(killBefore, 50) / percentile(bare, 50)).toFixed(2)}× at p50, ` +
      `${(Math.min(...killBefore) / Math.min(...bare)).toFixed(2)}× at the minimum`,
  );
if (process.env.CLI_TRACE === '1') {
  const profDir = mkdtempSync(join(tmpdir(), 'killpath-cli-prof-'));
  await killOnce(['--cpu-prof', `--cpu-prof-dir=${profDir}`]);
  console.log(`profile of one more kill written to ${profDir}`);
}
await server.close();
rmSync(dir, { recursive: true, force: true });
