/**
 * The replicas' model test (see replicas-model.ts) on a fixed few seeds: three real replicas on a
 * fresh PostgreSQL database per sequence, random commands (issue, re-issue, resume, permit,
 * SIGKILL, restart, partition from the database, heal) checked against a sequential model.
 * `npm run soak` runs many more.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { dropLeftovers, requirePostgres } from '../../packages/server/test/pg.ts';
import { runReplicaModel } from './replicas-model.ts';

const available = await requirePostgres();
after(dropLeftovers);

test(
  'random command sequences on three replicas hold the model (fixed seeds)',
  { skip: !available, timeout: 110_000 },
  async () => {
    assert.equal(await runReplicaModel({ numRuns: 3, seed: 14, maxCommands: 10 }), 3);
  },
);
