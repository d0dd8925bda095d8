/**
 * Under a burst, nothing is lost (issue 13, "Fan-out and reports"): 180 SDK workers over three
 * agents (two of them sharing a transport, so their reports go in batches), and rounds of three halts issued at once (a tenant, two of its agents) then resumed at
 * once. Every worker applies every rev (no gap, no resync) and sees every directive; the control
 * plane takes exactly one halted report per worker and covering halt, and the audit log holds
 * exactly those. Counts are exact; nothing here is timed (the waits only bound the test).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { startServer, type HaltedEvent } from '@killpath/server';
import { connect, nodeHttpTransport, type Client, type Transport } from '@killpath/sdk';
import { ApiClient } from '@killpath/cli';
import type { Directive } from '@killpath/protocol';

const AGENTS = ['a0', 'a1', 'a2'];
const PER_AGENT = 60;
const ROUNDS = 3;
const sleep = (ms: number) => new Promise((ok) => setTimeout(ok, ms));

async function until(what: string, done: () => boolean, ms = 60_000): Promise<void> {
  const by = Date.now() + ms;
  while (!done()) {
    if (Date.now() > by) assert.fail(`gave up waiting: ${what}`);
    await sleep(20);
  }
}

describe('fan-out and reports under a burst', () => {
  it('loses no directive and no halted report', { timeout: 180_000 }, async () => {
    const dir = mkdtempSync(join(tmpdir(), 'killpath-fanout-load-'));
    const server = await startServer({ dataDir: dir, port: 0, logLevel: 'silent', keepaliveMs: 1000 });
    const cp = server.controlPlane;
    const api = new ApiClient(server.url, server.createdAdminToken!);
    const clients: Client[] = [];
    try {
      const { token } = await api.post<{ token: string }>('/v1/tokens', { role: 'agent', tenant: 'load' });
      // Agents a0 and a1 share one transport, as the workers of a host share the default one:
      // their acks and halted reports go out in batches (POST /v1/workers/reports). a2's workers
      // each have their own, so each of their reports goes on its own route.
      const wire = nodeHttpTransport();
      let batched = 0;
      const shared: Transport = {
        openStream: (url, headers, signal) => wire.openStream(url, headers, signal),
        post: (url, headers, body) => {
          if (url.endsWith('/v1/workers/reports')) batched += (body as { reports: unknown[] }).reports.length;
          return wire.post(url, headers, body);
        },
      };
      const reports: HaltedEvent[] = [];
      cp.onHalted((e) => reports.push(e));
      /** Per worker: revs applied, directive ids seen issued, resyncs. */
      const seen = new Map<string, { agent: string; revs: number[]; issued: Set<string>; resyncs: number }>();
      for (const agent of AGENTS) {
        for (let i = 0; i < PER_AGENT; i++) {
          const workerId = `w-${agent}-${i}`;
          const mine = { agent, revs: [] as number[], issued: new Set<string>(), resyncs: 0 };
          seen.set(workerId, mine);
          const client = connect({
            url: server.url,
            token,
            tenant: 'load',
            agent,
            workerId,
            heartbeatMs: 60_000,
            transport: agent === 'a2' ? nodeHttpTransport() : shared,
            sink: {
              record(e) {
                if (e.type === 'rev.applied') {
                  mine.revs.push(e.rev);
                  for (const id of e.issued) mine.issued.add(id);
                } else if (e.type === 'stream.resync') mine.resyncs += 1;
              },
            },
          });
          client.startRun({ runId: `r-${agent}-${i}` });
          clients.push(client);
        }
      }
      await Promise.all(clients.map((c) => c.ready));
      await until('every run registered', () =>
        AGENTS.every(
          (a) => cp.fleet.list('load', cp.hub.rev).filter((w) => w.agent === a).length === PER_AGENT,
        ),
      );

      const halts: Directive[] = [];
      for (let round = 0; round < ROUNDS; round++) {
        // Three halts at once: one commit may carry all three revs, the fan-out sends them back to back.
        const issued = await Promise.all(
          ['tenant:load', 'agent:load/a0', 'agent:load/a1'].map((scope) =>
            api.post<{ directive: Directive }>('/v1/directives', {
              level: 'halt',
              scope,
              reason: `burst ${round}`,
              justification: 'test',
              graceMs: 600_000,
            }),
          ),
        );
        halts.push(...issued.map((r) => r.directive));
        const top = Math.max(...issued.map((r) => r.directive.rev));
        await until(`every worker applied rev ${top}`, () =>
          [...seen.values()].every((w) => w.revs.includes(top)),
        );
        const cleared = await Promise.all(
          issued.map((r) =>
            api.post<{ directive: Directive }>(`/v1/directives/${r.directive.id}/resume`, {
              justification: 'test',
            }),
          ),
        );
        const last = Math.max(...cleared.map((r) => r.directive.clearedRev!));
        await until(`every worker applied rev ${last}`, () =>
          [...seen.values()].every((w) => w.revs.includes(last)),
        );
      }

      // Exactly one report per worker and covering halt.
      const expected = new Set<string>();
      for (const d of halts)
        for (const [workerId, w] of seen)
          if (d.scopeText === 'tenant:load' || d.scopeText === `agent:load/${w.agent}`)
            expected.add(`${workerId}|${d.id}`);
      assert.equal(expected.size, ROUNDS * (AGENTS.length + 2) * PER_AGENT);
      await until(`${expected.size} halted reports`, () => reports.length >= expected.size);
      await sleep(200);
      const got = reports.map((e) => `${e.workerId}|${e.directiveId}`);
      assert.equal(got.length, expected.size, 'no report twice');
      assert.deepEqual(new Set(got), expected, 'every covered worker reported every halt, and nobody else');

      assert.ok(batched > 0, 'reports of the workers that share a transport went in batches');

      // The audit log holds exactly those.
      await cp.flushAudit();
      const records = await cp.store.listAudit({ types: ['session.halted'], limit: 10_000 });
      const audited = records.map((r) => `${String(r.data.workerId)}|${String(r.data.directiveId)}`);
      assert.equal(audited.length, expected.size);
      assert.deepEqual(new Set(audited), expected);

      // Every worker applied every rev after its snapshot, in order, without a gap or a resync,
      // and saw every directive issued.
      const finalRev = cp.hub.rev;
      const allIds = new Set(halts.map((d) => d.id));
      for (const [workerId, w] of seen) {
        assert.equal(w.resyncs, 0, `${workerId} never resynchronised`);
        const first = w.revs[0]!;
        assert.deepEqual(
          w.revs,
          Array.from({ length: finalRev - first + 1 }, (_, i) => first + i),
          `${workerId} applied every rev once, in order`,
        );
        assert.deepEqual(w.issued, allIds, `${workerId} saw every directive`);
      }
    } finally {
      await Promise.all(clients.map((c) => c.close()));
      await server.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
