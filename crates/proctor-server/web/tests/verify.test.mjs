// Tests of web/verify.js, the browser verifier, with Node 20's built-in runner:
//
//   node --test crates/proctor-server/web/tests/verify.test.mjs
//
// Two kinds:
// - pure known-answer tests (RFC 6962 vectors from transparency-dev/merkle, trees computed
//   here, base64/JSON/note strictness), which need nothing but Node;
// - cross-checks against the Rust implementation: the real `proctor` binary ($PROCTOR_BIN,
//   default ~/.cache/proctor-target/release/proctor) writes a bundle with `proctor demo --out`,
//   and for the bundle and tampered copies of it the JS verifier must pass and fail exactly
//   the checks `proctor verify` passes and fails. They are skipped, saying why, when the
//   binary is missing.

import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { generateKeyPairSync, sign as nodeSign, createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import * as v from '../verify.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const hex = (s) => Uint8Array.from(Buffer.from(s, 'hex'));
const b64 = (bytes) => Buffer.from(bytes).toString('base64');
const sha = (bytes) => Uint8Array.from(createHash('sha256').update(bytes).digest());

// ------------------------------------------------------------------------------------------
// A reference Merkle tree, straight from RFC 6962 §2.1 (MTH and PATH), to check the
// verifier's iterative algorithm against the recursive definition.

const leafH = (d) => sha(Buffer.concat([Buffer.of(0), Buffer.from(d)]));
const nodeH = (l, r) => sha(Buffer.concat([Buffer.of(1), l, r]));
const split = (n) => {
  let k = 1;
  while (k * 2 < n) k *= 2;
  return k;
};
function mth(leaves) {
  if (leaves.length === 0) return sha(Buffer.alloc(0));
  if (leaves.length === 1) return leaves[0];
  const k = split(leaves.length);
  return nodeH(mth(leaves.slice(0, k)), mth(leaves.slice(k)));
}
function pathOf(m, leaves) {
  if (leaves.length <= 1) return [];
  const k = split(leaves.length);
  return m < k
    ? [...pathOf(m, leaves.slice(0, k)), mth(leaves.slice(k))]
    : [...pathOf(m - k, leaves.slice(k)), mth(leaves.slice(0, k))];
}
// RFC 6962 §2.1.2 SUBPROOF.
function subproof(m, leaves, b) {
  const n = leaves.length;
  if (m === n) return b ? [] : [mth(leaves)];
  const k = split(n);
  return m <= k
    ? [...subproof(m, leaves.slice(0, k), b), mth(leaves.slice(k))]
    : [...subproof(m - k, leaves.slice(k), false), mth(leaves.slice(0, k))];
}

// ------------------------------------------------------------------------------------------
// transparency-dev/merkle proof/verify_test.go: the RFC 6962 test tree.

const TD_LEAVES = ['', '00', '10', '2021', '3031', '40414243', '5051525354555657', '606162636465666768696a6b6c6d6e6f'].map(hex);
const TD_ROOTS = [
  '6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d',
  'fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125',
  'aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77',
  'd37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7',
  '4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4',
  '76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef',
  'ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c',
  '5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328',
].map(hex);
// {leaf (1-based), size, proof}
const TD_INCLUSION = [
  [1, 8, ['96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7', '5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e', '6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4']],
  [6, 8, ['bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b', 'ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0', 'd37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7']],
  [3, 3, ['fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125']],
  [2, 5, ['6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d', '5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e', 'bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b']],
  [1, 1, []],
];
const TD_CONSISTENCY = [
  [1, 8, ['96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7', '5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e', '6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4']],
  [6, 8, ['0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a', 'ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0', 'd37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7']],
  [2, 5, ['5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e', 'bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b']],
  [6, 7, ['0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a', 'b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f', 'd37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7']],
  [1, 1, []],
];
const SOME_HASH = hex('abacaba000000000000000000000000000000000000000000060061e00123456');
const EMPTY = hex(v.EMPTY_ROOT_HEX);

describe('Merkle known answers (RFC 6962, transparency-dev/merkle vectors)', () => {
  test('leaf, node and empty-tree hashes', async () => {
    assert.equal(v.toHex(await v.leafHash(new Uint8Array(0))), '6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d');
    assert.equal(v.toHex(await v.sha256(new Uint8Array(0))), v.EMPTY_ROOT_HEX);
    const l = await v.leafHash(hex('00'));
    assert.deepEqual(await v.nodeHash(l, l), nodeH(l, l));
  });

  test('the reference tree gives the published roots', () => {
    for (let n = 1; n <= 8; n++) assert.equal(v.toHex(mth(TD_LEAVES.slice(0, n).map(leafH))), v.toHex(TD_ROOTS[n - 1]));
  });

  test('published inclusion proofs verify, and every corruption fails', async () => {
    for (const [leaf, size, proofHex] of TD_INCLUSION) {
      const proof = proofHex.map(hex);
      const lh = await v.leafHash(TD_LEAVES[leaf - 1]);
      const root = TD_ROOTS[size - 1];
      const good = await v.verifyInclusion(lh, leaf - 1, size, proof, root);
      assert.deepEqual(good, { ok: true }, `leaf ${leaf} of ${size}`);
      assert.equal(v.inclusionProofLength(leaf - 1, size), proof.length);
      // The probes of corruptInclusionProof in verify_test.go.
      const i = leaf - 1;
      const probes = [
        [i - 1, size, root, lh, proof, 'index - 1'],
        [i + 1, size, root, lh, proof, 'index + 1'],
        [i ^ 2, size, root, lh, proof, 'index ^ 2'],
        [i, size * 2, root, lh, proof, 'size * 2'],
        [i, Math.floor(size / 2), root, lh, proof, 'size / 2'],
        [i, size, root, await v.leafHash(Buffer.from('WrongLeaf')), proof, 'wrong leaf'],
        [i, size, EMPTY, lh, proof, 'empty root'],
        [i, size, SOME_HASH, lh, proof, 'random root'],
        [i, size, root, lh, [...proof, new Uint8Array(0)], 'trailing garbage'],
        [i, size, root, lh, [...proof, root], 'trailing root'],
        [i, size, root, lh, [new Uint8Array(0), ...proof], 'preceding garbage'],
        [i, size, root, lh, [root, ...proof], 'preceding root'],
      ];
      proof.forEach((_, k) => {
        const wrong = proof.map((h) => h.slice());
        wrong[k][0] ^= 8;
        probes.push([i, size, root, lh, wrong, `proof[${k}] bit 3`]);
      });
      if (proof.length > 0) probes.push([i, size, root, lh, proof.slice(0, -1), 'removed component']);
      if (proof.length > 1) probes.push([i, size, root, lh, [proof[0], SOME_HASH, ...proof.slice(1)], 'inserted component']);
      for (const [pi, ps, pr, pl, pp, desc] of probes) {
        const r = await v.verifyInclusion(pl, pi, ps, pp, pr);
        assert.equal(r.ok, false, `leaf ${leaf} of ${size}: ${desc} verified`);
        assert.equal(typeof r.reason, 'string');
      }
    }
  });

  test('published consistency proofs verify, and corruptions fail', async () => {
    for (const [m, n, proofHex] of TD_CONSISTENCY) {
      const proof = proofHex.map(hex);
      const [r1, r2] = [TD_ROOTS[m - 1], TD_ROOTS[n - 1]];
      assert.deepEqual(await v.verifyConsistency(m, n, r1, r2, proof), { ok: true }, `${m} -> ${n}`);
      if (proof.length === 0) continue;
      const probes = [
        [m - 1, n, r1, r2, proof], [m + 1, n, r1, r2, proof], [m ^ 2, n, r1, r2, proof],
        [m, n * 2, r1, r2, proof], [m, Math.floor(n / 2), r1, r2, proof],
        [m, n, SOME_HASH, r2, proof], [m, n, r1, SOME_HASH, proof], [m, n, r2, r1, proof],
        [m, n, r1, r2, []], [m, n, r1, r2, [...proof, r1]], [m, n, r1, r2, [...proof, r2]],
        [m, n, r1, r2, [r1, ...proof]], [m, n, r1, r2, [proof[0], ...proof]], [m, n, r1, r2, proof.slice(0, -1)],
      ];
      proof.forEach((_, k) => {
        const wrong = proof.map((h) => h.slice());
        wrong[k][0] ^= 16;
        probes.push([m, n, r1, r2, wrong]);
      });
      for (const [a, b, x, y, p] of probes) {
        assert.equal((await v.verifyConsistency(a, b, x, y, p)).ok, false, `${m}->${n} probe ${a},${b}`);
      }
    }
    // verify_test.go TestVerifyConsistency edge cases, with 32-byte roots.
    assert.equal((await v.verifyConsistency(0, 0, EMPTY, EMPTY, [])).ok, true);
    assert.equal((await v.verifyConsistency(0, 5, EMPTY, SOME_HASH, [])).ok, true);
    assert.equal((await v.verifyConsistency(0, 5, SOME_HASH, SOME_HASH, [])).ok, false);
    assert.equal((await v.verifyConsistency(1, 1, SOME_HASH, SOME_HASH, [])).ok, true);
    assert.equal((await v.verifyConsistency(1, 1, EMPTY, SOME_HASH, [])).ok, false);
    assert.equal((await v.verifyConsistency(1, 0, EMPTY, EMPTY, [])).ok, false);
    assert.equal((await v.verifyConsistency(1, 2, EMPTY, SOME_HASH, [])).ok, false);
    assert.equal((await v.verifyConsistency(1, 1, EMPTY, EMPTY, [EMPTY])).ok, false);
  });

  test('every leaf of every tree up to 40 leaves, against RFC 6962 PATH and SUBPROOF', async () => {
    const leaves = Array.from({ length: 40 }, (_, i) => leafH([i, i >> 3]));
    for (let n = 1; n <= leaves.length; n++) {
      const tree = leaves.slice(0, n);
      const root = mth(tree);
      for (let m = 0; m < n; m++) {
        const proof = pathOf(m, tree);
        assert.equal(v.inclusionProofLength(m, n), proof.length);
        assert.deepEqual(await v.verifyInclusion(tree[m], m, n, proof, root), { ok: true }, `${m} of ${n}`);
        // Another leaf's hash, or this proof at another index, must not verify.
        if (n > 1) {
          assert.equal((await v.verifyInclusion(tree[(m + 1) % n], m, n, proof, root)).ok, false);
          assert.equal((await v.verifyInclusion(tree[m], (m + 1) % n, n, proof, root)).ok, false);
        }
      }
      for (let m = 1; m < n; m++) {
        const proof = subproof(m, tree, true);
        assert.equal(v.consistencyProofLength(m, n), proof.length);
        assert.deepEqual(await v.verifyConsistency(m, n, mth(leaves.slice(0, m)), root, proof), { ok: true }, `${m} -> ${n}`);
      }
    }
  });

  test('hostile sizes and proofs fail with a reason, cheaply, never throwing', async () => {
    const h = SOME_HASH;
    const max = (1n << 64n) - 1n;
    const cases = [
      [0, 0, [], 'leaf 0 is not in a tree of 0 leaves'],
      [5, 5, [], 'leaf 5 is not in a tree of 5 leaves'],
      [0, 2, Array(65).fill(h), 'the proof has 65 hashes; these sizes call for 1'],
      [0, 2, Array(100000).fill(h), 'the proof has 100000 hashes; these sizes call for 1'],
      [0, 2, [], 'the proof has 0 hashes; these sizes call for 1'],
      [0n, max, Array(64).fill(h), 'the proof does not lead to the expected root hash'],
      [max - 1n, max, Array(63).fill(h), 'the proof does not lead to the expected root hash'],
      [-1, 2, [h], /not an unsigned 64-bit integer/],
      [0.5, 2, [h], /not an unsigned 64-bit integer/],
      [0, 2 ** 60, [h], /these sizes call for 60/], // 2^60 is beyond 2^53: a Number is refused...
      [0, (1n << 60n), [h], 'the proof has 1 hashes; these sizes call for 60'], // ...a BigInt is exact
      [0, max + 1n, [h], /not an unsigned 64-bit integer/],
      [0, '18446744073709551615', [h], /these sizes call for 64/],
      [0, '012', [h], /not an unsigned 64-bit integer/],
      [0, 2, [h.subarray(0, 31)], /32 bytes/],
      [0, 2, 'not a list', /list of hashes/],
      [0, 2, [null], /32 bytes/],
    ];
    for (const [i, n, p, want] of cases) {
      const r = await v.verifyInclusion(h, i, n, p, h);
      assert.equal(r.ok, false, `${i} of ${n}`);
      if (typeof want === 'string') assert.equal(r.reason, want);
      else if (!(typeof n === 'number' && n > Number.MAX_SAFE_INTEGER)) assert.match(r.reason, want);
      else assert.match(r.reason, /not an unsigned 64-bit integer/);
    }
    // The longest proof any u64 sizes call for is 64 hashes (leaf 0 of the largest tree); it
    // is computed, not refused.
    assert.equal(v.inclusionProofLength(0n, max), 64);
    assert.equal(v.inclusionProofLength(max - 1n, max), 63);
    assert.equal(v.inclusionProofLength(3, 2), null);
    assert.equal(v.consistencyProofLength(0, 2), null);
    assert.equal((await v.verifyInclusion(undefined, 0, 1, [], undefined)).ok, false);
    assert.equal((await v.rootFromInclusionProof(0, 1, h, [])).ok, true);
  });
});

describe('encodings', () => {
  test('base64 is canonical padded standard base64, as Rust decodes it', () => {
    assert.deepEqual(v.base64Decode('QQ=='), Uint8Array.of(0x41));
    assert.deepEqual(v.base64Decode(''), new Uint8Array(0));
    assert.deepEqual(v.base64Decode('/+8='), Uint8Array.of(0xff, 0xef));
    for (const bad of ['QR==', 'QQ', 'QQ=', 'Q===', 'QQ==\n', ' QQ==', 'Q Q=', 'QQ==QQ==', '-_8=', 'QUJD=A==', '====', null]) {
      assert.equal(v.base64Decode(bad), null, JSON.stringify(bad));
    }
    for (let n = 0; n < 70; n++) {
      const bytes = Uint8Array.from({ length: n }, (_, i) => (i * 37 + n) & 255);
      assert.equal(v.base64Encode(bytes), b64(bytes));
      assert.deepEqual(v.base64Decode(b64(bytes)), bytes);
    }
  });

  test('PAE follows the DSSE spec example', () => {
    assert.equal(Buffer.from(v.pae('http://example.com/HelloWorld', Buffer.from('hello world'))).toString(), 'DSSEv1 29 http://example.com/HelloWorld 11 hello world');
    // Lengths are bytes, not UTF-16 units.
    assert.equal(Buffer.from(v.pae('\u00e9', Buffer.from('\u2014'))).toString(), 'DSSEv1 2 \u00e9 3 \u2014');
  });

  test('the key id is the SHA-256 of the SPKI DER; other keys are refused', async () => {
    // keys.rs: OpenSSL's Ed25519 public key.
    const pem = '-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEAYwSGbVFpy4R8PzvPyOYA/ThlzGikiYaV4JOOUKDNFbM=\n-----END PUBLIC KEY-----\n';
    const der = Buffer.from('MCowBQYDK2VwAyEAYwSGbVFpy4R8PzvPyOYA/ThlzGikiYaV4JOOUKDNFbM=', 'base64');
    const k = await v.parsePublicKeyPem(pem);
    assert.equal(k.ok, true);
    assert.equal(k.keyId, v.toHex(sha(der)));
    assert.equal((await v.keyId(der)).keyId, k.keyId);
    assert.equal((await v.parsePublicKeyPem(pem.replace(/\n/g, '\r\n'))).keyId, k.keyId);
    assert.equal((await v.parsePublicKeyPem('explanatory text\n' + pem)).keyId, k.keyId);
    const rsa = '-----BEGIN PUBLIC KEY-----\nMIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQDLbmU3eNb+PNFhpg8vsHD5Ov98\nQ9h0YHpSXVMHC7TxFPeGLtjZaDtcWIM8opujizfLzCQGGHJ6h0XZ4PaUc4RJqi1g\nuAhqusZ2kH8nV03bivkvkKirBkG53nHOmrJ1QJQ9SrXfudW9TuBkIItqZITvkAUj\nj/vUIhvxr+ycqgS87QIDAQAB\n-----END PUBLIC KEY-----\n';
    assert.match((await v.parsePublicKeyPem(rsa)).reason, /not an Ed25519 public key/);
    assert.match((await v.parsePublicKeyPem(pem.replace(/PUBLIC/g, 'PRIVATE'))).reason, /labelled "PRIVATE KEY"/);
    assert.match((await v.parsePublicKeyPem(pem.slice(0, 60))).reason, /no "-----END PUBLIC KEY-----" line/);
    assert.match((await v.parsePublicKeyPem('hello')).reason, /no "-----BEGIN" line/);
    assert.equal((await v.parsePublicKeyPem(42)).ok, false);
    assert.equal((await v.keyId(der.subarray(0, 43))).ok, false);
  });
});

// ------------------------------------------------------------------------------------------
// Synthetic bundles signed here with node:crypto, for the strictness the demo never shows.

function newKey() {
  const { publicKey, privateKey } = generateKeyPairSync('ed25519');
  const pem = publicKey.export({ type: 'spki', format: 'pem' });
  const raw = publicKey.export({ type: 'spki', format: 'der' }).subarray(12);
  return { pem, raw, privateKey, keyId: v.toHex(sha(publicKey.export({ type: 'spki', format: 'der' }))) };
}
const signWith = (key, bytes) => nodeSign(null, Buffer.from(bytes), key.privateKey);
function envelopeText(key, payload, { type = v.PAYLOAD_TYPE, keyid = key.keyId } = {}) {
  const sig = signWith(key, v.pae(type, Buffer.from(payload)));
  return JSON.stringify({ payload: b64(Buffer.from(payload)), payloadType: type, signatures: [{ keyid, sig: b64(sig) }] });
}
function noteLine(name, key, text, type = 0x01) {
  const id = sha(Buffer.concat([Buffer.from(name), Buffer.of(0x0a, type), key.raw])).subarray(0, 4);
  return `\u2014 ${name} ${b64(Buffer.concat([id, signWith(key, Buffer.from(text))]))}\n`;
}
function checkpointText(key, origin, size, root, extra = '') {
  const body = `${origin}\n${size}\n${b64(root)}\n`;
  return `${body}\n${noteLine(origin, key, body)}${extra}`;
}
function statementJson(evalBytes, dataBytes, logIndex) {
  return JSON.stringify({
    _type: v.STATEMENT_TYPE,
    subject: [
      { name: 'eval.wasm', digest: { sha256: v.toHex(sha(evalBytes)) } },
      { name: 'dataset.jsonl', digest: { sha256: v.toHex(sha(dataBytes)) } },
    ],
    predicateType: 'https://proctor.dev/attestation/eval-result/v4',
    predicate: { eval: { sha256: v.toHex(sha(evalBytes)) }, dataset: { sha256: v.toHex(sha(dataBytes)) }, log_index: logIndex },
  });
}
/** A log of `size` leaves with our envelope at `index`: the bundle's files. */
function synthetic({ size = 5, index = 3, key = newKey(), payload, envelope } = {}) {
  const evalBytes = Buffer.from('wasm');
  const dataBytes = Buffer.from('{"q":1}\n');
  envelope ??= envelopeText(key, payload ?? statementJson(evalBytes, dataBytes, index));
  const leaves = Array.from({ length: size }, (_, i) => (i === index ? leafH(Buffer.from(envelope)) : leafH([i])));
  const root = mth(leaves);
  const proof = JSON.stringify({ log_index: index, tree_size: size, root_hash: b64(root), hashes: pathOf(index, leaves).map(b64) }, null, 2) + '\n';
  return { key, attestation: Buffer.from(envelope), publicKey: key.pem, checkpoint: checkpointText(key, 'example.org/log', size, root), proof, eval: evalBytes, dataset: dataBytes };
}
const failed = (r) => r.checks.filter((c) => !c.ok).map((c) => c.name);

describe('synthetic bundles', () => {
  test('a good bundle passes every check; pinning the wrong key id fails only `key`', async () => {
    const b = synthetic();
    const r = await v.verifyBundle(b);
    assert.deepEqual(r.checks.map((c) => [c.name, c.ok]), [['signature', true], ['subjects', true], ['checkpoint', true], ['inclusion', true]]);
    assert.equal(r.ok, true);
    assert.equal(r.keyId, b.key.keyId);
    assert.equal(r.statement.predicate.log_index, 3);
    assert.deepEqual(r.checkpoint, { origin: 'example.org/log', size: '5', root: JSON.parse(b.proof).root_hash });
    assert.equal((await v.verifyBundle({ ...b, pinnedKeyId: b.key.keyId.toUpperCase() })).ok, true);
    const pinned = await v.verifyBundle({ ...b, pinnedKeyId: '00'.repeat(32) });
    assert.deepEqual(failed(pinned), ['key']);
    // Keys as DER, raw bytes and a parsed key work alike.
    const der = Buffer.from(b.key.pem.split('\n').slice(1, -2).join(''), 'base64');
    for (const publicKey of [der, b.key.raw, await v.parsePublicKeyPem(b.key.pem)]) {
      assert.equal((await v.verifyBundle({ ...b, publicKey })).ok, true);
    }
    assert.equal((await v.verifyBundle({ ...b, eval: { sha256: v.toHex(sha(b.eval)) }, dataset: undefined })).ok, true);
  });

  test('only the checks asked for are run; a proof without a checkpoint fails inclusion', async () => {
    const b = synthetic();
    assert.deepEqual((await v.verifyBundle({ attestation: b.attestation, publicKey: b.publicKey })).checks.map((c) => c.name), ['signature']);
    const r = await v.verifyBundle({ attestation: b.attestation, publicKey: b.publicKey, proof: b.proof });
    assert.deepEqual(r.checks.map((c) => [c.name, c.ok, c.detail]), [['signature', true, `signed by key ${b.key.keyId}`], ['inclusion', false, 'no checkpoint to check the proof against']]);
    const nokey = await v.verifyBundle({ attestation: b.attestation, publicKey: 'junk' });
    assert.deepEqual(failed(nokey), ['key']);
    assert.equal((await v.verifyBundle(undefined)).ok, false);
    assert.equal((await v.verifyBundle({ publicKey: b.publicKey })).ok, false);
  });

  test('envelopes are read as strictly as serde reads them', async () => {
    const key = newKey();
    const good = JSON.parse(envelopeText(key, '{}'));
    const variants = {
      duplicate: JSON.stringify(good).replace('{"payload":', `{"payload":"${good.payload}","payload":`),
      unknown: JSON.stringify({ ...good, extra: 1 }),
      missing: JSON.stringify({ payload: good.payload, payloadType: good.payloadType }),
      noncanonical: JSON.stringify({ ...good, payload: 'e30' }),
      bom: '\ufeff' + JSON.stringify(good),
      trailing: JSON.stringify(good) + 'x',
      unsigned: JSON.stringify({ ...good, signatures: [] }),
      sigType: JSON.stringify({ ...good, signatures: [{ keyid: key.keyId, sig: 5 }] }),
      loneSurrogate: JSON.stringify(good).replace(`"keyid":"`, `"keyid":"\\ud800`),
    };
    for (const [name, text] of Object.entries(variants)) {
      const r = await v.verifyEnvelope(Buffer.from(text), key.pem);
      assert.equal(r.ok, false, name);
      assert.match(r.reason, name === 'unsigned' ? /^the envelope has no signatures$/ : name === 'loneSurrogate' ? /unknown key|not a DSSE/ : /^not a DSSE envelope: /, name);
    }
    assert.equal((await v.verifyEnvelope(Buffer.from(' ' + JSON.stringify(good) + '\n'), key.pem)).ok, true);
    // Not UTF-8.
    assert.equal((await v.verifyEnvelope(Uint8Array.of(0x7b, 0xff, 0x7d), key.pem)).ok, false);
    // Absurd nesting: refused, not a stack overflow.
    assert.equal((await v.verifyEnvelope(Buffer.from('['.repeat(100000)), key.pem)).ok, false);
    // A second signature by a key the verifier does not hold is tampering, as in Rust.
    const other = newKey();
    const two = { ...good, signatures: [...good.signatures, JSON.parse(envelopeText(other, '{}')).signatures[0]] };
    assert.match((await v.verifyEnvelope(Buffer.from(JSON.stringify(two)), key.pem)).reason, /^signed by an unknown key \(keyid "[0-9a-f]{64}"\)$/);
    // A signature of the wrong length, and one over another type.
    const short = { ...good, signatures: [{ keyid: key.keyId, sig: 'AAAA' }] };
    assert.match((await v.verifyEnvelope(Buffer.from(JSON.stringify(short)), key.pem)).reason, /does not verify/);
    const retyped = { ...good, payloadType: 'text/plain' };
    assert.match((await v.verifyEnvelope(Buffer.from(JSON.stringify(retyped)), key.pem)).reason, /does not verify/);
  });

  test('a signed payload that is not a Proctor statement fails `subjects`, not `signature`', async () => {
    const key = newKey();
    const cases = [
      [{}, /^not an in-toto Statement v1: /],
      [{ payload: '{"_type":"x","subject":[],"predicateType":"p","predicate":{}}' }, /^not an in-toto Statement v1: _type "x"/],
      [{ payload: '{"_type":"https://in-toto.io/Statement/v1","subject":[],"predicateType":"p","predicate":{}}' }, /^the statement has no single subject named "eval.wasm"$/],
      [{ payload: '{}', type: 'text/plain' }, /^payload type "text\/plain", expected "application\/vnd.in-toto\+json"$/],
    ];
    for (const [opts, want] of cases) {
      const env = envelopeText(key, opts.payload ?? '[]', { type: opts.type ?? v.PAYLOAD_TYPE });
      const r = await v.verifyBundle({ attestation: env, publicKey: key.pem, eval: Buffer.from('x') });
      assert.deepEqual(failed(r), ['subjects']);
      assert.match(r.checks[1].detail, want);
    }
    // The predicate's copy of a digest must agree with the subject.
    const b = synthetic({ key });
    const s = JSON.parse(statementJson(b.eval, b.dataset, 3));
    s.predicate.dataset.sha256 = '00'.repeat(32);
    const r = await v.verifyBundle({ ...synthetic({ key, payload: JSON.stringify(s) }) });
    assert.deepEqual(failed(r), ['subjects']);
    assert.equal(r.checks[1].detail, `the statement's "dataset.jsonl" subject and its predicate's digest disagree`);
    // And a statement whose log_index is another entry fails inclusion.
    const r2 = await v.verifyBundle(synthetic({ key, payload: statementJson(b.eval, b.dataset, 2) }));
    assert.deepEqual(failed(r2), ['inclusion']);
    assert.equal(r2.checks[3].detail, 'the statement says it is log entry 2; the proof is for entry 3');
  });

  test('checkpoints: witness lines are ignored, bent bodies and notes are refused', async () => {
    const key = newKey();
    const witness = newKey();
    const root = SOME_HASH;
    const body = `o\n7\n${b64(root)}\n`;
    const cp = checkpointText(key, 'o', 7, root, noteLine('witness.example', witness, body, 0x04));
    const ok = await v.verifyCheckpoint(cp, key.pem);
    assert.equal(ok.ok, true);
    assert.equal(ok.checkpoint.size, 7n);
    assert.equal(ok.checkpoint.signatures.length, 2);
    assert.match((await v.verifyCheckpoint(cp, witness.pem)).reason, /^the note has no signature by key o\+[0-9a-f]{8}$/);
    // checkpoint.rs bodies_that_bend_the_format_are_refused.
    const r64 = b64(root);
    for (const bent of [`o\n012\n${r64}\n`, `o\n\n${r64}\n`, `o\n-1\n${r64}\n`, `o\n1 \n${r64}\n`, `\n1\n${r64}\n`, `o\n1\n${r64}\next\n`, 'o\n1\nAAAA\n', 'o\n1\n', `o\n18446744073709551616\n${r64}\n`]) {
      const name = bent.split('\n')[0] || 'x';
      const note = `${bent}\n${noteLine(name, key, bent)}`;
      const r = await v.verifyCheckpoint(note, key.pem);
      assert.equal(r.ok, false, JSON.stringify(bent));
      assert.match(r.reason, /^malformed (checkpoint|signed note): /, JSON.stringify(bent));
    }
    assert.equal((await v.parseCheckpoint(`o\n18446744073709551615\n${r64}\n\n${noteLine('o', key, 'x')}`)).size, (1n << 64n) - 1n);
    const sig = noteLine('o', key, body);
    for (const [note, want] of [
      [body + sig, /no blank line/],
      [`${body}\n`, /no signature lines/],
      [`${body}\n${sig.trimEnd()}`, /does not end in a newline/],
      [`${body}\n- o ${sig.split(' ')[2]}`, /does not start with/],
      [`${body}\n\u2014 o\n`, /has no signature/],
      [`${body}\n\u2014 o+x ${sig.split(' ')[2]}`, /bad key name/],
      [`${body}\n\u2014 o AAAA\n`, /too short/],
      [`${body}\n\u2014 o AAAAAA\n`, /not standard base64/],
      [`${body}\n${sig}`.replace('o\n', 'o\t\n'), /control character/],
      [`${body}\n${sig.repeat(101)}`, /too many signatures/],
      [Uint8Array.of(0x6f, 0xff, 0x0a), /not UTF-8/],
    ]) {
      const r = await v.verifyCheckpoint(note, key.pem);
      assert.equal(r.ok, false);
      assert.match(r.reason, want);
    }
    assert.equal((await v.verifyCheckpoint(`${body}\n${sig.repeat(100)}`, key.pem)).ok, true);
    // A second line by the known key (right name and key id) that does not verify rejects
    // the note: signatures by the known key are never skipped.
    const id = sha(Buffer.concat([Buffer.from('o'), Buffer.of(0x0a, 0x01), key.raw])).subarray(0, 4);
    const forged = `\u2014 o ${b64(Buffer.concat([id, Buffer.alloc(64)]))}\n`;
    assert.match((await v.verifyCheckpoint(`${body}\n${sig}${forged}`, key.pem)).reason, /^the signature by key o\+[0-9a-f]{8} does not verify$/);
    assert.match((await v.verifyCheckpoint(`${body}\n${forged}${sig}`, key.pem)).reason, /does not verify/);
  });

  test('proof files are read as strictly as serde reads them', async () => {
    const b = synthetic();
    const p = JSON.parse(b.proof);
    const bad = {
      unknown: JSON.stringify({ ...p, extra: 1 }),
      float: b.proof.replace('"log_index": 3', '"log_index": 3.0'),
      exp: b.proof.replace('"log_index": 3', '"log_index": 3e0'),
      negative: b.proof.replace('"log_index": 3', '"log_index": -3'),
      string: b.proof.replace('"log_index": 3', '"log_index": "3"'),
      shortHash: JSON.stringify({ ...p, root_hash: 'AAAA' }),
      duplicate: b.proof.replace('"log_index": 3', '"log_index": 3, "log_index": 3'),
      huge: b.proof.replace('"log_index": 3', '"log_index": 18446744073709551616'),
    };
    for (const [name, proof] of Object.entries(bad)) {
      const r = await v.verifyBundle({ ...b, proof });
      assert.deepEqual(failed(r), ['inclusion'], name);
      assert.match(r.checks[3].detail, /^malformed proof file: /, name);
    }
    const other = await v.verifyBundle({ ...b, proof: JSON.stringify({ ...p, tree_size: 6 }) });
    assert.equal(other.checks[3].detail, 'the proof is for a tree of 6 leaves and another root; the checkpoint is of 5');
  });
});

// ------------------------------------------------------------------------------------------
// Cross-checks against the Rust implementation, through the real binary.

const BIN = process.env.PROCTOR_BIN || path.join(os.homedir(), '.cache/proctor-target/release/proctor');
const haveBin = fs.existsSync(BIN);
const skipMsg = haveBin ? false : `the proctor binary is not at ${BIN} (build it, or set PROCTOR_BIN)`;

/** `proctor verify ARGS`: exit status and the per-check lines it prints. */
function rustVerify(args) {
  const r = spawnSync(BIN, ['verify', ...args], { encoding: 'utf8', timeout: 60_000 });
  const lines = r.stdout.split('\n').filter((l) => /^[a-z-]+: (ok|FAILED)/.test(l));
  return { status: r.status, lines, stdout: r.stdout, stderr: r.stderr };
}
const checkName = (line) => line.split(':')[0];
const checkOk = (line) => /^[a-z-]+: ok/.test(line);

function readBundle(dir, keyPath = path.join(dir, 'public-key.pem')) {
  const read = (f) => fs.readFileSync(path.join(dir, f));
  return {
    attestation: read('attestation.json'),
    publicKey: fs.readFileSync(keyPath, 'utf8'),
    checkpoint: read('checkpoint.txt'),
    proof: read('inclusion-proof.json'),
    eval: read('eval.wasm'),
    dataset: read('dataset.jsonl'),
  };
}

/** One base64 character in `text` at `at` changed to another, keeping it canonical. */
function bumpBase64(text, at) {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
  const c = text[at];
  assert.ok(alphabet.includes(c), `not a base64 character at ${at}: ${c}`);
  return text.slice(0, at) + alphabet[(alphabet.indexOf(c) + 1) % 64] + text.slice(at + 1);
}

describe('cross-check with `proctor verify` on `proctor demo` output', { skip: skipMsg }, () => {
  let tmp;
  let demo;
  const setup = () => {
    if (demo) return demo;
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'proctor-verify-js-'));
    demo = path.join(tmp, 'demo');
    execFileSync(BIN, ['demo', '--out', demo], { stdio: ['ignore', 'ignore', 'pipe'], timeout: 300_000 });
    return demo;
  };
  const cleanup = () => tmp && fs.rmSync(tmp, { recursive: true, force: true });
  process.on('exit', cleanup);

  /** A copy of the demo directory with `edit(files)` applied (files: name -> Buffer). */
  let copies = 0;
  function tampered(edit) {
    const dir = path.join(tmp, `case-${copies++}`);
    fs.cpSync(setup(), dir, { recursive: true });
    const files = Object.fromEntries(fs.readdirSync(dir).map((f) => [f, fs.readFileSync(path.join(dir, f))]));
    edit(files);
    for (const [f, bytes] of Object.entries(files)) fs.writeFileSync(path.join(dir, f), bytes);
    return dir;
  }

  /**
   * Runs both verifiers on `dir` and asserts that they agree: same exit status (0 iff every
   * check passed), the same checks in the same order, each passing or failing alike, and the
   * same printed line unless the reason quotes a serde message (`exactReasons: false`).
   */
  async function agree(dir, { key, exactReasons = true, expectFailed }) {
    key ??= path.join(dir, 'public-key.pem');
    const rust = rustVerify([dir, '--key', key]);
    const js = await v.verifyBundle(readBundle(dir, key));
    const jsLines = js.checks.map(v.formatCheck);
    assert.notEqual(rust.status, 2, `proctor verify could not read its input: ${rust.stderr}`);
    assert.equal(js.ok, rust.status === 0, `JS ok=${js.ok}, Rust exit ${rust.status}\n${rust.stdout}`);
    assert.deepEqual(jsLines.map(checkName), rust.lines.map(checkName));
    assert.deepEqual(jsLines.map(checkOk), rust.lines.map(checkOk), `JS:\n${jsLines.join('\n')}\nRust:\n${rust.stdout}`);
    if (exactReasons) assert.deepEqual(jsLines, rust.lines);
    if (expectFailed) assert.deepEqual(failed(js), expectFailed, jsLines.join('\n'));
    return { rust, js, jsLines };
  }

  test('the untouched bundle passes every check in both, with the same key id and vkey', async () => {
    const dir = setup();
    const { js } = await agree(dir, { expectFailed: [] });
    assert.deepEqual(js.checks.map((c) => c.name), ['signature', 'subjects', 'checkpoint', 'inclusion']);
    // The README's explicit form.
    const explicit = rustVerify([path.join(dir, 'attestation.json'), '--key', path.join(dir, 'public-key.pem'), '--eval', path.join(dir, 'eval.wasm'), '--dataset', path.join(dir, 'dataset.jsonl'), '--checkpoint', path.join(dir, 'checkpoint.txt'), '--proof', path.join(dir, 'inclusion-proof.json')]);
    assert.equal(explicit.status, 0, explicit.stdout + explicit.stderr);
    assert.deepEqual(explicit.lines, js.checks.map(v.formatCheck));
    // `proctor keys show` prints the key id and the vkey of the default origin.
    const shown = execFileSync(BIN, ['keys', 'show', dir], { encoding: 'utf8' });
    assert.match(shown, new RegExp(`^key id: ${js.keyId}$`, 'm'));
    const vkey = /^vkey: (\S+)/m.exec(shown)[1];
    const [name] = vkey.split('+');
    assert.equal((await v.noteVerifierKey(name, readBundle(dir).publicKey)).vkey, vkey);
    // The statement is the one the demo ran.
    assert.equal(js.statement._type, v.STATEMENT_TYPE);
    const proof = JSON.parse(fs.readFileSync(path.join(dir, 'inclusion-proof.json')));
    assert.equal(js.statement.predicate.log_index, proof.log_index);
    assert.equal(js.checkpoint.size, String(proof.tree_size));
  });

  const envelopeEdit = (fn) => (files) => {
    const env = JSON.parse(files['attestation.json']);
    fn(env);
    // Compact, in the DSSE field order, as the service writes it.
    files['attestation.json'] = Buffer.from(JSON.stringify({ payload: env.payload, payloadType: env.payloadType, signatures: env.signatures, ...env }));
  };
  const proofEdit = (fn) => (files) => {
    const p = JSON.parse(files['inclusion-proof.json']);
    fn(p);
    files['inclusion-proof.json'] = Buffer.from(JSON.stringify(p, null, 2) + '\n');
  };
  const checkpointEdit = (fn) => (files) => {
    const lines = files['checkpoint.txt'].toString('utf8').split('\n');
    fn(lines);
    files['checkpoint.txt'] = Buffer.from(lines.join('\n'));
  };

  const cases = [
    ['one byte of the payload', envelopeEdit((e) => (e.payload = bumpBase64(e.payload, 200))), ['signature', 'subjects', 'inclusion']],
    ['one byte of the envelope signature', envelopeEdit((e) => (e.signatures[0].sig = bumpBase64(e.signatures[0].sig, 20))), ['signature', 'subjects', 'inclusion']],
    ['the signature key id', envelopeEdit((e) => (e.signatures[0].keyid = (e.signatures[0].keyid[0] === 'f' ? 'e' : 'f') + e.signatures[0].keyid.slice(1))), ['signature', 'subjects', 'inclusion']],
    ['the payload type', envelopeEdit((e) => (e.payloadType = 'application/json')), ['signature', 'subjects', 'inclusion']],
    ['no signatures', envelopeEdit((e) => (e.signatures = [])), ['signature', 'subjects', 'inclusion']],
    ['an unknown envelope field', envelopeEdit((e) => (e.extra = 'x')), ['signature', 'subjects', 'inclusion'], { exactReasons: false }],
    ['a newline after the envelope', (f) => (f['attestation.json'] = Buffer.concat([f['attestation.json'], Buffer.from('\n')])), ['inclusion']],
    ['one byte of a proof hash', proofEdit((p) => (p.hashes[0] = bumpBase64(p.hashes[0], 10))), ['inclusion']],
    ['a hash added to the proof', proofEdit((p) => p.hashes.push(p.hashes[0])), ['inclusion']],
    ['the proof emptied', proofEdit((p) => (p.hashes = [])), ['inclusion']],
    ['the leaf index', proofEdit((p) => (p.log_index = p.log_index === 0 ? 1 : p.log_index - 1)), ['inclusion']],
    ['a leaf index beyond the tree', proofEdit((p) => (p.log_index = p.tree_size)), ['inclusion']],
    ["the proof's tree size", proofEdit((p) => (p.tree_size += 1)), ['inclusion']],
    ["the proof's root", proofEdit((p) => (p.root_hash = bumpBase64(p.root_hash, 5))), ['inclusion']],
    ['a proof hash that is not base64', proofEdit((p) => (p.hashes[0] = 'not base64!')), ['inclusion'], { exactReasons: false }],
    ["the checkpoint's root", checkpointEdit((l) => (l[2] = bumpBase64(l[2], 7))), ['checkpoint', 'inclusion']],
    ["the checkpoint's size", checkpointEdit((l) => (l[1] = String(Number(l[1]) + 1))), ['checkpoint', 'inclusion']],
    ["the checkpoint's origin", checkpointEdit((l) => (l[0] = l[0] + 'x')), ['checkpoint', 'inclusion']],
    ["one byte of the checkpoint's signature", checkpointEdit((l) => (l[4] = l[4].replace(/ (\S+)$/, (m, s) => ' ' + bumpBase64(s, 30)))), ['checkpoint', 'inclusion']],
    ["the checkpoint signature's key id", checkpointEdit((l) => (l[4] = l[4].replace(/ (\S+)$/, (m, s) => ' ' + bumpBase64(s, 0)))), ['checkpoint', 'inclusion']],
    ['the checkpoint without its final newline', (f) => (f['checkpoint.txt'] = f['checkpoint.txt'].subarray(0, -1)), ['checkpoint', 'inclusion']],
    ['an extension line in the checkpoint', checkpointEdit((l) => l.splice(3, 0, 'ext')), ['checkpoint', 'inclusion']],
    ['one byte of the dataset', (f) => (f['dataset.jsonl'][5] ^= 1), ['subjects']],
    ['another eval', (f) => (f['eval.wasm'] = Buffer.from('not the eval')), ['subjects']],
  ];
  for (const [what, edit, expectFailed, opts = {}] of cases) {
    test(`tampered: ${what}`, async () => {
      await agree(tampered(edit), { expectFailed, ...opts });
    });
  }

  test('tampered: a witness cosignature line added is ignored by both', async () => {
    const dir = tampered((f) => {
      const w = newKey();
      const text = f['checkpoint.txt'].toString('utf8');
      const body = text.slice(0, text.indexOf('\n\n') + 1);
      f['checkpoint.txt'] = Buffer.from(text + noteLine('witness.example/w', w, body, 0x04));
    });
    await agree(dir, { expectFailed: [] });
  });

  test('a wrong key: every check fails in both', async () => {
    const dir = tampered(() => {});
    const wrong = path.join(tmp, 'wrong-key.pem');
    fs.writeFileSync(wrong, newKey().pem);
    await agree(dir, { key: wrong, expectFailed: ['signature', 'subjects', 'checkpoint', 'inclusion'] });
  });

  test('an unreadable key: Rust exits 2, JS fails `key` and runs nothing else', async () => {
    const dir = tampered(() => {});
    const junk = path.join(tmp, 'junk-key.pem');
    fs.writeFileSync(junk, 'not a key\n');
    assert.equal(rustVerify([dir, '--key', junk]).status, 2);
    const js = await v.verifyBundle(readBundle(dir, junk));
    assert.deepEqual(js.checks.map((c) => [c.name, c.ok]), [['key', false]]);
  });
});
