//! The storage-backed log against a naive full-tree reference and published vectors.
//!
//! Proofs are generated through [`proctor_attest::log`] over a [`MemoryStore`] and checked
//! with the pure verifiers in [`proctor_attest::proof`]; the reference below recomputes RFC
//! 9162's recursive definitions from all leaves, sharing nothing with the log but the two hash
//! functions (which are checked against the vectors).

use futures::executor::block_on;
use proctor_attest::merkle::{Hash, empty_root, leaf_hash, node_hash};
use proctor_attest::proof::{
    ProofError, consistency_proof_len, inclusion_proof_len, root_from_inclusion_proof,
    verify_consistency, verify_inclusion,
};
use proctor_attest::{MemoryStore, log};

// ---- The reference: RFC 9162 §2.1.1, §2.1.3.1 and §2.1.4.1, word for word. ----

fn split(n: usize) -> usize {
    let mut k = 1;
    while k * 2 < n {
        k *= 2;
    }
    k
}

/// MTH(D[n]).
fn mth(d: &[Vec<u8>]) -> Hash {
    match d.len() {
        0 => empty_root(),
        1 => leaf_hash(&d[0]),
        n => {
            let k = split(n);
            node_hash(&mth(&d[..k]), &mth(&d[k..]))
        }
    }
}

/// PATH(m, D[n]).
fn path(m: usize, d: &[Vec<u8>]) -> Vec<Hash> {
    let n = d.len();
    if n == 1 {
        return Vec::new();
    }
    let k = split(n);
    if m < k {
        let mut p = path(m, &d[..k]);
        p.push(mth(&d[k..]));
        p
    } else {
        let mut p = path(m - k, &d[k..]);
        p.push(mth(&d[..k]));
        p
    }
}

/// SUBPROOF(m, D[n], b).
fn subproof(m: usize, d: &[Vec<u8>], b: bool) -> Vec<Hash> {
    let n = d.len();
    if m == n {
        return if b { Vec::new() } else { vec![mth(d)] };
    }
    let k = split(n);
    if m <= k {
        let mut p = subproof(m, &d[..k], b);
        p.push(mth(&d[k..]));
        p
    } else {
        let mut p = subproof(m - k, &d[k..], false);
        p.push(mth(&d[..k]));
        p
    }
}

/// PROOF(m, D[n]); empty for m = 0 and m = n, as the log and the verifier agree.
fn consistency(m: usize, d: &[Vec<u8>]) -> Vec<Hash> {
    if m == 0 || m == d.len() {
        Vec::new()
    } else {
        subproof(m, d, true)
    }
}

// ---- Helpers. ----

const N: usize = 64;

fn entries(n: usize) -> Vec<Vec<u8>> {
    (0..n)
        .map(|i| format!("entry {i}: a DSSE envelope stands here").into_bytes())
        .collect()
}

fn log_of(entries: &[Vec<u8>]) -> MemoryStore {
    let mut store = MemoryStore::new();
    for (i, entry) in entries.iter().enumerate() {
        let appended = block_on(log::append(&mut store, entry)).unwrap();
        assert_eq!(appended.index, i as u64);
        assert_eq!(appended.head.size, i as u64 + 1);
        assert_eq!(appended.head.root, mth(&entries[..=i]), "root after {i}");
    }
    store
}

fn flip(proof: &[Hash], i: usize, bit: u8) -> Vec<Hash> {
    let mut forged = proof.to_vec();
    forged[i][(i * 7) % 32] ^= bit;
    forged
}

// ---- Every size and pair up to 64. ----

#[test]
fn every_root_up_to_64_matches_the_reference() {
    let d = entries(N);
    let mut store = log_of(&d);
    for size in 0..=N {
        let root = block_on(log::root_at(&mut store, size as u64)).unwrap();
        assert_eq!(root, mth(&d[..size]), "size {size}");
    }
    let head = block_on(log::tree_head(&mut store)).unwrap();
    assert_eq!((head.size, head.root), (N as u64, mth(&d)));
}

