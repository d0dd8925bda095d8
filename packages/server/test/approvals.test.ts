/**
 * One person stops, two people resume: approval rules in the policy turn a wide or break-glass
 * resume (and a policy change) into a pending request that a distinct, eligible principal
 * approves within the rule's window; every refusal is audited. Break-glass attestations are
 * recorded (who, when, why) and alerted at once.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { Alert, AlertSink } from '../src/notify.ts';
import type { ApprovalRequest, Directive, Role } from '@killpath/protocol';
import { streamDirective } from '@killpath/protocol';
import { Authenticator, mintToken } from '../src/auth/tokens.ts';
import { ControlPlane } from '../src/control-plane.ts';
import { Fleet } from '../src/fleet.ts';
import { createApp } from '../src/http/app.ts';
import { createLogger } from '../src/log.ts';
import { Metrics } from '../src/metrics.ts';
import { DEFAULT_POLICY } from '../src/policy/default-policy.ts';
import { compilePolicy, parsePolicy } from '../src/policy/policy.ts';
import { SqliteStore } from '../src/store/sqlite-store.ts';
import { StreamHub } from '../src/stream/hub.ts';
import { Triggers } from '../src/triggers.ts';
import { expectWireError } from './harness.ts';

const RULES = `
approvals:
  - name: global_resume
    description: resuming everything, or a break-glass order, takes two admins
    action: resume
    scopes: [global]
    breakGlass: true
    approvals: 2
    approvers: admin
    within: 15m
    contact: "the incident commander"
  - name: tenant_resume
    action: resume
    scopes: [tenant]
    approvals: 1
    approvers: admin
    within: 15m
    contact: "platform on-call lead, #platform-oncall"
`;

const T0 = Date.parse('2026-06-01T12:00:00.000Z');

async function world(extra = '') {
  const store = new SqliteStore(':memory:');
  const alerts: Alert[] = [];
  const sink: AlertSink = { notify: (a) => void alerts.push({ ...a, at: new Date().toISOString() }) };
  const log = createLogger('silent');
  const hub = new StreamHub(60_000, 0);
  const cp = new ControlPlane({
    store,
    hub,
    fleet: new Fleet(),
    metrics: new Metrics(),
    log,
    alerts: sink,
    keepaliveMs: 60_000,
  });
  await cp.start();
  let now = T0;
  const triggers = await Triggers.start(cp, log, {
    supervisor: false,
    watchdog: false,
    policyFile: { path: 'test.yaml', source: `${DEFAULT_POLICY}${RULES}${extra}` },
    now: () => now,
  });
  const app = createApp(cp, new Authenticator(store, { now: () => now }), log, triggers);
  const token = async (role: Role, tenant: string, name: string) =>
    (await mintToken(store, { role, tenant, name }, 'test')).secret;
  const req = async (method: string, path: string, tok: string, body?: unknown) =>
    app.request(path, {
      method,
      headers: {
        authorization: `Bearer ${tok}`,
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
  const issue = async (tok: string, scope: string, extraBody: Record<string, unknown> = {}) => {
    const r = await req('POST', '/v1/directives', tok, {
      level: 'halt',
      scope,
      reason: 'r',
      justification: 'INC-1',
      ...extraBody,
    });
    assert.equal(r.status, 201, await r.clone().text());
    return ((await r.json()) as { directive: Directive }).directive;
  };
  const types = async () => (await store.listAudit({ limit: 1000 })).map((r) => r.type);
  return {
    store,
    cp,
    triggers,
    alerts,
    token,
    req,
    issue,
    types,
    tick: (ms: number) => void (now += ms),
    async close() {
      await triggers.close();
      hub.close();
      cp.stop();
      await store.close();
    },
  };
}

describe('approval rules in the policy', () => {
  test('the default policy has none; a resume rule must cover something; windows are bounded', () => {
    assert.deepEqual(compilePolicy(DEFAULT_POLICY).approvals, []);
    const compiled = compilePolicy(`${DEFAULT_POLICY}${RULES}`).approvals;
    assert.deepEqual(
      compiled.map((r) => [r.name, r.scopes, r.breakGlass, r.approvals, r.approvers, r.withinMs, r.contact]),
      [
        ['global_resume', ['global'], true, 2, 'admin', 900_000, 'the incident commander'],
        ['tenant_resume', ['tenant'], false, 1, 'admin', 900_000, 'platform on-call lead, #platform-oncall'],
      ],
    );
    const bad = parsePolicy(`${DEFAULT_POLICY}
approvals:
  - { name: a, action: resume, within: 15m }
  - { name: b, action: policy.apply, scopes: [tenant], within: 15m }
  - { name: c, action: resume, scopes: [tenant], within: 10s }
  - { name: e, action: token.create_admin, within: 15m }
`);
    assert.deepEqual(bad.ok ? [] : bad.problems.map((p) => p.path), [
      'approvals[0]',
      'approvals[1]',
      'approvals[2].within',
      'approvals[3].action',
    ]);
    const unknown = parsePolicy(`${DEFAULT_POLICY}
approvals:
  - { name: d, action: resume, scopes: [planet], within: 15m }
`);
    assert.deepEqual(unknown.ok ? [] : unknown.problems.map((p) => p.path), ['approvals[0].scopes[0]']);
  });
});

describe('two people resume', () => {
  test('a tenant-wide resume becomes a request; self-approval, an ineligible role and another target are refused and audited; an admin completes it', async () => {
    const w = await world();
    try {
      const opA = await w.token('operator', 'acme', 'olga');
      const opA2 = await w.token('operator', 'acme', 'oscar');
      const admin = await w.token('admin', '*', 'ada');
      // Below the rule's scopes: one person, at once.
      const agentHalt = await w.issue(opA, 'agent:acme/bot');
      const direct = await w.req('POST', `/v1/directives/${agentHalt.id}/resume`, opA, {
        justification: 'fixed',
      });
      assert.equal(direct.status, 200);
      // Stopping is never gated.
      const d = await w.issue(opA, 'tenant:acme');
      const other = await w.issue(opA, 'agent:acme/other');
      const asked = await w.req('POST', `/v1/directives/${d.id}/resume`, opA, {
        justification: 'cause fixed',
      });
      assert.equal(asked.status, 202);
      const { approval } = (await asked.json()) as { approval: ApprovalRequest; created: boolean };
      assert.deepEqual(
        [
          approval.state,
          approval.target,
          approval.targetRev,
          approval.rule,
          approval.needed,
          approval.requestedBy,
        ],
        ['pending', d.id, d.rev, 'tenant_resume', 1, 'olga'],
      );
      assert.equal(approval.expiresAt, new Date(T0 + 900_000).toISOString());
      assert.equal(approval.contact, 'platform on-call lead, #platform-oncall');
      assert.ok(
        w.cp.active().some((x) => x.id === d.id),
        'still in force while pending',
      );
      const alert = w.alerts.find((a) => a.kind === 'resume.requested');
      assert.match(alert?.summary ?? '', new RegExp(`killpath approve ${approval.id}`));
      // Asking again returns the same pending request.
      const again = (await (
        await w.req('POST', `/v1/directives/${d.id}/resume`, opA, { justification: 'cause fixed' })
      ).json()) as { approval: ApprovalRequest; created: boolean };
      assert.deepEqual([again.approval.id, again.created], [approval.id, false]);
      const approve = (tok: string, body: Record<string, unknown> = {}) =>
        w.req('POST', `/v1/approvals/${approval.id}/approve`, tok, {
          justification: 'looked at it',
          ...body,
        });
      assert.match(await expectWireError(await approve(opA), 403, 'forbidden', 'self'), /second person/);
      assert.match(await expectWireError(await approve(opA2), 403, 'forbidden', 'ineligible'), /an admin/);
      assert.match(
        await expectWireError(
          await approve(admin, { target: other.id }),
          409,
          'conflict',
          'different request',
        ),
        /an approval is for one request/,
      );
      await expectWireError(await approve(admin, { targetRev: d.rev + 1 }), 409, 'conflict', 'a later rev');
      await expectWireError(
        await w.req('POST', `/v1/approvals/${approval.id}/approve`, await w.token('agent', 'acme', 'bot'), {
          justification: 'x',
        }),
        403,
        'forbidden',
        'agents',
      );
      const done = await approve(admin, { target: d.id, targetRev: d.rev });
      assert.equal(done.status, 200, await done.clone().text());
      const r = (await done.json()) as { approval: ApprovalRequest; result: { directive: Directive } };
      assert.equal(r.approval.state, 'approved');
      assert.deepEqual(
        r.approval.approvals.map((a) => a.by),
        ['ada'],
      );
      assert.equal(r.result.directive.id, d.id);
      assert.ok(r.result.directive.clearedRev !== null);
      assert.ok(!w.cp.active().some((x) => x.id === d.id));
      await expectWireError(await approve(await w.token('admin', '*', 'bob')), 409, 'conflict', 'settled');
      const records = await w.store.listAudit({ limit: 1000 });
      const seq = (type: string) => records.filter((x) => x.type === type).map((x) => x.seq);
      assert.equal(seq('resume.requested').length, 1);
      assert.deepEqual(
        records.filter((x) => x.type === 'approval.refused').map((x) => x.data.why),
        ['self', 'ineligible', 'different_request', 'different_request', 'settled'],
      );
      const approved = seq('resume.approved');
      const cleared = records.filter((x) => x.type === 'directive.cleared' && x.data.directiveId === d.id);
      assert.equal(approved.length, 1);
      assert.equal(cleared.length, 1);
      assert.ok(approved[0]! < cleared[0]!.seq, 'resume.approved, then directive.cleared');
      assert.deepEqual(cleared[0]!.data.approvedBy, ['ada']);
      assert.equal(cleared[0]!.actor, 'olga', 'cleared as its requester');
    } finally {
      await w.close();
    }
  });

  test('break-glass: recorded who, when, why; alerted at once; its resume needs two distinct admins, a duplicate is refused', async () => {
    const w = await world();
    try {
      const ada = await w.token('admin', '*', 'ada');
      const bob = await w.token('admin', '*', 'bob');
      const cy = await w.token('admin', '*', 'cy');
      const d = await w.issue(ada, 'global', { breakGlass: 'INC-9: runaway fleet, approved by the CTO' });
      assert.deepEqual(
        { ...d.breakGlass, at: 'x', tokenId: 'x' },
        { by: 'ada', at: 'x', tokenId: 'x', why: 'INC-9: runaway fleet, approved by the CTO' },
      );
      assert.ok(Math.abs(Date.parse(d.breakGlass!.at) - Date.parse(d.issuedAt)) < 5000);
      assert.equal((await w.store.getDirective(d.id))?.breakGlass?.why, d.breakGlass!.why, 'stored');
      assert.ok(!('breakGlass' in streamDirective(d)), 'workers are not sent the attestation');
      const bg = w.alerts.filter((a) => a.kind === 'break_glass');
      assert.equal(bg.length, 1);
      assert.match(bg[0]!.summary, /ada issued halt at global .*INC-9/);
      const asked = await w.req('POST', `/v1/directives/${d.id}/resume`, ada, {
        justification: 'contained',
        breakGlass: 'INC-9 closed',
      });
      assert.equal(asked.status, 202);
      const { approval } = (await asked.json()) as { approval: ApprovalRequest };
      assert.deepEqual([approval.rule, approval.needed], ['global_resume', 2]);
      const approve = (tok: string) =>
        w.req('POST', `/v1/approvals/${approval.id}/approve`, tok, { justification: 'agreed' });
      const first = (await (await approve(bob)).json()) as { approval: ApprovalRequest; result?: unknown };
      assert.deepEqual(
        [first.approval.state, first.approval.approvals.length, first.result],
        ['pending', 1, undefined],
      );
      assert.ok(
        w.cp.active().some((x) => x.id === d.id),
        'one approval of two: still in force',
      );
      assert.match(
        await expectWireError(await approve(bob), 409, 'conflict', 'duplicate'),
        /already approved/,
      );
      const second = (await (await approve(cy)).json()) as { approval: ApprovalRequest };
      assert.equal(second.approval.state, 'approved');
      assert.equal(w.cp.active().length, 0);
    } finally {
      await w.close();
    }
  });

  test('an expired request is refused and audited; a request cannot be replayed onto the directive that replaced its own', async () => {
    const w = await world();
    try {
      const olga = await w.token('operator', 'acme', 'olga');
      const ada = await w.token('admin', '*', 'ada');
      const d1 = await w.issue(olga, 'tenant:acme');
      const r1 = (await (
        await w.req('POST', `/v1/directives/${d1.id}/resume`, olga, { justification: 'fixed' })
      ).json()) as { approval: ApprovalRequest };
      w.tick(15 * 60_000);
      assert.match(
        await expectWireError(
          await w.req('POST', `/v1/approvals/${r1.approval.id}/approve`, ada, { justification: 'ok' }),
          409,
          'conflict',
          'expired',
        ),
        /expired/,
      );
      const shown = (await (await w.req('GET', `/v1/approvals/${r1.approval.id}`, ada)).json()) as {
        approval: ApprovalRequest;
      };
      assert.equal(shown.approval.state, 'expired');
      assert.ok(w.cp.active().some((x) => x.id === d1.id));
      // Stepping it down would loosen it one level at a time to a throttle that refuses nothing:
      // one person may not, where resuming it takes two.
      const down = await w.req('POST', `/v1/directives/${d1.id}/step`, olga, {
        direction: 'down',
        justification: 'loosen it myself',
      });
      assert.match(
        await expectWireError(down, 403, 'forbidden', 'step down of a gated stop'),
        /needs approval \(rule tenant_resume\): resume it instead/,
      );
      assert.ok(
        w.cp.active().some((x) => x.id === d1.id && x.level === 'halt'),
        'the halt stays as it was',
      );
      // A fresh request, then the directive is stepped up: a new directive (id, rev) replaces it.
      const r2 = (await (
        await w.req('POST', `/v1/directives/${d1.id}/resume`, olga, { justification: 'fixed now' })
      ).json()) as { approval: ApprovalRequest };
      const stepped = await w.req('POST', `/v1/directives/${d1.id}/step`, olga, {
        direction: 'up',
        justification: 'worse',
      });
      assert.equal(stepped.status, 201);
      const d2 = ((await stepped.json()) as { directive: Directive }).directive;
      await expectWireError(
        await w.req('POST', `/v1/approvals/${r2.approval.id}/approve`, ada, { justification: 'ok' }),
        409,
        'conflict',
        'replay onto a later directive',
      );
      assert.ok(
        w.cp.active().some((x) => x.id === d2.id),
        'the later directive stays in force',
      );
      const after = (await (await w.req('GET', `/v1/approvals/${r2.approval.id}`, ada)).json()) as {
        approval: ApprovalRequest;
      };
      assert.equal(after.approval.state, 'failed');
      assert.match(after.approval.outcome ?? '', /already cleared/);
      const refused = (await w.store.listAudit({ types: ['approval.refused'] })).map((r) => r.data.why);
      assert.deepEqual(refused, ['expired']);
      const pending = (await (await w.req('GET', '/v1/approvals?state=pending', ada)).json()) as {
        approvals: ApprovalRequest[];
        total: number;
      };
      assert.deepEqual(pending.approvals, []);
      // Issue 18: the total counts what the caller may see under the same state; not another tenant's.
      assert.equal(pending.total, 0);
      type Listed = { approvals: ApprovalRequest[]; total: number };
      const expired = (await (await w.req('GET', '/v1/approvals?state=expired', olga)).json()) as Listed;
      assert.deepEqual([expired.total, expired.approvals.map((a) => a.id)], [1, [r1.approval.id]]);
      const all = (await (await w.req('GET', '/v1/approvals?state=failed&limit=1', ada)).json()) as Listed;
      assert.equal(all.total, all.approvals.length);
      const globex = await w.token('operator', 'globex', 'gus');
      const seenByGlobex = (await (
        await w.req('GET', '/v1/approvals?state=expired', globex)
      ).json()) as Listed;
      assert.deepEqual([seenByGlobex.total, seenByGlobex.approvals], [0, []]);
    } finally {
      await w.close();
    }
  });

  test('policy apply can be gated the same way: pending until another admin approves', async () => {
    const gate = `  - name: policy_change
    action: policy.apply
    approvals: 1
    approvers: admin
    within: 30m
`;
    const w = await world(gate);
    try {
      const ada = await w.token('admin', '*', 'ada');
      const bob = await w.token('admin', '*', 'bob');
      const before = w.triggers.policy.current.version;
      const source = `${DEFAULT_POLICY}${RULES}${gate}`.replace(
        'tool_error_rate: 0.3',
        'tool_error_rate: 0.4',
      );
      const asked = await w.req('POST', '/v1/policy', ada, { source, comment: 'looser error rate' });
      assert.equal(asked.status, 202, await asked.clone().text());
      const { approval } = (await asked.json()) as { approval: ApprovalRequest };
      assert.equal(w.triggers.policy.current.version, before, 'not applied yet');
      // A policy change spans every tenant: a tenant's operator neither lists nor reads its request.
      const olga = await w.token('operator', 'acme', 'olga');
      const listed = (await (await w.req('GET', '/v1/approvals', olga)).json()) as {
        approvals: ApprovalRequest[];
      };
      assert.deepEqual(listed.approvals, [], 'not listed to a tenant');
      await expectWireError(await w.req('GET', `/v1/approvals/${approval.id}`, olga), 404, 'not_found');
      await expectWireError(
        await w.req('POST', `/v1/approvals/${approval.id}/approve`, ada, { justification: 'mine' }),
        403,
        'forbidden',
      );
      const ok = await w.req('POST', `/v1/approvals/${approval.id}/approve`, bob, {
        justification: 'reviewed',
      });
      assert.equal(ok.status, 200, await ok.clone().text());
      assert.equal(w.triggers.policy.current.version, before + 1);
      assert.equal(w.triggers.policy.current.actor, 'ada', 'applied as its requester');
      assert.ok((await w.types()).includes('approval.approved'));

      // A change asked for over one version is never applied over a later one.
      const looser = source.replace('tool_error_rate: 0.4', 'tool_error_rate: 0.5');
      const stale = (await (
        await w.req('POST', '/v1/policy', ada, { source: looser, comment: 'looser still' })
      ).json()) as { approval: ApprovalRequest };
      const meanwhile = source.replace('tool_error_rate: 0.4', 'tool_error_rate: 0.35');
      const other = (await (
        await w.req('POST', '/v1/policy', bob, { source: meanwhile, comment: 'tighter' })
      ).json()) as { approval: ApprovalRequest };
      assert.equal(
        (await w.req('POST', `/v1/approvals/${other.approval.id}/approve`, ada, { justification: 'ok' }))
          .status,
        200,
      );
      const applied = w.triggers.policy.current.version;
      await w.req('POST', `/v1/approvals/${stale.approval.id}/approve`, bob, { justification: 'ok' });
      assert.equal(w.triggers.policy.current.version, applied, 'the later version stays');
      const shown = (await (await w.req('GET', `/v1/approvals/${stale.approval.id}`, ada)).json()) as {
        approval: ApprovalRequest;
      };
      assert.equal(shown.approval.state, 'failed');
      assert.match(shown.approval.outcome ?? '', /ask again over the current version/);
    } finally {
      await w.close();
    }
  });
});
