import { KillpathError } from './errors.ts';

/** The `format` of a checkpoint file; readers refuse any other. */
export const CHECKPOINT_FORMAT = 'killpath-checkpoint/1';

/**
 * A signed statement of the audit log's state: its first `size` records hash to `rootHash`
 * (an RFC 6962 Merkle tree, SHA-256, hex). Signed with the control plane's Ed25519 key over
 * {@link checkpointText}. Operators keep copies off the control plane's disk; a later log that
 * does not extend it (records deleted from the end, an older copy restored, a record altered)
 * fails `killpath audit verify --checkpoint FILE`.
 */
export interface SignedCheckpoint {
  format: typeof CHECKPOINT_FORMAT;
  /** The log's name: `killpath/<log id>`, the id made when the database was created. */
  origin: string;
  /** Number of audit records covered (records #1 to #size). */
  size: number;
  /** Merkle tree hash of those records, 64 lowercase hex characters. */
  rootHash: string;
  /** ISO 8601 time of signing. */
  timestamp: string;
  /** `ed25519:` and the first 16 hex characters of SHA-256 over the raw public key. */
  keyId: string;
  /** Ed25519 signature over {@link checkpointText}, base64. */
  signature: string;
}

/** A signing key the control plane holds or held (public half only). */
export interface AuditKeyInfo {
  keyId: string;
  algorithm: 'Ed25519';
  /** SPKI PEM. */
  publicKey: string;
  createdAt: string;
  /** When it was replaced by a newer key; `null` for the current one. */
  retiredAt: string | null;
}

/** `GET /v1/audit/key`: the current signing key and every earlier one. */
export interface AuditKeys {
  current: AuditKeyInfo;
  previous: AuditKeyInfo[];
}

/**
 * The control plane's answer to `POST /v1/audit/verify` with a kept checkpoint: the chain
 * verdict, what it found, a checkpoint of the log as it is now signed with the current key,
 * and an RFC 6962 consistency proof from the kept checkpoint's size to the current size, so
 * the caller checks the extension itself instead of trusting `ok`.
 */
export interface ConsistencyVerdict {
  ok: boolean;
  /** Records in the log now. */
  records: number;
  /** Each thing found wrong, one sentence each, naming records (empty when ok). */
  problems: string[];
  /** The hash chain's own verdict (names the first record whose hash or link is wrong). */
  chain: { ok: boolean; firstBad: number | null; reason: string | null };
  /** The log as it is now, signed. */
  head: SignedCheckpoint;
  /** Consistency proof (hex hashes) from the kept checkpoint's size to `head.size`; empty when not provable. */
  proof: string[];
}

/** The exact text a checkpoint's signature covers (UTF-8). */
export function checkpointText(c: Omit<SignedCheckpoint, 'signature' | 'format' | 'keyId'>): string {
  return `${CHECKPOINT_FORMAT}\norigin ${c.origin}\nsize ${c.size}\nroot ${c.rootHash}\ntime ${c.timestamp}\n`;
}

const HEX64 = /^[0-9a-f]{64}$/;

/**
 * Checks that `value` (e.g. a parsed checkpoint file) has the shape of a {@link SignedCheckpoint}
 * and returns it. Does not check the signature.
 * @throws KillpathError `invalid_request` naming the first bad field
 */
export function parseCheckpoint(value: unknown): SignedCheckpoint {
  const bad = (what: string): never => {
    throw new KillpathError('invalid_request', `not a killpath checkpoint: ${what}`);
  };
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return bad('not a JSON object');
  const v = value as Record<string, unknown>;
  if (v.format !== CHECKPOINT_FORMAT) bad(`format must be "${CHECKPOINT_FORMAT}"`);
  if (typeof v.origin !== 'string' || v.origin.length === 0 || v.origin.length > 200 || /\s/.test(v.origin))
    bad('origin must be a name without spaces');
  if (typeof v.size !== 'number' || !Number.isSafeInteger(v.size) || v.size < 0)
    bad('size must be a non-negative integer');
  if (typeof v.rootHash !== 'string' || !HEX64.test(v.rootHash)) bad('rootHash must be 64 hex characters');
  if (typeof v.timestamp !== 'string' || Number.isNaN(Date.parse(v.timestamp)) || /\s/.test(v.timestamp))
    bad('timestamp must be an ISO 8601 time');
  if (typeof v.keyId !== 'string' || !/^ed25519:[0-9a-f]{16}$/.test(v.keyId))
    bad('keyId must be ed25519:<16 hex>');
  if (typeof v.signature !== 'string' || !/^[A-Za-z0-9+/]{86}==$/.test(v.signature))
    bad('signature must be a base64 Ed25519 signature');
  return {
    format: CHECKPOINT_FORMAT,
    origin: v.origin as string,
    size: v.size as number,
    rootHash: v.rootHash as string,
    timestamp: v.timestamp as string,
    keyId: v.keyId as string,
    signature: v.signature as string,
  };
}
