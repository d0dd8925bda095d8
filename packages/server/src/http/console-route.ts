import { existsSync } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { dirname, extname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Context, Hono } from 'hono';
import { KillpathError } from '@killpath/protocol';
import { wireError, type Env } from './common.ts';

/**
 * Content-Security-Policy of the web console: scripts, styles and images from this origin only,
 * no inline script or style, API calls to this origin only, never framed.
 */
export const CONSOLE_CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self'",
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');

/** What to run when the console's assets are missing. */
const NOT_BUILT =
  'The killpath web console is not built.\n' +
  'Build it with `npm run build -w @killpath/console` (a plain `npm install` in the repository does it),\n' +
  'or point KILLPATH_CONSOLE_DIR at a directory holding a built console (index.html, app.js, app.css).\n';

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.map': 'application/json; charset=utf-8',
  '.txt': 'text/plain; charset=utf-8',
};

/** One file name, no directories, no dot files. */
const FILE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

/**
 * Where the built console lives: `KILLPATH_CONSOLE_DIR`, else the `dist` of the installed
 * `@killpath/console` package, else `packages/console/dist` beside this package in a checkout.
 * Null when none holds an `index.html`.
 */
export function findConsoleDir(env: Record<string, string | undefined> = process.env): string | null {
  const candidates: string[] = [];
  if (env.KILLPATH_CONSOLE_DIR) candidates.push(env.KILLPATH_CONSOLE_DIR);
  try {
    candidates.push(
      join(dirname(fileURLToPath(import.meta.resolve('@killpath/console/package.json'))), 'dist'),
    );
  } catch {
    // Not installed beside the server: try the checkout layout.
  }
  // From packages/server/{src,dist}/http/ to packages/console/dist.
  candidates.push(fileURLToPath(new URL('../../../console/dist', import.meta.url)));
  return candidates.find((d) => existsSync(join(d, 'index.html'))) ?? null;
}

/** Options of {@link consoleRoutes}. */
export interface ConsoleRouteOptions {
  /** Directory of the built console; default {@link findConsoleDir}, looked up again until found. */
  dir?: string | null;
}

/**
 * Serves the web console without authentication (its API calls carry the operator's token):
 * the page at `/`, its assets at `/console/<file>`. Touches no other path, so `/v1/*`,
 * `/healthz` and `/metrics` are unaffected. A console that is not built answers 503 with
 * how to build it.
 */
export function consoleRoutes(app: Hono<Env>, opts: ConsoleRouteOptions = {}): void {
  let dir = opts.dir === undefined ? findConsoleDir() : opts.dir;
  const lookup = opts.dir === undefined;

  const headers = (c: Context): void => {
    c.header('content-security-policy', CONSOLE_CSP);
    c.header('x-content-type-options', 'nosniff');
    c.header('referrer-policy', 'no-referrer');
    c.header('x-frame-options', 'DENY');
    c.header('cache-control', 'no-cache');
  };

  // A missing file answers with the API's one error shape, like every other 4xx.
  const notFound = (c: Context, file: string): Response =>
    wireError(c, new KillpathError('not_found', `console: ${file} not found`));

  const send = async (c: Context, file: string): Promise<Response> => {
    headers(c);
    c.header('content-type', 'text/plain; charset=utf-8');
    if (dir === null && lookup) dir = findConsoleDir();
    if (dir === null) return c.body(NOT_BUILT, 503);
    const path = join(dir, file);
    let data: Buffer;
    try {
      if (!(await stat(path)).isFile()) return notFound(c, file);
      data = await readFile(path);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (file === 'index.html') return c.body(NOT_BUILT, 503);
      if (code === 'ENOENT' || code === 'ENOTDIR') return notFound(c, file);
      throw err;
    }
    c.header('content-type', TYPES[extname(file)] ?? 'application/octet-stream');
    return c.body(new Uint8Array(data), 200);
  };

  app.get('/', (c) => send(c, 'index.html'));
  app.get('/console', (c) => c.redirect('/', 302));
  app.get('/console/', (c) => c.redirect('/', 302));
  app.get('/console/:file', (c) => {
    const file = c.req.param('file');
    if (!FILE.test(file) || file.includes('..')) {
      headers(c);
      return notFound(c, 'that file');
    }
    return send(c, file);
  });
}
