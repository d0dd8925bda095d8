/**
 * The wire schemas (`@killpath/protocol/schemas`): bodies the control plane accepts are strict,
 * shapes a client reads drop what a newer control plane adds, and the main entry loads no zod.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { test } from 'node:test';
import { formatScope, parseScope, streamDirective } from '../src/index.ts';
import type { Directive, HeartbeatReport, IssueDirectiveBody } from '../src/index.ts';
import {
  AckReportSchema,
  DirectiveSchema,
  HaltedReportSchema,
  HeartbeatReportSchema,
  IssueDirectiveBodySchema,
  JournalBatchSchema,
  LauncherEventBodySchema,
  PermitRequestSchema,
  ReleaseSchema,
  RunRegistrationSchema,
  StreamDirectiveSchema,
  TokenBodySchema,
} from '../src/schemas/index.ts';

const scope = parseScope('agent:t1/a1');
const directive: Directive = {
  id: 'd1',
  rev: 3,
  level: 'halt',
  scope,
  scopeText: formatScope(scope),
  tenant: 't1',
  capabilities: null,
  rate: null,
  escalation: [{ level: 'kill', afterMs: 5000 }],
  escalatedFrom: null,
  graceMs: 500,
  drain: 'discard',
  memory: 'revert',
  reason: 'r',
  justification: 'j',
  actor: 'alice',
  issuedAt: '2026-01-01T00:00:00.000Z',
  clearedAt: null,
  clearedRev: null,
  releases: [{ code: 'abc' }],
};

test('a directive reads back as itself; fields a newer control plane adds are dropped', () => {
  assert.deepEqual(DirectiveSchema.parse(directive), directive);
  assert.deepEqual(DirectiveSchema.parse({ ...directive, shade: 'blue' }), directive);
  // Older directives have no break-glass field; newer ones null or an attestation.
  const glass = { by: 'root', tokenId: 'tk', at: directive.issuedAt, why: 'all tenants' };
  assert.deepEqual(DirectiveSchema.parse({ ...directive, breakGlass: glass }).breakGlass, glass);
  assert.equal(DirectiveSchema.safeParse({ ...directive, level: 'pause' }).success, false);
  assert.equal(DirectiveSchema.safeParse({ ...directive, scope: 'agent:t1/a1' }).success, false);
  // The stream's form is the same schema without the operators' words.
  assert.deepEqual(StreamDirectiveSchema.parse(directive), streamDirective(directive));
});

test('bodies the control plane accepts refuse unknown fields', () => {
  const heartbeat: HeartbeatReport = { rev: 1, features: [], runs: [], pid: 7, sinceContactMs: 0 };
  const issue: IssueDirectiveBody = { level: 'halt', scope: 'tenant:t1', reason: 'r', justification: 'j' };
  const bodies: [string, { safeParse(x: unknown): { success: boolean } }, Record<string, unknown>][] = [
    ['heartbeat', HeartbeatReportSchema, heartbeat],
    ['ack', AckReportSchema, { rev: 1 }],
    [
      'halted',
      HaltedReportSchema,
      { rev: 1, directiveId: 'd', runs: [], aborted: 0, completed: 0, observeToSettleMs: 1 },
    ],
    [
      'run',
      RunRegistrationSchema,
      { runId: 'r', parentRunId: null, lineage: [], features: [], workerId: 'w' },
    ],
    ['issue', IssueDirectiveBodySchema, issue],
    ['token', TokenBodySchema, { role: 'viewer', tenant: '*' }],
    ['launcher events', LauncherEventBodySchema, { events: [{ type: 'process.started', pid: 1 }] }],
    ['journal', JournalBatchSchema, { workerId: 'w', events: [] }],
    [
      'permit',
      PermitRequestSchema,
      {
        workerId: 'w',
        runId: 'r',
        lineage: [],
        features: [],
        capability: 'crm.update',
        class: 'write',
        idempotencyKey: null,
        argsDigest: null,
        compensate: null,
      },
    ],
  ];
  for (const [name, schema, body] of bodies) {
    assert.equal(schema.safeParse(body).success, true, `${name} accepts its body`);
    assert.equal(schema.safeParse({ ...body, extra: 1 }).success, false, `${name} refuses an unknown field`);
  }
  assert.equal(ReleaseSchema.safeParse({ sha: '1' }).success, false);
  assert.equal(ReleaseSchema.safeParse({ code: 'a b' }).success, false);
});

test('importing the main entry loads no zod; the schemas entry does', () => {
  const loads = (entry: string) => {
    const r = spawnSync(
      process.execPath,
      [
        '--input-type=module',
        '-e',
        `import { registerHooks } from 'node:module';
         let zod = false;
         registerHooks({ resolve(s, c, next) { const r = next(s, c); if (/[\\\\/]zod[\\\\/]/.test(r.url)) zod = true; return r; } });
         await import(${JSON.stringify(entry)});
         console.log(zod);`,
      ],
      { encoding: 'utf8' },
    );
    assert.equal(r.status, 0, r.stderr);
    return r.stdout.trim() === 'true';
  };
  const src = new URL('../src/', import.meta.url);
  assert.equal(loads(new URL('index.ts', src).href), false);
  assert.equal(loads(new URL('schemas/index.ts', src).href), true);
});
