/**
 * `killpath kill --drain --commit-memory` puts the spec's side-effect policy on the directive
 * (against a real control plane in this process), and a runbook rendered from a spec that
 * drains queues and commits memory passes those flags in its CLI commands.
 */
import { after, before, test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import type { Directive } from '@killpath/protocol';
import type { RunningServer } from '@killpath/server';
import { ApiClient } from '../../src/api.ts';
import { kill } from '../../src/commands/directives.ts';
import { renderRunbook } from '../../src/killswitch-spec/runbook.ts';
import { parseSpec } from '../../src/killswitch-spec/load-spec.ts';
import { SPEC_TEMPLATE } from '../../src/killswitch-spec/template.ts';
import { startCliServer, type CliServer } from '../cli-server.ts';

let server: RunningServer;
let fixture: CliServer | undefined;

before(async () => {
  fixture = await startCliServer('kill-flags');
  ({ server } = fixture);
});

after(async () => {
  await fixture?.close();
});

async function cli(t: TestContext, args: string[]): Promise<{ code: number; out: string }> {
  const lines: string[] = [];
  t.mock.method(console, 'log', (...a: unknown[]) => void lines.push(a.join(' ')));
  const code = await kill([...args, '--url', server.url, '--token', server.createdAdminToken!, '--json']);
  t.mock.restoreAll();
  return { code, out: lines.join('\n') };
}

test('kill --drain --commit-memory issues a directive that drains queues and commits memory; without them, the defaults', async (t) => {
  const withFlags = await cli(t, ['--agent', 'acme/bot-a', '--reason', 'test', '--drain', '--commit-memory']);
  assert.equal(withFlags.code, 0);
  const d = (JSON.parse(withFlags.out) as { directive: Directive }).directive;
  assert.equal(d.drain, 'drain');
  assert.equal(d.memory, 'commit');
  const plain = (
    JSON.parse((await cli(t, ['--agent', 'acme/bot-b', '--reason', 'test'])).out) as { directive: Directive }
  ).directive;
  assert.equal(plain.drain, 'discard');
  assert.equal(plain.memory, 'revert');
  const stored = await new ApiClient(server.url, server.createdAdminToken!).get<{ directive: Directive }>(
    `/v1/directives/${d.id}`,
  );
  assert.equal(stored.directive.drain, 'drain', 'as stored at the control plane');
});

test('a runbook of a spec that drains queues and commits memory passes the flags on the CLI', () => {
  const text = SPEC_TEMPLATE.replace('  memory: revert', '  memory: commit').replace(
    '  queue: discard',
    '  queue: drain',
  );
  assert.notEqual(text, SPEC_TEMPLATE);
  const { spec } = parseSpec(text);
  const md = renderRunbook(spec, { source: 'x.yaml', digest: 'd', agent: 'acme/support-bot' });
  assert.match(md, /npx killpath kill --agent \S+ --grace \d+ --drain --commit-memory --reason/);
  assert.match(md, /npx killpath kill --run "\$RUN_ID" --grace \d+ --drain --commit-memory --reason/);
  const plain = renderRunbook(parseSpec(SPEC_TEMPLATE).spec, {
    source: 'x.yaml',
    digest: 'd',
    agent: 'acme/support-bot',
  });
  assert.doesNotMatch(plain, /--drain|--commit-memory/);
});
