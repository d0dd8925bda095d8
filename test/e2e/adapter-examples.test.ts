/**
 * The README's example agents, one per framework, as real OS processes against a real control
 * plane, started the way `killpath run` starts them (its environment): each calls a write tool
 * (with a permit), streams a scripted answer, and a halt of its run ends the stream at once;
 * the process then exits 0 on its own.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { livePlane } from './adapter-fixtures.ts';
import type { LivePlane } from './adapter-fixtures.ts';
import { until } from './server-process.ts';

let plane: LivePlane;

before(async () => {
  plane = await livePlane();
});

after(async () => {
  await plane.close();
});

for (const name of ['ai-sdk', 'openai-agents', 'langchain']) {
  test(`examples/adapters ${name}: a write tool runs with a permit, a halt ends the stream, the process exits 0`, async () => {
    const runId = `example-${name}`;
    const child = spawn(
      process.execPath,
      [fileURLToPath(new URL(`../../examples/adapters/dist/${name}.js`, import.meta.url))],
      {
        env: {
          ...process.env,
          KILLPATH_URL: plane.server.url,
          KILLPATH_TOKEN: plane.token,
          KILLPATH_TENANT: 'acme',
          KILLPATH_AGENT: 'bot',
          KILLPATH_RUN_ID: runId,
        },
        stdio: ['ignore', 'pipe', 'pipe'],
        detached: true,
      },
    );
    const lines: string[] = [];
    const stderr: string[] = [];
    createInterface({ input: child.stdout! }).on('line', (l) => lines.push(l));
    createInterface({ input: child.stderr! }).on('line', (l) => stderr.push(l));
    const exited = new Promise<number | null>((ok) => child.once('exit', (code) => ok(code)));
    try {
      await until(`${name} streaming (${lines.join(' | ')} ${stderr.join(' | ')})`, 20_000, () =>
        lines.includes('streaming the answer'),
      );
      assert.ok(lines.includes('tool send_email ran (to ops@example.com)'), lines.join('\n'));
      const halt = await plane.issue({ level: 'halt', scope: `run:${runId}` });
      const haltedAt = Date.now();
      const code = await exited;
      assert.equal(code, 0, `${lines.join('\n')}\n${stderr.join('\n')}`);
      assert.ok(Date.now() - haltedAt < 5000, 'the stream ended long before its scripted minute');
      assert.match(
        lines.at(-1) ?? '',
        new RegExp(`^halted after \\d+ tokens: run ${runId} stopped: halted by directive ${halt.id}`),
      );
    } finally {
      if (child.exitCode === null && child.signalCode === null) process.kill(-child.pid!, 'SIGKILL');
    }
  });
}