#[test]
fn every_inclusion_proof_up_to_size_64_matches_the_reference_and_verifies() {
    let d = entries(N);
    let mut store = log_of(&d);
    for size in 1..=N {
        let root = mth(&d[..size]);
        for index in 0..size {
            let (i, n) = (index as u64, size as u64);
            let proof = block_on(log::inclusion_proof(&mut store, i, n)).unwrap();
            assert_eq!(proof, path(index, &d[..size]), "PATH({index}, D[{size}])");
            assert_eq!(proof.len(), inclusion_proof_len(i, n));
            let leaf = leaf_hash(&d[index]);
            verify_inclusion(i, n, &leaf, &proof, &root).unwrap();

            // Any other leaf, index, size or root fails.
            let other = leaf_hash(&d[(index + 1) % N]);
            assert!(verify_inclusion(i, n, &other, &proof, &root).is_err());
            if index + 1 < size {
                assert!(verify_inclusion(i + 1, n, &leaf, &proof, &root).is_err());
            }
            // (A size with the same hashing pattern, such as n + 1 at times, cannot be told
            // apart by the proof; the checkpoint signs the size with the root.)
            assert!(verify_inclusion(i, n * 2, &leaf, &proof, &root).is_err());
            assert!(verify_inclusion(i, n, &leaf, &proof, &mth(&d[..size - 1])).is_err());
            // A forged proof of the right length: each hash in turn, one bit changed.
            for k in 0..proof.len() {
                assert_eq!(
                    verify_inclusion(i, n, &leaf, &flip(&proof, k, 0x08), &root),
                    Err(ProofError::RootMismatch),
                    "PATH({index}, D[{size}]) with hash {k} changed"
                );
            }
            // One hash too many or too few.
            let mut longer = proof.clone();
            longer.push(root);
            assert!(matches!(
                verify_inclusion(i, n, &leaf, &longer, &root),
                Err(ProofError::WrongLength { .. })
            ));
            if !proof.is_empty() {
                assert!(matches!(
                    verify_inclusion(i, n, &leaf, &proof[1..], &root),
                    Err(ProofError::WrongLength { .. })
                ));
            }
        }
        assert!(block_on(log::inclusion_proof(&mut store, size as u64, size as u64)).is_err());
    }
}

#[test]
fn every_consistency_proof_up_to_size_64_matches_the_reference_and_verifies() {
    let d = entries(N);
    let mut store = log_of(&d);
    for new in 0..=N {
        let new_root = mth(&d[..new]);
        for old in 0..=new {
            let old_root = mth(&d[..old]);
            let (m, n) = (old as u64, new as u64);
            let proof = block_on(log::consistency_proof(&mut store, m, n)).unwrap();
            assert_eq!(proof, consistency(old, &d[..new]), "PROOF({old}, D[{new}])");
            if 0 < old && old < new {
                assert_eq!(proof.len(), consistency_proof_len(m, n));
            }
            verify_consistency(m, n, &old_root, &new_root, &proof).unwrap();

            if old == 0 || old == new {
                continue;
            }
            // Other roots fail.
            assert!(verify_consistency(m, n, &new_root, &new_root, &proof).is_err());
            assert!(verify_consistency(m, n, &old_root, &old_root, &proof).is_err());
            assert!(verify_consistency(m, n, &new_root, &old_root, &proof).is_err());
            // A forged proof of the right length.
            for k in 0..proof.len() {
                assert!(
                    verify_consistency(m, n, &old_root, &new_root, &flip(&proof, k, 0x10)).is_err(),
                    "PROOF({old}, D[{new}]) with hash {k} changed"
                );
            }
            // Truncated, extended, empty.
            assert!(
                verify_consistency(m, n, &old_root, &new_root, &proof[..proof.len() - 1]).is_err()
            );
            let mut longer = proof.clone();
            longer.push(new_root);
            assert!(verify_consistency(m, n, &old_root, &new_root, &longer).is_err());
            assert!(verify_consistency(m, n, &old_root, &new_root, &[]).is_err());
            // Another pair of sizes with the same roots.
            assert!(verify_consistency(m - 1, n, &old_root, &new_root, &proof).is_err());
            assert!(verify_consistency(m, n * 2, &old_root, &new_root, &proof).is_err());
        }
    }
}

#[test]
fn proofs_beyond_the_head_are_refused() {
    let mut store = log_of(&entries(5));
    assert!(matches!(
        block_on(log::inclusion_proof(&mut store, 2, 6)),
        Err(log::LogError::BeyondHead {
            asked: 6,
            current: 5
        })
    ));
    assert!(block_on(log::consistency_proof(&mut store, 2, 6)).is_err());
    assert!(block_on(log::consistency_proof(&mut store, 4, 3)).is_err());
}

