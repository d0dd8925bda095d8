/**
 * Two answers the SDK reads on its hot paths are still read by hand, field by field, not with
 * their schemas: the permit answer (`asPermitResponse`, every permitted effect) and the heartbeat
 * answer (`asWorkerSettings`). Their types are derived from the schemas (`PermitResponseSchema`,
 * `WorkerSettingsSchema`); these cases pin where the hand readers and the schemas agree, and the
 * few places they differ on purpose: a hand reader falls back field by field to the safe value
 * (no cool-off reported means none to wait; a bad limit from the server means the worker's own
 * limit alone), where the schema refuses the whole answer.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { PermitResponseSchema, WorkerSettingsSchema } from '@killpath/protocol/schemas';
import { asPermitResponse } from '../src/control-calls.ts';
import { asWorkerSettings } from '../src/telemetry.ts';

const permit = {
  id: 'p1',
  rev: 3,
  runId: 'r1',
  capability: 'crm.update',
  class: 'write',
  idempotencyKey: null,
  status: 'granted',
  confirmAfter: null,
  coolOffMs: 0,
};

test('permit answers: the hand reader and PermitResponseSchema agree', () => {
  const agree = (body: unknown, accepted: boolean) => {
    const schema = PermitResponseSchema.safeParse(body);
    assert.equal(schema.success, accepted, `schema on ${JSON.stringify(body)}`);
    const hand = asPermitResponse(body);
    assert.equal(hand !== null, accepted, `hand reader on ${JSON.stringify(body)}`);
    if (accepted) assert.deepEqual(hand, schema.data);
  };
  agree({ permit, replay: false }, true);
  agree(
    { permit: { ...permit, status: 'cooling_off', coolOffMs: 250 }, replay: true, result: { id: 7 } },
    true,
  );
  agree(null, false);
  agree({ replay: false }, false);
  agree({ permit: { ...permit, id: 7 }, replay: false }, false);
  agree({ permit: { ...permit, rev: '3' }, replay: false }, false);
});

test('permit answers: where the hand reader falls back and the schema refuses', () => {
  const { coolOffMs: _c, ...noCoolOff } = permit;
  void _c;
  for (const [body, read] of [
    [
      { permit: noCoolOff, replay: false },
      { permit, replay: false },
    ],
    [
      { permit: { ...permit, coolOffMs: -5 }, replay: false },
      { permit, replay: false },
    ],
    [{ permit }, { permit, replay: false }],
  ] as const) {
    assert.equal(PermitResponseSchema.safeParse(body).success, false, JSON.stringify(body));
    assert.deepEqual(asPermitResponse(body), read);
  }
});

test('heartbeat answers: the hand reader and WorkerSettingsSchema agree', () => {
  const agree = (body: unknown, accepted: boolean) => {
    const schema = WorkerSettingsSchema.safeParse(body);
    assert.equal(schema.success, accepted, `schema on ${JSON.stringify(body)}`);
    const hand = asWorkerSettings(body);
    assert.equal(hand !== null, accepted, `hand reader on ${JSON.stringify(body)}`);
    if (accepted) assert.deepEqual(hand, schema.data);
  };
  agree({ heartbeatMs: 5000, limits: { maxSteps: 10, maxCostUsd: null } }, true);
  agree({ heartbeatMs: 5000, limits: { maxSteps: null, maxCostUsd: 2.5 }, extra: 1 }, true);
  agree({ heartbeatMs: 0, limits: { maxSteps: null, maxCostUsd: null } }, false);
  agree({ limits: { maxSteps: null, maxCostUsd: null } }, false);
  agree({ heartbeatMs: 5000, limits: null }, false);
  agree('5000', false);
});

test('heartbeat answers: where the hand reader falls back and the schema refuses', () => {
  for (const limits of [{ maxSteps: -1, maxCostUsd: null }, { maxSteps: '10', maxCostUsd: null }, {}]) {
    const body = { heartbeatMs: 5000, limits };
    assert.equal(WorkerSettingsSchema.safeParse(body).success, false, JSON.stringify(body));
    assert.deepEqual(asWorkerSettings(body), {
      heartbeatMs: 5000,
      limits: { maxSteps: null, maxCostUsd: null },
    });
  }
});
