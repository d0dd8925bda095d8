/**
 * The PostgreSQL test helper when the server is missing: under CI=true the file fails saying so;
 * elsewhere it is skipped with one plain line (a child `node --test` on a fixture whose helper
 * points at a port nothing listens on).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const FIXTURE = fileURLToPath(new URL('./fixtures/pg-missing.fixture.ts', import.meta.url));

function run(ci: boolean): { status: number | null; out: string } {
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    KILLPATH_TEST_PG: 'postgres://postgres@127.0.0.1:1/postgres',
  };
  delete env['CI'];
  // Not as a subtest of this run: a test file of its own, with its own exit code and report.
  delete env['NODE_TEST_CONTEXT'];
  if (ci) env['CI'] = 'true';
  const r = spawnSync(process.execPath, ['--test', '--test-reporter=tap', FIXTURE], {
    env,
    encoding: 'utf8',
  });
  return { status: r.status, out: r.stdout };
}

test('without PostgreSQL: CI=true fails saying it is not reachable; elsewhere one skip line', () => {
  const ci = run(true);
  assert.notEqual(ci.status, 0);
  assert.match(ci.out, /not ok 1 - PostgreSQL is reachable \(CI=true needs it\)/);
  assert.match(ci.out, /PostgreSQL is not reachable at 127\.0\.0\.1:1 \(user postgres\)/);
  assert.doesNotMatch(ci.out, /a PostgreSQL case/);
  const dev = run(false);
  assert.equal(dev.status, 0, dev.out);
  assert.match(
    dev.out,
    /ok 1 - PostgreSQL store # SKIP PostgreSQL is not reachable at 127\.0\.0\.1:1 \(user postgres\)/,
  );
  assert.match(dev.out, /# tests 1\n/);
  assert.match(dev.out, /# pass 0\n/);
});
