#!/usr/bin/env node
// The `killpath` command. The code lives in ../dist (built by `npm install` via `tsc -b`).
// process.getBuiltinModule where Node has it: node:fs's ESM facade costs a short command a third
// of its start-up. A Node too old for it gets the import, and the one line below.
const { readFileSync } =
  typeof process.getBuiltinModule === 'function'
    ? process.getBuiltinModule('node:fs')
    : await import('node:fs');
import { nodeTooOld } from './node-check.js';

const { engines } = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8'));
const tooOld = nodeTooOld(process.versions.node, engines?.node);
if (tooOld) {
  console.error(tooOld);
  process.exit(2);
}
const { main } = await import('../dist/main.js');
process.exitCode = await main(process.argv.slice(2));
