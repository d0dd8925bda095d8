import { test } from 'node:test';
import assert from 'node:assert/strict';
import { KillpathError, isCapability } from '@killpath/protocol';
import { mcpCapability, parseToolClasses, toolClass } from '../src/index.ts';

test('a tool capability is mcp:<server>/<tool>, a valid capability even for a legacy tool name', () => {
  assert.equal(mcpCapability('github', 'create_issue'), 'mcp:github/create_issue');
  for (const [tool, cap] of [
    ['read file', 'mcp:fs/read_file'],
    ['a/b', 'mcp:fs/a_b'],
    ['', 'mcp:fs/_'],
    ['x'.repeat(200), `mcp:fs/${'x'.repeat(128)}`],
  ] as const) {
    assert.equal(mcpCapability('fs', tool), cap);
    assert.ok(isCapability(cap), cap);
  }
  assert.throws(
    () => mcpCapability('git hub', 'x'),
    (e: unknown) => e instanceof KillpathError && e.code === 'invalid_request',
  );
});

test('tool classes: long and short forms, write by default, bad entries named', () => {
  const long = parseToolClasses('{"default":"read","tools":{"push":"irreversible"}}');
  assert.equal(toolClass(long, 'push'), 'irreversible');
  assert.equal(toolClass(long, 'other'), 'read');
  const short = parseToolClasses('{"search":"read","*":"irreversible"}');
  assert.equal(toolClass(short, 'search'), 'read');
  assert.equal(toolClass(short, 'other'), 'irreversible');
  assert.equal(toolClass(parseToolClasses('{}'), 'x'), 'write');
  assert.equal(toolClass(undefined, 'x'), 'write');
  for (const [text, pattern] of [
    ['nope', /not valid JSON/],
    ['[]', /must be a JSON object/],
    ['{"search":"reads"}', /tool "search" must be one of read, write, irreversible/],
    ['{"default":"x"}', /"default" must be one of/],
    ['{"tools":{"a":1}}', /tool "a" must be one of/],
  ] as const) {
    assert.throws(
      () => parseToolClasses(text, 'classes.json'),
      (e: unknown) => e instanceof KillpathError && e.code === 'invalid_request' && pattern.test(e.message),
      text,
    );
  }
});
