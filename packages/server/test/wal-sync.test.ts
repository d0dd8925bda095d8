import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { WalSync } from '../src/store/wal-sync.ts';

const dir = mkdtempSync(join(tmpdir(), 'killpath-walsync-'));
after(() => rmSync(dir, { recursive: true, force: true }));

test(
  'a checkpoint whose worker dies rejects instead of staying pending, and the next one starts a new worker',
  { timeout: 60_000 },
  async () => {
    // The worker cannot open a database in a directory that does not exist: it throws and exits.
    const wal = new WalSync(join(dir, 'missing', 'store.db'));
    try {
      await assert.rejects(wal.checkpoint());
      await assert.rejects(wal.checkpoint(), 'a second checkpoint settles too (a new worker)');
    } finally {
      await wal.close();
    }
  },
);
