/**
 * The package borders, checked rather than hoped for: hoisted node_modules resolve anything, so
 * a missing dependency or a deep import only shows when a package is installed on its own.
 *
 * - Every bare import of a package's source is a Node built-in, the package itself, or a declared
 *   dependency (dependencies, peerDependencies, optionalDependencies; a private package that is
 *   bundled may use its devDependencies). Its tests may also use its devDependencies and the
 *   repository's own.
 * - `@killpath/x/sub` is imported only when `sub` is in x's `exports` map; no relative import
 *   leaves its package, and nothing outside a package reaches into its `src/`.
 * - A public package depends on no private one.
 * - The agent side stays an agent side: `protocol` does no I/O and `sdk` loads nothing of the
 *   server (no server package, no HTTP framework, no SQLite).
 * - No package's modules import each other in a cycle, type imports included (a cycle is two
 *   concepts that are one, or an interface that wants its own file).
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { describe, it } from 'node:test';
import ts from 'typescript';

const ROOT = resolve(import.meta.dirname, '../..');

interface Pkg {
  dir: string;
  name: string;
  private: boolean;
  exports: string[];
  deps: Set<string>;
  dev: Set<string>;
}

function readPkg(dir: string): Pkg {
  const p = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8'));
  return {
    dir,
    name: p.name,
    private: p.private === true,
    exports: Object.keys(p.exports ?? {}),
    deps: new Set([
      ...Object.keys(p.dependencies ?? {}),
      ...Object.keys(p.peerDependencies ?? {}),
      ...Object.keys(p.optionalDependencies ?? {}),
    ]),
    dev: new Set(Object.keys(p.devDependencies ?? {})),
  };
}

const rootPkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8'));
const PACKAGES: Pkg[] = (rootPkg.workspaces as string[]).map((w) => readPkg(join(ROOT, w)));
const BY_NAME = new Map(PACKAGES.map((p) => [p.name, p]));
const ROOT_DEV = new Set(Object.keys(rootPkg.devDependencies ?? {}));

function files(dir: string): string[] {
  let out: string[] = [];
  let entries: string[];
  try {
    entries = readdirSync(dir);
  } catch {
    return out;
  }
  for (const e of entries) {
    if (e === 'node_modules' || e === 'dist') continue;
    const full = join(dir, e);
    if (statSync(full).isDirectory()) out = out.concat(files(full));
    else if (/\.(ts|tsx|mts)$/.test(e) && !e.endsWith('.d.ts')) out.push(full);
  }
  return out;
}

function importsOf(file: string): string[] {
  const info = ts.preProcessFile(readFileSync(file, 'utf8'), true, true);
  return info.importedFiles.map((f) => f.fileName);
}

/** `@scope/name/sub` → [`@scope/name`, `./sub`]; `name/sub` → [`name`, `./sub`]. */
function splitSpecifier(spec: string): [string, string] {
  const parts = spec.split('/');
  const n = spec.startsWith('@') ? 2 : 1;
  const rest = parts.slice(n).join('/');
  return [parts.slice(0, n).join('/'), rest ? `./${rest}` : '.'];
}

const isBuiltin = (spec: string) => spec.startsWith('node:') || builtinModules.includes(spec.split('/')[0]!);

function violations(file: string, allowed: Set<string>, home: Pkg | null): string[] {
  const out: string[] = [];
  const where = relative(ROOT, file);
  for (const spec of importsOf(file)) {
    if (spec.startsWith('.')) {
      const target = resolve(dirname(file), spec);
      if (home && !target.startsWith(home.dir + sep))
        out.push(`${where}: relative import ${spec} leaves ${home.name}`);
      if (!home && PACKAGES.some((p) => target.startsWith(join(p.dir, 'src') + sep)))
        out.push(`${where}: ${spec} reaches into a package's src/ (import the package instead)`);
      continue;
    }
    if (isBuiltin(spec)) continue;
    const [name, sub] = splitSpecifier(spec);
    if (home && name === home.name) continue;
    if (!allowed.has(name))
      out.push(`${where}: imports ${name}, which ${home?.name ?? 'the repository'} does not declare`);
    const target = BY_NAME.get(name);
    if (target && !target.exports.includes(sub))
      out.push(`${where}: deep import ${spec} (${name} exports ${target.exports.join(', ')})`);
  }
  return out;
}

