/**
 * `killpath resume` under an approval rule files a request and says whom to call;
 * `killpath approve` by a second admin shows what it approves and completes it; the requester
 * cannot approve their own request (one line, exit 2).
 */
import { after, before, test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import type { Directive } from '@killpath/protocol';
import { DEFAULT_POLICY, type RunningServer } from '@killpath/server';
import { ApiClient } from '../../src/api.ts';
import { main } from '../../src/main.ts';
import { startCliServer, type CliServer } from '../cli-server.ts';

let server: RunningServer;
let fixture: CliServer | undefined;
let ada: string;
let bob: string;

const POLICY = `${DEFAULT_POLICY}
approvals:
  - name: wide_resume
    action: resume
    scopes: [global, tenant]
    breakGlass: true
    approvals: 1
    approvers: admin
    within: 15m
    contact: "the platform on-call lead"
`;

before(async () => {
  fixture = await startCliServer('approve-cli', { policy: { path: 'policy.yaml', source: POLICY } });
  ({ server } = fixture);
  const root = new ApiClient(server.url, server.createdAdminToken!);
  ada = (await root.post<{ token: string }>('/v1/tokens', { role: 'admin', tenant: '*', name: 'ada' })).token;
  bob = (await root.post<{ token: string }>('/v1/tokens', { role: 'admin', tenant: '*', name: 'bob' })).token;
});

after(async () => {
  await fixture?.close();
});

async function cli(
  t: TestContext,
  token: string,
  args: string[],
): Promise<{ code: number; out: string; err: string }> {
  const out: string[] = [];
  const err: string[] = [];
  t.mock.method(console, 'log', (...a: unknown[]) => void out.push(a.join(' ')));
  t.mock.method(console, 'error', (...a: unknown[]) => void err.push(a.join(' ')));
  try {
    const code = await main([...args, '--url', server.url, '--token', token]);
    return { code, out: out.join('\n'), err: err.join('\n') };
  } finally {
    t.mock.restoreAll();
  }
}

test('resume files a request and names whom to call; approve by another admin clears the directive', async (t) => {
  const { directive } = await new ApiClient(server.url, ada).post<{ directive: Directive }>(
    '/v1/directives',
    {
      level: 'halt',
      scope: 'tenant:acme',
      reason: 'incident',
      justification: 'INC-3',
    },
  );
  const asked = await cli(t, ada, ['resume', directive.id, '--reason', 'cause fixed']);
  assert.equal(asked.code, 0);
  const id = /request (ap_[0-9a-f-]+)/.exec(asked.out)?.[1];
  assert.ok(id, asked.out);
  assert.match(asked.out, /needs 1 approval by an admin other than you/);
  assert.match(asked.out, /Call the platform on-call lead\./);
  assert.match(asked.out, new RegExp(`killpath approve ${id} --reason`));
  const listed = await cli(t, bob, ['approvals']);
  assert.match(listed.out, new RegExp(`${id}\\s+pending`));
  const self = await cli(t, ada, ['approve', id, '--reason', 'me']);
  assert.equal(self.code, 2);
  assert.match(self.err, /^killpath approve: ada requested .*a second person must approve it \(forbidden\)$/);
  const ok = await cli(t, bob, ['approve', id, '--reason', 'checked the fix']);
  assert.equal(ok.code, 0, ok.err);
  assert.match(ok.out, /^approving ap_.*resume halt tenant:acme/);
  assert.match(ok.out, new RegExp(`approved: directive ${directive.id} cleared at rev \\d+`));
  const after = await new ApiClient(server.url, ada).get<{ directive: Directive }>(
    `/v1/directives/${directive.id}`,
  );
  assert.notEqual(after.directive.clearedRev, null);
});

test('approvals --limit: a page says how many of how many and how to see them all', async (t) => {
  for (const tenant of ['globex', 'initech']) {
    const { directive } = await new ApiClient(server.url, ada).post<{ directive: Directive }>(
      '/v1/directives',
      {
        level: 'halt',
        scope: `tenant:${tenant}`,
        reason: 'incident',
        justification: 'INC-4',
      },
    );
    assert.equal((await cli(t, ada, ['resume', directive.id, '--reason', 'fixed'])).code, 0);
  }
  const one = await cli(t, bob, ['approvals', '--limit', '1']);
  assert.equal(one.code, 0, one.err);
  assert.match(one.out, /initech/, 'the newest first');
  // Issue 18: the server counts them, so the page says exactly how many (it said "there may be more").
  const m = /\n1 of (\d+), newest first; --limit (\d+) lists them all$/.exec(one.out);
  assert.ok(m, one.out);
  assert.equal(m[1], m[2]);
  assert.ok(Number(m[1]) >= 2);
  const all = await cli(t, bob, ['approvals']);
  assert.match(all.out, new RegExp(`\\nall ${m[1]}$`));
  assert.match(all.out, /globex/);
  assert.match(all.out, /initech/);
});
