import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
// @ts-expect-error plain JavaScript without declarations: it must run on any Node
import { nodeTooOld } from '../../bin/node-check.js';

const check = nodeTooOld as (version: string, range: string | undefined) => string | null;
const BIN = new URL('../../bin/killpath.js', import.meta.url).pathname;

describe('the CLI on a Node older than it needs', () => {
  it('names the Node it needs and how to get it, in one line', () => {
    const line = check('20.20.2', '>=24');
    assert.equal(
      line,
      'killpath needs Node >=24 and this is Node v20.20.2: inside the project run `npx killpath …` (it uses the pinned Node 24), or install Node 24 (for example `nvm install 24`)',
    );
    assert.equal(check('24.0.0', '>=24'), null);
    assert.equal(check('25.1.0', '>=24.9'), null);
    assert.notEqual(check('24.8.9', '>=24.9'), null);
    assert.equal(check('20.0.0', undefined), null, 'no range, no check');
  });

  it("the CLI's own engines field is what the bin checks, and this Node passes it", () => {
    const { engines } = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8'));
    assert.match(engines.node, /^>=\d+/);
    assert.equal(check(process.versions.node, engines.node), null);
    const child = spawnSync(process.execPath, [BIN, '--version'], { encoding: 'utf8' });
    assert.equal(child.status, 0, child.stderr);
    assert.match(child.stdout, /^killpath /);
  });
});
