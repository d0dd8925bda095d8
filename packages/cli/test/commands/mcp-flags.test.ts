import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KillpathError } from '@killpath/protocol';
import { parseListen } from '../../src/commands/mcp-gateway.ts';
import { mcpUrlVariable, parseMcpFronts } from '../../src/commands/mcp-front.ts';

const invalid = (pattern: RegExp) => (e: unknown) =>
  e instanceof KillpathError && e.code === 'invalid_request' && pattern.test(e.message);

test('--listen takes a loopback HOST:PORT', () => {
  assert.deepEqual(parseListen('127.0.0.1:0'), { host: '127.0.0.1', port: 0 });
  assert.deepEqual(parseListen('[::1]:7071'), { host: '::1', port: 7071 });
  assert.deepEqual(parseListen('localhost:80'), { host: 'localhost', port: 80 });
  assert.throws(() => parseListen('0.0.0.0:7071'), invalid(/loopback only/));
  assert.throws(() => parseListen('10.0.0.1:7071'), invalid(/loopback only/));
  for (const bad of ['7071', '127.0.0.1', '127.0.0.1:70000', ':80', '127.0.0.1:x'])
    assert.throws(() => parseListen(bad), invalid(/--listen takes HOST:PORT/), bad);
});

test('--mcp NAME=COMMAND and --mcp-classes NAME=FILE', () => {
  const dir = mkdtempSync(join(tmpdir(), 'kp-mcp-flags-'));
  try {
    const file = join(dir, 'c.json');
    writeFileSync(file, '{"search":"read"}');
    const [spec] = parseMcpFronts(['gh=npx  -y gh-mcp'], [`gh=${file}`]);
    assert.deepEqual(
      { ...spec, classes: undefined },
      { name: 'gh', command: 'npx', args: ['-y', 'gh-mcp'], classes: undefined },
    );
    assert.equal(spec!.classes?.tools?.search, 'read');
    assert.equal(mcpUrlVariable('my-files.v2'), 'KILLPATH_MCP_MY_FILES_V2_URL');
    assert.throws(() => parseMcpFronts(['gh='], []), invalid(/--mcp takes NAME=COMMAND/));
    assert.throws(() => parseMcpFronts(['=x'], []), invalid(/--mcp takes NAME=COMMAND/));
    assert.throws(() => parseMcpFronts(['a=x', 'a=y'], []), invalid(/given twice/));
    assert.throws(() => parseMcpFronts(['a=x'], ['b=f']), invalid(/--mcp-classes takes NAME=FILE/));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
