/**
 * `killpath policy history -n N` says how many versions it shows of how many there are, newest
 * first, and how to list them all: never a silent cut. A real control plane in this process.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { DEFAULT_POLICY } from '@killpath/server';
import { ApiClient } from '../../src/api.ts';
import { cli } from '../cli-capture.ts';
import { startCliServer, type CliServer } from '../cli-server.ts';

describe('killpath policy history', () => {
  let s: CliServer;
  before(async () => {
    s = await startCliServer('policy-history');
    const admin = new ApiClient(s.url, s.token);
    for (const n of [1, 2, 3])
      await admin.post('/v1/policy', {
        source: `${DEFAULT_POLICY}\n# change ${n}\n`,
        comment: `change ${n}`,
      });
  });
  after(async () => {
    await s?.close();
  });

  it('"N of M version(s), newest first" and the -n that lists them all', async () => {
    const all = await cli(['policy', 'history', '--json', ...s.conn]);
    const total = (JSON.parse(all.out.join('\n')) as { versions: unknown[] }).versions.length;
    assert.ok(total >= 3);
    const two = await cli(['policy', 'history', '-n', '2', ...s.conn]);
    assert.equal(two.code, 0, two.err.join('\n'));
    assert.equal(two.out[0], `2 of ${total} version(s), newest first; -n ${total} lists them all`);
    const every = await cli(['policy', 'history', '-n', String(total), ...s.conn]);
    assert.equal(every.out[0], `${total} of ${total} version(s), newest first`);
  });
});
