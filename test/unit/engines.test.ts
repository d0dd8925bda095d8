/**
 * The engines fields tell the truth, and agree: every workspace package says which Node it
 * needs, the agent side (`protocol`, `sdk`, the demo agent) the Node ≥ 20.19 the README
 * promises, and no package depends (transitively, through `dependencies` and
 * `optionalDependencies`, as npm installs them) on one whose own engines field refuses that
 * Node: `npm install` on the lowest Node a package claims prints no EBADENGINE for anything it
 * needs. (`canonicalize@5` wants Node ≥ 22: only the server, on Node ≥ 24, may use it.) The
 * SDK's optional peers (the adapters' frameworks) are reported with the Node they need, which
 * the README states.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { describe, it } from 'node:test';

const ROOT = resolve(import.meta.dirname, '../..');
const AGENT_SIDE_NODE = '20.19.0';

interface Manifest {
  name: string;
  version: string;
  engines?: { node?: string };
  dependencies?: Record<string, string>;
  optionalDependencies?: Record<string, string>;
  peerDependencies?: Record<string, string>;
}

const read = (file: string): Manifest => JSON.parse(readFileSync(file, 'utf8')) as Manifest;
const rootPkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { workspaces: string[] };
const WORKSPACES = rootPkg.workspaces.map((w) => ({
  dir: join(ROOT, w),
  pkg: read(join(ROOT, w, 'package.json')),
}));

type Version = [number, number, number];
const parse = (v: string): Version => {
  const [a = 0, b = 0, c = 0] = v.split('.').map((x) => Number.parseInt(x, 10));
  return [a, b, c];
};
const cmp = (x: Version, y: Version) => x[0] - y[0] || x[1] - y[1] || x[2] - y[2];

/**
 * Whether `version` satisfies a node-semver range of the forms engines fields use: `||` of
 * space-separated comparators (`>=`, `>`, `<`, `<=`, `^`, `~`, a bare X or X.Y or X.Y.Z).
 * @throws on a form it does not know, so that the test is updated rather than fooled
 */
export function satisfies(version: string, range: string): boolean {
  const v = parse(version);
  return range.split('||').some((alt) => {
    const parts = alt
      .trim()
      .replace(/(>=|<=|>|<|\^|~)\s+/g, '$1')
      .split(/\s+/)
      .filter(Boolean);
    return parts.every((part) => {
      const m = /^(>=|<=|>|<|\^|~|=)?v?(\d+(?:\.\d+){0,2})(?:\.[x*])?$/.exec(part);
      if (!m) throw new Error(`engines range "${range}": unknown comparator "${part}"`);
      const [op = '', text] = [m[1], m[2]!];
      const w = parse(text);
      const fields = text.split('.').length;
      switch (op) {
        case '>=':
          return cmp(v, w) >= 0;
        case '>':
          return cmp(v, w) > 0;
        case '<':
          return cmp(v, w) < 0;
        case '<=':
          return cmp(v, w) <= 0;
        case '^':
          return cmp(v, w) >= 0 && v[0] === w[0];
        case '~':
          return cmp(v, w) >= 0 && v[0] === w[0] && (fields < 2 || v[1] === w[1]);
        default:
          return v.slice(0, fields).every((n, i) => n === w[i]);
      }
    });
  });
}

/** The lowest Node a package's own `>=X[.Y[.Z]]` engines field admits. */
function lowest(pkg: Manifest): string {
  const m = /^>=\s*(\d+(?:\.\d+){0,2})$/.exec(pkg.engines?.node ?? '');
  assert.ok(m, `${pkg.name}: engines.node is ">=X.Y", got ${JSON.stringify(pkg.engines?.node)}`);
  return parse(m[1]!).join('.');
}

/** Where Node would find `name` from `dir` (walking up the node_modules folders). */
function locate(name: string, dir: string): string | null {
  for (let d = dir; ; d = dirname(d)) {
    const file = join(d, 'node_modules', name, 'package.json');
    if (existsSync(file)) return file;
    if (d === dirname(d)) return null;
  }
}

