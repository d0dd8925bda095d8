/**
 * The kill path over TLS: `killpath serve --tls-cert/--tls-key` with a certificate this test
 * makes itself (a private CA and a server certificate for 127.0.0.1, by the `openssl` binary).
 * The demo fleet connects through the SDK with `KILLPATH_CA`, a launched agent through
 * `killpath run --ca`; a halt reaches every covered worker and a kill the launcher, as over plain
 * HTTP. Without the CA the CLI refuses the certificate in one line.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { getCACertificates, setDefaultCACertificates } from 'node:tls';
import { ApiClient, DEMO_FLEET, FleetHarness, demoFlips, flipAndMeasure } from '@killpath/cli';
import type { AuditRecord, Directive } from '@killpath/protocol';
import { LADDER_AGENT, launch } from './launch.ts';
import { runCli, startServerProcess, until, type ServerProcess } from './server-process.ts';

/** A private CA and a certificate for 127.0.0.1 and localhost signed by it (openssl, EC P-256). */
function makeCertificates(dir: string): { ca: string; cert: string; key: string } {
  const version = spawnSync('openssl', ['version'], { encoding: 'utf8' });
  assert.equal(version.status, 0, 'the openssl binary makes the test certificates');
  const run = (...args: string[]) => {
    const r = spawnSync('openssl', args, { cwd: dir, encoding: 'utf8' });
    assert.equal(r.status, 0, `openssl ${args.join(' ')}: ${r.stderr}`);
  };
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  run(
    'req',
    '-x509',
    ...ec,
    '-keyout',
    'ca.key',
    '-out',
    'ca.pem',
    '-days',
    '2',
    '-subj',
    '/CN=killpath e2e CA',
  );
  run('req', ...ec, '-keyout', 'server.key', '-out', 'server.csr', '-subj', '/CN=127.0.0.1');
  writeFileSync(join(dir, 'ext.cnf'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\n');
  run(
    'x509',
    '-req',
    '-in',
    'server.csr',
    '-CA',
    'ca.pem',
    '-CAkey',
    'ca.key',
    '-CAcreateserial',
    '-out',
    'server.pem',
    '-days',
    '2',
    '-extfile',
    'ext.cnf',
  );
  return { ca: join(dir, 'ca.pem'), cert: join(dir, 'server.pem'), key: join(dir, 'server.key') };
}

describe('kill path over TLS (real processes)', { timeout: 180_000 }, () => {
  let dir: string;
  let certs: { ca: string; cert: string; key: string };
  let server: ServerProcess;
  let api: ApiClient;
  let fleet: FleetHarness | null = null;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'killpath-e2e-tls-'));
    certs = makeCertificates(dir);
    server = await startServerProcess(join(dir, 'data'), 0, [
      '--tls-cert',
      certs.cert,
      '--tls-key',
      certs.key,
      '--keepalive-ms',
      '300',
      '--cool-off',
      '400',
    ]);
    // This process (the harness's API calls) trusts the test CA, as `--ca` makes the CLI do.
    setDefaultCACertificates([...getCACertificates('default'), readFileSync(certs.ca, 'utf8')]);
    api = new ApiClient(server.url, server.adminToken);
  });

  after(async () => {
    await fleet?.stop();
    await server?.stop().catch(() => {});
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test('the CLI refuses the certificate without the CA, in one line, and works with --ca', async () => {
    assert.match(server.url, /^https:\/\/127\.0\.0\.1:\d+$/);
    const data = join(dir, 'data');
    const refused = await runCli(['status', '--data-dir', data], {
      env: { ...process.env, KILLPATH_CA: '' },
    });
    assert.equal(refused.code, 2, refused.stdout + refused.stderr);
    assert.match(
      refused.stderr,
      /cannot reach the control plane at https:\/\/127\.0\.0\.1:\d+ \(.*certificate/i,
    );
    assert.equal(refused.stderr.trim().split('\n').length, 1, 'one line, no stack trace');
    const ok = await runCli(['status', '--data-dir', data, '--ca', certs.ca]);
    assert.equal(ok.code, 0, ok.stderr);
    const env = await runCli(['status', '--data-dir', data], {
      env: { ...process.env, KILLPATH_CA: certs.ca },
    });
    assert.equal(env.code, 0, env.stderr);
  });

  test('a halt reaches every covered SDK worker over TLS; no covered effect after observe', async () => {
    fleet = await FleetHarness.start({
      api,
      agents: DEMO_FLEET,
      env: {
        KILLPATH_CA: certs.ca,
        DEMO_PERIOD_MS: '100',
        DEMO_SLOW_MS: '5000',
        KILLPATH_LEASE_MS: '1500',
        KILLPATH_HEARTBEAT_MS: '1000',
      },
      readyTimeoutMs: 60_000,
    });
    const spec = demoFlips().find((s) => s.body.scope === 'tenant:acme')!;
    const o = await flipAndMeasure(
      api,
      fleet,
      { ...spec, body: { ...spec.body, graceMs: 30_000 } },
      { windowMs: 600 },
    );
    assert.ok(o.covered.length > 0, 'the scope covers some worker');
    assert.equal(o.missingReports, 0, 'every covered worker reported halted over TLS');
    assert.equal(o.startedAfterObserve, 0, 'no covered effect started after its worker observed the flip');
    assert.equal(o.permitsAfterFlip, 0, 'no write permit for a covered effect after the flip');
    assert.equal(o.uncovered.working, o.uncovered.workers, 'uncovered workers kept working');
    console.log(
      `# TLS: tenant halt, ${o.covered.length} covered workers, all reported; ${o.uncovered.workers} uncovered kept working`,
    );
    await fleet.stop();
    fleet = null;
  });

  test('killpath run --ca: the launcher takes its orders over TLS and kills the agent', async () => {
    const l = launch({
      url: server.url,
      token: server.adminToken,
      tenant: 'acme',
      agent: 'tls-bot',
      run: 'tls-1',
      agentScript: LADDER_AGENT,
      extra: ['--ca', certs.ca],
    });
    try {
      await l.waitOut((e) => e.k === 'ready', 30_000, 'the agent under the launcher');
      const kill = await api.post<{ directive: Directive }>('/v1/directives', {
        level: 'kill',
        scope: 'run:tls-1',
        tenant: 'acme',
        reason: 'tls e2e',
        justification: 'kill over TLS',
      });
      assert.equal(await l.exited, 3, 'killpath run exits 3: killed by the switchboard');
      await until('the kill in the audit', 10_000, async () =>
        (await api.get<{ records: AuditRecord[] }>('/v1/audit?type=process.killed&limit=100')).records.find(
          (r) => r.data.directiveId === kill.directive.id,
        ),
      );
    } finally {
      await l.stop();
    }
  });
});