describe('package borders', () => {
  for (const pkg of PACKAGES) {
    it(`${pkg.name}: its source imports only what it declares`, () => {
      const allowed = new Set([...pkg.deps, ...(pkg.private ? pkg.dev : [])]);
      const found = files(join(pkg.dir, 'src')).flatMap((f) => violations(f, allowed, pkg));
      assert.deepEqual(found, []);
    });
    it(`${pkg.name}: its tests import only what it declares`, () => {
      const allowed = new Set([...pkg.deps, ...pkg.dev, ...ROOT_DEV]);
      const found = files(join(pkg.dir, 'test')).flatMap((f) => violations(f, allowed, pkg));
      assert.deepEqual(found, []);
    });
  }

  it('end-to-end tests and benchmarks use packages through their public entries', () => {
    const allowed = new Set([
      ...BY_NAME.keys(),
      ...ROOT_DEV,
      ...PACKAGES.flatMap((p) => [...p.deps, ...p.dev]),
    ]);
    const found = [...files(join(ROOT, 'test')), ...files(join(ROOT, 'bench'))].flatMap((f) =>
      violations(f, allowed, null),
    );
    assert.deepEqual(found, []);
  });

  it('a public package depends on no private one (it could not be installed from a registry)', () => {
    const found = PACKAGES.filter((p) => !p.private).flatMap((p) =>
      [...p.deps].filter((d) => BY_NAME.get(d)?.private).map((d) => `${p.name} depends on private ${d}`),
    );
    assert.deepEqual(found, []);
  });

  it('protocol does no I/O and sdk loads nothing of the server', () => {
    const IO = /^node:(fs|net|http|https|http2|child_process|sqlite|dgram|worker_threads|cluster)(\/|$)/;
    const SERVER =
      /^(@killpath\/(server|cli|console)|hono|@hono\/|node:sqlite|prom-client|@marcbachmann\/cel-js)(\/|$)/;
    const found: string[] = [];
    for (const f of files(join(ROOT, 'packages/protocol/src')))
      for (const s of importsOf(f))
        if (IO.test(s) || SERVER.test(s)) found.push(`${relative(ROOT, f)}: ${s}`);
    for (const f of files(join(ROOT, 'packages/sdk/src')))
      for (const s of importsOf(f)) if (SERVER.test(s)) found.push(`${relative(ROOT, f)}: ${s}`);
    assert.deepEqual(found, []);
  });

  for (const pkg of PACKAGES) {
    it(`${pkg.name}: its modules import each other in no cycle`, () => {
      assert.deepEqual(importCycles(join(pkg.dir, 'src')), []);
    });
  }
});

/** Every cycle of relative imports (type imports included) among the modules under `src`, as `a.ts -> b.ts -> a.ts`. */
function importCycles(src: string): string[] {
  const all = new Set(files(src));
  const graph = new Map<string, string[]>();
  for (const f of all) {
    const targets = importsOf(f)
      .filter((s) => s.startsWith('.'))
      .map((s) => resolve(dirname(f), s))
      .filter((t) => all.has(t));
    graph.set(f, targets);
  }
  const cycles: string[] = [];
  const state = new Map<string, 'open' | 'done'>();
  const stack: string[] = [];
  const visit = (n: string): void => {
    state.set(n, 'open');
    stack.push(n);
    for (const m of graph.get(n) ?? []) {
      if (state.get(m) === 'open')
        cycles.push([...stack.slice(stack.indexOf(m)), m].map((x) => relative(src, x)).join(' -> '));
      else if (!state.has(m)) visit(m);
    }
    stack.pop();
    state.set(n, 'done');
  };
  for (const f of all) if (!state.has(f)) visit(f);
  return cycles;
}
