import { formatScope, parseScope } from '@killpath/protocol';
import type {
  DeltaMessage,
  Directive,
  DrainMode,
  KeepaliveMessage,
  Level,
  MemoryMode,
  Rate,
  SnapshotMessage,
} from '@killpath/protocol';
import { connect } from '../src/index.ts';
import type { Client, ConnectOptions, Verdict } from '../src/index.ts';
import { FakeControlPlane, FakeTransport, ManualClock, MemorySink } from '../src/testing.ts';
import type { FakeStream } from '../src/testing.ts';

/** A directive as the server would push it. */
export function directive(
  id: string,
  level: Level,
  scope: string,
  extra: {
    rev?: number;
    capabilities?: string[];
    tenant?: string | null;
    drain?: DrainMode;
    graceMs?: number;
    memory?: MemoryMode;
    rate?: Rate;
  } = {},
): Directive {
  const parsed = parseScope(scope);
  return {
    id,
    rev: extra.rev ?? 1,
    level,
    scope: parsed,
    scopeText: formatScope(parsed),
    tenant: extra.tenant === undefined ? 't1' : extra.tenant,
    capabilities: extra.capabilities ?? null,
    rate: extra.rate ?? null,
    escalation: [],
    escalatedFrom: null,
    graceMs: extra.graceMs ?? 0,
    drain: extra.drain ?? 'discard',
    memory: extra.memory ?? 'revert',
    reason: 'test',
    justification: 'test',
    actor: 'tester',
    issuedAt: '2026-01-01T00:00:00.000Z',
    clearedAt: null,
    clearedRev: null,
    releases: [],
  };
}

export function snapshot(rev: number, directives: Directive[] = []): SnapshotMessage {
  return { type: 'snapshot', v: 1, rev, directives, keepaliveMs: 1000 };
}

export function issue(rev: number, d: Directive): DeltaMessage {
  return { type: 'delta', rev, issued: { ...d, rev } };
}

export function clear(rev: number, id: string): DeltaMessage {
  return { type: 'delta', rev, cleared: id };
}

export function keepalive(rev: number): KeepaliveMessage {
  return { type: 'keepalive', rev };
}

export interface Harness {
  clock: ManualClock;
  transport: FakeTransport;
  /** Answers permits, confirmations, journal and resume on `transport` (grants by default). */
  cp: FakeControlPlane;
  sink: MemorySink;
  client: Client;
  stream: FakeStream;
}

/** A client on a manual clock and a fake transport with a fake control plane, with its first stream open. */
export async function harness(options: Partial<ConnectOptions> = {}): Promise<Harness> {
  const clock = new ManualClock(1_000);
  const transport = new FakeTransport();
  const cp = new FakeControlPlane(transport, clock);
  const sink = new MemorySink();
  const client = connect({
    url: 'http://cp.test/',
    token: 'tok-1',
    tenant: 't1',
    agent: 'a1',
    workerId: 'w1',
    clock,
    transport,
    sink,
    logger: { warn: () => {} },
    ...options,
  });
  const stream = await transport.nextStream();
  return { clock, transport, cp, sink, client, stream };
}

/** A promise settled from outside, for effect functions the test finishes by hand. */
export function deferred<T>(): {
  promise: Promise<T>;
  resolve: (v: T) => void;
  reject: (e: unknown) => void;
} {
  let resolve: (v: T) => void = () => {};
  let reject: (e: unknown) => void = () => {};
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

/** The `code` of a rejection, for assert.rejects predicates. */
export function codeOf(err: unknown): unknown {
  return typeof err === 'object' && err !== null && 'code' in err ? err.code : undefined;
}

/** `allow`, or the deny reason. */
export function reasonOf(v: Verdict): string {
  return v.kind === 'allow' ? 'allow' : v.reason;
}
