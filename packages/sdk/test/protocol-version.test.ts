/**
 * The snapshot's protocol version (`v`): an SDK meeting a newer major protocol says so in one
 * log line naming both versions and fails closed (every check denies with that reason, no effect
 * runs, `ready` rejects); it never reads the newer switchboard as if it were its own.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { KillpathError, PROTOCOL_VERSION, protocolMajor } from '@killpath/protocol';
import type { SnapshotMessage } from '@killpath/protocol';
import { deferred, directive, harness, snapshot } from './fixtures.ts';

const newer = PROTOCOL_VERSION + 1;

function versioned(v: unknown, rev = 1): SnapshotMessage {
  return { ...snapshot(rev), v } as SnapshotMessage;
}

test('a snapshot of a newer major protocol: one log line naming both versions, checks deny with that reason, no effect runs', async () => {
  const lines: string[] = [];
  const { client, stream, sink, transport } = await harness({ logger: { warn: (m) => lines.push(m) } });
  client.ready.catch(() => {});
  const run = client.startRun({ runId: 'r1' });
  await stream.push(versioned(newer, 3));

  assert.equal(lines.length, 1, lines.join('\n'));
  assert.match(lines[0]!, new RegExp(`protocol v${newer}\\b.*SDK's v${PROTOCOL_VERSION}\\b`));
  assert.equal(client.rev, 0, 'the newer switchboard is not applied');
  assert.equal(client.connected, false);

  for (const cls of ['read', 'write', 'irreversible'] as const) {
    const v = run.check('crm.update', cls);
    assert.equal(v.kind, 'deny');
    assert.equal(v.kind === 'deny' && v.reason, 'stale');
    assert.match((v.kind === 'deny' && v.note) || '', /newer than this SDK/);
  }
  let ran = false;
  await assert.rejects(
    run.effect({ capability: 'search', class: 'read' }, () => {
      ran = true;
    }),
    (err) => err instanceof KillpathError && err.code === 'halted' && /protocol v2.*newer/.test(err.message),
  );
  assert.equal(ran, false, 'no effect runs');
  assert.equal(transport.postsTo('/v1/permits').length, 0);
  await assert.rejects(client.ready, (err) => {
    assert.ok(err instanceof KillpathError);
    assert.equal(err.code, 'unavailable');
    assert.deepEqual(err.details, { reason: 'protocol_version', server: newer, sdk: PROTOCOL_VERSION });
    return true;
  });
  assert.ok(stream.closed, 'the stream is dropped');
  assert.ok(sink.events.some((e) => e.type === 'stream.error' && e.fatal));

  // Whatever comes after (the same stream's queued messages, an older snapshot) opens nothing.
  assert.equal(run.check('search', 'read').kind, 'deny');
  await client.close();
});

test('a newer protocol met mid-run aborts the in-flight write and stops the run', async () => {
  const { client, stream, transport } = await harness({ logger: { warn: () => {} } });
  const run = client.startRun({ runId: 'r1' });
  await stream.push(snapshot(1));
  const gate = deferred<string>();
  const effect = run.effect({ capability: 'crm.update', class: 'write' }, (signal) => {
    signal.addEventListener('abort', () => gate.resolve('aborted'));
    return gate.promise;
  });
  while (transport.postsTo('/v1/permits').length === 0) await new Promise((r) => setImmediate(r));
  await new Promise((r) => setImmediate(r));
  const refused = assert.rejects(
    effect,
    (err) => err instanceof KillpathError && err.code === 'halted' && /newer than this SDK/.test(err.message),
  );
  client.ready.catch(() => {});
  await stream.push(versioned(newer, 2));
  await refused;
  assert.equal(run.signal.aborted, true);
  assert.equal(run.check('search', 'read').kind, 'deny');
  await client.close();
});

test('the same or an older protocol, or none at all (the first servers), is read as before', async () => {
  for (const v of [PROTOCOL_VERSION, `${PROTOCOL_VERSION}.4`, 0, undefined]) {
    const lines: string[] = [];
    const { client, stream } = await harness({ logger: { warn: (m) => lines.push(m) } });
    const run = client.startRun({ runId: 'r1' });
    await stream.push(versioned(v, 1));
    await client.ready;
    assert.equal(run.check('search', 'read').kind, 'allow', `v=${String(v)}`);
    assert.deepEqual(lines, []);
    await client.close();
  }
  const { client, stream } = await harness({ logger: { warn: () => {} } });
  const run = client.startRun({ runId: 'r1' });
  await stream.push({ ...snapshot(1, [directive('h1', 'halt', 'run:r1')]), v: PROTOCOL_VERSION });
  assert.equal(run.check('search', 'read').kind, 'deny');
  await client.close();
});

test('protocolMajor reads numbers and version strings; a missing version is none', () => {
  assert.equal(protocolMajor(1), 1);
  assert.equal(protocolMajor(2.3), 2);
  assert.equal(protocolMajor('3.0'), 3);
  assert.equal(protocolMajor('v4'), 4);
  assert.equal(protocolMajor(undefined), null);
  assert.equal(protocolMajor('x'), null);
  assert.equal(protocolMajor(Number.NaN), null);
});
