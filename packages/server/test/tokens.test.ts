/**
 * Tokens with a lifecycle: expiry (`ttlMs`, `expiresAt`), listing without secrets, revocation
 * that takes effect at once (cache, streams, next request), rotation of the admin token.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Authenticator, mintToken } from '../src/auth/tokens.ts';
import { createLogger } from '../src/log.ts';
import { startServer } from '../src/server.ts';
import { StreamHub } from '../src/stream/hub.ts';
import { LauncherHub } from '../src/launchers.ts';
import { expectWireError, harness } from './harness.ts';

const T0 = Date.parse('2026-06-01T12:00:00.000Z');

describe('token lifecycle over the API', () => {
  test('create with a lifetime or an end, never both, never in the past; list shows no secret', async () => {
    let now = T0;
    const h = await harness({ now: () => now });
    try {
      const admin = await h.token('admin', '*');
      const r1 = await h.req('POST', '/v1/tokens', {
        token: admin,
        body: { role: 'operator', tenant: 'acme', ttlMs: 8 * 3_600_000 },
      });
      assert.equal(r1.status, 201);
      const c1 = (await r1.json()) as { token: string; id: string; expiresAt: string };
      assert.equal(c1.expiresAt, new Date(T0 + 8 * 3_600_000).toISOString());
      const r2 = await h.req('POST', '/v1/tokens', {
        token: admin,
        body: { role: 'viewer', tenant: 'acme', expiresAt: '2026-06-02T00:00:00Z' },
      });
      assert.equal(((await r2.json()) as { expiresAt: string }).expiresAt, '2026-06-02T00:00:00.000Z');
      await expectWireError(
        await h.req('POST', '/v1/tokens', {
          token: admin,
          body: { role: 'viewer', tenant: 'acme', ttlMs: 60_000, expiresAt: '2026-06-02T00:00:00Z' },
        }),
        400,
        'invalid_request',
        'both',
      );
      await expectWireError(
        await h.req('POST', '/v1/tokens', {
          token: admin,
          body: { role: 'viewer', tenant: 'acme', expiresAt: '2026-05-01T00:00:00Z' },
        }),
        400,
        'invalid_request',
        'in the past',
      );
      await expectWireError(
        await h.req('POST', '/v1/tokens', {
          token: admin,
          body: { role: 'viewer', tenant: 'acme', expiresAt: 'tomorrow' },
        }),
        400,
        'invalid_request',
        'not a time',
      );
      const list = await h.req('GET', '/v1/tokens', { token: admin });
      assert.equal(list.status, 200);
      const text = await list.text();
      assert.ok(!text.includes(c1.token), 'no secret in the list');
      assert.ok(!/"(token|secret|secretHash|secret_hash)"/.test(text), 'no secret field');
      const { tokens } = JSON.parse(text) as { tokens: { id: string; tenant: string }[] };
      assert.ok(tokens.some((t) => t.id === c1.id));
      // An operator sees its tenant's tokens only; viewers and agents none.
      const beta = await h.token('operator', 'beta');
      const betaList = (await (await h.req('GET', '/v1/tokens', { token: beta })).json()) as {
        tokens: { tenant: string }[];
      };
      assert.deepEqual([...new Set(betaList.tokens.map((t) => t.tenant))], ['beta']);
      await expectWireError(
        await h.req('GET', '/v1/tokens', { token: await h.token('viewer', 'acme') }),
        403,
        'forbidden',
      );
      await expectWireError(
        await h.req('GET', '/v1/tokens', { token: await h.token('agent', 'acme', 'bot') }),
        403,
        'forbidden',
      );
      // Expiry, at its time, even for a principal in the cache.
      assert.equal((await h.req('GET', '/v1/whoami', { token: c1.token })).status, 200);
      now = T0 + 8 * 3_600_000 - 1;
      assert.equal((await h.req('GET', '/v1/whoami', { token: c1.token })).status, 200);
      now = T0 + 8 * 3_600_000;
      const msg = await expectWireError(
        await h.req('GET', '/v1/whoami', { token: c1.token }),
        401,
        'unauthenticated',
      );
      assert.equal(msg, 'token expired');
    } finally {
      await h.close();
    }
  });

  test('a revocation takes effect at once: cached principal dropped, 401 "token revoked", audited, once', async () => {
    const h = await harness();
    try {
      const admin = await h.token('admin', '*', undefined, 'root');
      const bot = await h.token('agent', 'acme', 'bot');
      const who = (await (await h.req('GET', '/v1/whoami', { token: bot })).json()) as { tokenId: string };
      // Cached now: the revocation must reach past the cache.
      assert.equal((await h.req('GET', '/v1/whoami', { token: bot })).status, 200);
      await expectWireError(
        await h.req('POST', `/v1/tokens/${who.tokenId}/revoke`, { token: admin, body: {} }),
        400,
        'invalid_request',
        'a revocation needs a reason',
      );
      const r = await h.req('POST', `/v1/tokens/${who.tokenId}/revoke`, {
        token: admin,
        body: { reason: 'laptop stolen' },
      });
      assert.equal(r.status, 200);
      const body = (await r.json()) as { token: { revokedBy: string; revokeReason: string } };
      assert.deepEqual([body.token.revokedBy, body.token.revokeReason], ['root', 'laptop stolen']);
      const msg = await expectWireError(
        await h.req('GET', '/v1/whoami', { token: bot }),
        401,
        'unauthenticated',
      );
      assert.equal(msg, 'token revoked');
      await expectWireError(
        await h.req('POST', '/v1/workers/w1/heartbeat', {
          token: bot,
          body: { rev: 0, features: [], runs: [], pid: 1, sinceContactMs: 0 },
        }),
        401,
        'unauthenticated',
        'every path',
      );
      await expectWireError(
        await h.req('POST', `/v1/tokens/${who.tokenId}/revoke`, { token: admin, body: { reason: 'again' } }),
        409,
        'conflict',
      );
      await h.cp.flushAudit();
      const revoked = (await h.store.listAudit({ types: ['token.revoked'] })).map((a) => a.data);
      assert.equal(revoked.length, 1, 'audited once');
      assert.equal(revoked[0]!.tokenId, who.tokenId);
      assert.equal(revoked[0]!.reason, 'laptop stolen');
    } finally {
      await h.close();
    }
  });

  test("operators revoke their tenant's tokens only; another tenant's and admin tokens are invisible", async () => {
    const h = await harness();
    try {
      await h.token('admin', '*', undefined, 'root');
      const ops = await h.token('operator', 'acme');
      const mine = await h.token('agent', 'acme', 'bot', 'acme-bot');
      await h.token('agent', 'beta', 'bot', 'beta-bot');
      const list = (await (await h.req('GET', '/v1/tokens', { token: ops })).json()) as {
        tokens: { id: string; name: string }[];
      };
      const all = await h.store.listTokens({});
      const idOf = (name: string) => all.find((t) => t.name === name)!.id;
      assert.ok(!list.tokens.some((t) => t.name === 'beta-bot' || t.name === 'root'));
      for (const other of ['beta-bot', 'root'])
        await expectWireError(
          await h.req('POST', `/v1/tokens/${idOf(other)}/revoke`, { token: ops, body: { reason: 'x' } }),
          404,
          'not_found',
          other,
        );
      await expectWireError(
        await h.req('POST', `/v1/tokens/${idOf('acme-bot')}/revoke`, {
          token: await h.token('viewer', 'acme'),
          body: { reason: 'x' },
        }),
        403,
        'forbidden',
      );
      const ok = await h.req('POST', `/v1/tokens/${idOf('acme-bot')}/revoke`, {
        token: ops,
        body: { reason: 'agent retired' },
      });
      assert.equal(ok.status, 200);
      assert.equal((await h.req('GET', '/v1/whoami', { token: mine })).status, 401);
      assert.equal((await h.store.getToken(idOf('beta-bot')))?.revokedAt, null);
    } finally {
      await h.close();
    }
  });
});

describe('streams of a revoked or expired token', () => {
  const sink = (tokenId: string, expiresAt: number | null) => {
    const s = {
      workerId: `w-${tokenId}`,
      tenant: 'acme',
      tokenId,
      expiresAt,
      closed: false,
      write: () => true,
      close: () => void (s.closed = true),
    };
    return s;
  };
  test('the hubs close the streams of a token, and those whose token expired', async () => {
    const hub = new StreamHub(60_000, 0, () => T0);
    const a = sink('t_a', null);
    const b = sink('t_b', T0 + 1000);
    const c = sink('t_c', T0 + 5000);
    for (const s of [a, b, c]) await hub.attach(s, async () => ({ rev: 0, directives: [] }));
    assert.equal(hub.closeToken('t_a'), 1);
    assert.deepEqual([a.closed, b.closed, c.closed], [true, false, false]);
    assert.equal(hub.closeExpired(T0 + 999), 0);
    assert.equal(hub.closeExpired(T0 + 1000), 1);
    assert.deepEqual([b.closed, c.closed], [true, false]);
    assert.equal(hub.size, 1);
    hub.close();

    const launchers = new LauncherHub(
      60_000,
      () => [],
      () => T0,
    );
    const l = (tokenId: string, expiresAt: number | null) => ({
      ...sink(tokenId, expiresAt),
      launcherId: `l-${tokenId}`,
      agent: 'bot',
      runId: null,
      features: [],
    });
    const la = l('t_a', null);
    const lb = l('t_b', T0 + 1000);
    launchers.attach(la, 0, []);
    launchers.attach(lb, 0, []);
    assert.equal(launchers.closeToken('t_a'), 1);
    assert.equal(launchers.closeExpired(T0 + 1000), 1);
    assert.equal(launchers.size, 0);
    launchers.close();
  });

  test('a revocation closes the open worker and launcher streams of the token; a reconnect answers 401', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'killpath-tokens-'));
    const s = await startServer({
      dataDir,
      port: 0,
      logger: createLogger('silent'),
      supervisor: false,
      watchdog: false,
    });
    const opened: AbortController[] = [];
    try {
      const admin = s.createdAdminToken!;
      const api = (method: string, path: string, token: string, body?: unknown) =>
        fetch(`${s.url}${path}`, {
          method,
          headers: {
            authorization: `Bearer ${token}`,
            ...(body === undefined ? {} : { 'content-type': 'application/json' }),
          },
          ...(body === undefined ? {} : { body: JSON.stringify(body) }),
        });
      const minted = (await (
        await api('POST', '/v1/tokens', admin, { role: 'agent', tenant: 'acme', agent: 'bot' })
      ).json()) as { token: string; id: string };
      const open = async (path: string) => {
        const ac = new AbortController();
        opened.push(ac);
        const res = await fetch(`${s.url}${path}`, {
          headers: { authorization: `Bearer ${minted.token}` },
          signal: ac.signal,
        });
        assert.equal(res.status, 200, path);
        const reader = res.body!.getReader();
        const first = await reader.read();
        assert.ok(!first.done, 'the stream sends its first frame');
        return reader;
      };
      const worker = await open('/v1/stream?worker=w1&tenant=acme&agent=bot');
      const launcher = await open('/v1/launchers/stream?launcher=l1&tenant=acme&agent=bot');
      const revoked = (await (
        await api('POST', `/v1/tokens/${minted.id}/revoke`, admin, { reason: 'compromised' })
      ).json()) as { streamsClosed: number };
      assert.equal(revoked.streamsClosed, 2);
      const drain = async (r: ReadableStreamDefaultReader<Uint8Array>) => {
        for (let i = 0; i < 100; i++) if ((await r.read()).done) return true;
        return false;
      };
      assert.ok(await drain(worker), 'the worker stream ended');
      assert.ok(await drain(launcher), 'the launcher stream ended');
      const again = await api('GET', '/v1/stream?worker=w1&tenant=acme&agent=bot', minted.token);
      assert.equal(again.status, 401);
      assert.deepEqual(await again.json(), {
        error: { code: 'unauthenticated', message: 'token revoked' },
      });
    } finally {
      for (const ac of opened) ac.abort();
      await s.close();
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});

describe('rotate-admin', () => {
  test('replaces admin.token (still 0600), revokes the old token, audits both', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'killpath-rotate-'));
    const file = join(dataDir, 'admin.token');
    const s = await startServer({
      dataDir,
      port: 0,
      logger: createLogger('silent'),
      supervisor: false,
      watchdog: false,
    });
    try {
      const old = s.createdAdminToken!;
      assert.equal(statSync(file).mode & 0o777, 0o600, 'written 0600 at first start');
      const res = await fetch(`${s.url}/v1/tokens/rotate-admin`, {
        method: 'POST',
        headers: { authorization: `Bearer ${old}`, 'content-type': 'application/json' },
        body: JSON.stringify({ reason: 'quarterly rotation' }),
      });
      assert.equal(res.status, 201);
      const r = (await res.json()) as { token: string; id: string; revoked: string; file: string };
      assert.equal(r.file, file);
      assert.equal(readFileSync(file, 'utf8'), `${r.token}\n`);
      assert.equal(statSync(file).mode & 0o777, 0o600, 'still 0600 after the rotation');
      const whoami = (t: string) =>
        fetch(`${s.url}/v1/whoami`, { headers: { authorization: `Bearer ${t}` } });
      const oldRes = await whoami(old);
      assert.equal(oldRes.status, 401);
      assert.equal(((await oldRes.json()) as { error: { message: string } }).error.message, 'token revoked');
      const newRes = (await (await whoami(r.token)).json()) as { role: string; tokenId: string };
      assert.deepEqual([newRes.role, newRes.tokenId], ['admin', r.id]);
      const audit = await s.controlPlane.store.listAudit({ types: ['token.revoked', 'operator_action'] });
      const revoked = audit.find((a) => a.type === 'token.revoked');
      assert.equal(revoked?.data.tokenId, r.revoked);
      assert.equal(revoked?.data.reason, 'quarterly rotation');
      assert.ok(audit.some((a) => a.data.action === 'token.create' && a.data.tokenId === r.id));
      // A non-admin may not rotate.
      const ops = (await (
        await fetch(`${s.url}/v1/tokens`, {
          method: 'POST',
          headers: { authorization: `Bearer ${r.token}`, 'content-type': 'application/json' },
          body: JSON.stringify({ role: 'operator', tenant: 'acme' }),
        })
      ).json()) as { token: string };
      const refused = await fetch(`${s.url}/v1/tokens/rotate-admin`, {
        method: 'POST',
        headers: { authorization: `Bearer ${ops.token}`, 'content-type': 'application/json' },
        body: '{}',
      });
      assert.equal(refused.status, 403);
      assert.equal(readFileSync(file, 'utf8'), `${r.token}\n`, 'a refused rotation leaves the file');
    } finally {
      await s.close();
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});

describe('a known caller, for admission', () => {
  test('a token is known once it authenticated, and no longer once revoked here; a made-up one never', async () => {
    const h = await harness();
    try {
      const auth = new Authenticator(h.store);
      const { secret, record } = await mintToken(h.store, { role: 'viewer', tenant: 'acme' }, 'test');
      const header = `Bearer ${secret}`;
      assert.equal(auth.knownCaller(header), null, 'not seen yet: no store read to tell');
      await auth.authenticate(header);
      const known = auth.knownCaller(header);
      assert.ok(known !== null && !known.includes(secret), 'known by its hash, not its secret');
      assert.equal(auth.knownCaller(`bearer  ${secret}`), known, 'the scheme as authenticate reads it');
      assert.equal(auth.knownCaller(`Bearer kp_${'x'.repeat(43)}`), null);
      await assert.rejects(auth.authenticate(`Bearer kp_${'x'.repeat(43)}`));
      assert.equal(auth.knownCaller(`Bearer kp_${'x'.repeat(43)}`), null, 'an unknown token stays unknown');
      assert.equal(auth.knownCaller(undefined), null);
      assert.equal(auth.knownCaller('Basic abc'), null);
      auth.invalidate(record.id);
      assert.equal(auth.knownCaller(header), null, 'revoked through this process: unknown at once');
    } finally {
      await h.close();
    }
  });
});
