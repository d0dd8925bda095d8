/**
 * The report bodies' checks without zod (`isAckReport`, `isHaltedReport`, `isWorkerReportBatch`)
 * accept only what their schemas accept, as is, and do accept the bodies workers send: the control
 * plane takes what a check accepts without asking the schema.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import type { z } from 'zod';
import {
  AckReportSchema,
  HaltedReportSchema,
  WorkerReportBatchSchema,
  isAckReport,
  isHaltedReport,
  isWorkerReportBatch,
} from '../src/schemas/index.ts';

/** Values a field may take: valid ones, values at and past each limit, and wrong types. */
/** Mostly valid values, sometimes one of `edges`. */
const mostly = <T>(valid: fc.Arbitrary<T>, edges: fc.Arbitrary<unknown>) =>
  fc.oneof({ weight: 9, arbitrary: valid }, { weight: 1, arbitrary: edges });
const count = mostly(
  fc.nat(),
  fc.constantFrom(0, -0, -1, 1.5, 2 ** 53 - 1, 2 ** 53, 1e20, Infinity, Number.NaN, '1', null, true),
);
const settle = mostly(
  fc.double({ min: 0, max: 1e6, noNaN: true }),
  fc.constantFrom(-0, -0.001, Infinity, -Infinity, Number.NaN, 1e308, '0', null),
);
const ident = mostly(
  fc.stringMatching(/^[A-Za-z0-9._:@-]{1,128}$/),
  fc.constantFrom('', 'a'.repeat(128), 'a'.repeat(129), 'has space', 'a/b', 'é', 7, null),
);
const runs = mostly(
  fc.array(ident, { maxLength: 4 }),
  fc.constantFrom(
    Array.from({ length: 500 }, (_, i) => `r${i}`),
    Array.from({ length: 501 }, (_, i) => `r${i}`),
    'r1',
    null,
    {},
  ),
);
const directiveRef = mostly(
  fc.string({ maxLength: 40 }),
  fc.constantFrom('x'.repeat(200), 'x'.repeat(201), 5, null),
);

/** An object of these fields, sometimes with one dropped, one added, or not an object at all. */
function shaped(fields: Record<string, fc.Arbitrary<unknown>>): fc.Arbitrary<unknown> {
  // As plain objects, as JSON.parse makes them (fast-check's records have no prototype).
  const base = fc.record(fields).map((o) => ({ ...o }));
  return fc.oneof(
    { weight: 6, arbitrary: base },
    {
      weight: 1,
      arbitrary: base.chain((o) =>
        fc.constantFrom(...Object.keys(o)).map((k) => {
          const { [k]: _dropped, ...rest } = o;
          return rest;
        }),
      ),
    },
    {
      weight: 1,
      arbitrary: fc
        .tuple(
          base,
          fc.constantFrom('extra', 'kind', '__proto__', 'constructor'),
          fc.constantFrom(1, 'x', null, {}, []),
        )
        .map(([o, k, v]) => JSON.parse(JSON.stringify({ ...o, [k]: v })) as unknown),
    },
    {
      weight: 1,
      arbitrary: fc.oneof(
        fc.constantFrom(null, [], 'body', 3),
        base.map((o) => [o]),
      ),
    },
  );
}

const haltedFields = {
  rev: count,
  directiveId: directiveRef,
  runs,
  aborted: count,
  completed: count,
  observeToSettleMs: settle,
};
const ack = shaped({ rev: count });
const halted = shaped(haltedFields);
const item = fc.oneof(
  shaped({ kind: fc.constantFrom('ack', 'halted', 'nack'), workerId: ident, rev: count }),
  shaped({ kind: fc.constantFrom('halted', 'ack'), workerId: ident, ...haltedFields }),
);
const batch = fc.oneof(
  shaped({ reports: fc.array(item, { minLength: 0, maxLength: 6 }) }),
  fc.constant({
    reports: Array.from({ length: 256 }, (_, i) => ({ kind: 'ack', workerId: `w${i}`, rev: i })),
  }),
  fc.constant({
    reports: Array.from({ length: 257 }, (_, i) => ({ kind: 'ack', workerId: `w${i}`, rev: i })),
  }),
);

/** Runs `check` against `schema` on `values`: never more than the schema, as is; returns how many it took. */
function agrees(check: (v: unknown) => boolean, schema: z.ZodType, values: fc.Arbitrary<unknown>): number {
  let accepted = 0;
  let schemaAccepted = 0;
  fc.assert(
    fc.property(values, (v) => {
      const parsed = schema.safeParse(v);
      if (parsed.success) schemaAccepted++;
      if (!check(v)) return;
      accepted++;
      assert.ok(parsed.success, `the check took what the schema refuses: ${JSON.stringify(v)}`);
      assert.deepEqual(parsed.data, v);
    }),
    { numRuns: 3000 },
  );
  // The generators reach both sides, and the check takes every body the schema takes here.
  assert.ok(accepted > 100, `only ${accepted} accepted`);
  assert.equal(accepted, schemaAccepted);
  return accepted;
}

describe('report checks without zod', () => {
  it('an ack body: only what AckReportSchema accepts', () => {
    agrees(isAckReport, AckReportSchema, ack);
  });

  it('a halted body: only what HaltedReportSchema accepts', () => {
    agrees(isHaltedReport, HaltedReportSchema, halted);
  });

  it('a batch of reports: only what WorkerReportBatchSchema accepts', () => {
    agrees(isWorkerReportBatch, WorkerReportBatchSchema, batch);
  });

  it('refuses what JSON can carry past the limits', () => {
    assert.equal(
      isHaltedReport(
        JSON.parse(
          '{"rev":1,"directiveId":"d","runs":[],"aborted":0,"completed":0,"observeToSettleMs":1e999}',
        ),
      ),
      false,
    );
    assert.equal(isAckReport(JSON.parse('{"rev":1,"__proto__":{}}')), false);
    assert.equal(isWorkerReportBatch({ reports: [] }), false);
    assert.equal(isWorkerReportBatch({ reports: [{ kind: 'halted', workerId: 'w', rev: 1 }] }), false);
  });
});
