#!/usr/bin/env node
// The `killpath` command. The code lives in ../dist (built by `npm install` via `tsc -b`).
import { main } from '../dist/main.js';

process.exitCode = await main(process.argv.slice(2));
