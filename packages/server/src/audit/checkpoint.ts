import {
  createHash,
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  sign,
  verify,
  type KeyObject,
} from 'node:crypto';
import { chmodSync, existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import {
  CHECKPOINT_FORMAT,
  canonicalJson,
  checkpointText,
  type AuditKeyInfo,
  type AuditRecord,
  type SignedCheckpoint,
} from '@killpath/protocol';
import { leafHash } from './merkle.ts';

/** The file, in the data dir, that holds the checkpoint signing key (PKCS#8 PEM, mode 0600). */
export const SIGNING_KEY_FILE = 'audit-signing.key';

/**
 * The Merkle leaf of one audit record: RFC 8785 canonical JSON of every field, `hash` included,
 * so a change to any stored byte of the record (or to its recorded hash alone) changes the leaf.
 */
export function recordLeaf(r: AuditRecord): Buffer {
  const text = canonicalJson({
    seq: r.seq,
    ts: r.ts,
    type: r.type,
    actor: r.actor,
    tenant: r.tenant,
    data: r.data,
    prevHash: r.prevHash,
    hash: r.hash,
  });
  return leafHash(Buffer.from(text, 'utf8'));
}

/** `ed25519:` and the first 16 hex characters of SHA-256 over the raw 32-byte public key. */
export function keyIdOf(publicKey: KeyObject): string {
  const jwk = publicKey.export({ format: 'jwk' });
  const raw = Buffer.from(jwk.x ?? '', 'base64url');
  return `ed25519:${createHash('sha256').update(raw).digest('hex').slice(0, 16)}`;
}

/** The control plane's signing key: the private half in memory, the public half to publish. */
export interface SigningKey {
  readonly privateKey: KeyObject;
  readonly info: AuditKeyInfo;
}

function keyFrom(privateKey: KeyObject, createdAt: string): SigningKey {
  const publicKey = createPublicKey(privateKey);
  return {
    privateKey,
    info: {
      keyId: keyIdOf(publicKey),
      algorithm: 'Ed25519',
      publicKey: publicKey.export({ format: 'pem', type: 'spki' }).toString(),
      createdAt,
      retiredAt: null,
    },
  };
}

/** Writes a PEM private key with mode 0600, atomically (a crash leaves the old file or the new one). */
function writeKeyFile(path: string, key: KeyObject): void {
  const tmp = `${path}.tmp-${process.pid}`;
  writeFileSync(tmp, key.export({ format: 'pem', type: 'pkcs8' }), { mode: 0o600 });
  chmodSync(tmp, 0o600);
  renameSync(tmp, path);
}

/**
 * Reads the signing key at `path`, or creates one (Ed25519, mode 0600) when there is none.
 * @throws Error when the file exists but is not an Ed25519 private key
 */
export function loadOrCreateSigningKey(
  path: string,
  now = new Date(),
): { key: SigningKey; created: boolean } {
  if (existsSync(path)) {
    chmodSync(path, 0o600);
    const privateKey = createPrivateKey(readFileSync(path));
    if (privateKey.asymmetricKeyType !== 'ed25519')
      throw new Error(`${path} is a ${privateKey.asymmetricKeyType} key, not Ed25519`);
    return { key: keyFrom(privateKey, now.toISOString()), created: false };
  }
  const { privateKey } = generateKeyPairSync('ed25519');
  writeKeyFile(path, privateKey);
  return { key: keyFrom(privateKey, now.toISOString()), created: true };
}

/** Makes a new key and replaces the file at `path` with it (the old private key is gone). */
export function rotateSigningKey(path: string, now = new Date()): SigningKey {
  const { privateKey } = generateKeyPairSync('ed25519');
  writeKeyFile(path, privateKey);
  return keyFrom(privateKey, now.toISOString());
}

/** Signs a checkpoint of `size` records with tree hash `rootHash`. */
export function signCheckpoint(
  key: SigningKey,
  c: { origin: string; size: number; rootHash: string; timestamp: string },
): SignedCheckpoint {
  const signature = sign(null, Buffer.from(checkpointText(c), 'utf8'), key.privateKey).toString('base64');
  return { format: CHECKPOINT_FORMAT, ...c, keyId: key.info.keyId, signature };
}

/** Why a checkpoint's signature is not accepted, or null when it is. */
export function checkpointSignatureProblem(
  c: SignedCheckpoint,
  trusted: readonly Pick<AuditKeyInfo, 'keyId' | 'publicKey'>[],
): string | null {
  const key = trusted.find((k) => k.keyId === c.keyId);
  if (key === undefined)
    return `the checkpoint is signed by key ${c.keyId}, which is not a trusted key (${trusted.map((k) => k.keyId).join(', ') || 'none'})`;
  let publicKey: KeyObject;
  try {
    publicKey = createPublicKey(key.publicKey);
  } catch {
    return `trusted key ${key.keyId} is not a public key`;
  }
  // The key id is derived from the key: a key listed under another key's id is refused too.
  if (publicKey.asymmetricKeyType !== 'ed25519' || keyIdOf(publicKey) !== c.keyId)
    return `trusted key ${key.keyId} does not match its id`;
  const ok = verify(
    null,
    Buffer.from(checkpointText(c), 'utf8'),
    publicKey,
    Buffer.from(c.signature, 'base64'),
  );
  return ok
    ? null
    : `the checkpoint's signature does not verify with key ${c.keyId} (it was altered or forged)`;
}
