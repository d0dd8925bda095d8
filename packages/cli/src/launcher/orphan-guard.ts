import { spawn } from 'node:child_process';

/** What the launcher does to its agent if the launcher itself dies (SIGKILL, crash, OOM). */
export type OrphanPolicy = 'kill' | 'keep';

/** What an {@link OrphanGuard} ends when its launcher dies. */
export type GuardTarget = { cgroup: string } | { processGroup: number };

/** A guard process watching its launcher. */
export interface OrphanGuard {
  /** Pid of the guard (a `/bin/sh` in its own session). */
  readonly pid: number;
  /** The launcher ended the agent itself: the guard exits without acting. Idempotent. */
  release(): void;
}

// The guard blocks on its stdin, a pipe whose only writer is the launcher (Node opens it
// close-on-exec, so the agent never inherits it). A launcher that dies by any means closes it:
// `read` returns at EOF and the guard ends the agent. A launcher that ended the agent itself
// writes `done` first. Terminal signals are ignored: the guard is in a session of its own.
const CGROUP_SCRIPT = `trap '' INT HUP
IFS= read -r line
[ "$line" = done ] && exit 0
echo 1 > "$1/cgroup.kill" 2>/dev/null
i=0
while [ $i -lt 250 ] && grep -q '^populated 1' "$1/cgroup.events" 2>/dev/null; do sleep 0.02; i=$((i+1)); done
rmdir "$1" 2>/dev/null
exit 0`;

const GROUP_SCRIPT = `trap '' INT HUP
IFS= read -r line
[ "$line" = done ] && exit 0
kill -9 -"$1" 2>/dev/null
exit 0`;

/**
 * Starts a guard that ends `target` when this process dies without releasing it first
 * (`--orphan-policy kill`): with a cgroup, everything in it (`cgroup.kill`) and the cgroup is
 * removed; with a process group, the group (descendants that left it survive, as they would a
 * kill on that backend). The guard is a separate process in its own session, so it outlives a
 * SIGKILL of the launcher; an agent running as the same user could still kill it.
 */
export function startOrphanGuard(target: GuardTarget): OrphanGuard {
  const [script, arg] =
    'cgroup' in target ? [CGROUP_SCRIPT, target.cgroup] : [GROUP_SCRIPT, String(target.processGroup)];
  const child = spawn('/bin/sh', ['-c', script, 'killpath-orphan-guard', arg], {
    detached: true,
    stdio: ['pipe', 'ignore', 'ignore'],
  });
  child.on('error', () => {});
  const stdin = child.stdin!;
  stdin.on('error', () => {}); // EPIPE when the guard is already gone
  child.unref();
  (stdin as unknown as { unref?: () => void }).unref?.();
  let released = false;
  return {
    pid: child.pid ?? 0,
    release() {
      if (released) return;
      released = true;
      stdin.end('done\n');
    },
  };
}
