/**
 * What the SDK accepts from the stream is the protocol's schema of each frame
 * (`StreamMessageSchema`), the definition the control plane's types are derived from. Before
 * the schema, the SDK checked only "a JSON object with an integer rev" by hand; these cases pin
 * what it still accepts and what it now refuses (a frame whose directive is not a directive was
 * taken as one and misread by the gate; now it ends the stream with `invalid_request`, and the
 * stream loop resynchronises).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { before, test } from 'node:test';
import { streamDirective as stream } from '@killpath/protocol';
import { loadStreamSchema, toStreamMessage } from '../src/wire-answers.ts';
import { codeOf, directive, snapshot } from './fixtures.ts';

before(loadStreamSchema);

const json = (x: unknown) => JSON.stringify(x);
const refused = (event: string | undefined, data: string, why: RegExp) =>
  assert.throws(
    () => toStreamMessage(event, data),
    (err) => codeOf(err) === 'invalid_request' && why.test((err as Error).message),
  );

test('what the hand check refused is still refused', () => {
  refused('delta', '{oops', /not JSON/);
  refused('delta', '7', /not an object/);
  refused('delta', 'null', /not an object/);
  refused('delta', '[1]', /not an object/);
  refused('delta', json({ type: 'delta', rev: 'seven' }), /malformed at rev/);
  refused('keepalive', json({ rev: 1.5 }), /malformed at rev/);
  refused('keepalive', json({ rev: 2 ** 60 }), /malformed at rev/);
  refused('snapshot', json({ ...snapshot(1), rev: undefined }), /malformed at rev/);
});

test('what the hand check accepted and the schema accepts alike', () => {
  const d = directive('d1', 'halt', 'agent:t1/a1');
  // The type comes from the SSE event when the JSON has none; unknown types are skipped.
  assert.deepEqual(toStreamMessage('delta', json({ rev: 4, cleared: 'd1' })), {
    type: 'delta',
    rev: 4,
    cleared: 'd1',
  });
  assert.deepEqual(toStreamMessage('keepalive', json({ rev: 0 })), { type: 'keepalive', rev: 0 });
  assert.equal(toStreamMessage('telemetry', json({ rev: 1 })), null);
  assert.equal(toStreamMessage(undefined, json({ rev: 1 })), null);
  // The first servers sent no protocol version; a string version is read by its major.
  const { v: _v, ...unversioned } = snapshot(3, [d]);
  void _v;
  assert.deepEqual(toStreamMessage('snapshot', json(unversioned)), {
    ...unversioned,
    directives: [stream(d)],
  });
  assert.equal(toStreamMessage('snapshot', json({ ...snapshot(3), v: '1.4' }))?.type, 'snapshot');
});

test('fields a newer control plane adds are dropped, not refused', () => {
  const d = directive('d1', 'kill', 'tenant:t1');
  const got = toStreamMessage(
    'delta',
    json({ type: 'delta', rev: 2, issued: { ...stream(d), colour: 'red' }, hint: 1 }),
  );
  assert.deepEqual(got, { type: 'delta', rev: 2, issued: stream(d) });
});

test('a snapshot of a newer major protocol is passed on unchecked, for the handler to refuse by its version', () => {
  const newer = { type: 'snapshot', v: 2, rev: 1, switchboard: { whatever: true } };
  assert.deepEqual(toStreamMessage('snapshot', json(newer)), newer);
});

test('new: a frame whose directive is not a directive is refused (the hand check passed it on)', () => {
  const d = stream(directive('d1', 'halt', 'agent:t1/a1'));
  refused(
    'delta',
    json({ type: 'delta', rev: 2, issued: { ...d, level: 'pause' } }),
    /malformed at issued\.level/,
  );
  refused(
    'delta',
    json({ type: 'delta', rev: 2, issued: { ...d, scope: 'agent:t1/a1' } }),
    /malformed at issued\.scope/,
  );
  refused(
    'delta',
    json({ type: 'delta', rev: 2, issued: { ...d, capabilities: 'crm.update' } }),
    /at issued\.capabilities/,
  );
  refused(
    'snapshot',
    json({ ...snapshot(1), directives: [{ ...d, rev: undefined }] }),
    /at directives\.0\.rev/,
  );
  refused('snapshot', json({ ...snapshot(1), directives: null }), /at directives/);
  refused('snapshot', json({ ...snapshot(1), keepaliveMs: '1000' }), /at keepaliveMs/);
  refused('delta', json({ type: 'delta', rev: 2, replaced: 'd1' }), /at replaced/);
});

test('importing the SDK loads no zod: the frame schema is loaded when the first stream opens', () => {
  const r = spawnSync(
    process.execPath,
    [
      '--input-type=module',
      '-e',
      `import { registerHooks } from 'node:module';
       let zod = false;
       registerHooks({ resolve(s, c, next) { const r = next(s, c); if (/[\\\\/]zod[\\\\/]/.test(r.url)) zod = true; return r; } });
       const sdk = await import(${JSON.stringify(new URL('../src/index.ts', import.meta.url).href)});
       const before = zod;
       await (await import(${JSON.stringify(new URL('../src/wire-answers.ts', import.meta.url).href)})).loadStreamSchema();
       console.log(JSON.stringify({ before, after: zod, connect: typeof sdk.connect }));`,
    ],
    { encoding: 'utf8' },
  );
  assert.equal(r.status, 0, r.stderr);
  assert.deepEqual(JSON.parse(r.stdout), { before: false, after: true, connect: 'function' });
});
