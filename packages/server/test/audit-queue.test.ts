import { test } from 'node:test';
import assert from 'node:assert/strict';
import { AuditQueue } from '../src/audit/audit-queue.ts';
import { createLogger } from '../src/log.ts';
import { Metrics } from '../src/metrics.ts';
import { SqliteStore } from '../src/store/sqlite-store.ts';
import type { Store } from '../src/store/store.ts';
import { grant } from './effects-contract.ts';
import { freshPgStore, requirePostgres } from './pg.ts';

const log = createLogger('silent');

/** Two runs' halted reports (and one other record) through the queue over a store whose `failing` step fails once. */
async function failOnceThenRetry(store: Store, failing: 'appendAudit' | 'recordHalted'): Promise<void> {
  const ds = await store.grantPermits([
    grant({ runId: 'r1', compensate: { action: 'refund', amount: 5 } }),
    grant({ runId: 'r2', compensate: { action: 'refund', amount: 9 } }),
  ]);
  for (const d of ds)
    if (d.kind === 'granted')
      await store.settlePermit(d.response.permit.id, { tenant: 'acme', agent: 'bot' }, { status: 'landed' });
  let fails = 1;
  const calls: string[] = [];
  const flaky = new Proxy(store, {
    get(target, prop, receiver) {
      const v = Reflect.get(target, prop, receiver) as unknown;
      if (typeof v !== 'function') return v;
      const f = (v as (...a: unknown[]) => Promise<unknown>).bind(target);
      if (prop !== 'appendAudit' && prop !== 'recordHalted') return f;
      return (...a: unknown[]) => {
        calls.push(prop);
        if (prop === failing && fails > 0) {
          fails--;
          return Promise.reject(new Error(`${prop} failed (test)`));
        }
        return f(...a);
      };
    },
  });
  const queue = new AuditQueue({ store: flaky, metrics: new Metrics(), log });
  const report = (runId: string) => ({
    type: 'session.halted',
    actor: 'w1',
    tenant: 'acme',
    data: { directiveId: 'd1', runs: [runId] },
  });
  queue.queue(report('r1'));
  queue.queue({ type: 'test.report', actor: 'w1', tenant: 'acme', data: {} });
  queue.queue(report('r2'));
  await queue.flush();
  assert.equal(fails, 0, `${failing} failed once`);
  await queue.flush();

  const records = (await store.listAudit({ limit: 100 })).filter(
    (r) => r.type === 'session.halted' || r.type === 'test.report',
  );
  assert.deepEqual(
    records.map((r) => [r.type, r.data.runs ?? null]),
    [
      ['session.halted', ['r1']],
      ['test.report', null],
      ['session.halted', ['r2']],
    ],
    'each record appended exactly once, in queue order',
  );
  const halted = await store.compensationsPage({ tenant: 'acme', limit: 100, cursor: null });
  assert.deepEqual(halted.items.map((c) => [c.runId, c.haltedBy]).sort(), [
    ['r1', 'd1'],
    ['r2', 'd1'],
  ]);
  assert.deepEqual(
    calls,
    failing === 'recordHalted'
      ? ['appendAudit', 'recordHalted', 'recordHalted']
      : ['appendAudit', 'appendAudit', 'recordHalted'],
    'the retry resumes at the step that failed',
  );
}

const backends: [string, () => Promise<Store>][] = [['SQLite', async () => new SqliteStore(':memory:')]];
if (await requirePostgres()) backends.push(['PostgreSQL', () => freshPgStore('auditq')]);

for (const [name, open] of backends) {
  for (const failing of ['recordHalted', 'appendAudit'] as const) {
    test(`${name}: when ${failing} fails once, the retry writes each audit record once and every halted row`, async () => {
      const store = await open();
      try {
        await failOnceThenRetry(store, failing);
      } finally {
        await store.close();
      }
    });
  }
}
