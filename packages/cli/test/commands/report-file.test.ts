import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, it } from 'node:test';
import { prepareReportPath } from '../../src/report-file.ts';

describe('prepareReportPath', () => {
  const dirs: string[] = [];
  afterEach(() => {
    for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
  });
  const scratch = () => {
    const d = mkdtempSync(join(tmpdir(), 'kp-report-'));
    dirs.push(d);
    return d;
  };

  it('creates a missing folder, as a fresh checkout has no test-artifacts/', () => {
    const root = scratch();
    const file = join(root, 'test-artifacts', 'nested', 'drill-ci.html');
    prepareReportPath(file, '--report');
    assert.ok(existsSync(join(root, 'test-artifacts', 'nested')));
    writeFileSync(file, 'ok');
  });

  it('refuses with one line naming the folder when a file stands where the folder should be', () => {
    const root = scratch();
    writeFileSync(join(root, 'taken'), '');
    assert.throws(
      () => prepareReportPath(join(root, 'taken', 'report.html'), '--report'),
      (err: Error & { code?: string }) =>
        err.code === 'invalid_request' && err.message.includes(`cannot write into ${join(root, 'taken')}`),
    );
  });
});
