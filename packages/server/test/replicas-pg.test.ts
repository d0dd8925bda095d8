/**
 * Propagation between replicas on one PostgreSQL (issue 14): two control planes (`startServer`
 * on real sockets) share a fresh database; B reaches it through a TCP relay the test can cut.
 * - a flip committed on A reaches a stream client of B (a real HTTP SSE client) in rev order;
 * - B's listener connection killed (`pg_terminate_backend`): B listens again and catches up,
 *   its stream gets every rev in order, nothing skipped;
 * - the database unreachable from B beyond half a lease: B closes its streams and refuses new
 *   ones 503 `unavailable` (no keep-alive or delta renews a lease), and serves them again, from a
 *   snapshot at the current rev, after it caught up.
 * Assertions are exact; waits are for events, with generous limits, never timing assertions.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, connect, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import postgres from 'postgres';
import { mintToken } from '../src/auth/tokens.ts';
import { startServer, type RunningServer } from '../src/server.ts';
import { migrate } from '../src/store/pg/schema.ts';
import { PgDoorbell } from '../src/store/pg/pg-doorbell.ts';
import { PgStore } from '../src/store/pg/pg-store.ts';
import { SwitchboardView } from '../src/switchboard-view.ts';
import { directiveInput } from './store-contract.ts';
import { PG_ADMIN_URL, dropLeftovers, freshDatabase, requirePostgres, type TestDatabase } from './pg.ts';

after(() => dropLeftovers());

/** A TCP relay to PostgreSQL that the test can cut (every connection reset, new ones refused) and restore. */
async function relay(): Promise<{
  port: number;
  cut(): void;
  restore(): void;
  freeze(): void;
  thaw(): void;
  ports(): number[];
  close(): Promise<void>;
}> {
  const target = new URL(PG_ADMIN_URL);
  let open = true;
  const pairs = new Set<[Socket, Socket]>();
  const server: Server = createServer((client) => {
    if (!open) return void client.destroy();
    const upstream = connect(Number(target.port || 5432), target.hostname);
    const pair: [Socket, Socket] = [client, upstream];
    pairs.add(pair);
    const end = () => {
      pairs.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    client.on('error', end).on('close', end);
    upstream.on('error', end).on('close', end);
    client.pipe(upstream);
    upstream.pipe(client);
  });
  await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
  return {
    port: (server.address() as { port: number }).port,
    cut() {
      open = false;
      for (const [c, u] of [...pairs]) {
        c.destroy();
        u.destroy();
      }
    },
    restore() {
      open = true;
    },
    /** Stops forwarding without closing anything: a silently dead network, as a partition is. */
    freeze() {
      for (const [c, u] of pairs) {
        c.pause();
        u.pause();
      }
    },
    thaw() {
      for (const [c, u] of pairs) {
        c.resume();
        u.resume();
      }
    },
    /** Local ports of the relay's connections to PostgreSQL (what `pg_stat_activity.client_port` shows for B). */
    ports: () => [...pairs].map(([, u]) => u.localPort!).filter((p) => p !== undefined),
    close: () => {
      for (const [c, u] of [...pairs]) {
        c.destroy();
        u.destroy();
      }
      return new Promise<void>((ok) => server.close(() => ok()));
    },
  };
}

interface SseEvent {
  event: string;
  data: Record<string, unknown>;
}

/** A real SSE client (fetch): every event in order, and whether the server ended the stream. */
async function sse(url: string, token: string) {
  const abort = new AbortController();
  const res = await fetch(url, { headers: { authorization: `Bearer ${token}` }, signal: abort.signal });
  const events: SseEvent[] = [];
  let ended = false;
  if (res.ok && res.body) {
    void (async () => {
      const decoder = new TextDecoder();
      let buf = '';
      try {
        for await (const chunk of res.body!) {
          buf += decoder.decode(chunk as Uint8Array, { stream: true });
          let at: number;
          while ((at = buf.indexOf('\n\n')) >= 0) {
            const raw = buf.slice(0, at);
            buf = buf.slice(at + 2);
            const event = /^event: (.*)$/m.exec(raw)?.[1] ?? 'message';
            const data = /^data: (.*)$/m.exec(raw)?.[1];
            events.push({
              event,
              data: data === undefined ? {} : (JSON.parse(data) as Record<string, unknown>),
            });
          }
        }
      } catch {
        // aborted by the test
      }
      ended = true;
    })();
  }
  return {
    status: res.status,
    body: res.ok ? null : await res.text(),
    events,
    deltas: () => events.filter((e) => e.event === 'delta').map((e) => e.data),
    ended: () => ended,
    close: () => abort.abort(),
  };
}

/** Waits until `ok()` holds (checked every 20 ms), failing with `what` after `ms`. */
async function until(ok: () => boolean | Promise<boolean>, what: string, ms = 30_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await ok())) {
    if (Date.now() > end) assert.fail(`not within ${ms} ms: ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

if (await requirePostgres()) {
  describe('replicas on one PostgreSQL: propagation and vouching', () => {
    test('a flip on A reaches B in rev order; B relistens and catches up; B unreachable stops serving, then resumes', async () => {
      const db: TestDatabase = await freshDatabase('view_replicas');
      const dirs = [mkdtempSync(join(tmpdir(), 'kp-view-a-')), mkdtempSync(join(tmpdir(), 'kp-view-b-'))];
      const net = await relay();
      const admin = postgres(db.url, { max: 1, onnotice: () => {} });
      let a: RunningServer | null = null;
      let b: RunningServer | null = null;
      try {
        await migrate(admin);
        const common = {
          port: 0,
          logLevel: 'silent' as const,
          supervisor: false,
          watchdog: false,
          admission: false as const,
          keepaliveMs: 200,
        };
        a = await startServer({ ...common, dataDir: dirs[0]!, storeUrl: db.url });
        const viaRelay = new URL(db.url);
        viaRelay.port = String(net.port);
        b = await startServer({ ...common, dataDir: dirs[1]!, storeUrl: viaRelay.toString() });
        const store = a.controlPlane.store;
        const adminToken = (await mintToken(store, { role: 'admin', tenant: '*' }, 'test')).secret;
        const agentToken = (await mintToken(store, { role: 'agent', tenant: 'acme', agent: 'bot' }, 'test'))
          .secret;
        const issue = async (scope: string, level = 'halt') => {
          const res = await fetch(`${a!.url}/v1/directives`, {
            method: 'POST',
            headers: { authorization: `Bearer ${adminToken}`, 'content-type': 'application/json' },
            body: JSON.stringify({ level, scope, reason: 'r', justification: 'INC-1' }),
          });
          assert.equal(res.status, 201, await res.clone().text());
          return ((await res.json()) as { directive: { id: string; rev: number } }).directive;
        };
        const streamPath = '/v1/stream?worker=w1&tenant=acme&agent=bot';

        // 1. A flip on A reaches B's stream, in rev order.
        const s1 = await sse(`${b.url}${streamPath}`, agentToken);
        assert.equal(s1.status, 200);
        await until(() => s1.events.some((e) => e.event === 'snapshot'), 'B snapshot');
        assert.deepEqual(s1.events[0], {
          event: 'snapshot',
          data: { type: 'snapshot', v: s1.events[0]!.data.v, rev: 0, directives: [], keepaliveMs: 200 },
        });
        const d1 = await issue('tenant:acme');
        const d2 = await issue('agent:acme/bot', 'kill');
        const d3 = await issue('tenant:globex');
        const resumed = await fetch(`${a.url}/v1/directives/${d1.id}/resume`, {
          method: 'POST',
          headers: { authorization: `Bearer ${adminToken}`, 'content-type': 'application/json' },
          body: JSON.stringify({ justification: 'fixed' }),
        });
        assert.equal(resumed.status, 200, await resumed.clone().text());
        await until(() => s1.deltas().length >= 4, 'four deltas on B');
        const first = s1.deltas();
        assert.deepEqual(
          first.map((d) => d.rev),
          [1, 2, 3, 4],
        );
        assert.equal((first[0]!.issued as { id: string }).id, d1.id);
        assert.equal((first[1]!.issued as { id: string }).id, d2.id);
        assert.deepEqual(
          first[2],
          { type: 'delta', rev: 3 },
          `another tenant's directive (${d3.id}): a bare rev step`,
        );
        assert.equal(first[3]!.cleared, d1.id);
        // Keep-alives carry B's rev, never one B has not sent.
        for (const e of s1.events.filter((x) => x.event === 'keepalive'))
          assert.ok((e.data.rev as number) <= 4);

        // 2. B's listener connection is killed; commits meanwhile reach B's stream, in order.
        const listeners = async () =>
          (
            await admin<{ pid: number; client_port: number }[]>`
            SELECT pid, client_port FROM pg_stat_activity
            WHERE datname = ${db.name} AND application_name = 'killpath-doorbell' AND query ILIKE 'listen%'`
          ).filter((r) => net.ports().includes(r.client_port));
        await until(async () => (await listeners()).length === 1, "B's listener in pg_stat_activity");
        const [old] = await listeners();
        const [killed] = await admin<{ ok: boolean }[]>`SELECT pg_terminate_backend(${old!.pid}) AS ok`;
        assert.equal(killed?.ok, true);
        const later = [
          await issue('agent:acme/bot2'),
          await issue('agent:acme/bot3'),
          await issue('tenant:acme', 'degrade'),
        ];
        await until(() => s1.deltas().length >= 7, 'seven deltas on B');
        assert.deepEqual(
          s1.deltas().map((d) => d.rev),
          [1, 2, 3, 4, 5, 6, 7],
        );
        assert.deepEqual(
          s1
            .deltas()
            .slice(4)
            .map((d) => (d.issued as { id: string }).id),
          later.map((d) => d.id),
        );
        await until(
          async () => (await listeners()).some((r) => r.pid !== old!.pid),
          'B listens again on a new connection',
        );
        assert.equal(b.controlPlane.view.rev, 7);
        assert.equal(s1.ended(), false);

        // 3. PostgreSQL unreachable from B: past half a lease B stops serving its switchboard.
        net.cut();
        await until(() => !b!.controlPlane.view.vouching, 'B stops vouching');
        await until(() => s1.ended(), "B closed its worker's stream");
        const refused = await sse(`${b.url}${streamPath}`, agentToken);
        assert.equal(refused.status, 503);
        assert.equal((JSON.parse(refused.body!) as { error: { code: string } }).error.code, 'unavailable');
        const d8 = await issue('agent:acme/other'); // committed on A while B cannot see it
        assert.equal(d8.rev, 8);
        // Back: B catches up and serves again, from a snapshot at the current rev.
        net.restore();
        await until(() => b!.controlPlane.view.vouching, 'B vouches again', 60_000);
        assert.equal(b.controlPlane.view.rev, 8);
        const s2 = await sse(`${b.url}${streamPath}`, agentToken);
        assert.equal(s2.status, 200);
        await until(() => s2.events.some((e) => e.event === 'snapshot'), 'B snapshot after the outage');
        const snap = s2.events[0]!.data as { rev: number; directives: { id: string }[] };
        assert.equal(snap.rev, 8);
        assert.deepEqual(
          snap.directives.map((d) => d.id).sort(),
          [d2.id, ...later.map((d) => d.id), d8.id].sort(),
        );
        s1.close();
        s2.close();
      } finally {
        net.restore();
        await b?.close();
        await a?.close();
        await admin.end({ timeout: 1 });
        await net.close();
        await db.drop();
        for (const d of dirs) rmSync(d, { recursive: true, force: true });
      }
    });

    test('a listener silently cut off (no reset, the database still readable) is caught by its pings: the view stops vouching, and vouches again once it hears them', async () => {
      const db = await freshDatabase('view_doorbell');
      const net = await relay();
      const admin = postgres(db.url, { max: 1, onnotice: () => {} });
      let store: PgStore | null = null;
      let view: SwitchboardView | null = null;
      try {
        await migrate(admin);
        store = await PgStore.open(db.url, { max: 2 });
        const viaRelay = new URL(db.url);
        viaRelay.port = String(net.port);
        // Reads go straight to the database; only the doorbell goes through the relay.
        view = new SwitchboardView(store, {
          doorbell: new PgDoorbell(viaRelay.toString(), { pingMs: 300 }),
          vouchMs: 1500,
          pollMs: 300,
        });
        const heard: boolean[] = [];
        view.onVouch((v) => heard.push(v));
        await view.start();
        const seen: number[] = [];
        view.onChange((c) => seen.push(c.rev));
        await store.issueDirective(directiveInput({ scope: 'run:a' }), () => []);
        await until(() => seen.length === 1, 'the first commit rung in');
        await until(() => view!.vouching, 'the view vouches');

        net.freeze();
        await until(() => !view!.vouching, 'the view stops vouching');
        assert.equal(heard.at(-1), false);
        // Meanwhile the poll, which reads directly, still moves the view: the truth is the rev log.
        await store.issueDirective(directiveInput({ scope: 'run:b' }), () => []);
        await until(() => seen.length === 2, 'the poll brings rev 2');
        assert.equal(view.vouching, false, 'reads alone do not vouch for a deaf listener');

        net.thaw();
        await until(() => view!.vouching, 'the view vouches again');
        assert.equal(heard.at(-1), true);
        assert.deepEqual(seen, [1, 2]);
        assert.equal(view.rev, 2);
      } finally {
        net.thaw();
        await view?.stop();
        await store?.close();
        await admin.end({ timeout: 1 });
        await net.close();
        await db.drop();
      }
    });
  });
}
