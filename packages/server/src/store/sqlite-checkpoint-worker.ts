/**
 * Worker thread: holds a connection of its own to the database with `synchronous = FULL` and
 * runs `PRAGMA wal_checkpoint(PASSIVE)` on each message, so the copy of the WAL into the
 * database file and its fsyncs happen off the control plane's event loop. Started by `WalSync`.
 */
import { DatabaseSync } from 'node:sqlite';
import { parentPort, workerData } from 'node:worker_threads';

const { path } = workerData as { path: string };
const db = new DatabaseSync(path);
db.exec('PRAGMA synchronous = FULL; PRAGMA busy_timeout = 5000;');
const checkpoint = db.prepare('PRAGMA wal_checkpoint(PASSIVE)');
parentPort!.on('message', () => {
  try {
    const r = checkpoint.get() as { busy: number; log: number; checkpointed: number };
    parentPort!.postMessage({
      ok: true,
      result: { busy: Number(r.busy), log: Number(r.log), checkpointed: Number(r.checkpointed) },
    });
  } catch (err) {
    parentPort!.postMessage({ ok: false, error: err instanceof Error ? err.message : String(err) });
  }
});
