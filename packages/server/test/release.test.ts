import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  parseScope,
  streamDirective,
  type AuditRecord,
  type Directive,
  type Release,
  type ReleaseCheck,
} from '@killpath/protocol';
import { workerKey, type LiveWorker } from '../src/fleet.ts';
import { checkReleases, releasesCovered } from '../src/release-check.ts';
import { expectWireError, harness, hostWorker, type Harness } from './harness.ts';

const A: Release = { code: 'aaa111', model: 'acme/planner@7', prompt: 'v42' };
const B: Release = { code: 'bbb222', model: 'acme/planner@7', prompt: 'v42' };
const C: Release = { code: 'ccc333', model: 'acme/planner@7', prompt: 'v42' };

function live(workerId: string, tenant: string, agent: string, release: Release | null): LiveWorker {
  const id = (runId: string) => ({ tenant, agent, runId, lineage: [], features: [], release });
  return { workerId, tenant, agent, release, identities: [id(`run-${workerId}`), id(`worker/${workerId}`)] };
}

function directive(scope: string, tenant: string | null, releases: Release[]) {
  return { scope: parseScope(scope), tenant, capabilities: null, releases };
}

describe('the resume check with an injected fleet', () => {
  const fleetOnA = [live('w1', 'acme', 'bot', A), live('w2', 'acme', 'bot', A), live('w3', 'acme', 'bot', B)];

  test('a directive records the distinct releases of the workers it covers', () => {
    assert.deepEqual(releasesCovered(directive('tenant:acme', 'acme', []), fleetOnA), [A, B]);
    assert.deepEqual(releasesCovered(directive('release:code=aaa111', 'acme', []), fleetOnA), [A]);
    assert.deepEqual(releasesCovered(directive('tenant:globex', 'globex', []), fleetOnA), []);
    // A worker that declared nothing adds nothing.
    assert.deepEqual(
      releasesCovered(directive('tenant:acme', 'acme', []), [live('w9', 'acme', 'bot', null)]),
      [],
    );
  });

  test('same release: refused, naming the workers still on it', () => {
    const check = checkReleases(directive('tenant:acme', 'acme', [A]), fleetOnA, null);
    assert.deepEqual(check.checked, [A]);
    assert.deepEqual(
      check.running.map((r) => [r.workerId, r.release]),
      [
        ['w1', A],
        ['w2', A],
      ],
    );
    assert.equal(check.sameRelease, null);
  });

  test('new release: allowed (nobody it would release runs a recorded release)', () => {
    const replaced = [
      live('w4', 'acme', 'bot', C),
      live('w5', 'acme', 'bot', C),
      live('w3', 'acme', 'bot', B),
    ];
    const check = checkReleases(directive('tenant:acme', 'acme', [A]), replaced, null);
    assert.deepEqual(check.running, []);
    assert.deepEqual(check.checked, [A]);
  });

  test('a worker on a recorded release that the directive does not cover does not block it', () => {
    const elsewhere = [live('g1', 'globex', 'bot', A)];
    assert.deepEqual(checkReleases(directive('tenant:acme', 'acme', [A]), elsewhere, null).running, []);
  });

  test('a release scope checks its own part too, even with nothing recorded', () => {
    const check = checkReleases(directive('release:code=aaa111', 'acme', []), fleetOnA, null);
    assert.deepEqual(check.checked, [{ code: 'aaa111' }]);
    assert.deepEqual(
      check.running.map((r) => r.workerId),
      ['w1', 'w2'],
    );
  });

  test('the override is carried for the record and does not hide what was found', () => {
    const check = checkReleases(directive('tenant:acme', 'acme', [A]), fleetOnA, 'config fix, not a rollout');
    assert.equal(check.sameRelease, 'config fix, not a rollout');
    assert.equal(check.running.length, 2);
  });

  test('a directive from before releases were recorded checks nothing', () => {
    const check = checkReleases(directive('tenant:acme', 'acme', []), fleetOnA, null);
    assert.deepEqual(check, { checked: [], running: [], sameRelease: null });
  });
});

