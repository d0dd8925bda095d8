import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { SdkEvent } from '@killpath/sdk';
import { SwitchboardWatcher } from '../src/index.ts';

const rev = (n: number): SdkEvent =>
  ({ type: 'rev.applied', rev: n, source: 'delta', issued: [], cleared: [], at: n }) as SdkEvent;

test('the watcher calls listeners after a change, once per burst, never inside the client, and chains the next sink', async () => {
  const seen: string[] = [];
  const watcher = new SwitchboardWatcher({ record: (e) => void seen.push(e.type) });
  let calls = 0;
  const off = watcher.onChange(() => void calls++);
  watcher.record(rev(1));
  watcher.record(rev(2));
  watcher.record({ type: 'lease.expired', sinceContactMs: 1, aborted: 0, at: 3 });
  assert.equal(calls, 0, 'not synchronously, inside the client applying the change');
  await Promise.resolve();
  assert.equal(calls, 1, 'one call for the burst');
  watcher.record({ type: 'run.ended', runId: 'r', at: 4 });
  await Promise.resolve();
  assert.equal(calls, 1, 'other events change nothing');
  off();
  watcher.record(rev(3));
  await Promise.resolve();
  assert.equal(calls, 1, 'a removed listener is not called');
  assert.deepEqual(seen, ['rev.applied', 'rev.applied', 'lease.expired', 'run.ended', 'rev.applied']);
});
