import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';

const manifest = (pkg: string) =>
  JSON.parse(readFileSync(new URL(`../../${pkg}/package.json`, import.meta.url), 'utf8')) as {
    dependencies?: Record<string, string>;
  };

test('package borders: the MCP SDK stays out of the agent SDK, and @killpath/mcp never depends on the server', () => {
  assert.ok(!('@modelcontextprotocol/sdk' in (manifest('sdk').dependencies ?? {})));
  assert.ok(!('@modelcontextprotocol/sdk' in (manifest('protocol').dependencies ?? {})));
  const mcp = Object.keys(manifest('mcp').dependencies ?? {});
  assert.ok(!mcp.includes('@killpath/server') && !mcp.includes('@killpath/cli'), mcp.join(','));
  assert.ok(mcp.includes('@modelcontextprotocol/sdk'));
});

test('package borders in the source: no import of the server or the CLI from @killpath/mcp, none of the MCP SDK from the agent SDK', () => {
  const imports = (dir: string): string[] =>
    readdirSync(new URL(`../../${dir}/`, import.meta.url), { recursive: true, encoding: 'utf8' })
      .filter((f) => f.endsWith('.ts'))
      .flatMap((f) =>
        [
          ...readFileSync(new URL(`../../${dir}/${f}`, import.meta.url), 'utf8').matchAll(/from '([^']+)'/g),
        ].map((m) => m[1]!),
      );
  const mcp = imports('mcp/src');
  assert.ok(mcp.length > 0);
  assert.deepEqual(
    mcp.filter((m) => m.startsWith('@killpath/server') || m.startsWith('@killpath/cli')),
    [],
  );
  assert.deepEqual(
    imports('sdk/src').filter((m) => m.startsWith('@modelcontextprotocol')),
    [],
  );
});
