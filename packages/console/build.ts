/**
 * Builds the console into `dist/`: the Preact app bundled by esbuild (no CDN, no runtime
 * dependency), the page and its stylesheet. `killpath serve` serves `dist/` at `/` and
 * `/console/*`. Run by the root `prepare` script, so `npm install` builds it.
 */
import { build } from 'esbuild';
import { copyFileSync, mkdirSync, rmSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('.', import.meta.url));
const dist = fileURLToPath(new URL('dist/', import.meta.url));

rmSync(dist, { recursive: true, force: true });
mkdirSync(dist, { recursive: true });
await build({
  absWorkingDir: root,
  entryPoints: ['src/main.tsx'],
  outfile: 'dist/app.js',
  bundle: true,
  format: 'esm',
  platform: 'browser',
  target: ['chrome120', 'firefox120', 'safari17'],
  jsx: 'automatic',
  jsxImportSource: 'preact',
  minify: true,
  sourcemap: 'linked',
  legalComments: 'none',
  logLevel: 'warning',
});
for (const file of ['index.html', 'app.css', 'icon.svg'])
  copyFileSync(new URL(`static/${file}`, import.meta.url), new URL(`dist/${file}`, import.meta.url));
console.log(`killpath console built into ${dist}`);
