/**
 * `POST /v1/launchers/{id}/token`: an operator of tenant T starts a launcher for an agent of T
 * (the replacement session of the runbook) without holding an agent token. The control plane
 * mints a short-lived agent token of T/A bound to that launcher id, audited with who asked, for
 * which agent and until when. Another tenant's operator, a viewer and an agent are refused; the
 * token acts for its launcher only and stops at its expiry.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { AuditRecord, Principal } from '@killpath/protocol';
import { expectWireError, harness, heartbeatBody } from './harness.ts';
import { liveServer } from './live-server.ts';
import { workerKey } from '../src/fleet.ts';

const T0 = Date.parse('2026-06-01T12:00:00.000Z');
const HOUR = 3_600_000;

interface Minted {
  token: string;
  id: string;
  role: string;
  tenant: string;
  agent: string;
  launcher: string;
  expiresAt: string;
}

describe('an operator mints the agent token of the launcher it starts', () => {
  test('operator of acme, agent of acme: an agent token of acme/bot bound to the launcher, 8 h by default, audited', async () => {
    let now = T0;
    const h = await harness({ now: () => now });
    try {
      const op = await h.token('operator', 'acme', undefined, 'alice@acme');
      const r = await h.req('POST', '/v1/launchers/launch-1/token', {
        token: op,
        body: { tenant: 'acme', agent: 'bot' },
      });
      assert.equal(r.status, 201);
      const m = (await r.json()) as Minted;
      assert.match(m.token, /^kp_/);
      assert.deepEqual(
        [m.role, m.tenant, m.agent, m.launcher, m.expiresAt],
        ['agent', 'acme', 'bot', 'launch-1', new Date(T0 + 8 * HOUR).toISOString()],
      );
      const me = (await (await h.req('GET', '/v1/whoami', { token: m.token })).json()) as Principal;
      assert.deepEqual(
        [me.role, me.tenant, me.agent, me.launcher, me.expiresAt],
        ['agent', 'acme', 'bot', 'launch-1', m.expiresAt],
      );

      await h.cp.flushAudit();
      const audit = (await (
        await h.req('GET', '/v1/audit?type=operator_action&limit=100', { token: op })
      ).json()) as { records: AuditRecord[] };
      const rec = audit.records.find((x) => x.data.tokenId === m.id);
      assert.ok(rec, 'the minting is on the record');
      assert.equal(rec.actor, 'alice@acme', 'who asked');
      assert.equal(rec.tenant, 'acme');
      assert.equal(rec.data.action, 'token.create');
      assert.equal(rec.data.agent, 'bot', 'for which agent');
      assert.equal(rec.data.launcher, 'launch-1');
      assert.equal(rec.data.expiresAt, m.expiresAt, 'until when');
      assert.ok(!JSON.stringify(audit).includes(m.token), 'never the secret');

      // A shorter life on request; no longer than 24 h.
      const short = (await (
        await h.req('POST', '/v1/launchers/launch-2/token', {
          token: op,
          body: { tenant: 'acme', agent: 'bot', ttlMs: HOUR },
        })
      ).json()) as Minted;
      assert.equal(short.expiresAt, new Date(T0 + HOUR).toISOString());
      await expectWireError(
        await h.req('POST', '/v1/launchers/launch-3/token', {
          token: op,
          body: { tenant: 'acme', agent: 'bot', ttlMs: 25 * HOUR },
        }),
        400,
        'invalid_request',
        'longer than 24 h',
      );

      // Expiry: the token works until its end, then 401 "token expired".
      now = T0 + HOUR - 1;
      assert.equal((await h.req('GET', '/v1/whoami', { token: short.token })).status, 200);
      now = T0 + HOUR + 5001;
      const msg = await expectWireError(
        await h.req('GET', '/v1/whoami', { token: short.token }),
        401,
        'unauthenticated',
        'expired',
      );
      assert.match(msg, /token expired/);
    } finally {
      await h.close();
    }
  });

  test("another tenant's operator, a viewer and an agent are refused; another agent's launcher id is a conflict; an admin may", async () => {
    const h = await harness();
    try {
      const ask = (token: string, launcher = 'launch-1', tenant = 'acme', agent = 'bot') =>
        h.req('POST', `/v1/launchers/${launcher}/token`, { token, body: { tenant, agent } });
      await expectWireError(await ask(await h.token('operator', 'beta')), 404, 'not_found', 'beta operator');
      await expectWireError(await ask(await h.token('viewer', 'acme')), 403, 'forbidden', 'acme viewer');
      await expectWireError(await ask(await h.token('agent', 'acme', 'bot')), 403, 'forbidden', 'agent');
      await expectWireError(await ask(''), 401, 'unauthenticated', 'no token');
      await expectWireError(
        await ask(await h.token('operator', 'acme'), 'bad/id'),
        404,
        'not_found',
        'not a launcher route',
      );
      await expectWireError(
        await ask(await h.token('operator', 'acme'), 'launch-1', 'acme', 'no such agent!'),
        400,
        'invalid_request',
        'bad agent',
      );
      // None of the refusals minted a token nor claimed the launcher id.
      assert.deepEqual(
        (await h.store.listTokens({ tenant: 'acme' })).filter((t) => t.launcher !== null),
        [],
      );
      const op = await h.token('operator', 'acme');
      assert.equal((await ask(op)).status, 201);
      // The id belongs to acme/bot now: acme/other may not use it.
      await expectWireError(await ask(op, 'launch-1', 'acme', 'other'), 409, 'conflict', 'owned id');
      const admin = await h.token('admin', '*');
      assert.equal((await ask(admin, 'launch-9', 'globex', 'ops')).status, 201);
    } finally {
      await h.close();
    }
  });

  test('the token acts for its launcher only: another launcher stream 403, its events 404, its heartbeats 403', async () => {
    const h = await harness();
    try {
      const op = await h.token('operator', 'acme');
      const m = (await (
        await h.req('POST', '/v1/launchers/launch-1/token', {
          token: op,
          body: { tenant: 'acme', agent: 'bot' },
        })
      ).json()) as Minted;
      // launch-2 exists, of the same agent, started with an ordinary agent token.
      await h.cp.claimLauncher({ tenant: 'acme', agent: 'bot' }, 'launch-2');
      await expectWireError(
        await h.req('GET', '/v1/launchers/stream?launcher=launch-2&tenant=acme&agent=bot', {
          token: m.token,
        }),
        403,
        'forbidden',
        'stream of another launcher',
      );
      await expectWireError(
        await h.req('POST', '/v1/launchers/launch-2/events', {
          token: m.token,
          body: { events: [{ type: 'process.started', pid: 1, detail: 'x' }] },
        }),
        404,
        'not_found',
        'events of another launcher',
      );
      // The control: the same events body is accepted from its own launcher.
      assert.equal(
        (
          await h.req('POST', '/v1/launchers/launch-1/events', {
            token: m.token,
            body: { events: [{ type: 'process.started', pid: 1, detail: 'x' }] },
          })
        ).status,
        204,
      );
      const beat = (launcher: string) =>
        h.req('POST', '/v1/workers/w-1/heartbeat', {
          token: m.token,
          body: { ...heartbeatBody(), launcher },
        });
      await expectWireError(await beat('launch-2'), 403, 'forbidden', 'heartbeat under another launcher');
      assert.ok((await beat('launch-1')).status < 300, 'its own launcher');
    } finally {
      await h.close();
    }
  });

  test("the token acts for its launcher's workers only: another launcher's worker is refused 403 on heartbeat, ack, halted and stream", async () => {
    const h = await harness();
    try {
      const op = await h.token('operator', 'acme');
      const m = (await (
        await h.req('POST', '/v1/launchers/launch-1/token', {
          token: op,
          body: { tenant: 'acme', agent: 'bot' },
        })
      ).json()) as Minted;
      // w-2 runs under launch-2 of the same agent, reported with an ordinary agent token.
      const owner = await h.token('agent', 'acme', 'bot');
      assert.equal(
        (
          await h.req('POST', '/v1/workers/w-2/heartbeat', {
            token: owner,
            body: { ...heartbeatBody(), launcher: 'launch-2' },
          })
        ).status,
        204,
      );
      const issued = await h.req('POST', '/v1/directives', {
        token: op,
        body: { level: 'halt', scope: 'agent:acme/bot', reason: 'r', justification: 'j' },
      });
      assert.equal(issued.status, 201);
      const d = ((await issued.json()) as { directive: { id: string; rev: number } }).directive;
      const halted = {
        rev: d.rev,
        directiveId: d.id,
        runs: [],
        aborted: 0,
        completed: 0,
        observeToSettleMs: 1,
      };

      const as = (token: string, route: string, body: unknown) =>
        h.req('POST', `/v1/workers/w-2/${route}`, { token, body });
      await expectWireError(await as(m.token, 'heartbeat', heartbeatBody()), 403, 'forbidden', 'heartbeat');
      await expectWireError(await as(m.token, 'ack', { rev: d.rev }), 403, 'forbidden', 'ack');
      await expectWireError(await as(m.token, 'halted', halted), 403, 'forbidden', 'halted');
      await expectWireError(
        await h.req('GET', '/v1/stream?worker=w-2&tenant=acme&agent=bot', { token: m.token }),
        403,
        'forbidden',
        'stream',
      );
      // Nothing was acted on: w-2 is still launch-2's.
      assert.equal(h.cp.fleet.launcherOf(workerKey('acme', 'bot', 'w-2'))?.launcherId, 'launch-2');

      // The controls: its own launcher's worker and the ordinary token's reports are accepted.
      const own = (route: string, body: unknown) =>
        h.req('POST', `/v1/workers/w-1/${route}`, { token: m.token, body });
      assert.ok((await own('heartbeat', { ...heartbeatBody(), launcher: 'launch-1' })).status < 300);
      assert.equal((await own('ack', { rev: d.rev })).status, 204);
      assert.equal((await own('halted', halted)).status, 204);
      assert.equal((await as(owner, 'ack', { rev: d.rev })).status, 204);
      assert.equal((await as(owner, 'halted', halted)).status, 204);
    } finally {
      await h.close();
    }
  });

  test('the launcher ends its own token when it exits: 200, then 401 "token revoked", audited; only its own', async () => {
    const h = await harness();
    try {
      const op = await h.token('operator', 'acme');
      const m = (await (
        await h.req('POST', '/v1/launchers/launch-1/token', {
          token: op,
          body: { tenant: 'acme', agent: 'bot' },
        })
      ).json()) as Minted;
      await expectWireError(
        await h.req('POST', '/v1/launchers/launch-1/token/revoke', {
          token: await h.token('agent', 'acme', 'bot'),
        }),
        403,
        'forbidden',
        'a token not minted for a launcher',
      );
      await expectWireError(
        await h.req('POST', '/v1/launchers/launch-2/token/revoke', { token: m.token }),
        404,
        'not_found',
        "another launcher's",
      );
      await expectWireError(
        await h.req('POST', '/v1/launchers/launch-1/token/revoke', { token: op }),
        403,
        'forbidden',
        "the operator's own token is not a launcher's",
      );
      assert.equal((await h.req('GET', '/v1/whoami', { token: m.token })).status, 200, 'still alive');
      const r = await h.req('POST', '/v1/launchers/launch-1/token/revoke', { token: m.token });
      assert.equal(r.status, 200);
      const msg = await expectWireError(
        await h.req('GET', '/v1/whoami', { token: m.token }),
        401,
        'unauthenticated',
        'after',
      );
      assert.match(msg, /token revoked/);
      await h.cp.flushAudit();
      const rec = (
        (await (await h.req('GET', '/v1/audit?type=token.revoked&limit=10', { token: op })).json()) as {
          records: AuditRecord[];
        }
      ).records.find((x) => x.data.tokenId === m.id);
      assert.ok(rec, 'token.revoked on the record');
      assert.equal(rec.actor, 'launcher:launch-1');
    } finally {
      await h.close();
    }
  });

  test('revoking the operator token that minted launcher tokens revokes them too, audited; others stay', async () => {
    const h = await harness();
    try {
      const admin = await h.token('admin', '*');
      const op = await h.token('operator', 'acme', undefined, 'alice@acme');
      const mint = async (token: string, launcher: string) =>
        (await (
          await h.req('POST', `/v1/launchers/${launcher}/token`, {
            token,
            body: { tenant: 'acme', agent: 'bot' },
          })
        ).json()) as Minted;
      const a = await mint(op, 'launch-1');
      const b = await mint(op, 'launch-2');
      const other = await mint(await h.token('operator', 'acme', undefined, 'bob@acme'), 'launch-3');
      const agent = await h.token('agent', 'acme', 'bot');
      // The launcher ended b itself already: it is not revoked twice.
      assert.equal(
        (await h.req('POST', '/v1/launchers/launch-2/token/revoke', { token: b.token })).status,
        200,
      );
      const opId = (await h.store.listTokens({ tenant: 'acme' })).find((t) => t.name === 'alice@acme')!.id;
      const r = await h.req('POST', `/v1/tokens/${opId}/revoke`, {
        token: admin,
        body: { reason: 'alice left' },
      });
      assert.equal(r.status, 200);

      const msg = await expectWireError(
        await h.req('GET', '/v1/whoami', { token: a.token }),
        401,
        'unauthenticated',
        'the minted token after its minter was revoked',
      );
      assert.match(msg, /token revoked/);
      for (const t of [other.token, agent])
        assert.equal((await h.req('GET', '/v1/whoami', { token: t })).status, 200, 'other tokens stay');
      const rec = await h.store.getToken(a.id);
      assert.equal(rec?.mintedBy, opId);
      assert.match(rec?.revokeReason ?? '', new RegExp(`minted it \\(${opId}\\) was revoked: alice left`));
      assert.equal(
        (await h.store.getToken(b.id))?.revokedBy,
        'launcher:launch-2',
        'b kept its own revocation',
      );

      await h.cp.flushAudit();
      const audit = (await (
        await h.req('GET', '/v1/audit?type=token.revoked&limit=100', { token: admin })
      ).json()) as { records: AuditRecord[] };
      assert.deepEqual(
        audit.records.map((x) => x.data.tokenId).sort(),
        [a.id, b.id, opId].sort(),
        'each revocation on the record once',
      );
    } finally {
      await h.close();
    }
  });

  test('over a socket, the minted token opens its own launcher stream and gets orders', async () => {
    const s = await liveServer();
    try {
      const op = await s.token('operator', 'acme');
      const r = await s.call('POST', '/v1/launchers/launch-1/token', op, { tenant: 'acme', agent: 'bot' });
      assert.equal(r.status, 201, JSON.stringify(r.body));
      const stream = await s.stream(
        '/v1/launchers/stream?launcher=launch-1&tenant=acme&agent=bot',
        (r.body as Minted).token,
      );
      assert.equal(stream.status, 200);
      await stream.until((e) => e.event === 'orders');
    } finally {
      await s.close();
    }
  });
});
