import { createPublicKey } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import {
  KillpathError,
  parseCheckpoint,
  type AuditKeyInfo,
  type AuditKeys,
  type ConsistencyVerdict,
  type SignedCheckpoint,
} from '@killpath/protocol';
import { checkpointSignatureProblem, keyIdOf, verifyConsistency } from '@killpath/server/audit';
import type { ApiClient } from '../api.ts';

type Trusted = Pick<AuditKeyInfo, 'keyId' | 'publicKey'>;

function readText(path: string, what: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    throw new KillpathError('invalid_request', `cannot read ${what} ${path}: ${(err as Error).message}`);
  }
}

/** Reads a checkpoint file (JSON as printed by `killpath audit checkpoint`). */
export function readCheckpointFile(path: string): SignedCheckpoint {
  const text = readText(path, 'checkpoint file');
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw new KillpathError(
      'invalid_request',
      `${path} is not JSON (expected a checkpoint from killpath audit checkpoint)`,
    );
  }
  try {
    return parseCheckpoint(json);
  } catch (err) {
    throw new KillpathError('invalid_request', `${path}: ${(err as Error).message}`);
  }
}

function pinnedKey(path: string): Trusted {
  const pem = readText(path, 'public key');
  try {
    const key = createPublicKey(pem);
    if (key.asymmetricKeyType !== 'ed25519') throw new Error(`a ${key.asymmetricKeyType} key, not Ed25519`);
    return { keyId: keyIdOf(key), publicKey: key.export({ format: 'pem', type: 'spki' }).toString() };
  } catch (err) {
    throw new KillpathError(
      'invalid_request',
      `${path} is not an Ed25519 public key (${(err as Error).message})`,
    );
  }
}

interface Flags {
  json?: boolean | undefined;
  checkpoint?: string | undefined;
  key?: string | undefined;
  save?: string | undefined;
  now?: boolean | undefined;
  out?: string | undefined;
  reason?: string | undefined;
}

/**
 * `killpath audit verify --checkpoint FILE`: checks the kept checkpoint's signature here, asks the
 * control plane to verify the log against it (hashed in a worker thread there), then checks the
 * answer here too: the new head's signature and the RFC 6962 consistency proof from the kept
 * size to the new one. Exit 1 when anything fails, each problem on its own line.
 */
export async function verifyCheckpoint(api: ApiClient, flags: Flags): Promise<number> {
  const kept = readCheckpointFile(flags.checkpoint!);
  let trusted: Trusted[];
  let keySource: string;
  if (flags.key !== undefined) {
    trusted = [pinnedKey(flags.key)];
    keySource = `pinned key ${trusted[0]!.keyId}`;
  } else {
    const keys = await api.get<AuditKeys>('/v1/audit/key');
    trusted = [keys.current, ...keys.previous];
    keySource = `the control plane's keys (pin one with --key)`;
  }
  const problems: string[] = [];
  const signature = checkpointSignatureProblem(kept, trusted);
  if (signature !== null) problems.push(signature);
  let verdict: ConsistencyVerdict | null = null;
  if (signature === null) {
    verdict = await api.post<ConsistencyVerdict>('/v1/audit/verify', { checkpoint: kept });
    problems.push(...verdict.problems);
    if (verdict.ok) {
      const head = verdict.head;
      const headSignature = checkpointSignatureProblem(head, trusted);
      if (headSignature !== null) problems.push(`the log's new head: ${headSignature}`);
      else if (head.origin !== kept.origin)
        problems.push(`the new head is of log ${head.origin}, not ${kept.origin}`);
      else if (
        !verifyConsistency(
          kept.size,
          head.size,
          Buffer.from(kept.rootHash, 'hex'),
          Buffer.from(head.rootHash, 'hex'),
          verdict.proof.map((h) => Buffer.from(h, 'hex')),
        )
      )
        problems.push(
          `the control plane's consistency proof does not show that its ${head.size} records extend the checkpoint's ${kept.size}`,
        );
    }
  }
  const ok = problems.length === 0;
  if (flags.json) console.log(JSON.stringify({ ok, problems, checkpoint: kept, verdict }, null, 2));
  else if (ok) {
    const head = verdict!.head;
    console.log(
      `audit log extends the checkpoint: ${kept.size} records signed ${kept.timestamp} by ${kept.keyId} → ${head.size} records now (root ${head.rootHash.slice(0, 16)}…); signatures checked with ${keySource}, consistency proof of ${verdict!.proof.length} hashes checked here`,
    );
  } else {
    console.log(`audit log does NOT extend the checkpoint of ${kept.size} records signed ${kept.timestamp}:`);
    for (const p of problems) console.log(`  - ${p}`);
  }
  if (ok && flags.save !== undefined) {
    writeFileSync(flags.save, `${JSON.stringify(verdict!.head, null, 2)}\n`);
    if (!flags.json) console.log(`new checkpoint saved to ${flags.save}`);
  }
  return ok ? 0 : 1;
}

/** `killpath audit key`: the public key checkpoints are signed with, and earlier ones. */
export async function auditKey(api: ApiClient, flags: Flags): Promise<number> {
  const keys = await api.get<AuditKeys>('/v1/audit/key');
  if (flags.json) {
    console.log(JSON.stringify(keys, null, 2));
    return 0;
  }
  console.log(`# ${keys.current.keyId} (${keys.current.algorithm}, since ${keys.current.createdAt})`);
  process.stdout.write(
    keys.current.publicKey.endsWith('\n') ? keys.current.publicKey : `${keys.current.publicKey}\n`,
  );
  for (const k of keys.previous)
    console.log(`# earlier: ${k.keyId} (${k.createdAt} to ${k.retiredAt ?? '?'})`);
  return 0;
}

/** `killpath audit checkpoint [--now] [--out FILE]`: the latest signed checkpoint as JSON. */
export async function auditCheckpoint(api: ApiClient, flags: Flags): Promise<number> {
  const c = flags.now
    ? await api.post<SignedCheckpoint>('/v1/audit/checkpoint', {})
    : await api.get<SignedCheckpoint>('/v1/audit/checkpoint');
  const text = `${JSON.stringify(c, null, 2)}\n`;
  if (flags.out === undefined) process.stdout.write(text);
  else {
    writeFileSync(flags.out, text);
    console.log(
      `checkpoint of ${c.size} records (signed ${c.timestamp} by ${c.keyId}) written to ${flags.out}`,
    );
  }
  return 0;
}

/** `killpath audit rotate-key --reason TEXT`. */
export async function rotateKey(api: ApiClient, flags: Flags): Promise<number> {
  if (flags.reason === undefined || flags.reason.trim() === '')
    throw new KillpathError('invalid_request', 'audit rotate-key needs --reason');
  const r = await api.post<{ previous: string; current: string; checkpoint: SignedCheckpoint }>(
    '/v1/audit/key/rotate',
    { reason: flags.reason },
  );
  console.log(
    `signing key rotated: ${r.previous} → ${r.current}; checkpoint of ${r.checkpoint.size} records signed with the new key (checkpoints of the old key still verify)`,
  );
  return 0;
}
