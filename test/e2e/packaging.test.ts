/**
 * Every public package installs from its own tarball, as a user would install it from a
 * registry: `npm pack` each one, install the tarballs into an empty project, then the `killpath`
 * command answers and the agent SDK imports (on every Node this machine has that the SDK
 * supports). Hoisted workspaces hide a missing dependency or a private one; this does not.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, dirname, join } from 'node:path';
import { after, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const NPM_ENV = { ...process.env, PATH: `${dirname(process.execPath)}${delimiter}${process.env.PATH}` };

function publicPackages(): string[] {
  const root = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8'));
  return (root.workspaces as string[])
    .map((w) => JSON.parse(readFileSync(join(ROOT, w, 'package.json'), 'utf8')))
    .filter((p) => p.private !== true)
    .map((p) => p.name as string);
}

/** Node binaries to try the SDK on: this one, and the machine's own where it is another. */
function nodes(): string[] {
  const found = [process.execPath];
  for (const candidate of ['/usr/bin/node', '/usr/local/bin/node'])
    if (existsSync(candidate) && !found.includes(candidate)) found.push(candidate);
  return found;
}

describe('public packages install from their tarballs', { timeout: 240_000 }, () => {
  const work = mkdtempSync(join(tmpdir(), 'kp-pack-'));
  after(() => rmSync(work, { recursive: true, force: true }));

  it('npm pack, npm install into an empty project, then killpath --help and an SDK import work', () => {
    const names = publicPackages();
    assert.ok(names.includes('@killpath/cli') && names.includes('@killpath/sdk'));
    const packed = JSON.parse(
      execFileSync(
        'npm',
        ['pack', '--json', '--pack-destination', work, ...names.flatMap((n) => ['-w', n])],
        {
          cwd: ROOT,
          env: NPM_ENV,
          encoding: 'utf8',
          stdio: ['ignore', 'pipe', 'pipe'],
        },
      ),
    ) as { filename: string }[];
    assert.equal(packed.length, names.length);

    const app = join(work, 'app');
    mkdirSync(app);
    writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'app', private: true, type: 'module' }));
    const install = spawnSync(
      'npm',
      [
        'install',
        '--no-audit',
        '--no-fund',
        '--prefer-offline',
        ...packed.map((p) => join(work, p.filename)),
      ],
      { cwd: app, env: NPM_ENV, encoding: 'utf8' },
    );
    assert.equal(install.status, 0, `npm install of the tarballs: ${install.stderr}`);

    const help = spawnSync('npx', ['--no-install', 'killpath', '--help'], {
      cwd: app,
      env: NPM_ENV,
      encoding: 'utf8',
    });
    assert.equal(help.status, 0, help.stderr);
    assert.match(help.stdout, /killpath — the kill path/);

    const kill = spawnSync('npx', ['--no-install', 'killpath', 'kill', '--help'], {
      cwd: app,
      env: NPM_ENV,
      encoding: 'utf8',
    });
    assert.equal(kill.status, 0, kill.stderr);
    assert.match(kill.stdout, /killpath kill/);

    for (const node of nodes()) {
      const version = execFileSync(node, ['--version'], { encoding: 'utf8' }).trim();
      const [major, minor] = version.slice(1).split('.').map(Number) as [number, number];
      if (major < 20 || (major === 20 && minor < 19)) continue; // below the SDK's promise: nothing to check
      const sdk = spawnSync(
        node,
        [
          '--input-type=module',
          '-e',
          "const m = await import('@killpath/sdk'); const t = await import('@killpath/sdk/testing'); console.log(typeof m.connect, typeof t.FakeTransport)",
        ],
        { cwd: app, encoding: 'utf8' },
      );
      assert.equal(sdk.status, 0, `the SDK on Node ${version}: ${sdk.stderr}`);
      assert.equal(sdk.stdout.trim(), 'function function', `the SDK on Node ${version}`);
    }
  });
});
