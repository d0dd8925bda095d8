import { KillpathError } from '@killpath/protocol';
import type { Verdict } from '@killpath/sdk';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';

/**
 * True when a verdict takes a tool away from the model: a degrade naming the tool (`revoked`),
 * a read-only degrade of a tool that writes (`read_only`), or a capability the run was not
 * granted. Such tools are left out of `tools/list`; a halt, kill or stale lease is not a reason
 * to hide a tool: its calls are answered with a refusal the model can read.
 */
export function hidesTool(verdict: Verdict): boolean {
  return verdict.kind === 'deny' && (verdict.reason === 'revoked' || verdict.reason === 'read_only');
}

/**
 * A tool-level error the model can read (`isError: true`) for a call killpath refused or
 * aborted; `structuredContent`-free so any client shows it. Carries the refusal's reason and
 * directive in `_meta.killpath`.
 */
export function refusalResult(tool: string, err: KillpathError): CallToolResult {
  const details = (err.details ?? {}) as { reason?: string; directiveId?: string | null };
  const why = refusalWords(err);
  return {
    isError: true,
    content: [
      {
        type: 'text',
        text: `Tool "${tool}" was ${why}: ${err.message}. Do not retry it; an operator has stopped or restricted this agent.`,
      },
    ],
    _meta: {
      killpath: { code: err.code, reason: details.reason ?? null, directiveId: details.directiveId ?? null },
    },
  };
}

/** `refused by killpath (halted, directive d_1)`: why killpath refused or aborted a request, in words. */
export function refusalWords(err: KillpathError): string {
  const details = (err.details ?? {}) as { reason?: string; directiveId?: string | null };
  return err.code === 'halted'
    ? `refused by killpath (${details.reason ?? 'halted'}${details.directiveId ? `, directive ${details.directiveId}` : ''})`
    : err.code === 'unavailable'
      ? 'refused by killpath: the control plane cannot be reached, so no write is permitted'
      : `refused by killpath (${err.code})`;
}

/** True for the errors a gate, a permit or an abort raises (`halted`, `unavailable`, `conflict`, `stale`). */
export function isRefusal(err: unknown): err is KillpathError {
  return (
    err instanceof KillpathError &&
    (err.code === 'halted' || err.code === 'unavailable' || err.code === 'conflict' || err.code === 'stale')
  );
}
