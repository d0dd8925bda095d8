import { test } from 'node:test';
import assert from 'node:assert/strict';
import { expectWireError, harness } from './harness.ts';

const halt = (scope: string, extra: Record<string, unknown> = {}) => ({
  level: 'halt',
  scope,
  reason: 'runaway loop',
  justification: 'INC-7',
  ...extra,
});

test('a run scope no worker holds: an admin is told so (not break_glass_required); with a tenant it is stopped ahead of time there', async () => {
  const h = await harness();
  const admin = await h.token('admin', '*');
  const unknown = await h.req('POST', '/v1/directives', { token: admin, body: halt('run:run-2') });
  const message = await expectWireError(unknown, 404, 'not_found', 'unknown run, no tenant');
  assert.equal(
    message,
    'run run-2 is not known in any tenant you can act on; give its tenant or start it first',
  );

  const withTenant = await h.req('POST', '/v1/directives', {
    token: admin,
    body: halt('run:run-2', { tenant: 'acme' }),
  });
  assert.equal(withTenant.status, 201);
  const { directive } = (await withTenant.json()) as { directive: { tenant: string; scopeText: string } };
  assert.deepEqual([directive.tenant, directive.scopeText], ['acme', 'run:run-2']);

  // An operator's unknown run is confined to the operator's own tenant, as before.
  const operator = await h.token('operator', 'globex');
  const own = await h.req('POST', '/v1/directives', { token: operator, body: halt('run:run-3') });
  assert.equal(own.status, 201);
  assert.equal(((await own.json()) as { directive: { tenant: string } }).directive.tenant, 'globex');

  // The break-glass path is still there for an admin who means every tenant.
  const glass = await h.req('POST', '/v1/directives', {
    token: admin,
    body: halt('run:run-4', { breakGlass: 'SEV1: the run may start in any tenant' }),
  });
  assert.equal(glass.status, 201);
  await h.close();
});
