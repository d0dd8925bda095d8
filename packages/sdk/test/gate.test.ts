import { test } from 'node:test';
import assert from 'node:assert/strict';
import { KillpathError } from '@killpath/protocol';
import { clear, codeOf, directive, harness, issue, reasonOf, snapshot } from './fixtures.ts';

test('a run scope covers the run and its descendants across processes, not its siblings', async () => {
  const { client, stream } = await harness();
  const root = client.startRun({ runId: 'root' });
  const child = root.startChild({ runId: 'child' });
  // A grandchild started in another process from the handle passed over the wire.
  const handle = JSON.parse(JSON.stringify(child.identity)) as { runId: string; lineage: string[] };
  const grandchild = client.startRun({ runId: 'grandchild', parent: handle });
  const sibling = root.startChild({ runId: 'sibling' });
  const other = client.startRun({ runId: 'other' });
  assert.deepEqual(grandchild.identity, { runId: 'grandchild', lineage: ['root', 'child'] });

  await stream.push(snapshot(1, [directive('d1', 'halt', 'run:child')]));
  assert.equal(reasonOf(child.check('llm')), 'halted');
  assert.equal(reasonOf(grandchild.check('llm')), 'halted');
  assert.equal(reasonOf(root.check('llm')), 'allow');
  assert.equal(reasonOf(sibling.check('llm')), 'allow');
  assert.equal(reasonOf(other.check('llm')), 'allow');
  const verdict = grandchild.check('llm');
  assert.equal(verdict.kind === 'deny' ? verdict.directive?.id : null, 'd1');
  await client.close();
});

test('a capability-narrowed directive denies only that capability', async () => {
  const { client, stream } = await harness();
  const run = client.startRun({ runId: 'r1' });
  await stream.push(
    snapshot(1, [directive('d1', 'halt', 'agent:t1/a1', { capabilities: ['wire_transfer'] })]),
  );
  assert.equal(reasonOf(run.check('wire_transfer')), 'halted');
  assert.equal(reasonOf(run.check('llm')), 'allow');
  await client.close();
});

test('kill dominates halt, whichever came first and however narrowed', async () => {
  const { client, stream } = await harness();
  const run = client.startRun({ runId: 'r1' });
  await stream.push(snapshot(1, [directive('k1', 'kill', 'run:r1', { rev: 1 })]));
  await stream.push(issue(2, directive('h1', 'halt', 'agent:t1/a1')));
  assert.equal(reasonOf(run.check('llm')), 'killed', 'a late halt does not downgrade a kill');

  await stream.push(clear(3, 'k1'));
  assert.equal(reasonOf(run.check('llm')), 'halted');
  await stream.push(issue(4, directive('k2', 'kill', 'tenant:t1', { capabilities: ['wire_transfer'] })));
  assert.equal(reasonOf(run.check('wire_transfer')), 'killed', 'a narrowed kill beats a run-wide halt');
  assert.equal(reasonOf(run.check('llm')), 'halted');
  await client.close();
});

test('clearing a directive allows again', async () => {
  const { client, stream } = await harness();
  const run = client.startRun({ runId: 'r1' });
  await stream.push(snapshot(1, [directive('d1', 'halt', 'agent:t1/a1')]));
  assert.equal(reasonOf(run.check('llm')), 'halted');
  await stream.push(clear(2, 'd1'));
  assert.equal(reasonOf(run.check('llm')), 'allow');
  await client.close();
});

test('a snapshot replaces the mirror wholesale', async () => {
  const { client, stream } = await harness();
  const run = client.startRun({ runId: 'r1' });
  await stream.push(snapshot(1, [directive('d1', 'halt', 'agent:t1/a1')]));
  await stream.push(snapshot(2, [directive('d2', 'halt', 'agent:t1/a1', { capabilities: ['http'] })]));
  assert.equal(reasonOf(run.check('llm')), 'allow');
  assert.equal(reasonOf(run.check('http')), 'halted');
  await client.close();
});

test('other tenants, agents and features do not cover the run; declared features do', async () => {
  const { client, stream } = await harness({ features: ['new-planner'] });
  const run = client.startRun({ runId: 'r1' });
  await stream.push(
    snapshot(1, [
      directive('d1', 'halt', 'tenant:t2', { tenant: 't2' }),
      directive('d2', 'halt', 'agent:t1/a2'),
      directive('d3', 'halt', 'feature:old-planner'),
      directive('d4', 'halt', 'run:r1', { tenant: 't2' }),
    ]),
  );
  assert.equal(reasonOf(run.check('llm')), 'allow');
  await stream.push(issue(2, directive('d5', 'halt', 'feature:new-planner')));
  assert.equal(reasonOf(run.check('llm')), 'halted');
  await client.close();
});

test('a run started after the flip is covered from its first check', async () => {
  const { client, stream } = await harness();
  await stream.push(snapshot(1, [directive('d1', 'halt', 'agent:t1/a1')]));
  const run = client.startRun({ runId: 'late' });
  assert.equal(reasonOf(run.check('llm')), 'halted');
  await client.close();
});

test('a denied effect never calls fn and rejects with code halted', async () => {
  const { client, stream, sink } = await harness();
  const run = client.startRun({ runId: 'r1' });
  await stream.push(snapshot(1, [directive('d1', 'kill', 'run:r1')]));
  let called = false;
  await assert.rejects(
    run.effect('wire_transfer', () => {
      called = true;
    }),
    (err) => {
      assert.equal(codeOf(err), 'halted');
      assert.deepEqual((err as KillpathError).details, { reason: 'killed', directiveId: 'd1' });
      return true;
    },
  );
  assert.equal(called, false);
  const denied = sink.ofType('effect.denied');
  assert.equal(denied.length, 1);
  assert.equal(denied[0]?.directiveId, 'd1');
  assert.equal(sink.ofType('effect.started').length, 0);
  await client.close();
});

test('before the first snapshot an effect is denied stale', async () => {
  const { client } = await harness();
  const run = client.startRun({ runId: 'r1' });
  let called = false;
  await assert.rejects(
    run.effect({ capability: 'search', class: 'read' }, () => {
      called = true;
    }),
    (err) => codeOf(err) === 'halted' && (err as KillpathError).details !== null,
  );
  assert.equal(called, false);
  await client.close();
});

test('startRun rejects malformed and duplicate run ids', async () => {
  const { client } = await harness();
  client.startRun({ runId: 'r1' });
  assert.throws(
    () => client.startRun({ runId: 'r1' }),
    (err) => codeOf(err) === 'conflict',
  );
  assert.throws(
    () => client.startRun({ runId: 'has/slash' }),
    (err) => codeOf(err) === 'invalid_request',
  );
  const generated = client.startRun();
  assert.match(generated.runId, /^[0-9a-f-]{36}$/);
  await client.close();
});
