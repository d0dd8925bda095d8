/**
 * What `killpath kill` and `resume` say of a halt's escalation: in words an on-call reads right
 * ("if not acknowledged within 5 s + 1 s, this becomes a kill"), never as a step that looks about
 * to happen ("escalates kill@6000ms"), and a resume does not repeat it.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { escalationWords, scopeFlags } from '../../src/commands/directives.ts';
import { cli } from '../cli-capture.ts';
import { startCliServer, type CliServer } from '../cli-server.ts';

describe('scope flags: both spellings of an agent', () => {
  it('--agent T/A and --tenant T --agent A name the same agent scope', () => {
    assert.deepEqual(scopeFlags({ agent: 'acme/support-bot' }, 'kill'), {
      scopeText: 'agent:acme/support-bot',
    });
    assert.deepEqual(scopeFlags({ tenant: 'acme', agent: 'support-bot' }, 'kill'), {
      scopeText: 'agent:acme/support-bot',
    });
    assert.deepEqual(scopeFlags({ tenant: 'acme', agent: 'acme/support-bot' }, 'kill'), {
      scopeText: 'agent:acme/support-bot',
    });
    assert.throws(
      () => scopeFlags({ tenant: 'globex', agent: 'acme/support-bot' }, 'kill'),
      /--agent acme\/support-bot is not in --tenant globex/,
    );
    assert.throws(
      () => scopeFlags({ agent: 'support-bot' }, 'kill'),
      /--agent takes TENANT\/AGENT \(or --tenant TENANT --agent AGENT\)/,
    );
    assert.deepEqual(scopeFlags({ tenant: 'acme', run: 'r1' }, 'kill'), {
      scopeText: 'run:r1',
      tenant: 'acme',
    });
    assert.deepEqual(scopeFlags({ tenant: 'acme' }, 'resume'), { scopeText: 'tenant:acme' });
    assert.equal(scopeFlags({}, 'resume'), null);
    assert.throws(
      () => scopeFlags({ run: 'r1', agent: 'acme/a' }, 'resume'),
      /pick exactly one scope.*killpath resume --help/,
    );
  });
});

describe('escalation in words', () => {
  it('grace, then slack', () => {
    assert.equal(
      escalationWords({ level: 'halt', graceMs: 5000, escalation: [{ level: 'kill', afterMs: 6000 }] }),
      'if not acknowledged within 5 s + 1 s, this becomes a kill',
    );
    assert.equal(
      escalationWords({ level: 'halt', graceMs: 0, escalation: [{ level: 'kill', afterMs: 1500 }] }),
      'if not acknowledged within 1.5 s, this becomes a kill',
    );
    assert.equal(escalationWords({ level: 'kill', graceMs: 0, escalation: [] }), '');
  });

  describe('through the CLI', () => {
    let s: CliServer;
    let conn: string[];
    before(async () => {
      s = await startCliServer('kill-output');
      conn = s.conn;
    });
    after(async () => {
      await s?.close();
    });

    it('kill says what the halt becomes; resume does not repeat it', async () => {
      const issued = await cli([
        'kill',
        '--agent',
        'acme/bot',
        '--grace',
        '5000',
        '--reason',
        'incident 42',
        ...conn,
      ]);
      assert.equal(issued.code, 0, issued.err.join('\n'));
      assert.match(
        issued.out.join('\n'),
        /^issued halt agent:acme\/bot \(id (\S+), rev \d+\); if not acknowledged within 5 s \+ 1 s, this becomes a kill$/,
      );
      assert.doesNotMatch(issued.out.join('\n'), /escalates|kill@/);
      const id = /\(id (\S+),/.exec(issued.out[0]!)![1]!;
      const again = await cli([
        'kill',
        '--tenant',
        'acme',
        '--agent',
        'bot',
        '--grace',
        '5000',
        '--reason',
        'incident 42',
        ...conn,
      ]);
      assert.equal(again.code, 0, again.err.join('\n'));
      assert.match(
        again.out.join('\n'),
        new RegExp(`^already in force \\(identical directive\\): halt agent:acme/bot \\(id ${id},`),
      );
      const resumed = await cli(['resume', id, '--reason', 'fixed', ...conn]);
      assert.equal(resumed.code, 0, resumed.err.join('\n'));
      // The escalation is not repeated; the second line is the release check the resume passed.
      assert.match(
        resumed.out.join('\n'),
        /^cleared halt agent:acme\/bot \(id \S+, rev \d+\) at rev \d+\n {2}release check: the directive recorded no release$/,
      );
    });

    it('a run scope prints with its tenant in kill, status, resume and audit tail: run:acme/run-7', async () => {
      const issued = await cli(['kill', '--tenant', 'acme', '--run', 'run-7', '--reason', 'page', ...conn]);
      assert.equal(issued.code, 0, issued.err.join('\n'));
      assert.match(issued.out[0]!, /^issued halt run:acme\/run-7 \(id \S+, rev \d+\); if not acknowledged/);
      const status = (await cli(['status', ...conn])).out.join('\n');
      assert.match(status, /\bhalt +run:acme\/run-7 /);
      const tail = await cli(['audit', 'tail', '-n', '1', '--type', 'directive.issued', ...conn]);
      assert.match(
        tail.out[0]!,
        / directive\.issued by \S+ \[acme\] directive=\S+ level=halt scope=run:acme\/run-7$/,
      );
      const resumed = await cli([
        'resume',
        '--tenant',
        'acme',
        '--run',
        'run-7',
        '--reason',
        'fixed',
        ...conn,
      ]);
      assert.equal(resumed.code, 0, resumed.err.join('\n'));
      assert.match(resumed.out.join('\n'), /^1 directive cleared at run:acme\/run-7$/m);
      const agentWide = await cli(['kill', '--agent', 'acme/bot-9', '--reason', 'page', ...conn]);
      assert.match(
        agentWide.out[0]!,
        /^issued halt agent:acme\/bot-9 /,
        'an agent scope names its tenant already',
      );
    });
  });
});
