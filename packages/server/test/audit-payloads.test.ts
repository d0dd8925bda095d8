/**
 * Every audit record the control plane writes for an event with a typed payload matches that
 * payload's schema (`AUDIT_PAYLOADS` in `@killpath/protocol/schemas`): the one definition its
 * readers (CLI audit tail, console, drills, runbook) narrow to. The types catch a builder that
 * drifts at compile time (`satisfies AuditEventOf<…>`); this catches what is built by spreading
 * (launcher and journal events) and anything the types cannot see.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Directive } from '@killpath/protocol';
import { AUDIT_PAYLOADS, AuditRecordSchema, auditPayload } from '@killpath/protocol/schemas';
import type { AuditType } from '@killpath/protocol/schemas';
import { harness } from './harness.ts';

test('a permit, a halt, its halted report, launcher and journal events, a resume: every record matches its payload schema', async () => {
  const h = await harness();
  try {
    const op = await h.token('operator', 'acme', undefined, 'alice');
    const agent = await h.token('agent', 'acme', 'bot');
    const ok = async (res: Response, status: number) => {
      const text = await res.text();
      assert.equal(res.status, status, text);
      return text === '' ? null : (JSON.parse(text) as unknown);
    };
    await h.cp.claimLauncher({ tenant: 'acme', agent: 'bot' }, 'L');
    h.cp.fleet.connected('w1', 'acme', 'bot', []);
    await ok(
      await h.req('POST', '/v1/runs', {
        token: agent,
        body: { runId: 'r1', parentRunId: null, lineage: [], features: [], workerId: 'w1' },
      }),
      201,
    );
    const permit = await h.req('POST', '/v1/permits', {
      token: agent,
      body: {
        workerId: 'w1',
        runId: 'r1',
        lineage: [],
        features: [],
        capability: 'crm.update',
        class: 'write',
        idempotencyKey: 'k1',
        argsDigest: null,
        compensate: null,
      },
    });
    assert.ok(permit.status === 200 || permit.status === 201, await permit.clone().text());
    const { directive: halt } = (await ok(
      await h.req('POST', '/v1/directives', {
        token: op,
        body: {
          level: 'halt',
          scope: 'agent:acme/bot',
          reason: 'test',
          justification: 'INC-7',
        },
      }),
      201,
    )) as { directive: Directive };
    await ok(
      await h.req('POST', '/v1/workers/w1/halted', {
        token: agent,
        body: {
          rev: halt.rev,
          directiveId: halt.id,
          runs: ['r1'],
          aborted: 0,
          completed: 0,
          observeToSettleMs: 1,
        },
      }),
      204,
    );
    await ok(
      await h.req('POST', '/v1/launchers/L/events', {
        token: agent,
        body: {
          events: [
            { type: 'process.killed', directiveId: halt.id, pid: 7, signal: 'SIGTERM', ms: 3, pids: [7] },
            { type: 'egress.refused', destination: 'example.com:443' },
          ],
        },
      }),
      204,
    );
    await ok(
      await h.req('POST', '/v1/journal', {
        token: agent,
        body: {
          workerId: 'w1',
          events: [
            {
              type: 'timer.cancelled',
              runId: 'r1',
              timer: 'timeout',
              label: null,
              dueAt: 'x',
              directiveId: halt.id,
            },
            {
              type: 'in_flight_tool_calls.status',
              runId: 'r1',
              effectId: 'e1',
              permitId: null,
              capability: 'search',
              class: 'read',
              status: 'aborted',
              directiveId: halt.id,
            },
          ],
        },
      }),
      204,
    );
    const active = (await ok(await h.req('GET', '/v1/directives', { token: op }), 200)) as {
      directives: Directive[];
    };
    for (const d of active.directives)
      await ok(
        await h.req('POST', `/v1/directives/${d.id}/resume`, { token: op, body: { justification: 'fixed' } }),
        200,
      );
    await h.cp.flushAudit();

    const records = await h.store.listAudit({ limit: 10_000 });
    const seen = new Set<string>();
    for (const r of records) {
      assert.equal(
        AuditRecordSchema.safeParse(r).success,
        true,
        `record ${r.seq} (${r.type}) has the record shape`,
      );
      if (!(r.type in AUDIT_PAYLOADS)) continue;
      const type = r.type as AuditType;
      const checked = AUDIT_PAYLOADS[type].safeParse(r.data);
      assert.ok(checked.success, `${type} #${r.seq}: ${checked.success ? '' : checked.error.message}`);
      assert.deepEqual(auditPayload(r, type), r.data, `${type}: a valid payload reads back whole`);
      seen.add(type);
    }
    for (const t of [
      'operator_action',
      'directive.issued',
      'directive.cleared',
      'kill_switch.fired',
      'session.halted',
      'ledger.committed',
      'process.killed',
      'egress.refused',
      'timer.cancelled',
      'in_flight_tool_calls.status',
    ])
      assert.ok(seen.has(t), `the flow wrote ${t} (seen: ${[...seen].join(', ')})`);
  } finally {
    await h.close();
  }
});

test('a payload that is not its event is refused by its schema', () => {
  const record = { type: 'session.halted', data: { workerId: 'w1', directiveId: 'd1', rev: 'seven' } };
  assert.equal(auditPayload(record, 'session.halted'), null);
  assert.equal(auditPayload({ type: 'directive.issued', data: {} }, 'session.halted'), null);
});
