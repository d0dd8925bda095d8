/**
 * Secrets never leave the answer that mints them: a realistic session against a real control
 * plane (mint tokens, use them on every kind of route, bad requests, a stream, revoke, expire,
 * rotate the admin token, approvals, the console page) and then every log line, every audit
 * record, every alert, every other response and the database's audit table are searched for
 * every secret and for every secret's hash.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { hashSecret } from '../src/auth/tokens.ts';
import { createLogger } from '../src/log.ts';
import { DEFAULT_POLICY } from '../src/policy/default-policy.ts';
import { startServer } from '../src/server.ts';

const POLICY = `${DEFAULT_POLICY}
approvals:
  - { name: wide_resume, action: resume, scopes: [global, tenant], approvals: 1, approvers: admin, within: 15m }
`;

test('no secret (nor its hash) in any log line, audit record, alert, error or other response of a session', async () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'killpath-secrets-'));
  const logs: string[] = [];
  const s = await startServer({
    dataDir,
    port: 0,
    logger: createLogger('debug', (l) => void logs.push(l)),
    supervisor: false,
    watchdog: false,
    policy: { path: 'policy.yaml', source: POLICY },
  });
  const secrets: string[] = [s.createdAdminToken!];
  /** Every response body except the ones that mint a secret (where it is shown once, by design). */
  const seen: string[] = [];
  const call = async (method: string, path: string, token: string | null, body?: unknown, mints = false) => {
    const res = await fetch(`${s.url}${path}`, {
      method,
      headers: {
        ...(token === null ? {} : { authorization: `Bearer ${token}` }),
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      },
      ...(body === undefined ? {} : { body: typeof body === 'string' ? body : JSON.stringify(body) }),
    });
    const text = await res.text();
    if (!mints) seen.push(`${res.status} ${JSON.stringify([...res.headers])} ${text}`);
    return { status: res.status, json: () => JSON.parse(text) as Record<string, unknown> };
  };
  const mint = async (token: string, body: Record<string, unknown>) => {
    const r = await call('POST', '/v1/tokens', token, body, true);
    assert.equal(r.status, 201);
    const j = r.json() as { token: string; id: string };
    secrets.push(j.token);
    return j;
  };
  try {
    let admin = s.createdAdminToken!;
    const ops = await mint(admin, { role: 'operator', tenant: 'acme', name: 'olga' });
    const bob = await mint(admin, { role: 'admin', tenant: '*', name: 'bob' });
    const bot = await mint(admin, { role: 'agent', tenant: 'acme', agent: 'bot', ttlMs: 3_600_000 });
    const viewer = await mint(admin, { role: 'viewer', tenant: 'acme', expiresAt: '2030-01-01T00:00:00Z' });
    // Use them: reads, writes, worker reports, a stream.
    for (const t of [admin, ops.token, viewer.token]) {
      await call('GET', '/v1/whoami', t);
      await call('GET', '/v1/fleet', t);
      await call('GET', '/v1/directives?active=all', t);
      await call('GET', '/v1/tokens', t);
    }
    await call('POST', '/v1/workers/w1/heartbeat', bot.token, {
      rev: 0,
      features: [],
      runs: [],
      pid: 1,
      sinceContactMs: 0,
    });
    const ac = new AbortController();
    const stream = await fetch(`${s.url}/v1/stream?worker=w1&tenant=acme&agent=bot`, {
      headers: { authorization: `Bearer ${bot.token}` },
      signal: ac.signal,
    });
    const reader = stream.body!.getReader();
    seen.push(new TextDecoder().decode((await reader.read()).value));
    const halt = await call('POST', '/v1/directives', ops.token, {
      level: 'halt',
      scope: 'tenant:acme',
      reason: 'r',
      justification: 'INC-1',
    });
    const d = (halt.json() as { directive: { id: string } }).directive;
    const asked = await call('POST', `/v1/directives/${d.id}/resume`, ops.token, { justification: 'fixed' });
    const req = (asked.json() as { approval: { id: string } }).approval;
    await call('POST', `/v1/approvals/${req.id}/approve`, ops.token, { justification: 'self' });
    await call('POST', `/v1/approvals/${req.id}/approve`, bob.token, { justification: 'ok' });
    await call('POST', '/v1/directives', admin, {
      level: 'halt',
      scope: 'global',
      reason: 'r',
      justification: 'j',
      breakGlass: 'INC-2',
    });
    // Bad requests, a secret where it does not belong, wrong and mangled tokens.
    await call('POST', '/v1/directives', ops.token, '{not json');
    await call('POST', '/v1/directives', ops.token, {
      level: 'halt',
      scope: `agent:acme/${bot.token}`,
      reason: 'r',
      justification: 'j',
    });
    await call('POST', '/v1/tokens', ops.token, { role: 'admin', tenant: '*' });
    await call('GET', '/v1/whoami', `${ops.token}x`);
    await call('GET', '/v1/whoami', ops.token.slice(0, -1));
    await call('GET', '/v1/whoami', null);
    await call('GET', `/v1/runs/${encodeURIComponent(bob.token)}`, admin);
    await call('GET', `/v1/nope?token=${bob.token}`, admin);
    await call('POST', `/v1/tokens/${bot.id}/revoke`, ops.token, { reason: 'rotated' });
    ac.abort();
    await call('GET', '/v1/whoami', bot.token);
    await call('POST', `/v1/tokens/${bob.id}/revoke`, bob.token, { reason: 'done' });
    await call('GET', '/v1/whoami', bob.token);
    // Rotate the admin token; the console page and its script.
    const rotated = await call('POST', '/v1/tokens/rotate-admin', admin, { reason: 'r' }, true);
    secrets.push((rotated.json() as { token: string }).token);
    admin = secrets.at(-1)!;
    await call('GET', '/v1/whoami', s.createdAdminToken!);
    for (const path of ['/', '/app.js', '/app.css', '/metrics']) await call('GET', path, admin);
    await call('GET', '/v1/alerts', admin);
    const audit = await call('GET', '/v1/audit?limit=5000', admin);
    const records = (audit.json() as { records: unknown[] }).records;
    assert.ok(records.length > 20, 'a session worth searching');
    await s.close();
    const db = readFileSync(join(dataDir, 'killpath.db'));
    const haystacks: [string, string][] = [
      ['logs', logs.join('\n')],
      ['audit', JSON.stringify(records)],
      ['alerts', JSON.stringify(s.controlPlane.recentAlerts())],
      ['responses', seen.join('\n')],
      ['database', db.toString('latin1')],
    ];
    let searched = 0;
    for (const secret of secrets) {
      for (const [where, text] of haystacks) {
        searched++;
        assert.ok(
          !text.includes(secret),
          `a secret appears in the ${where}: ${text
            .split('\n')
            .find((l) => l.includes(secret))
            ?.slice(0, 300)}`,
        );
        assert.ok(!text.includes(secret.slice(3, 24)), `part of a secret appears in the ${where}`);
        if (where !== 'database')
          assert.ok(!text.includes(hashSecret(secret)), `a secret's hash appears in the ${where}`);
      }
    }
    assert.equal(searched, secrets.length * haystacks.length);
    assert.ok(
      logs.length > 10 && seen.length > 30,
      `searched ${logs.length} log lines and ${seen.length} responses`,
    );
  } finally {
    await s.close();
    rmSync(dataDir, { recursive: true, force: true });
  }
});
