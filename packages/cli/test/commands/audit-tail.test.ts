/**
 * `killpath audit tail` as an on-call reads it: every text line names the run, tool, class and
 * status it concerns; `-n` larger than one API page is fetched page by page (never quietly cut
 * to 5,000); fewer records than asked says so; `--after SEQ --limit N` pages forward and prints
 * the command for the next page. A real control plane in this process answers.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { RunningServer } from '@killpath/server';
import type { AuditRecord } from '@killpath/protocol';
import { auditLine } from '../../src/commands/audit.ts';
import { cli } from '../cli-capture.ts';
import { startCliServer, type CliServer } from '../cli-server.ts';

describe('killpath audit tail', () => {
  let server: RunningServer;
  let fixture: CliServer | undefined;
  let conn: string[];
  let total = 0;
  before(async () => {
    fixture = await startCliServer('audit-tail');
    ({ server } = fixture);
    conn = ['--url', server.url, '--token', server.createdAdminToken!];
    const store = server.controlPlane.store;
    for (let batch = 0; batch < 13; batch++)
      await store.appendAudit(
        Array.from({ length: 500 }, (_, i) => ({
          type: 'effect.aborted',
          actor: 'worker:w-7a37ef9c',
          tenant: 'acme',
          data: {
            permitId: `p${batch}-${i}`,
            runId: `run-${batch}`,
            capability: 'crm.update',
            class: 'write',
            reason: 'halted in flight',
            directiveId: 'd_1',
          },
        })),
      );
    total = (await store.listAudit({ limit: 100_000 })).length;
  });
  after(async () => {
    await fixture?.close();
  });

  it('a text line names the run, tool, class, reason and directive', () => {
    const r: AuditRecord = {
      seq: 308213,
      ts: '2026-12-05T10:00:00.000Z',
      type: 'effect.aborted',
      actor: 'worker:7a37ef9c',
      tenant: 'acme',
      data: {
        runId: 'run-7',
        capability: 'crm.update',
        class: 'write',
        reason: 'halted',
        directiveId: 'd_9',
      },
      prevHash: '',
      hash: '',
    } as AuditRecord;
    assert.equal(
      auditLine(r),
      '#308213 2026-12-05T10:00:00.000Z effect.aborted by worker:7a37ef9c [acme] run=run-7 tool=crm.update class=write directive=d_9 reason=halted',
    );
  });

  it('-n 6000 prints 6000 records, oldest first, ending with the newest', async () => {
    const { code, out, err } = await cli(['audit', 'tail', '-n', '6000', ...conn]);
    assert.equal(code, 0);
    assert.equal(out.length, 6000, 'not cut to one page of 5000');
    // Issue 18: "N of M" (an admin's total is the chain's length, exact).
    const m =
      /^6000 of (\d+) records, the newest; older ones: killpath audit tail --after SEQ --limit N$/.exec(
        err.join('\n'),
      );
    assert.ok(m, err.join('\n'));
    assert.ok(Number(m[1]) >= total);
    const seqs = out.map((l) => Number(/^#(\d+) /.exec(l)![1]));
    // The control plane may append records of its own meanwhile (a signed checkpoint): the newest
    // printed is at least the newest seen before.
    assert.ok(seqs.at(-1)! >= total, `ends with the newest (${seqs.at(-1)} ≥ ${total})`);
    assert.equal(seqs[0], seqs.at(-1)! - 5999);
    assert.ok(
      seqs.every((s, i) => i === 0 || s === seqs[i - 1]! + 1),
      'no gap and no repeat across pages',
    );
  });

  it('asking for more than there are prints them all and says so', async () => {
    const { out, err } = await cli(['audit', 'tail', '-n', '100000', ...conn]);
    assert.ok(out.length >= total, `every record (${out.length} ≥ ${total})`);
    assert.equal(Number(/^#(\d+) /.exec(out[0]!)![1]), 1, 'from the first');
    assert.deepEqual(err, [`${out.length} records: all there are`]);
  });

  it('--after SEQ --limit N pages forward and names the next page', async () => {
    const { code, out, err } = await cli(['audit', 'tail', '--after', '100', '--limit', '50', ...conn]);
    assert.equal(code, 0);
    assert.deepEqual(
      out.map((l) => Number(/^#(\d+) /.exec(l)![1])),
      Array.from({ length: 50 }, (_, i) => 101 + i),
    );
    assert.deepEqual(err, [
      '50 records after #100 printed; more may follow: killpath audit tail --after 150 --limit 50',
    ]);
  });
});
