import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ApiClient } from '@killpath/cli';
import type { Directive } from '@killpath/protocol';
import { connect } from '@killpath/sdk';
import type { Client, SdkEvent } from '@killpath/sdk';
import { startServer } from '@killpath/server';
import type { RunningServer } from '@killpath/server';
import { until } from './server-process.ts';

/** A real control plane in this process (SQLite in a temp dir, HTTP on 127.0.0.1:0) and one connected worker. */
export interface LivePlane {
  server: RunningServer;
  api: ApiClient;
  /** The agent token of `acme/bot`. */
  token: string;
  client: Client;
  /** Every SDK event of the worker, in order. */
  events: SdkEvent[];
  /** Issues a directive and waits until the worker applied it. */
  issue(body: Record<string, unknown>): Promise<Directive>;
  /** Resumes (clears) a directive and waits until the worker applied it. */
  resume(id: string): Promise<void>;
  close(): Promise<void>;
}

/** Starts a control plane, mints an agent token for `acme/bot` and connects a worker with it. */
export async function livePlane(): Promise<LivePlane> {
  const dir = mkdtempSync(join(tmpdir(), 'killpath-adapters-'));
  const server = await startServer({ dataDir: dir, port: 0, logLevel: 'warn' });
  const api = new ApiClient(server.url, server.createdAdminToken!);
  const { token } = await api.post<{ token: string }>('/v1/tokens', {
    role: 'agent',
    tenant: 'acme',
    agent: 'bot',
  });
  const events: SdkEvent[] = [];
  const client = connect({
    url: server.url,
    token,
    tenant: 'acme',
    agent: 'bot',
    sink: { record: (e) => events.push(e) },
  });
  await client.ready;
  const applied = (rev: number) => until(`the worker applying rev ${rev}`, 5000, () => client.rev >= rev);
  return {
    server,
    api,
    token,
    client,
    events,
    async issue(body) {
      const { directive } = await api.post<{ directive: Directive }>('/v1/directives', {
        reason: 'adapter test',
        justification: 'adapter test',
        tenant: 'acme',
        ...body,
      });
      await applied(directive.rev);
      return directive;
    },
    async resume(id) {
      const { directive } = await api.post<{ directive: Directive }>(`/v1/directives/${id}/resume`, {
        justification: 'adapter test',
      });
      await applied(directive.clearedRev!);
    },
    async close() {
      await client.close();
      await server.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
