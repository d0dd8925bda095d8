import { afterEach, test } from 'node:test';
import assert from 'node:assert/strict';
import type { HeartbeatReport, PermitRequest, ResumeRequest } from '@killpath/protocol';
import { connect } from '../src/index.ts';
import { FakeTransport, ManualClock } from '../src/testing.ts';
import { directive, harness, issue, reasonOf, snapshot } from './fixtures.ts';

const ENV = ['KILLPATH_RELEASE_CODE', 'KILLPATH_RELEASE_MODEL', 'KILLPATH_RELEASE_PROMPT'] as const;
afterEach(() => {
  for (const k of ENV) delete process.env[k];
});

test('the declared release travels on the stream, in heartbeats, permits and resumes', async () => {
  const release = { code: '4f2a1c', model: 'acme/planner@7', prompt: 'v42' };
  const { client, stream, transport, cp } = await harness({ release });
  assert.deepEqual(client.release, release);
  const url = new URL(stream.url);
  assert.equal(url.searchParams.get('release'), 'code=4f2a1c,model=acme/planner@7,prompt=v42');
  const run = client.startRun({ runId: 'r1' });
  await stream.push(snapshot(1));
  await run.effect('crm.update', () => 'ok');
  const permit = transport.postsTo('/v1/permits')[0]?.body as PermitRequest;
  assert.deepEqual(permit.release, release);
  const beat = transport.postsTo('/heartbeat')[0]?.body as HeartbeatReport;
  assert.deepEqual(beat.release, release);
  const echo = transport.onPost;
  transport.onPost = (post) => (post.url.endsWith('/resume') ? { runId: 'r9', lineage: [] } : echo(post));
  await client.resumeRun('r9');
  assert.deepEqual((transport.postsTo('/resume')[0]?.body as ResumeRequest).release, release);
  assert.equal(cp.resumes.length, 0);
  await client.close();
});

test('without a release nothing is sent, and no release scope covers the runs', async () => {
  const { client, stream, transport } = await harness();
  assert.equal(client.release, null);
  assert.equal(new URL(stream.url).searchParams.has('release'), false);
  const run = client.startRun({ runId: 'r1' });
  await stream.push(snapshot(1, [directive('k1', 'kill', 'release:code=4f2a1c')]));
  assert.equal(reasonOf(run.check('crm.update')), 'allow');
  await run.effect('crm.update', () => 'ok');
  assert.equal('release' in (transport.postsTo('/v1/permits')[0]?.body as object), false);
  assert.equal('release' in (transport.postsTo('/heartbeat')[0]?.body as object), false);
  await client.close();
});

test('the gate covers a run by the part of its release a directive names, and only that', async () => {
  const onA = await harness({ release: { code: 'aaa', prompt: 'v42' } });
  const onB = await harness({ release: { code: 'bbb', prompt: 'v42' }, workerId: 'w2' });
  const a = onA.client.startRun({ runId: 'ra' });
  const b = onB.client.startRun({ runId: 'rb' });
  for (const h of [onA, onB]) await h.stream.push(snapshot(1));
  for (const h of [onA, onB]) await h.stream.push(issue(2, directive('k1', 'kill', 'release:code=aaa')));
  assert.equal(reasonOf(a.check('crm.update')), 'killed');
  assert.equal(reasonOf(b.check('crm.update')), 'allow');
  for (const h of [onA, onB])
    await h.stream.push(issue(3, directive('h2', 'halt', 'release:prompt=v42;agent=a1')));
  assert.equal(reasonOf(b.check('crm.update')), 'halted', 'the prompt both share, inside their agent');
  await onA.client.close();
  await onB.client.close();
});

test('each part missing from the option comes from KILLPATH_RELEASE_*; the option wins', async () => {
  process.env.KILLPATH_RELEASE_CODE = 'from-env';
  process.env.KILLPATH_RELEASE_MODEL = 'acme/planner@7';
  process.env.KILLPATH_RELEASE_PROMPT = '';
  const { client } = await harness({ release: { code: 'from-option' } });
  assert.deepEqual(client.release, { code: 'from-option', model: 'acme/planner@7' });
  await client.close();
  const bare = await harness();
  assert.deepEqual(bare.client.release, { code: 'from-env', model: 'acme/planner@7' });
  await bare.client.close();
});

test('a malformed release, from the option or the environment, fails connect at once', () => {
  const base = { url: 'http://cp.test', token: 't', tenant: 't1', agent: 'a1' };
  const open = (o: object) =>
    void connect({ clock: new ManualClock(), transport: new FakeTransport(), ...base, ...o }).close();
  assert.throws(() => open({ release: { code: 'a b' } }), { code: 'invalid_request' });
  assert.throws(() => open({ release: { sha: '1' } }), { code: 'invalid_request' });
  assert.throws(() => open({ release: 'v1' }), { code: 'invalid_request' });
  process.env.KILLPATH_RELEASE_PROMPT = 'v 42';
  assert.throws(() => open({}), /invalid release prompt/);
});
