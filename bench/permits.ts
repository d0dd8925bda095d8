/**
 * `npm run bench:permits`: permit round trip and sustained permits per second on the embedded
 * store, then the same load with a halt in the middle: write permits granted after the flip
 * (from the store's audit records; must be 0) and effects started after the flip by class
 * (counted: writes here were permitted before the flip and caught in flight; reads are bounded
 * by observe time). Printed, never asserted.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { startServer } from '@killpath/server';
import { ApiClient, ms, percentile, table } from '@killpath/cli';
import type { AuditRecord, Directive } from '@killpath/protocol';

const PROCS = Number(process.env.BENCH_PROCS ?? 2);
const CONCURRENCY = Number(process.env.CONCURRENCY ?? 25);
const DURATION = Number(process.env.DURATION_MS ?? 5000);

async function phase(flipAtMs: number | null) {
  const dir = mkdtempSync(join(tmpdir(), 'killpath-bench-permits-'));
  const server = await startServer({ dataDir: dir, port: 0, logLevel: 'warn' });
  const api = new ApiClient(server.url, server.createdAdminToken!);
  const { token } = await api.post<{ token: string }>('/v1/tokens', {
    role: 'agent',
    tenant: 'bench',
    agent: 'writer',
  });
  const results: { rtt: number[]; starts: { cls: string; wall: number }[] }[] = [];
  const readies: Promise<void>[] = [];
  const dones: Promise<void>[] = [];
  const kids = Array.from({ length: PROCS }, (_, p) =>
    spawn(process.execPath, [fileURLToPath(new URL('./permit-load.ts', import.meta.url))], {
      stdio: ['ignore', 'pipe', 'inherit'],
      env: {
        ...process.env,
        KILLPATH_URL: server.url,
        KILLPATH_TOKEN: token,
        CONCURRENCY: String(CONCURRENCY),
        DURATION_MS: String(DURATION),
        BASE: String(p * 1000),
      },
    }),
  );
  for (const k of kids) {
    let ready!: () => void;
    let done!: () => void;
    readies.push(new Promise((ok) => (ready = ok)));
    dones.push(new Promise((ok) => (done = ok)));
    createInterface({ input: k.stdout! }).on('line', (line) => {
      const m = JSON.parse(line) as { k: string; rtt: number[]; starts: { cls: string; wall: number }[] };
      if (m.k === 'ready') ready();
      if (m.k === 'done') {
        results.push(m);
        done();
      }
    });
  }
  await Promise.all(readies);
  const t0 = performance.now();
  let directive: Directive | null = null;
  let flipWall = 0;
  if (flipAtMs !== null) {
    await new Promise((ok) => setTimeout(ok, flipAtMs));
    directive = (
      await api.post<{ directive: Directive }>('/v1/directives', {
        level: 'halt',
        scope: 'agent:bench/writer',
        reason: 'bench',
        justification: 'flip under load',
      })
    ).directive;
    flipWall = performance.timeOrigin + server.controlPlane.flipTime(directive.rev)!;
  }
  await Promise.all(dones);
  const elapsed = (performance.now() - t0) / 1000;
  let granted = 0;
  let afterFlip = 0;
  for (let after = 0; ;) {
    const recs = (
      await api.get<{ records: AuditRecord[] }>(`/v1/audit?type=effect.intent&after=${after}&limit=5000`)
    ).records;
    for (const r of recs) {
      granted++;
      if (directive && (r.data.rev as number) >= directive.rev) afterFlip++;
    }
    if (recs.length < 5000) break;
    after = recs.at(-1)!.seq;
  }
  await server.close();
  rmSync(dir, { recursive: true, force: true });
  const rtt = results.flatMap((r) => r.rtt);
  const starts = results.flatMap((r) => r.starts);
  return {
    rtt,
    perSecond: flipAtMs === null ? granted / elapsed : granted / ((flipAtMs + 0) / 1000),
    effectsPerSecond:
      flipAtMs === null
        ? starts.length / elapsed
        : starts.filter((s) => s.wall < flipWall).length / (flipAtMs / 1000),
    afterFlip,
    writesAfterFlip: directive ? starts.filter((s) => s.cls === 'write' && s.wall > flipWall).length : 0,
    readsAfterFlip: directive ? starts.filter((s) => s.cls === 'read' && s.wall > flipWall).length : 0,
  };
}

console.log(
  `killpath permit bench: ${PROCS} processes x ${CONCURRENCY} runs, ${DURATION} ms, node ${process.version}\n`,
);
const steady = await phase(null);
console.log(
  table(
    ['measure', 'value'],
    [
      ['permit round trip p50 (write effect incl. outcome)', ms(percentile(steady.rtt, 50))],
      ['permit round trip p99', ms(percentile(steady.rtt, 99))],
      ['sustained permits per second (embedded store)', Math.round(steady.perSecond)],
      ['effects per second (reads + writes)', Math.round(steady.effectsPerSecond)],
    ],
  ),
);
const flip = await phase(Math.round(DURATION / 2));
console.log(
  `\nflip under load (halt of agent:bench/writer at ${Math.round(DURATION / 2)} ms, ${Math.round(flip.effectsPerSecond)} effects/s before it):`,
);
console.log(
  table(
    ['measure', 'value'],
    [
      ['write permits granted after the flip (store records; must be 0)', flip.afterFlip],
      ['write effects started after the flip (permitted before it, caught in flight)', flip.writesAfterFlip],
      ['read effects started after the flip (bounded by observe time)', flip.readsAfterFlip],
    ],
  ),
);
