/**
 * `startServer` binds its port before it starts anything: a start that cannot listen has opened
 * no database, minted no token, armed no escalation and logged nothing (a second `serve` on a
 * live data dir must not act on it). A first start that fails after minting the admin token says
 * where the token is. Real sockets on loopback, real SQLite files in a temporary directory.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startServer } from '../src/server.ts';
import { SqliteStore } from '../src/store/sqlite-store.ts';
import type { Logger } from '../src/log.ts';

function capture(): Logger & { lines: string[] } {
  const lines: string[] = [];
  const put = (msg: string) => lines.push(msg);
  return { lines, debug: put, info: put, warn: put, error: put };
}

test('a port already taken fails the start before any database, token or log line', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'killpath-startup-'));
  const taken = createServer();
  await new Promise<void>((ok) => taken.listen(0, '127.0.0.1', ok));
  t.after(async () => {
    await new Promise<void>((ok) => taken.close(() => ok()));
    rmSync(dir, { recursive: true, force: true });
  });
  const log = capture();
  await assert.rejects(
    startServer({ dataDir: dir, port: (taken.address() as AddressInfo).port, logger: log }),
    (err: NodeJS.ErrnoException) => err.code === 'EADDRINUSE',
  );
  assert.deepEqual(readdirSync(dir), [], 'no database, no admin.token, no server.json');
  assert.deepEqual(log.lines, [], 'nothing ran, so nothing logged');
});

test('a first start that fails after minting the admin token says where it is, and lets the port go', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'killpath-startup-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const real = new SqliteStore(join(dir, 'killpath.db'));
  // A store whose switchboard cannot be read: the start fails after the token was minted.
  const broken = new Proxy(real, {
    get(target, prop, receiver) {
      if (prop === 'switchboard') return () => Promise.reject(new Error('disk I/O error'));
      const v = Reflect.get(target, prop, receiver) as unknown;
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
    },
  });
  const port = await new Promise<number>((ok) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const p = (s.address() as AddressInfo).port;
      s.close(() => ok(p));
    });
  });
  await assert.rejects(
    startServer({ dataDir: dir, port, store: broken, logger: capture() }),
    (err: Error) => {
      assert.match(err.message, /disk I\/O error/);
      assert.ok(
        err.message.includes(`the admin token this start created is in ${join(dir, 'admin.token')}`),
        err.message,
      );
      return true;
    },
  );
  assert.ok(existsSync(join(dir, 'admin.token')));
  assert.ok(!existsSync(join(dir, 'server.json')));
  // The port was let go: a new listener can have it.
  const again = createServer();
  await new Promise<void>((ok, fail) => {
    again.once('error', fail);
    again.listen(port, '127.0.0.1', ok);
  });
  await new Promise<void>((ok) => again.close(() => ok()));
});
