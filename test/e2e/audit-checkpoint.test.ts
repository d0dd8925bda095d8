/**
 * `killpath audit key | checkpoint | verify --checkpoint` against a real `killpath serve`: a kept
 * checkpoint verifies while the log grows (with the key pinned too), and after the database is
 * truncated or restored to an older copy behind the control plane's back, verification fails
 * naming the missing records.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { runCli, startServerProcess, type ServerProcess } from './server-process.ts';

test('a kept checkpoint catches truncation and rollback of the database through the CLI', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'killpath-e2e-ckpt-'));
  const dataDir = join(dir, 'data');
  const kept = join(dir, 'kept.json');
  let server: ServerProcess | null = await startServerProcess(dataDir);
  const cli = (...args: string[]) => runCli([...args, '--data-dir', dataDir]);
  const halt = (run: string) =>
    cli(
      'kill',
      '--agent',
      `acme/${run}`,
      '--level',
      'halt',
      '--reason',
      'e2e',
      '--justification',
      'checkpoint test',
    );
  try {
    const key = await cli('audit', 'key');
    assert.equal(key.code, 0, key.stderr);
    assert.match(key.stdout, /^# ed25519:[0-9a-f]{16} \(Ed25519/);
    const pem = key.stdout
      .split('\n')
      .filter((l) => !l.startsWith('#'))
      .join('\n');
    writeFileSync(join(dir, 'pub.pem'), pem);

    assert.equal((await halt('r1')).code, 0);
    const c = await cli('audit', 'checkpoint', '--now', '--out', kept);
    assert.equal(c.code, 0, c.stderr);
    const keptSize = (JSON.parse(readFileSync(kept, 'utf8')) as { size: number }).size;
    // A consistent copy of the live database, as a backup tool would take it.
    const live = new DatabaseSync(join(dataDir, 'killpath.db'));
    live.exec(`VACUUM INTO '${join(dir, 'older.db')}'`);
    live.close();

    assert.equal((await halt('r2')).code, 0);
    let v = await cli('audit', 'verify', '--checkpoint', kept, '--save', join(dir, 'newer.json'));
    assert.equal(v.code, 0, v.stdout + v.stderr);
    assert.match(v.stdout, new RegExp(`audit log extends the checkpoint: ${keptSize} records`));
    v = await cli('audit', 'verify', '--checkpoint', kept, '--key', join(dir, 'pub.pem'));
    assert.equal(v.code, 0, v.stdout + v.stderr);
    assert.match(v.stdout, /pinned key ed25519:/);
    const newerSize = (JSON.parse(readFileSync(join(dir, 'newer.json'), 'utf8')) as { size: number }).size;
    assert.ok(newerSize > keptSize);

    // Bad files: one line, exit 2.
    writeFileSync(join(dir, 'junk.json'), 'not json');
    v = await cli('audit', 'verify', '--checkpoint', join(dir, 'junk.json'));
    assert.equal(v.code, 2);
    assert.match(v.stderr, /junk\.json is not JSON/);
    assert.doesNotMatch(v.stderr, /\n\s+at /, 'no stack trace');

    // Truncation behind the control plane's back: the last three records deleted, checkpoints too.
    await server.stop();
    server = null;
    const db = new DatabaseSync(join(dataDir, 'killpath.db'));
    const last = (db.prepare('SELECT MAX(seq) AS n FROM audit').get() as { n: number }).n;
    db.exec(`DELETE FROM audit WHERE seq > ${last - 3}; DELETE FROM checkpoints;`);
    db.close();
    server = await startServerProcess(dataDir);
    v = await cli('audit', 'verify', '--checkpoint', join(dir, 'newer.json'));
    assert.equal(v.code, 1, v.stdout + v.stderr);
    assert.match(v.stdout, /does NOT extend the checkpoint/);
    // (The restarted control plane signed its start, so the log has one record more than was left.)
    assert.match(
      v.stdout,
      new RegExp(
        `the log has ${last - 2} records but the checkpoint .* covers ${newerSize}: records #${last - 1}–#${newerSize} are missing`,
      ),
    );

    // Rollback: the older copy restored; the newer checkpoint names what the copy lacks.
    await server.stop();
    server = null;
    for (const f of ['killpath.db-wal', 'killpath.db-shm']) rmSync(join(dataDir, f), { force: true });
    copyFileSync(join(dir, 'older.db'), join(dataDir, 'killpath.db'));
    server = await startServerProcess(dataDir);
    v = await cli('audit', 'verify', '--checkpoint', join(dir, 'newer.json'));
    assert.equal(v.code, 1, v.stdout + v.stderr);
    assert.match(
      v.stdout,
      /are missing \(deleted from the end, or the database was restored to an older copy\)|no longer hash/,
    );
    // The kept (older) checkpoint still verifies against the restored copy it describes.
    v = await cli('audit', 'verify', '--checkpoint', kept);
    assert.equal(v.code, 0, v.stdout + v.stderr);
  } finally {
    await server?.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});
