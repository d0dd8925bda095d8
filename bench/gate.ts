// Gate micro-benchmark: ns per `run.check` on the allow and deny paths, over an in-memory
// transport and the real monotonic clock. Prints, never asserts. Run: node bench/gate.ts
import { formatScope, parseScope } from '@killpath/protocol';
import type { Directive, Level } from '@killpath/protocol';
import { connect } from '@killpath/sdk';
import type { Run, Verdict } from '@killpath/sdk';
import { FakeTransport } from '@killpath/sdk/testing';

const ITERATIONS = Number(process.env.GATE_ITERATIONS ?? 10_000_000);

function directive(
  id: string,
  rev: number,
  level: Level,
  scope: string,
  capabilities: string[] | null = null,
): Directive {
  const parsed = parseScope(scope);
  return {
    id,
    rev,
    level,
    scope: parsed,
    scopeText: formatScope(parsed),
    tenant: 't1',
    capabilities,
    rate: null,
    escalation: [],
    escalatedFrom: null,
    graceMs: 0,
    drain: 'discard',
    memory: 'revert',
    reason: 'bench',
    justification: 'bench',
    actor: 'bench',
    issuedAt: new Date(0).toISOString(),
    clearedAt: null,
    clearedRev: null,
    releases: [],
  };
}

let sink = 0;

function measure(label: string, run: Run, capability: string, expect: Verdict['kind']): void {
  if (run.check(capability).kind !== expect) throw new Error(`${label}: expected ${expect}`);
  // Warm up so the optimising compiler has seen the loop.
  for (let i = 0; i < 1_000_000; i++) if (run.check(capability).kind === 'deny') sink++;
  const start = process.hrtime.bigint();
  for (let i = 0; i < ITERATIONS; i++) if (run.check(capability).kind === 'deny') sink++;
  const ns = Number(process.hrtime.bigint() - start) / ITERATIONS;
  console.log(
    `${label.padEnd(44)} ${ns.toFixed(1).padStart(6)} ns/op  (${ITERATIONS.toLocaleString('en')} checks)`,
  );
}

const transport = new FakeTransport();
const client = connect({
  url: 'http://bench.invalid',
  token: 'x',
  tenant: 't1',
  agent: 'a1',
  transport,
  leaseMs: 600_000,
  heartbeatMs: 600_000,
});
const stream = await transport.nextStream();
const directives = [
  directive('d1', 1, 'throttle', 'agent:t1/a1'),
  directive('d2', 2, 'halt', 'agent:t1/other'),
  directive('d3', 3, 'halt', 'agent:t1/a1', ['wire_transfer', 'payments']),
  directive('d4', 4, 'kill', 'run:halted-root'),
  directive('d5', 5, 'halt', 'feature:old-planner'),
  ...Array.from({ length: 20 }, (_, i) => directive(`x${i}`, 10 + i, 'halt', `run:elsewhere-${i}`)),
];
await stream.push({ type: 'snapshot', v: 1, rev: 30, directives, keepaliveMs: 1_000 });
await client.ready;

const free = client.startRun({ runId: 'free' });
const root = client.startRun({ runId: 'halted-root' });
const child = root.startChild({ runId: 'halted-child' });

console.log(`node ${process.version}, ${directives.length} directives on the switchboard`);
measure('allow (no covering stop directive)', free, 'llm', 'allow');
measure('deny, capability-narrowed halt', free, 'wire_transfer', 'deny');
measure('deny, run-wide kill via lineage', child, 'llm', 'deny');
await client.close();
if (sink === 42) console.log('');
