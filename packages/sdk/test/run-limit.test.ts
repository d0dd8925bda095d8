/**
 * A worker never hosts more runs than one heartbeat may report (MAX_RUNS_PER_HEARTBEAT): the
 * control plane answers 400 to a bigger heartbeat, and a worker whose heartbeats are refused
 * would lose its lease with no clear cause. The run that would exceed the cap is refused before
 * anything is registered, with a KillpathError that names the limit and what to do.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { KillpathError, MAX_RUNS_PER_HEARTBEAT } from '@killpath/protocol';
import type { HeartbeatReport } from '@killpath/protocol';
import { codeOf, harness, snapshot } from './fixtures.ts';

test(`the run past ${MAX_RUNS_PER_HEARTBEAT} on one worker is refused before it is registered; the heartbeat stays within the cap`, async () => {
  const { client, transport, stream, clock } = await harness({ heartbeatMs: 5_000, leaseMs: 60_000 });
  await stream.push(snapshot(1));
  const runs = Array.from({ length: MAX_RUNS_PER_HEARTBEAT }, (_, i) => client.startRun({ runId: `r${i}` }));
  const registered = () => transport.postsTo('/v1/runs').length;
  const before = registered();
  assert.throws(
    () => client.startRun({ runId: 'one-too-many' }),
    (err) => {
      assert.ok(err instanceof KillpathError);
      assert.equal(err.code, 'invalid_request');
      assert.match(err.message, new RegExp(`\\b${MAX_RUNS_PER_HEARTBEAT}\\b`));
      assert.match(err.message, /start another worker/);
      assert.deepEqual(err.details, {
        reason: 'worker_full',
        limit: MAX_RUNS_PER_HEARTBEAT,
        runs: MAX_RUNS_PER_HEARTBEAT,
      });
      return true;
    },
  );
  // A child run and a resumed run count the same: refused, and the resume never asked the control plane.
  assert.throws(
    () => runs[0]!.startChild({ runId: 'child' }),
    (err) => codeOf(err) === 'invalid_request',
  );
  await assert.rejects(client.resumeRun('old-run'), (err) => codeOf(err) === 'invalid_request');
  assert.equal(transport.postsTo('/resume').length, 0);
  assert.equal(registered(), before, 'nothing registered for the refused runs');
  clock.advance(5_000);
  const beat = transport.postsTo('/heartbeat').at(-1)?.body as HeartbeatReport;
  assert.equal(beat.runs.length, MAX_RUNS_PER_HEARTBEAT);
  assert.ok(!beat.runs.some((r) => ['one-too-many', 'child', 'old-run'].includes(r.runId)));
  // A run that ended and drained leaves room for one more.
  runs[1]!.end();
  assert.doesNotThrow(() => client.startRun({ runId: 'one-more' }));
  await client.close();
});
