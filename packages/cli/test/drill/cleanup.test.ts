/**
 * A scenario that fails never cascades into the next: whatever it left in force is cleared
 * before the next scenario starts, and the report says what was undone. (A failed scope
 * scenario once left `kill tenant:acme` active and failed the isolate and kill scenarios after it.)
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Directive } from '@killpath/protocol';
import type { Scenario } from '../../src/drill/context.ts';
import { check } from '../../src/drill/measure.ts';
import { runDrill } from '../../src/drill/run.ts';
import { parseSpec } from '../../src/killswitch-spec/load-spec.ts';
import { SPEC_TEMPLATE } from '../../src/killswitch-spec/template.ts';

describe('a drill cleans up after each scenario', () => {
  it('a scenario that throws with a tenant kill in force leaves nothing in force for the next one', async () => {
    const { spec, digest } = parseSpec(SPEC_TEMPLATE, 'the demo fleet spec');
    const tenant = spec.agents[0]!.tenant;
    let seenByNext: string[] | null = null;
    const failing: Scenario = {
      id: 'test:fails',
      title: 'issues a tenant kill, then fails',
      path: 'synchronous',
      async run(ctx) {
        await ctx.env.issue({
          scope: `tenant:${tenant}`,
          level: 'kill',
          reason: 'drill test',
          justification: 'drill test: left in force on purpose',
        });
        throw new Error('the scenario broke half-way');
      },
    };
    const next: Scenario = {
      id: 'test:next',
      title: 'looks at the switchboard',
      path: 'synchronous',
      async run(ctx) {
        const { directives } = await ctx.env.api.get<{ directives: Directive[] }>(
          '/v1/directives?active=true',
        );
        seenByNext = directives.map((d) => `${d.level} ${d.scopeText}`);
        return {
          checks: [check('nothing in force', 'invariant', directives.length === 0, seenByNext.join(', '))],
        };
      },
    };
    const progress: string[] = [];
    const run = await runDrill({
      spec,
      digest,
      scenarios: [failing, next],
      compact: true,
      windowMs: 100,
      url: null,
      token: null,
      tenant: null,
      allowGlobal: false,
      keep: false,
      progress: (t) => progress.push(t),
    });
    assert.deepEqual(seenByNext, [], 'the next scenario started with nothing in force');
    const [first, second] = [...run.rehearsal.scenarios].sort((a, b) => a.id.localeCompare(b.id));
    assert.equal(first!.id, 'test:fails');
    assert.equal(first!.status, 'fail');
    assert.ok(
      first!.notes.some((n) => n.startsWith(`cleanup: cleared kill tenant:${tenant}`)),
      `the report says what was cleaned up: ${first!.notes.join(' | ')}`,
    );
    assert.equal(second!.status, 'pass');
    assert.deepEqual(second!.notes, [], 'nothing to clean up after a scenario that cleaned up itself');
    assert.ok(progress.some((p) => p.includes('cleanup after test:fails')));
  });
});