#[test]
fn append_at_refuses_an_index_the_head_has_moved_past() {
    let mut store = log_of(&entries(3));
    assert!(matches!(
        block_on(log::append_at(&mut store, 2, b"late")),
        Err(log::LogError::UnexpectedIndex {
            expected: 2,
            actual: 3
        })
    ));
    assert_eq!(
        block_on(log::append_at(&mut store, 3, b"on time"))
            .unwrap()
            .index,
        3
    );
}

#[test]
fn a_batch_append_equals_appending_one_by_one() {
    let d = entries(37);
    let mut one_by_one = log_of(&d[..37]);
    let mut batched = MemoryStore::new();
    let leaves: Vec<Hash> = d.iter().map(|e| leaf_hash(e)).collect();
    block_on(log::append_leaves(&mut batched, &leaves[..5])).unwrap();
    let appended = block_on(log::append_leaves(&mut batched, &leaves[5..])).unwrap();
    assert_eq!(appended.index, 5);
    assert_eq!(appended.head.root, mth(&d));
    for index in 0..37 {
        assert_eq!(
            block_on(log::inclusion_proof(&mut batched, index, 37)).unwrap(),
            block_on(log::inclusion_proof(&mut one_by_one, index, 37)).unwrap()
        );
    }
}

// ---- Published vectors. ----
//
// From transparency-dev/merkle, proof/verify_test.go at commit
// 02194e9afb6c1d95b5381350007963aa70fff472
// (https://github.com/transparency-dev/merkle/blob/02194e9afb6c1d95b5381350007963aa70fff472/proof/verify_test.go):
// the 8-leaf tree of Certificate Transparency's merkle_tree_test.cc, its roots at every size,
// and its inclusion and consistency proofs. Leaf numbers there are 1-based.

fn h(text: &str) -> Hash {
    hex::decode(text).unwrap().try_into().unwrap()
}

fn vector_leaves() -> Vec<Vec<u8>> {
    [
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    ]
    .iter()
    .map(|x| hex::decode(x).unwrap())
    .collect()
}

const VECTOR_ROOTS: [&str; 8] = [
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
];

