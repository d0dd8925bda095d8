/**
 * Plain HTTP is for this machine only: `connect` refuses an `http://` control plane on another
 * host unless `insecure` (which logs a warning), and a CA given as `ca` or `KILLPATH_CA` must be
 * PEM. Loopback addresses are always allowed.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KillpathError, isLoopbackHost } from '@killpath/protocol';
import { connect } from '../src/index.ts';

const base = { token: 't', tenant: 'acme', agent: 'bot', telemetryMs: 0, readyTimeoutMs: 50 } as const;

function refusal(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof KillpathError);
    assert.equal(err.code, 'invalid_request');
    return err.message;
  }
  assert.fail('expected a refusal');
}

test('plain HTTP to another host is refused, loopback is not', async () => {
  for (const url of ['http://10.1.2.3:7070', 'http://cp.example.com', 'http://[2001:db8::1]:7070'])
    assert.match(
      refusal(() => connect({ ...base, url })),
      /refusing plain HTTP to the control plane at .*: the token would cross the network unencrypted; use https:\/\//,
    );
  for (const h of ['127.0.0.1', '127.3.2.1', 'localhost', 'api.localhost', '[::1]'])
    assert.ok(isLoopbackHost(h), h);
  for (const h of ['10.0.0.1', '128.0.0.1', 'localhost.example.com', '127.0.0.256', '::2'])
    assert.ok(!isLoopbackHost(h), h);
  // Loopback over plain HTTP connects (nothing listens on port 9: ready fails, the client is built).
  const c = connect({ ...base, url: 'http://127.0.0.1:9' });
  await c.close();
});

test('insecure allows it with a warning; so does KILLPATH_INSECURE=1', async () => {
  const warnings: string[] = [];
  const c = connect({
    ...base,
    url: 'http://10.1.2.3:9',
    insecure: true,
    logger: { warn: (m) => warnings.push(m) },
  });
  await c.close();
  assert.deepEqual(
    warnings.filter((w) => w.startsWith('insecure')),
    ['insecure: plain HTTP to 10.1.2.3:9; the token crosses the network unencrypted'],
  );
  process.env.KILLPATH_INSECURE = '1';
  try {
    const d = connect({ ...base, url: 'http://10.1.2.3:9', logger: { warn: () => {} } });
    await d.close();
  } finally {
    delete process.env.KILLPATH_INSECURE;
  }
});

test('a CA must be PEM; KILLPATH_CA names a readable PEM file', async () => {
  assert.match(
    refusal(() => connect({ ...base, url: 'https://cp.example.com', ca: 'not a cert' })),
    /ca must be PEM/,
  );
  const dir = mkdtempSync(join(tmpdir(), 'killpath-ca-'));
  try {
    process.env.KILLPATH_CA = join(dir, 'missing.pem');
    assert.match(
      refusal(() => connect({ ...base, url: 'https://cp.example.com' })),
      /cannot read KILLPATH_CA/,
    );
    writeFileSync(join(dir, 'junk.pem'), 'hello');
    process.env.KILLPATH_CA = join(dir, 'junk.pem');
    assert.match(
      refusal(() => connect({ ...base, url: 'https://cp.example.com' })),
      /holds no PEM certificate/,
    );
  } finally {
    delete process.env.KILLPATH_CA;
    rmSync(dir, { recursive: true, force: true });
  }
});
