import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { mintToken } from '../src/auth/tokens.ts';
import { startServer, type RunningServer } from '../src/server.ts';
import type { Role } from '@killpath/protocol';

/** A control plane on a real socket (127.0.0.1, a free port), for routes that stream. */
export interface LiveServer {
  server: RunningServer;
  url: string;
  token(role: Role, tenant: string, agent?: string): Promise<string>;
  /** A JSON request with a bearer token; returns status and parsed body (or text). */
  call(
    method: string,
    path: string,
    token: string,
    body?: unknown,
  ): Promise<{ status: number; body: unknown }>;
  /** Opens a server-sent-events stream; `until` resolves with the first event matching, or rejects after `ms`. */
  stream(path: string, token: string): Promise<SseReader>;
  close(): Promise<void>;
}

/** Reads one server-sent-events stream. */
export interface SseReader {
  status: number;
  /** Every event received so far, in order. */
  events: { event: string; data: unknown }[];
  /** Resolves with the first event (received or to come) that matches, or rejects after `ms`. */
  until(match: (e: { event: string; data: unknown }) => boolean, ms?: number): Promise<unknown>;
  close(): void;
}

/** Starts a control plane (no supervisor, no watchdog) in a temporary data dir. */
export async function liveServer(opts: { escalationSlackMs?: number } = {}): Promise<LiveServer> {
  const dir = mkdtempSync(join(tmpdir(), 'killpath-live-'));
  const server = await startServer({
    dataDir: dir,
    port: 0,
    logLevel: 'silent',
    keepaliveMs: 60_000,
    supervisor: false,
    watchdog: false,
    // The shedding of reads under load is tested on its own; here it would only make tests flaky.
    admission: false,
    ...opts,
  });
  const readers = new Set<SseReader>();
  return {
    server,
    url: server.url,
    async token(role, tenant, agent) {
      const spec = { role, tenant, ...(agent === undefined ? {} : { agent }) };
      return (await mintToken(server.controlPlane.store, spec, 'test')).secret;
    },
    async call(method, path, token, body) {
      const res = await fetch(`${server.url}${path}`, {
        method,
        headers: {
          authorization: `Bearer ${token}`,
          ...(body === undefined ? {} : { 'content-type': 'application/json' }),
        },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      });
      const text = await res.text();
      let parsed: unknown = text;
      try {
        parsed = JSON.parse(text);
      } catch {
        // not JSON: keep the text
      }
      return { status: res.status, body: parsed };
    },
    async stream(path, token) {
      const abort = new AbortController();
      const res = await fetch(`${server.url}${path}`, {
        headers: { authorization: `Bearer ${token}`, accept: 'text/event-stream' },
        signal: abort.signal,
      });
      const events: { event: string; data: unknown }[] = [];
      const waiters = new Set<() => void>();
      const reader: SseReader = {
        status: res.status,
        events,
        until(match, ms = 5000) {
          const found = events.find(match);
          if (found) return Promise.resolve(found.data);
          return new Promise((ok, fail) => {
            const timer = setTimeout(() => {
              waiters.delete(check);
              fail(new Error(`no matching event within ${ms} ms; got ${JSON.stringify(events)}`));
            }, ms);
            const check = () => {
              const hit = events.find(match);
              if (!hit) return;
              clearTimeout(timer);
              waiters.delete(check);
              ok(hit.data);
            };
            waiters.add(check);
          });
        },
        close() {
          abort.abort();
          readers.delete(reader);
        },
      };
      readers.add(reader);
      if (res.ok && res.body) {
        const decoder = new TextDecoder();
        let buf = '';
        void (async () => {
          try {
            for await (const chunk of res.body!) {
              buf += decoder.decode(chunk as Uint8Array, { stream: true });
              let at: number;
              while ((at = buf.indexOf('\n\n')) >= 0) {
                const raw = buf.slice(0, at);
                buf = buf.slice(at + 2);
                const event = /^event: (.*)$/m.exec(raw)?.[1] ?? 'message';
                const data = /^data: (.*)$/m.exec(raw)?.[1];
                events.push({ event, data: data === undefined ? null : (JSON.parse(data) as unknown) });
                for (const w of [...waiters]) w();
              }
            }
          } catch {
            // aborted
          }
        })();
      } else {
        await res.body?.cancel();
      }
      return reader;
    },
    async close() {
      for (const r of [...readers]) r.close();
      await server.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
