/**
 * The CLI loads a command's modules only when that command runs: `killpath kill` must not pay
 * for the server (Hono, CEL, prom-client, node:sqlite) it never uses. A child process records
 * every module it resolves through a resolve hook.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createServer } from 'node:net';
import { describe, it } from 'node:test';

const MAIN = new URL('../../src/main.ts', import.meta.url).href;

function modulesLoadedBy(argv: string[]): string[] {
  const script = `
    import { registerHooks } from 'node:module';
    const seen = [];
    registerHooks({ resolve(specifier, context, next) { const r = next(specifier, context); seen.push(r.url); return r; } });
    const { main } = await import(${JSON.stringify(MAIN)});
    const log = console.log; console.log = () => {};
    await main(${JSON.stringify(argv)});
    console.log = log;
    process.stderr.write('\\n@@' + JSON.stringify(seen) + '\\n');
  `;
  const child = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' });
  const line = child.stderr.split('\n').find((l) => l.startsWith('@@'));
  assert.ok(line, `the child reported its modules (exit ${child.status}): ${child.stderr}`);
  return JSON.parse(line.slice(2)) as string[];
}

const SERVER_SIDE = [/\/packages\/server\//, /\/node_modules\/hono\//, /^node:sqlite$/, /cel/, /prom-client/];

describe('commands load on use', () => {
  for (const argv of [['kill', '--help'], ['resume', '--help'], ['status', '--help'], ['--version']]) {
    it(`killpath ${argv.join(' ')} loads nothing server-side`, () => {
      const loaded = modulesLoadedBy(argv);
      assert.ok(
        loaded.some((u) => u.endsWith('/main.ts')),
        'the hook saw the CLI itself',
      );
      const serverSide = loaded.filter((u) => SERVER_SIDE.some((re) => re.test(u)));
      assert.deepEqual(serverSide, []);
    });
  }

  it('killpath serve --help does load the server (the check above can see it)', () => {
    const loaded = modulesLoadedBy(['serve', '--help']);
    assert.ok(loaded.some((u) => /\/packages\/server\//.test(u) || /@killpath\/server/.test(u)));
  });

  it('killpath kill sends its request without loading fetch (undici) or node:tls', async () => {
    // A port nothing listens on: the request is made and refused, which is all this needs.
    const probe = createServer();
    await new Promise<void>((ok) => probe.listen(0, '127.0.0.1', ok));
    const port = (probe.address() as { port: number }).port;
    await new Promise((ok) => probe.close(ok));
    const script = `
      const { main } = await import(${JSON.stringify(MAIN)});
      const code = await main(['kill', '--tenant', 'acme', '--reason', 'lazy test']);
      process.stderr.write('\\n@@' + JSON.stringify({ code, loaded: process.moduleLoadList }) + '\\n');
    `;
    const child = spawnSync(process.execPath, ['--input-type=module', '-e', script], {
      encoding: 'utf8',
      env: { ...process.env, KILLPATH_URL: `http://127.0.0.1:${port}`, KILLPATH_TOKEN: 'kp_lazytest' },
    });
    const line = child.stderr.split('\n').find((l) => l.startsWith('@@'));
    assert.ok(line, `the child reported (exit ${child.status}): ${child.stderr}`);
    const { code, loaded } = JSON.parse(line.slice(2)) as { code: number; loaded: string[] };
    assert.notEqual(code, 0, 'nothing listens: the kill fails');
    assert.match(child.stderr, /cannot reach the control plane/, 'it did try to reach it');
    assert.deepEqual(
      loaded.filter((m) => /undici|\btls\b|https/.test(m)),
      [],
      'no fetch, no TLS for a plain-HTTP control plane',
    );
  });
});