describe('release scopes and the release check through the API', () => {
  let h: Harness;
  let admin: string;
  let operator: string;
  let agent: string;
  before(async () => {
    h = await harness();
    admin = await h.token('admin', '*');
    operator = await h.token('operator', 'acme', undefined, 'olga');
    agent = await h.token('agent', 'acme', 'bot');
  });
  after(() => h.close());

  /** A connected worker of acme/bot on `release` hosting one run, as its stream and first heartbeat would register it. */
  function connect(id: string, release: Release | null, tenant = 'acme'): void {
    hostWorker(h.cp.fleet, id, { tenant, runs: [`run-${id}`], release });
  }

  async function issue(token: string, body: Record<string, unknown>): Promise<Directive> {
    const res = await h.req('POST', '/v1/directives', {
      token,
      body: { level: 'kill', reason: 'bad rollout', justification: 'INC-17', ...body },
    });
    const text = await res.text();
    assert.equal(res.status, 201, text);
    return (JSON.parse(text) as { directive: Directive }).directive;
  }

  /**
   * A permit asked by the worker hosting `runId` (`run-wN` on wN; any other run on w3): the
   * control plane decides coverage by the release that worker declared, whatever the body says.
   */
  async function permit(
    runId: string,
    release: Release | undefined,
    workerId = /^run-(w\d)$/.exec(runId)?.[1] ?? 'w3',
  ) {
    return h.req('POST', '/v1/permits', {
      token: agent,
      body: {
        workerId,
        runId,
        lineage: [],
        features: [],
        ...(release === undefined ? {} : { release }),
        capability: 'crm.update',
        class: 'write',
        idempotencyKey: null,
        argsDigest: null,
        compensate: null,
      },
    });
  }

  async function audit(type: string): Promise<AuditRecord[]> {
    await h.cp.flushAudit();
    return h.store.listAudit({ types: [type], limit: 1000 });
  }

  test('kill --release code=A: recorded, refuses only A permits, resume refused while A runs, passes on C', async () => {
    connect('w1', A);
    connect('w2', A);
    connect('w3', B);
    connect('g1', A, 'globex');
    const d = await issue(operator, { scope: 'release:code=aaa111' });
    assert.equal(d.tenant, 'acme', "an operator's release scope is confined to its tenant");
    assert.deepEqual(d.releases, [A], 'the releases of the runs it covered at its commit');
    const issued = (await audit('directive.issued')).find((r) => (r.data.directive as Directive).id === d.id);
    assert.deepEqual((issued?.data.directive as Directive).releases, [A], 'directive.issued carries them');

    // Permits: the gate at the control plane covers by the run's release.
    await expectWireError(await permit('run-w1', A), 409, 'halted', 'a permit on release A');
    assert.equal((await permit('run-w3', B)).status, 201, 'a permit on release B');
    assert.equal(
      (await permit('run-x', undefined)).status,
      201,
      'a permit saying no release, from a B worker',
    );
    await expectWireError(
      await permit('run-y', undefined, 'w1'),
      409,
      'halted',
      'a permit saying no release, from an A worker',
    );

    // The fleet view shows each worker's release and what the switchboard does to it.
    const fleet = (await (await h.req('GET', '/v1/fleet', { token: operator })).json()) as {
      workers: { workerId: string; release: Release }[];
    };
    assert.deepEqual(
      fleet.workers.map((w) => [w.workerId, w.release]),
      [
        ['w1', A],
        ['w2', A],
        ['w3', B],
      ],
      'only its own tenant, each with its release',
    );

    const refused = await h.req('POST', `/v1/directives/${d.id}/resume`, {
      token: operator,
      body: { justification: 'looks fine now' },
    });
    const text = await refused.text();
    assert.equal(refused.status, 409, text);
    const err = (JSON.parse(text) as { error: { code: string; message: string; details: ReleaseCheck } })
      .error;
    assert.equal(err.code, 'same_release');
    assert.match(err.message, /code=aaa111,model=acme\/planner@7,prompt=v42/);
    assert.deepEqual(
      err.details.running.map((r) => r.workerId),
      ['w1', 'w2'],
      'only the workers it would release (not globex, not B)',
    );
    const refusals = await audit('resume.refused');
    assert.equal(refusals.length, 1);
    assert.equal(refusals[0]!.data.reason, 'same_release');
    assert.deepEqual(refusals[0]!.data.releases, [{ code: 'aaa111' }, A]);
    assert.equal(refusals[0]!.actor, 'olga');
    assert.equal((await h.store.getDirective(d.id))?.clearedRev, null, 'still in force');

    // The bad rollout is replaced: the same agents restart on release C.
    h.cp.fleet.disconnected(workerKey('acme', 'bot', 'w1'));
    h.cp.fleet.disconnected(workerKey('acme', 'bot', 'w2'));
    connect('w4', C);
    connect('w5', C);
    const ok = await h.req('POST', `/v1/directives/${d.id}/resume`, {
      token: operator,
      body: { justification: 'rolled forward to ccc333' },
    });
    assert.equal(ok.status, 200, await ok.clone().text());
    const answer = (await ok.json()) as { directive: Directive; releaseCheck: ReleaseCheck };
    assert.notEqual(answer.directive.clearedRev, null);
    assert.deepEqual(answer.releaseCheck.checked, [{ code: 'aaa111' }, A]);
    assert.deepEqual(answer.releaseCheck.running, []);
    const action = (await audit('operator_action')).find(
      (r) => r.data.action === 'directive.resume' && r.data.directiveId === d.id,
    );
    assert.deepEqual((action?.data.releaseCheck as ReleaseCheck).checked, [{ code: 'aaa111' }, A]);
    assert.equal(action?.data.sameRelease, undefined, 'a clean resume is not an override');
    assert.equal((await permit('run-w4', C)).status, 201, 'the new release works');
  });

  test('the override: resume onto the same release with a reason, on the record as such', async () => {
    const d = await issue(operator, { scope: 'tenant:acme', level: 'halt' });
    assert.deepEqual(d.releases, [B, C], 'every release its runs were on');
    await expectWireError(
      await h.req('POST', `/v1/directives/${d.id}/resume`, {
        token: operator,
        body: { justification: 'fixed the config' },
      }),
      409,
      'same_release',
      'no override',
    );
    await expectWireError(
      await h.req('POST', `/v1/directives/${d.id}/resume`, {
        token: operator,
        body: { justification: 'fixed the config', sameRelease: '  ' },
      }),
      400,
      'invalid_request',
      'an empty override reason',
    );
    const ok = await h.req('POST', `/v1/directives/${d.id}/resume`, {
      token: operator,
      body: { justification: 'fixed the config', sameRelease: 'config fix, not a rollout' },
    });
    assert.equal(ok.status, 200, await ok.clone().text());
    const r = (await ok.json()) as { releaseCheck: ReleaseCheck };
    assert.equal(r.releaseCheck.sameRelease, 'config fix, not a rollout');
    assert.ok(r.releaseCheck.running.length > 0, 'the check still names who runs it');
    const action = (await audit('operator_action')).find(
      (x) => x.data.action === 'directive.resume' && x.data.directiveId === d.id,
    );
    assert.equal(action?.data.sameRelease, 'config fix, not a rollout');
    assert.ok((await h.store.verifyAudit()).ok);
  });

  test('a directive spanning tenants shows its releases to admins only; streams never carry them', async () => {
    const d = await issue(admin, {
      scope: 'global',
      level: 'throttle',
      rate: { perSecond: 100, per: 'run' },
      breakGlass: 'test',
    });
    assert.ok(
      d.releases.some((r) => r.code === 'aaa111'),
      'the globex worker on A is recorded',
    );
    const seen = async (token: string) =>
      ((await (await h.req('GET', `/v1/directives/${d.id}`, { token })).json()) as { directive: Directive })
        .directive.releases;
    assert.deepEqual(await seen(operator), [], "acme's operator sees nothing of what globex runs");
    assert.deepEqual(await seen(admin), d.releases);
    const listed = (
      (await (await h.req('GET', '/v1/directives', { token: operator })).json()) as {
        directives: Directive[];
      }
    ).directives.find((x) => x.id === d.id);
    assert.deepEqual(listed?.releases, []);
    assert.equal('releases' in streamDirective(d), false);
    await h.req('POST', `/v1/directives/${d.id}/resume`, {
      token: admin,
      body: { justification: 'test', breakGlass: 'test', sameRelease: 'test cleanup' },
    });
  });

  test('a release scope inside an agent; bad release input is a clear 400', async () => {
    const d = await issue(admin, { scope: 'release:prompt=v42;agent=bot', tenant: 'acme', level: 'halt' });
    assert.equal(d.scopeText, 'release:prompt=v42;agent=bot');
    assert.equal(d.tenant, 'acme');
    await h.req('POST', `/v1/directives/${d.id}/resume`, {
      token: admin,
      body: { justification: 'test', sameRelease: 'test cleanup' },
    });
    for (const scope of ['release:code=a b', 'release:sha=1', 'release:code=', 'release:code=x;agent=a/b']) {
      const msg = await expectWireError(
        await h.req('POST', '/v1/directives', {
          token: operator,
          body: { level: 'halt', scope, reason: 'x', justification: 'x' },
        }),
        400,
        'invalid_request',
        scope,
      );
      assert.match(msg, /invalid scope/);
    }
    await expectWireError(
      await h.req('POST', '/v1/directives', {
        token: admin,
        body: {
          level: 'halt',
          scope: 'release:code=x;agent=bot',
          reason: 'x',
          justification: 'x',
          breakGlass: 'y',
        },
      }),
      400,
      'invalid_request',
      'an agent inside no tenant',
    );
    await expectWireError(
      await h.req('POST', '/v1/directives', {
        token: operator,
        body: { level: 'halt', scope: 'release:code=x', tenant: 'globex', reason: 'x', justification: 'x' },
      }),
      404,
      'not_found',
      "another tenant's release (hidden, as every other tenant's object)",
    );
    await expectWireError(
      await permit('r-bad', { code: 'a b' }),
      400,
      'invalid_request',
      'a bad permit release',
    );
    await expectWireError(
      await permit('r-bad', { sha: '1' } as unknown as Release),
      400,
      'invalid_request',
      'an unknown release part',
    );
    await expectWireError(
      await h.req('POST', '/v1/workers/w1/heartbeat', {
        token: agent,
        body: { rev: 0, features: [], runs: [], pid: 1, sinceContactMs: 0, release: { prompt: '' } },
      }),
      400,
      'invalid_request',
      'a bad heartbeat release',
    );
    await expectWireError(
      await h.req('GET', '/v1/stream?worker=w9&tenant=acme&agent=bot&release=code%3Da%20b', { token: agent }),
      400,
      'invalid_request',
      'a bad stream release',
    );
  });
});