/// (leaf, 1-based; tree size; proof).
fn vector_inclusion_proofs() -> Vec<(u64, u64, Vec<Hash>)> {
    vec![
        (1, 1, vec![]),
        (
            1,
            8,
            vec![
                h("96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7"),
                h("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
                h("6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"),
            ],
        ),
        (
            6,
            8,
            vec![
                h("bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"),
                h("ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0"),
                h("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"),
            ],
        ),
        (
            3,
            3,
            vec![h(
                "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
            )],
        ),
        (
            2,
            5,
            vec![
                h("6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"),
                h("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
                h("bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"),
            ],
        ),
    ]
}

/// (old size, new size, proof).
fn vector_consistency_proofs() -> Vec<(u64, u64, Vec<Hash>)> {
    vec![
        (1, 1, vec![]),
        (
            1,
            8,
            vec![
                h("96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7"),
                h("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
                h("6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"),
            ],
        ),
        (
            6,
            8,
            vec![
                h("0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a"),
                h("ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0"),
                h("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"),
            ],
        ),
        (
            2,
            5,
            vec![
                h("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
                h("bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"),
            ],
        ),
        (
            6,
            7,
            vec![
                h("0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a"),
                h("b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f"),
                h("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"),
            ],
        ),
    ]
}

#[test]
fn leaf_and_empty_hashes_match_rfc6962_vectors() {
    // transparency-dev/merkle rfc6962/rfc6962_test.go at commit
    // 78493b07ef9b552e3379abf9e23d4da26fbe797c, TestRFC6962Hasher.
    assert_eq!(
        empty_root(),
        h("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
    );
    assert_eq!(
        leaf_hash(b""),
        h("6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d")
    );
    assert_eq!(
        leaf_hash(b"L123456"),
        h("395aa064aa4c29f7010acfe3f25db9485bbd4b91897b6ad7ad547639252b4d56")
    );
}

#[test]
fn the_log_reproduces_the_published_8_leaf_roots() {
    let d = vector_leaves();
    let mut store = log_of(&d);
    for (i, root) in VECTOR_ROOTS.iter().enumerate() {
        let size = i as u64 + 1;
        assert_eq!(
            block_on(log::root_at(&mut store, size)).unwrap(),
            h(root),
            "size {size}"
        );
        assert_eq!(mth(&d[..=i]), h(root));
    }
}

#[test]
fn the_log_reproduces_the_published_inclusion_proofs_and_they_verify() {
    let d = vector_leaves();
    let mut store = log_of(&d);
    for (leaf, size, want) in vector_inclusion_proofs() {
        let index = leaf - 1;
        let got = block_on(log::inclusion_proof(&mut store, index, size)).unwrap();
        assert_eq!(got, want, "leaf {leaf} of {size}");
        let root = h(VECTOR_ROOTS[size as usize - 1]);
        let leaf_hash = leaf_hash(&d[index as usize]);
        assert_eq!(
            root_from_inclusion_proof(index, size, &leaf_hash, &want).unwrap(),
            root
        );
        verify_inclusion(index, size, &leaf_hash, &want, &root).unwrap();
        // The corruptions of the same file's corruptInclusionProof.
        let some = h("abacaba000000000000000000000000000000000000000000060061e00123456");
        assert!(verify_inclusion(index.wrapping_sub(1), size, &leaf_hash, &want, &root).is_err());
        assert!(verify_inclusion(index + 1, size, &leaf_hash, &want, &root).is_err());
        assert!(verify_inclusion(index ^ 2, size, &leaf_hash, &want, &root).is_err());
        assert!(verify_inclusion(index, size * 2, &leaf_hash, &want, &root).is_err());
        assert!(verify_inclusion(index, size / 2, &leaf_hash, &want, &root).is_err());
        assert!(verify_inclusion(index, size, &leaf_hash, &want, &empty_root()).is_err());
        assert!(verify_inclusion(index, size, &leaf_hash, &want, &some).is_err());
        let mut trailing = want.clone();
        trailing.push(root);
        assert!(verify_inclusion(index, size, &leaf_hash, &trailing, &root).is_err());
        let mut preceding = vec![root];
        preceding.extend(&want);
        assert!(verify_inclusion(index, size, &leaf_hash, &preceding, &root).is_err());
        for k in 0..want.len() {
            let mut forged = want.clone();
            forged[k][0] ^= 8;
            assert!(verify_inclusion(index, size, &leaf_hash, &forged, &root).is_err());
        }
    }
}

#[test]
fn the_log_reproduces_the_published_consistency_proofs_and_they_verify() {
    let d = vector_leaves();
    let mut store = log_of(&d);
    for (old, new, want) in vector_consistency_proofs() {
        let got = block_on(log::consistency_proof(&mut store, old, new)).unwrap();
        assert_eq!(got, want, "{old} -> {new}");
        let old_root = h(VECTOR_ROOTS[old as usize - 1]);
        let new_root = h(VECTOR_ROOTS[new as usize - 1]);
        verify_consistency(old, new, &old_root, &new_root, &want).unwrap();
        if want.is_empty() {
            continue;
        }
        // The corruptions of the same file's corruptConsistencyProof.
        assert!(verify_consistency(old - 1, new, &old_root, &new_root, &want).is_err());
        assert!(verify_consistency(old + 1, new, &old_root, &new_root, &want).is_err());
        assert!(verify_consistency(old ^ 2, new, &old_root, &new_root, &want).is_err());
        assert!(verify_consistency(old, new * 2, &old_root, &new_root, &want).is_err());
        assert!(verify_consistency(old, new / 2, &old_root, &new_root, &want).is_err());
        assert!(verify_consistency(old, new, &new_root, &old_root, &want).is_err());
        assert!(verify_consistency(old, new, &old_root, &new_root, &[]).is_err());
        for extra in [old_root, new_root, [0; 32]] {
            let mut trailing = want.clone();
            trailing.push(extra);
            assert!(verify_consistency(old, new, &old_root, &new_root, &trailing).is_err());
            let mut preceding = vec![extra];
            preceding.extend(&want);
            assert!(verify_consistency(old, new, &old_root, &new_root, &preceding).is_err());
        }
        for k in 0..want.len() {
            let mut forged = want.clone();
            forged[k][0] ^= 16;
            assert!(verify_consistency(old, new, &old_root, &new_root, &forged).is_err());
        }
    }
}
