/**
 * Guarantee 1 under load, and no outcome lost: two agent processes take write effects on 40
 * runs back to back while an operator halts their agent. Checked from the database after the
 * control plane stopped: no permit of the agent was granted at or after the halt's rev, every
 * permit ended (none left open, so no outcome was lost), and the landed permits are exactly the
 * writes the agents saw land. Correctness only: no timing is asserted.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { DatabaseSync } from 'node:sqlite';
import { startServerProcess, type ServerProcess } from './server-process.ts';

const AGENT = fileURLToPath(new URL('./fixtures/permit-load-agent.ts', import.meta.url));

test('under permit load from two processes, no permit is granted after the halt’s rev and no outcome is lost', async () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'killpath-permit-load-'));
  let server: ServerProcess | null = null;
  const kids: ChildProcess[] = [];
  try {
    server = await startServerProcess(dataDir);
    const api = async (path: string, body: unknown) => {
      const res = await fetch(`${server!.url}${path}`, {
        method: 'POST',
        headers: { authorization: `Bearer ${server!.adminToken}`, 'content-type': 'application/json' },
        body: JSON.stringify(body),
      });
      const text = await res.text();
      assert.ok(res.ok, `${path}: ${res.status} ${text}`);
      return JSON.parse(text) as Record<string, unknown>;
    };
    const { token } = (await api('/v1/tokens', { role: 'agent', tenant: 'acme', agent: 'loader' })) as {
      token: string;
    };
    const done: Promise<{ landed: number; refused: number; other: string[] }>[] = [];
    const ready: Promise<void>[] = [];
    for (let p = 0; p < 2; p++) {
      const kid = spawn(process.execPath, [AGENT], {
        stdio: ['ignore', 'pipe', 'inherit'],
        env: { ...process.env, KILLPATH_URL: server.url, KILLPATH_TOKEN: token, LOAD_BASE: String(p) },
      });
      kids.push(kid);
      const lines = createInterface({ input: kid.stdout! });
      ready.push(
        new Promise((ok, fail) => {
          lines.on('line', (l) => (JSON.parse(l) as { k: string }).k === 'ready' && ok());
          kid.once('exit', (code) => fail(new Error(`agent exited with ${code} before it was ready`)));
        }),
      );
      done.push(
        new Promise((ok, fail) => {
          lines.on('line', (l) => {
            const m = JSON.parse(l) as { k: string; landed: number; refused: number; other: string[] };
            if (m.k === 'done') ok(m);
          });
          kid.once('exit', (code) => code !== 0 && fail(new Error(`agent exited with ${code}`)));
        }),
      );
    }
    await Promise.all(ready);
    // Let the load run, then halt the agent while its permits are in flight.
    await new Promise((ok) => setTimeout(ok, 1500));
    const { directive } = (await api('/v1/directives', {
      level: 'halt',
      scope: 'agent:acme/loader',
      reason: 'permit load test',
      justification: 'guarantee 1 under load',
    })) as { directive: { rev: number } };
    const results = await Promise.all(done);
    await server.stop();
    server = null;

    assert.deepEqual(
      results.flatMap((r) => r.other),
      [],
      'every write either landed or was refused halted',
    );
    const landed = results.reduce((n, r) => n + r.landed, 0);
    assert.equal(
      results.reduce((n, r) => n + r.refused, 0),
      40,
      'every run ended on a halted refusal',
    );
    assert.ok(landed > 0, 'writes landed before the halt');

    const db = new DatabaseSync(join(dataDir, 'killpath.db'), { readOnly: true });
    try {
      const count = (sql: string, ...args: (string | number)[]) =>
        Number((db.prepare(sql).get(...args) as { n: number }).n);
      assert.equal(
        count(
          `SELECT COUNT(*) AS n FROM permits WHERE tenant = 'acme' AND agent = 'loader' AND rev >= ?`,
          directive.rev,
        ),
        0,
        `no permit granted at or after the halt's rev ${directive.rev}`,
      );
      assert.equal(
        count(`SELECT COUNT(*) AS n FROM permits WHERE status IN ('granted', 'cooling_off', 'in_doubt')`),
        0,
        `every permit has its outcome: none lost (${JSON.stringify(db.prepare('SELECT status, error, COUNT(*) AS n FROM permits GROUP BY status, error').all())})`,
      );
      assert.equal(
        count(`SELECT COUNT(*) AS n FROM permits WHERE status = 'landed'`),
        landed,
        'the landed permits are exactly the writes the agents saw land',
      );
    } finally {
      db.close();
    }
  } finally {
    for (const k of kids) if (k.exitCode === null) k.kill('SIGKILL');
    await server?.crash();
    rmSync(dataDir, { recursive: true, force: true });
  }
});