describe('a cooling-off permit and its release', () => {
  test('confirming it checks the release it was granted for against the switchboard again', async () => {
    const h = await harness();
    try {
      const base = {
        workerId: 'w1',
        lineage: [],
        features: [],
        capability: 'wire_transfer',
        class: 'irreversible' as const,
        idempotencyKey: null,
        argsDigest: null,
        compensate: null,
        tenant: 'acme',
        agent: 'bot',
        coolOffMs: 1,
      };
      const [onA, onB] = await h.store.grantPermits([
        { ...base, runId: 'ra', release: A },
        { ...base, runId: 'rb', release: B },
      ]);
      assert.equal(onA?.kind, 'granted');
      assert.equal(onB?.kind, 'granted');
      const admin = await h.token('admin', '*');
      const res = await h.req('POST', '/v1/directives', {
        token: admin,
        body: {
          level: 'halt',
          scope: 'release:code=aaa111',
          tenant: 'acme',
          reason: 'x',
          justification: 'x',
        },
      });
      assert.equal(res.status, 201);
      const later = new Date(Date.now() + 1000);
      const id = (d: typeof onA) => (d?.kind === 'granted' ? d.response.permit.id : '');
      assert.equal(
        (await h.store.confirmPermit(id(onA), { tenant: 'acme', agent: 'bot' }, later)).kind,
        'halted',
      );
      assert.equal(
        (await h.store.confirmPermit(id(onB), { tenant: 'acme', agent: 'bot' }, later)).kind,
        'granted',
      );
    } finally {
      await h.close();
    }
  });
});
