/**
 * Where the CLI connects: plain HTTP only to this machine unless --insecure (with a warning on
 * stderr), `--ca`/`KILLPATH_CA` must name a readable PEM file, and a scheme other than http(s)
 * is refused. Each refusal is one `invalid_request` line.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KillpathError } from '@killpath/protocol';
import { resolveConnection } from '../src/config.ts';

const flags = { token: 'secret' };

function refusal(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof KillpathError);
    assert.equal(err.code, 'invalid_request');
    assert.ok(!err.message.includes('\n'), 'one line');
    return err.message;
  }
  assert.fail('expected a refusal');
}

test('plain HTTP to another host needs --insecure, which warns; loopback and https do not', () => {
  assert.match(
    refusal(() => resolveConnection({ ...flags, url: 'http://10.0.0.5:7070' }, {})),
    /refusing plain HTTP to the control plane at 10\.0\.0\.5:7070: .* use https:\/\/ \(--ca FILE for a private CA\) or pass --insecure/,
  );
  const errors: string[] = [];
  const original = console.error;
  console.error = (m: string) => errors.push(m);
  try {
    const c = resolveConnection({ ...flags, url: 'http://10.0.0.5:7070', insecure: true }, {});
    assert.equal(c.insecure, true);
    resolveConnection({ ...flags, url: 'http://10.0.0.5:7070' }, { KILLPATH_INSECURE: '1' });
  } finally {
    console.error = original;
  }
  assert.equal(errors.length, 2);
  assert.match(errors[0]!, /warning: --insecure: talking plain HTTP to 10\.0\.0\.5:7070/);
  assert.equal(resolveConnection({ ...flags, url: 'http://127.0.0.1:7070' }, {}).ca, null);
  assert.equal(resolveConnection({ ...flags, url: 'https://cp.example.com' }, {}).insecure, false);
  assert.match(
    refusal(() => resolveConnection({ ...flags, url: 'ftp://cp.example.com' }, {})),
    /not an http\(s\) URL/,
  );
});

test('--ca and KILLPATH_CA must name a readable file with a PEM certificate', () => {
  const dir = mkdtempSync(join(tmpdir(), 'killpath-cli-ca-'));
  try {
    const url = 'https://cp.example.com';
    assert.match(
      refusal(() => resolveConnection({ ...flags, url, ca: join(dir, 'none.pem') }, {})),
      /cannot read --ca .*none\.pem: ENOENT/,
    );
    writeFileSync(join(dir, 'junk.pem'), 'not a certificate');
    assert.match(
      refusal(() => resolveConnection({ ...flags, url }, { KILLPATH_CA: join(dir, 'junk.pem') })),
      /junk\.pem holds no PEM certificate/,
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
