/**
 * What the three example agents share: the connection (from the environment `killpath run`
 * sets), the run, and how a scripted answer is streamed. No API key: every model is scripted.
 */
import { connect } from '@killpath/sdk';
import type { Client, Run } from '@killpath/sdk';

/** One line on stdout, for a person or a test to read. */
export function say(line: string): void {
  process.stdout.write(`${line}\n`);
}

function env(name: string): string {
  const v = process.env[name];
  if (v === undefined || v === '') {
    process.stderr.write(`example: ${name} is not set (start it with \`npx killpath run\`)\n`);
    process.exit(2);
  }
  return v;
}

/** Connects as the agent `killpath run` names and starts the run it names (KILLPATH_RUN_ID). */
export async function start(): Promise<{ client: Client; run: Run }> {
  const client = connect({
    url: env('KILLPATH_URL'),
    token: env('KILLPATH_TOKEN'),
    tenant: env('KILLPATH_TENANT'),
    agent: env('KILLPATH_AGENT'),
  });
  await client.ready;
  const runId = process.env.KILLPATH_RUN_ID;
  const run = client.startRun(runId ? { runId } : {});
  say(`run ${run.runId} started`);
  return { client, run };
}

/** The scripted answer of the streaming turn: one token every {@link TOKEN_MS}, about a minute in all. */
export const ANSWER = Array.from({ length: 300 }, (_, i) => `token${i} `);

/** Time between two tokens of the scripted stream, in ms. */
export const TOKEN_MS = 200;

/** Resolves after `ms` (the scripted model's pace; it ignores abort signals on purpose). */
export function pause(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * Ends the example: prints how the stream ended (halted by the kill path, or finished), closes
 * the client and exits 0.
 */
export async function finish(client: Client, run: Run, tokens: number, err: unknown): Promise<never> {
  if (run.signal.aborted) {
    const reason = run.signal.reason as Error;
    say(`halted after ${tokens} tokens: ${reason.message}`);
  } else if (err !== null) {
    say(`ended by an error after ${tokens} tokens: ${String(err)}`);
  } else {
    say(`finished without a halt after ${tokens} tokens`);
  }
  run.end();
  await client.close();
  process.exit(0);
}