/** Every package npm installs for `pkg` (dependencies and optional ones, transitively), with its file. */
function installedFor(dir: string, pkg: Manifest): { pkg: Manifest; file: string; via: string }[] {
  const seen = new Map<string, { pkg: Manifest; file: string; via: string }>();
  const walk = (from: string, m: Manifest, via: string) => {
    for (const name of Object.keys({ ...m.dependencies, ...m.optionalDependencies })) {
      const file = locate(name, from);
      if (file === null || seen.has(file)) continue;
      const dep = read(file);
      seen.set(file, { pkg: dep, file, via: `${via} > ${dep.name}@${dep.version}` });
      walk(dirname(file), dep, `${via} > ${dep.name}`);
    }
  };
  walk(dir, pkg, pkg.name);
  return [...seen.values()];
}

describe('engines fields', () => {
  it('satisfies() reads the range forms found in node_modules', () => {
    assert.equal(satisfies('20.19.0', '^20.19.0 || ^22.13.0 || >=24'), true);
    assert.equal(satisfies('20.18.9', '^20.19.0 || ^22.13.0 || >=24'), false);
    assert.equal(satisfies('20.19.0', '>= 18'), true);
    assert.equal(satisfies('20.19.0', '>=22'), false);
    assert.equal(satisfies('20.19.0', '20 || >=22'), true);
    assert.equal(satisfies('21.1.0', '20 || >=22'), false);
    assert.equal(satisfies('24.0.0', '^18.18.0 || ^20.9.0 || >=21.1.0'), true);
  });

  it('every workspace package declares the Node it needs; the agent side needs only Node ≥ 20.19', () => {
    for (const { pkg } of WORKSPACES) lowest(pkg);
    for (const name of ['@killpath/protocol', '@killpath/sdk', '@killpath/demo-agent'])
      assert.equal(
        lowest(WORKSPACES.find((w) => w.pkg.name === name)!.pkg),
        AGENT_SIDE_NODE,
        `${name} runs on Node ≥ 20.19`,
      );
  });

  it('nothing a package installs refuses the lowest Node that package claims (no EBADENGINE)', () => {
    const refusals: string[] = [];
    for (const { dir, pkg } of WORKSPACES) {
      const node = lowest(pkg);
      for (const dep of installedFor(dir, pkg)) {
        const range = dep.pkg.engines?.node;
        if (range !== undefined && !satisfies(node, range))
          refusals.push(`${pkg.name} claims Node ${node}, but ${dep.via} needs ${range}`);
      }
    }
    assert.deepEqual(refusals, []);
  });

  it('a workspace package needs at least what the workspace packages it depends on need', () => {
    for (const { pkg } of WORKSPACES) {
      for (const name of Object.keys(pkg.dependencies ?? {})) {
        const dep = WORKSPACES.find((w) => w.pkg.name === name);
        if (dep === undefined) continue;
        assert.ok(
          cmp(parse(lowest(pkg)), parse(lowest(dep.pkg))) >= 0,
          `${pkg.name} (${pkg.engines?.node}) depends on ${name} (${dep.pkg.engines?.node})`,
        );
      }
    }
  });

  it('the SDK adapters’ optional frameworks need what the README says', () => {
    const sdk = WORKSPACES.find((w) => w.pkg.name === '@killpath/sdk')!;
    const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
    for (const peer of Object.keys(sdk.pkg.peerDependencies ?? {})) {
      const file = locate(peer, sdk.dir);
      assert.ok(file, `${peer} is installed for the adapter tests`);
      let needs = AGENT_SIDE_NODE;
      for (const dep of [{ pkg: read(file), via: peer }, ...installedFor(dirname(file), read(file))]) {
        const range = dep.pkg.engines?.node;
        // The lowest major that satisfies every range met so far (the ranges here are >=X or ^X||>=Y).
        while (range !== undefined && !satisfies(needs, range)) needs = `${parse(needs)[0] + 1}.0.0`;
      }
      if (needs !== AGENT_SIDE_NODE) {
        const major = parse(needs)[0];
        const says = new RegExp(`\`${peer.replace(/[/@]/g, (c) => `\\${c}`)}\`[^\\n]*Node ≥ ${major}`);
        assert.ok(says.test(readme), `README: ${peer} (an optional peer of the SDK) needs Node ≥ ${major}`);
      }
    }
  });
});
