import type { DeltaMessage, StreamDirective, SnapshotMessage } from '@killpath/protocol';
import { verdictFor } from './verdict.ts';
import type { DenyVerdict } from './verdict.ts';

/** One directive in the mirror with its precompiled gate verdict (`null` for levels the gate does not enforce). */
export interface MirrorEntry {
  readonly directive: StreamDirective;
  readonly verdict: DenyVerdict | null;
}

/** What one apply changed: entries new to the mirror and ids that left it. */
export interface MirrorChange {
  rev: number;
  source: 'snapshot' | 'delta';
  issued: MirrorEntry[];
  cleared: string[];
}

/**
 * The worker's local copy of the switchboard: the active directives and the rev they stand at.
 * It only stores; ordering rules (gaps, resync) are the client's. Directives are frozen copies,
 * so a verdict handed to user code cannot be used to edit the mirror.
 */
export class Mirror {
  /** Rev of the last applied snapshot or delta; 0 before the first snapshot. */
  rev = 0;
  /** True once a snapshot was applied. */
  synced = false;
  private readonly byId = new Map<string, MirrorEntry>();
  private list: readonly MirrorEntry[] = [];

  /** The active directives, in commit order. The array is replaced, never mutated. */
  get entries(): readonly MirrorEntry[] {
    return this.list;
  }

  /** Replaces the whole mirror with a snapshot. */
  replace(msg: SnapshotMessage): MirrorChange {
    const previous = new Map(this.byId);
    this.byId.clear();
    const issued: MirrorEntry[] = [];
    for (const d of msg.directives) {
      // The snapshot replaces the mirror wholesale: entries are rebuilt from it, never kept.
      const entry = toEntry(d);
      this.byId.set(d.id, entry);
      if (!previous.has(d.id)) issued.push(entry);
    }
    const cleared = [...previous.keys()].filter((id) => !this.byId.has(id));
    this.rev = msg.rev;
    this.synced = true;
    this.relist();
    return { rev: msg.rev, source: 'snapshot', issued, cleared };
  }

  /** Applies one delta; the caller has checked that `msg.rev` is `rev + 1`. */
  applyDelta(msg: DeltaMessage): MirrorChange {
    const issued: MirrorEntry[] = [];
    const cleared: string[] = [];
    if (msg.cleared !== undefined && this.byId.delete(msg.cleared)) cleared.push(msg.cleared);
    for (const id of msg.replaced ?? []) if (this.byId.delete(id)) cleared.push(id);
    if (msg.issued !== undefined) {
      const known = this.byId.has(msg.issued.id);
      const entry = toEntry(msg.issued);
      this.byId.set(entry.directive.id, entry);
      if (!known) issued.push(entry);
    }
    this.rev = msg.rev;
    if (issued.length > 0 || cleared.length > 0) this.relist();
    return { rev: msg.rev, source: 'delta', issued, cleared };
  }

  private relist(): void {
    this.list = Object.freeze([...this.byId.values()].sort((a, b) => a.directive.rev - b.directive.rev));
  }
}

function toEntry(d: StreamDirective): MirrorEntry {
  const directive: StreamDirective = Object.freeze({
    ...d,
    capabilities: d.capabilities === null ? null : Object.freeze([...d.capabilities]),
  });
  return Object.freeze({ directive, verdict: verdictFor(directive) });
}
