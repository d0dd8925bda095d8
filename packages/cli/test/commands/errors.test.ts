/**
 * Every error of the CLI is one line on stderr, nothing on stdout and exit 2: a control plane
 * that is not running, a wrong token, an id that names nothing, and `killpath serve` on a port in
 * use, for every command that reads or acts on a control plane. Never a stack trace.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { cli } from '../cli-capture.ts';
import { startCliServer, type CliServer } from '../cli-server.ts';

/** Every command (and subcommand) of the COMMANDS table that talks to a control plane, as argv. */
const TALKING: string[][] = [
  ['status'],
  ['kill', '--run', 'r1', '--tenant', 'acme', '--reason', 'x'],
  ['resume', 'd_1', '--reason', 'x'],
  ['step', 'd_1', 'up', '--reason', 'x'],
  ['approve', 'a_1', '--reason', 'x'],
  ['approvals'],
  ['inspect', '--run', 'r1', '--tenant', 'acme', '--reason', 'x'],
  ['audit', 'verify'],
  ['audit', 'tail'],
  ['audit', 'key'],
  ['audit', 'checkpoint'],
  ['token', 'list'],
  ['token', 'revoke', 't_1', '--reason', 'x'],
  ['journal', 'r1'],
  ['journal', '--permitted-after', 'd_1'],
  ['compensations'],
  ['policy', 'show'],
  ['policy', 'history'],
  ['drill', 'history'],
  ['drill', 'due'],
  ['drill', 'show', 'x_1'],
];

/** Asserts one line on stderr starting `killpath <command>: `, nothing on stdout, exit 2. */
function oneLine(r: { code: number; out: string[]; err: string[] }, argv: string[], re: RegExp): void {
  const what = `killpath ${argv.join(' ')}`;
  assert.equal(r.code, 2, `${what}: exit ${r.code}; ${r.err.join(' | ')}`);
  assert.deepEqual(r.out, [], `${what} printed on stdout`);
  assert.equal(r.err.length, 1, `${what}: ${r.err.join(' | ')}`);
  assert.equal(r.err[0]!.split('\n').length, 1, `${what}: ${r.err[0]}`);
  assert.match(r.err[0]!, new RegExp(`^killpath ${argv[0]}: `), what);
  assert.match(r.err[0]!, re, what);
  assert.doesNotMatch(r.err[0]!, /\n\s+at |Error:/, `${what}: a stack trace`);
}

describe('one-line errors', () => {
  let s: CliServer;
  let free: string;
  before(async () => {
    s = await startCliServer('errors');
    // A port nothing listens on: bound, then released.
    const probe = createServer();
    await new Promise<void>((ok) => probe.listen(0, '127.0.0.1', ok));
    free = String((probe.address() as { port: number }).port);
    await new Promise<void>((ok) => probe.close(() => ok()));
  });
  after(async () => {
    await s?.close();
  });

  it('a control plane that is not running: "cannot reach the control plane at URL"', async () => {
    for (const argv of TALKING) {
      const r = await cli([...argv, '--url', `http://127.0.0.1:${free}`, '--token', 'kp_x']);
      oneLine(r, argv, new RegExp(`cannot reach the control plane at http://127\\.0\\.0\\.1:${free} `));
    }
  });

  it('the launcher, the watchdog and the MCP gateway with no control plane: one line, before starting anything', async () => {
    const child = ['--', process.execPath, '-e', '0'];
    const cases: [string[], string[]][] = [
      [['run', '--tenant', 'acme', '--agent', 'bot'], child],
      [['watchdog'], []],
      [['mcp-gateway', '--tenant', 'acme', '--agent', 'bot'], child],
    ];
    for (const [argv, after] of cases) {
      const r = await cli([...argv, '--url', `http://127.0.0.1:${free}`, '--token', 'kp_x', ...after]);
      oneLine(r, argv, new RegExp(`cannot reach the control plane at http://127\\.0\\.0\\.1:${free} `));
    }
  });

  it('no server.json and no --url: says how to give one', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'killpath-errors-empty-'));
    try {
      const r = await cli(['status', '--data-dir', dir]);
      oneLine(r, ['status'], /no control plane URL: pass --url, set KILLPATH_URL/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a wrong token: refused in one line naming the token', async () => {
    for (const argv of TALKING) {
      const r = await cli([...argv, '--url', s.url, '--token', 'kp_wrong']);
      oneLine(r, argv, /token/i);
    }
  });

  it('an id that names nothing: "… not found"', async () => {
    const cases: [string[], RegExp][] = [
      [['resume', 'd_nope', '--reason', 'x'], /directive d_nope not found/],
      [['step', 'd_nope', 'up', '--reason', 'x'], /directive d_nope not found/],
      [['approve', 'a_nope', '--reason', 'x'], /a_nope not found/],
      [['token', 'revoke', 't_nope', '--reason', 'x'], /t_nope not found/],
      [['journal', 'r_nope'], /run r_nope not found/],
      [['journal', 'r_nope', '--permitted-after', 'd_nope'], /directive d_nope not found/],
      [['compensations', '--run', 'r_nope'], /run r_nope not found/],
      [['inspect', '--run', 'r_nope', '--tenant', 'acme', '--reason', 'x'], /r_nope/],
      [['drill', 'show', 'x_nope'], /x_nope not found/],
      [['policy', 'show', '--version', '999'], /999/],
    ];
    for (const [argv, re] of cases) oneLine(await cli([...argv, ...s.conn]), argv, re);
  });

  it('an id that is not an id at all: one line', async () => {
    for (const argv of [
      ['journal', 'bad id!'],
      ['resume', 'bad id!', '--reason', 'x'],
      ['compensations', '--run', 'bad id!'],
    ])
      oneLine(await cli([...argv, ...s.conn]), argv, /./);
  });

  it('killpath serve on a port in use: "port N is already in use"', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'killpath-errors-serve-'));
    const port = new URL(s.url).port;
    try {
      const r = await cli(['serve', '--port', port, '--data-dir', dir]);
      oneLine(r, ['serve'], new RegExp(`port ${port} is already in use \\(try --port 0 or another port\\)`));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
