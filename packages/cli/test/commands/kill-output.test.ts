/**
 * What `killpath kill` and `resume` say of a halt's escalation: in words an on-call reads right
 * ("if not acknowledged within 5 s + 1 s, this becomes a kill"), never as a step that looks about
 * to happen ("escalates kill@6000ms"), and a resume does not repeat it.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startServer, type RunningServer } from '@killpath/server';
import { escalationWords, scopeFlags } from '../../src/commands/directives.ts';
import { cli } from '../cli-capture.ts';

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
    let dir: string;
    let server: RunningServer;
    let conn: string[];
    before(async () => {
      dir = mkdtempSync(join(tmpdir(), 'kp-kill-output-'));
      server = await startServer({
        dataDir: dir,
        port: 0,
        logLevel: 'error',
        supervisor: false,
        watchdog: false,
      });
      conn = ['--url', server.url, '--token', server.createdAdminToken!];
    });
    after(async () => {
      await server.close();
      rmSync(dir, { recursive: true, force: true });
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
  });
});
