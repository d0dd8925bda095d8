/**
 * `@killpath/server/audit`: the audit log's hashing, Merkle tree and checkpoint signatures, with
 * nothing else of the server (no SQLite, no HTTP), so the CLI verifies checkpoints without
 * loading the control plane.
 */
export { hashRecord, chainRecord, verifyChain, GENESIS_HASH } from './chain.ts';
export type { AuditEvent } from './chain.ts';
export {
  EMPTY_ROOT,
  LeafHashes,
  MerkleFrontier,
  consistencyProof,
  leafHash,
  nodeHash,
  subtreeRoot,
  verifyConsistency,
} from './merkle.ts';
export {
  SIGNING_KEY_FILE,
  checkpointSignatureProblem,
  keyIdOf,
  loadOrCreateSigningKey,
  recordLeaf,
  rotateSigningKey,
  signCheckpoint,
} from './checkpoint.ts';
export type { SigningKey } from './checkpoint.ts';
export { verifyLog } from './log-verify.ts';
export type { LogFindings, TreeClaim } from './log-verify.ts';
