import type { Worker } from 'node:worker_threads';

/**
 * The one answer of an audit verification worker (both backends run one: `sqlite-audit.ts`,
 * `pg/pg-audit.ts`): it posts `{ ok: true, [key]: value }` or `{ ok: false, error }`; an error
 * or an exit before it answers rejects. `start` runs inside the promise, so a worker that cannot
 * start rejects too.
 */
export function workerAnswer<T>(start: () => Worker, key: string): Promise<T> {
  return new Promise((resolve, reject) => {
    const worker = start();
    let answered = false;
    worker.once('message', (m: ({ ok: true } & Record<string, unknown>) | { ok: false; error: string }) => {
      answered = true;
      if (m.ok) resolve(m[key] as T);
      else reject(new Error(`audit verification failed: ${m.error}`));
    });
    worker.once('error', (err) => {
      answered = true;
      reject(err);
    });
    worker.once('exit', (code) => {
      if (!answered) reject(new Error(`audit verification worker exited with code ${code}`));
    });
  });
}
