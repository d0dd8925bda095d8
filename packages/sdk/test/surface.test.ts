/**
 * The capability surface in heartbeats: every capability the worker's runs declared
 * (`startRun({ capabilities })`) or checked and attempted, denied ones included, sorted and
 * deduplicated, so the control plane learns when an agent reaches for something new.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { HeartbeatReport } from '@killpath/protocol';
import { MAX_SURFACE } from '../src/run.ts';
import { directive, harness, snapshot } from './fixtures.ts';

const lastBeat = (t: { postsTo(s: string): { body: unknown }[] }) =>
  t.postsTo('/heartbeat').at(-1)?.body as HeartbeatReport | undefined;

test('a worker whose runs took no effect sends no capabilities', async () => {
  const { client, transport, stream } = await harness({ heartbeatMs: 1_000, leaseMs: 60_000 });
  client.startRun({ runId: 'r1' });
  await stream.push(snapshot(1));
  assert.equal(lastBeat(transport)?.capabilities, undefined);
  await client.close();
});

test('declared, checked, attempted and denied capabilities are reported, sorted and once each, and the set only grows', async () => {
  const { client, transport, stream, clock } = await harness({ heartbeatMs: 1_000, leaseMs: 60_000 });
  const run = client.startRun({ runId: 'r1', capabilities: ['search', 'llm'] });
  await stream.push(
    snapshot(1, [directive('d1', 'degrade', 'agent:t1/a1', { capabilities: ['wire_transfer'] })]),
  );
  assert.deepEqual(
    lastBeat(transport)?.capabilities,
    ['llm', 'search'],
    'the first heartbeat carries the declared ones',
  );

  await run.effect({ capability: 'llm', class: 'read' }, () => 1);
  // Revoked by the directive, and not granted to the run: both still part of what it reached for.
  await assert.rejects(run.effect('wire_transfer', () => 1));
  assert.equal(run.check('crm.update').kind, 'deny', 'not granted');
  run.check('llm');
  // A name the control plane would refuse in a heartbeat is kept out of it.
  run.check('not an identifier');
  clock.advance(1_000);
  assert.deepEqual(lastBeat(transport)?.capabilities, ['crm.update', 'llm', 'search', 'wire_transfer']);

  // A run that ended does not shrink the surface: it is what the worker did since it started.
  run.end();
  const other = client.startRun({ runId: 'r2' });
  other.check('http');
  clock.advance(1_000);
  assert.deepEqual(lastBeat(transport)?.capabilities, [
    'crm.update',
    'http',
    'llm',
    'search',
    'wire_transfer',
  ]);
  await client.close();
});

test('the surface is bounded: names made up per call cannot grow it past MAX_SURFACE', async () => {
  const { client, transport, stream, clock } = await harness({ heartbeatMs: 1_000, leaseMs: 60_000 });
  const run = client.startRun({ runId: 'r1' });
  await stream.push(snapshot(1));
  for (let i = 0; i < MAX_SURFACE + 50; i++) run.check(`tool-${i}`);
  clock.advance(1_000);
  assert.equal(lastBeat(transport)?.capabilities?.length, MAX_SURFACE);
  await client.close();
});
