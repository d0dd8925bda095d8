import { test } from 'node:test';
import assert from 'node:assert/strict';
import { withJoinedSignal } from '../src/join-signal.ts';

test('the joined signal aborts with the first reason, and no listener outlives the call', async () => {
  const parent = new AbortController();
  const call = new AbortController();
  let added = 0;
  let removed = 0;
  const add = parent.signal.addEventListener.bind(parent.signal);
  const remove = parent.signal.removeEventListener.bind(parent.signal);
  parent.signal.addEventListener = ((...a: Parameters<typeof add>) => (added++, add(...a))) as typeof add;
  parent.signal.removeEventListener = ((...a: Parameters<typeof remove>) => (
    removed++,
    remove(...a)
  )) as typeof remove;
  const seen = await withJoinedSignal(parent.signal, call.signal, async (s) => {
    call.abort('by caller');
    return [s.aborted, s.reason] as const;
  });
  assert.deepEqual(seen, [true, 'by caller']);
  assert.equal(added, 1);
  assert.equal(removed, 1, 'the long-lived parent keeps no listener');
  await withJoinedSignal(parent.signal, undefined, async (s) => assert.equal(s, parent.signal));
  const already = new AbortController();
  already.abort('early');
  await withJoinedSignal(already.signal, new AbortController().signal, async (s) =>
    assert.equal(s.reason, 'early'),
  );
});
