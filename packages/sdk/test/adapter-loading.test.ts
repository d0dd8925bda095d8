/**
 * The adapters import only types of their framework at module load: loading `@killpath/sdk`
 * or an adapter subpath resolves no module of `ai`, `@openai/agents` or `langchain` (so the SDK
 * keeps its Node ≥ 20.19 promise for users who do not use them), and `killpathLangChain` loads
 * `langchain` only when called. A child process records every module it resolves.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { test } from 'node:test';

const FRAMEWORKS = [
  /\/node_modules\/ai\//,
  /\/node_modules\/@openai\//,
  /\/node_modules\/(@langchain|langchain)\//,
];

function modulesLoadedBy(body: string): string[] {
  const script = `
    import { registerHooks } from 'node:module';
    const seen = [];
    registerHooks({ resolve(specifier, context, next) { const r = next(specifier, context); seen.push(r.url); return r; } });
    ${body}
    process.stderr.write('\\n@@' + JSON.stringify(seen) + '\\n');
  `;
  const child = spawnSync(process.execPath, ['--input-type=module', '-e', script], {
    encoding: 'utf8',
    cwd: new URL('..', import.meta.url),
  });
  const line = child.stderr.split('\n').find((l) => l.startsWith('@@'));
  assert.ok(line, `the child reported its modules (exit ${child.status}): ${child.stderr}`);
  return JSON.parse(line.slice(2)) as string[];
}

for (const path of [
  '@killpath/sdk',
  '@killpath/sdk/ai-sdk',
  '@killpath/sdk/openai-agents',
  '@killpath/sdk/langchain',
]) {
  test(`loading ${path} resolves no framework module`, () => {
    const loaded = modulesLoadedBy(`await import(${JSON.stringify(path)});`);
    assert.ok(
      loaded.some((u) => u.includes('/packages/sdk/')),
      'the hook saw the SDK itself',
    );
    assert.deepEqual(
      loaded.filter((u) => FRAMEWORKS.some((re) => re.test(u))),
      [],
    );
  });
}

test('killpathLangChain loads langchain when called (the check above can see it)', () => {
  const loaded = modulesLoadedBy(`
    const { connect } = await import('@killpath/sdk');
    const { FakeTransport } = await import('@killpath/sdk/testing');
    const { killpathLangChain } = await import('@killpath/sdk/langchain');
    const client = connect({ url: 'http://127.0.0.1:9', token: 't', tenant: 'acme', agent: 'bot', transport: new FakeTransport() });
    await killpathLangChain(client.startRun());
    await client.close();
  `);
  assert.ok(loaded.some((u) => /\/node_modules\/langchain\//.test(u)));
});
