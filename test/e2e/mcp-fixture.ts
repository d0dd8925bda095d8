import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/** The small real MCP server the MCP tests run upstream (stdio). */
export const MCP_FIXTURE = fileURLToPath(new URL('./fixtures/mcp-server.ts', import.meta.url));

/** One line of the fixture server's log. */
export interface FixtureEvent {
  event: 'started' | 'call' | 'cancelled' | 'roots_changed' | 'read_resource';
  pid: number;
  /** When, in ms since the epoch (`performance.timeOrigin + performance.now()`, comparable across processes). */
  at: number;
  tool?: string;
  reason?: string;
}

/** What the fixture server logged to `file` so far (it appends one JSON object per line). */
export function fixtureLog(file: string): FixtureEvent[] {
  if (!existsSync(file)) return [];
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => JSON.parse(l) as FixtureEvent);
}
