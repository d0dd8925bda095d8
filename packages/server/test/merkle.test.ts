/**
 * RFC 6962 Merkle tree: known-answer vectors from the Certificate Transparency / Trillian test
 * data (transparency-dev/merkle `testonly/constants.go`, `merkle/log_verifier_test.go`): the
 * eight leaf inputs, the root of every prefix, the empty tree, and the consistency proofs.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  EMPTY_ROOT,
  LeafHashes,
  MerkleFrontier,
  consistencyProof,
  leafHash,
  subtreeRoot,
  verifyConsistency,
} from '../src/audit/merkle.ts';

const hex = (s: string) => Buffer.from(s, 'hex');

const LEAF_INPUTS = [
  '',
  '00',
  '10',
  '2021',
  '3031',
  '40414243',
  '5051525354555657',
  '606162636465666768696a6b6c6d6e6f',
].map(hex);

/** Level 0 of the published node hashes: the leaf hashes. */
const LEAF_HASHES = [
  '6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d',
  '96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7',
  '0298d122906dcfc10892cb53a73992fc5b9f493ea4c9badb27b791b4127a7fe7',
  '07506a85fd9dd2f120eb694f86011e5bb4662e5c415a62917033d4a9624487e7',
  'bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b',
  '4271a26be0d8a84f0bd54c8c302e7cb3a3b5d1fa6780a40bcce2873477dab658',
  'b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f',
  '46f6ffadd3d06a09ff3c5860d2755c8b9819db7df44251788c7d8e3180de8eb1',
];

/** Root of the first i leaves, i = 0..8. */
const ROOTS = [
  'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855',
  '6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d',
  'fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125',
  'aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77',
  'd37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7',
  '4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4',
  '76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef',
  'ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c',
  '5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328',
];

const CONSISTENCY: { m: number; n: number; proof: string[] }[] = [
  { m: 1, n: 1, proof: [] },
  {
    m: 1,
    n: 8,
    proof: [
      '96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7',
      '5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e',
      '6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4',
    ],
  },
  {
    m: 6,
    n: 8,
    proof: [
      '0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a',
      'ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0',
      'd37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7',
    ],
  },
  {
    m: 2,
    n: 5,
    proof: [
      '5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e',
      'bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b',
    ],
  },
  {
    m: 6,
    n: 7,
    proof: [
      '0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a',
      'b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f',
      'd37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7',
    ],
  },
];

function leavesOf(inputs: Buffer[]): LeafHashes {
  const l = new LeafHashes(2);
  for (const i of inputs) l.push(leafHash(i));
  return l;
}

test('empty tree and leaf hashes match the RFC 6962 vectors', () => {
  assert.equal(EMPTY_ROOT.toString('hex'), ROOTS[0]);
  assert.deepEqual(
    LEAF_INPUTS.map((i) => leafHash(i).toString('hex')),
    LEAF_HASHES,
  );
});

test('the root of every prefix matches, both rebuilt and from the growing frontier', () => {
  const leaves = leavesOf(LEAF_INPUTS);
  const f = new MerkleFrontier();
  assert.equal(f.root().toString('hex'), ROOTS[0]);
  for (let n = 1; n <= 8; n++) {
    assert.equal(subtreeRoot(leaves, 0, n).toString('hex'), ROOTS[n], `rebuilt root of ${n}`);
    f.push(leaves.at(n - 1));
    assert.equal(f.root().toString('hex'), ROOTS[n], `frontier root of ${n}`);
    const saved = MerkleFrontier.from(f.size, f.toJSON());
    assert.equal(saved.root().toString('hex'), ROOTS[n], `restored frontier of ${n}`);
  }
});

test('consistency proofs match the published vectors and verify; altered ones do not', () => {
  const leaves = leavesOf(LEAF_INPUTS);
  for (const v of CONSISTENCY) {
    const proof = consistencyProof(leaves, v.m, v.n);
    assert.deepEqual(
      proof.map((h) => h.toString('hex')),
      v.proof,
      `proof ${v.m} → ${v.n}`,
    );
    assert.ok(verifyConsistency(v.m, v.n, hex(ROOTS[v.m]!), hex(ROOTS[v.n]!), v.proof.map(hex)));
    // A wrong old root, a wrong new root, a flipped bit in a proof hash, a dropped hash: all refused.
    assert.ok(
      !verifyConsistency(v.m, v.n, hex(ROOTS[v.m === 1 ? 2 : 1]!), hex(ROOTS[v.n]!), v.proof.map(hex)),
    );
    if (v.m !== v.n) {
      assert.ok(!verifyConsistency(v.m, v.n, hex(ROOTS[v.m]!), hex(ROOTS[v.n - 1]!), v.proof.map(hex)));
      for (let i = 0; i < v.proof.length; i++) {
        const bad = v.proof.map(hex);
        bad[i]![0]! ^= 1;
        assert.ok(
          !verifyConsistency(v.m, v.n, hex(ROOTS[v.m]!), hex(ROOTS[v.n]!), bad),
          `bit flip in hash ${i}`,
        );
        assert.ok(
          !verifyConsistency(
            v.m,
            v.n,
            hex(ROOTS[v.m]!),
            hex(ROOTS[v.n]!),
            v.proof.filter((_, j) => j !== i).map(hex),
          ),
          `hash ${i} dropped`,
        );
      }
    }
  }
});

test('every pair of sizes up to 70 proves and verifies, and a proof against another root is refused', () => {
  const inputs = Array.from({ length: 70 }, (_, i) => Buffer.from(`leaf ${i}`));
  const leaves = leavesOf(inputs);
  const roots = [EMPTY_ROOT];
  const f = new MerkleFrontier();
  for (let i = 0; i < 70; i++) {
    f.push(leaves.at(i));
    roots.push(f.root());
    assert.equal(f.root().toString('hex'), subtreeRoot(leaves, 0, i + 1).toString('hex'));
  }
  let pairs = 0;
  for (let n = 1; n <= 70; n++)
    for (let m = 1; m <= n; m++) {
      const proof = consistencyProof(leaves, m, n);
      assert.ok(verifyConsistency(m, n, roots[m]!, roots[n]!, proof), `${m} → ${n}`);
      if (m < n) {
        assert.ok(
          !verifyConsistency(m, n, roots[m]!, roots[n - 1]!, proof),
          `${m} → ${n} with the root of ${n - 1}`,
        );
        assert.ok(
          !verifyConsistency(m, n, roots[m - 1]!, roots[n]!, proof),
          `${m} → ${n} with the root of ${m - 1}`,
        );
      }
      pairs++;
    }
  assert.equal(pairs, (70 * 71) / 2);
});
