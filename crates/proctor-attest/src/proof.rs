//! Verification of inclusion and consistency proofs (RFC 9162 §2.1.3.2 and §2.1.4.2), and the
//! JSON files that carry them.
//!
//! The verifiers are pure functions of their arguments. Each checks the proof's length
//! against the one the sizes call for before it hashes anything, so a proof with a hash too
//! many or too few is named as such; a forged proof of the right length leads to another root.
//!
//! # Files
//!
//! `inclusion-proof.json`, the proof that an entry is in a checkpoint's tree:
//!
//! ```json
//! {"log_index": 5, "tree_size": 8, "root_hash": "<base64>", "hashes": ["<base64>", ...]}
//! ```
//!
//! A consistency proof file, the proof that the tree of `new_size` leaves extends the tree of
//! `old_size` leaves:
//!
//! ```json
//! {"old_size": 6, "new_size": 8, "hashes": ["<base64>", ...]}
//! ```
//!
//! Hashes are SHA-256 in standard base64 with padding, ordered as RFC 9162 lists them (an
//! inclusion proof from the leaf up). Unknown fields are errors.

use serde::{Deserialize, Serialize};

use crate::b64;
use crate::merkle::{Hash, empty_root, node_hash};

/// Why a proof does not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProofError {
    /// The leaf index is not below the tree size.
    #[error("leaf {index} is not in a tree of {size} leaves")]
    LeafOutOfRange {
        /// The leaf's index.
        index: u64,
        /// The tree's size.
        size: u64,
    },
    /// The newer tree is smaller than the older one.
    #[error("a tree of {new} leaves cannot extend one of {old}")]
    SizesOutOfOrder {
        /// The older size.
        old: u64,
        /// The newer size.
        new: u64,
    },
    /// The proof has more or fewer hashes than the sizes call for.
    #[error("the proof has {got} hashes; these sizes call for {expected}")]
    WrongLength {
        /// Hashes the sizes call for.
        expected: usize,
        /// Hashes in the proof.
        got: usize,
    },
    /// The inclusion proof leads to another root.
    #[error("the proof does not lead to the expected root hash")]
    RootMismatch,
    /// The consistency proof does not lead to the older tree's root.
    #[error("the proof does not lead to the older tree's root hash")]
    OldRootMismatch,
    /// The consistency proof does not lead to the newer tree's root.
    #[error("the proof does not lead to the newer tree's root hash")]
    NewRootMismatch,
    /// A proof file that is not the documented JSON.
    #[error("malformed proof file: {0}")]
    Malformed(String),
}

/// The number of hashes in the inclusion proof of leaf `index` in a tree of `size`
/// (`index < size`): the levels where the leaf's path and the tree's right edge differ, plus
/// the left-hand subtrees above them.
pub fn inclusion_proof_len(index: u64, size: u64) -> usize {
    let inner = 64 - (index ^ (size - 1)).leading_zeros();
    let border = index.checked_shr(inner).unwrap_or(0).count_ones();
    (inner + border) as usize
}

/// The number of hashes in the consistency proof from `old` to `new` leaves
/// (`0 < old < new`): the inclusion proof of the largest perfect subtree ending at `old`, plus
/// that subtree's hash unless it is the whole old tree.
pub fn consistency_proof_len(old: u64, new: u64) -> usize {
    let level = old.trailing_zeros();
    let index = (old - 1) >> level;
    let size = ((new - 1) >> level) + 1;
    inclusion_proof_len(index, size) + usize::from(index != 0)
}

/// The root hash that an inclusion proof for `leaf_hash` at `index` in a tree of `size` leads
/// to (RFC 9162 §2.1.3.2, steps 1 to 4).
///
/// # Errors
///
/// [`ProofError::LeafOutOfRange`] unless `index < size`; [`ProofError::WrongLength`].
pub fn root_from_inclusion_proof(
    index: u64,
    size: u64,
    leaf_hash: &Hash,
    proof: &[Hash],
) -> Result<Hash, ProofError> {
    if index >= size {
        return Err(ProofError::LeafOutOfRange { index, size });
    }
    let expected = inclusion_proof_len(index, size);
    if proof.len() != expected {
        return Err(ProofError::WrongLength {
            expected,
            got: proof.len(),
        });
    }
    let (mut f_n, mut s_n) = (index, size - 1);
    let mut r = *leaf_hash;
    for p in proof {
        if s_n == 0 {
            return Err(ProofError::WrongLength {
                expected,
                got: proof.len(),
            });
        }
        if f_n & 1 == 1 || f_n == s_n {
            r = node_hash(p, &r);
            // Skip the levels where this node has no right sibling (the tree's right edge).
            while f_n & 1 == 0 && f_n != 0 {
                f_n >>= 1;
                s_n >>= 1;
            }
        } else {
            r = node_hash(&r, p);
        }
        f_n >>= 1;
        s_n >>= 1;
    }
    if s_n != 0 {
        return Err(ProofError::WrongLength {
            expected,
            got: proof.len(),
        });
    }
    Ok(r)
}

/// Checks that `leaf_hash` is leaf `index` of the tree of `size` leaves whose root is `root`.
///
/// # Errors
///
/// As [`root_from_inclusion_proof`], and [`ProofError::RootMismatch`].
pub fn verify_inclusion(
    index: u64,
    size: u64,
    leaf_hash: &Hash,
    proof: &[Hash],
    root: &Hash,
) -> Result<(), ProofError> {
    if root_from_inclusion_proof(index, size, leaf_hash, proof)? != *root {
        return Err(ProofError::RootMismatch);
    }
    Ok(())
}

/// Checks that the tree of `new` leaves with root `new_root` extends the tree of `old` leaves
/// with root `old_root` (RFC 9162 §2.1.4.2).
///
/// When `old == new` the proof must be empty and the roots equal; when `old == 0` the proof
/// must be empty and `old_root` the empty tree's root.
///
/// # Errors
///
/// [`ProofError::SizesOutOfOrder`], [`ProofError::WrongLength`],
/// [`ProofError::OldRootMismatch`], [`ProofError::NewRootMismatch`].
pub fn verify_consistency(
    old: u64,
    new: u64,
    old_root: &Hash,
    new_root: &Hash,
    proof: &[Hash],
) -> Result<(), ProofError> {
    if old > new {
        return Err(ProofError::SizesOutOfOrder { old, new });
    }
    let expected = if old == 0 || old == new {
        0
    } else {
        consistency_proof_len(old, new)
    };
    if proof.len() != expected {
        return Err(ProofError::WrongLength {
            expected,
            got: proof.len(),
        });
    }
    if old == 0 {
        return if *old_root == empty_root() {
            Ok(())
        } else {
            Err(ProofError::OldRootMismatch)
        };
    }
    if old == new {
        return if old_root == new_root {
            Ok(())
        } else {
            Err(ProofError::NewRootMismatch)
        };
    }
    // Step 2: when the old tree is a perfect subtree, its root is the proof's implicit
    // first element.
    let implicit = old.is_power_of_two().then_some(old_root);
    let mut path = implicit.into_iter().chain(proof);
    let Some(first) = path.next() else {
        return Err(ProofError::WrongLength { expected, got: 0 });
    };
    let (mut f_n, mut s_n) = (old - 1, new - 1);
    while f_n & 1 == 1 {
        f_n >>= 1;
        s_n >>= 1;
    }
    let (mut f_r, mut s_r) = (*first, *first);
    for c in path {
        if s_n == 0 {
            return Err(ProofError::WrongLength {
                expected,
                got: proof.len(),
            });
        }
        if f_n & 1 == 1 || f_n == s_n {
            f_r = node_hash(c, &f_r);
            s_r = node_hash(c, &s_r);
            while f_n & 1 == 0 && f_n != 0 {
                f_n >>= 1;
                s_n >>= 1;
            }
        } else {
            s_r = node_hash(&s_r, c);
        }
        f_n >>= 1;
        s_n >>= 1;
    }
    if s_n != 0 {
        return Err(ProofError::WrongLength {
            expected,
            got: proof.len(),
        });
    }
    if f_r != *old_root {
        return Err(ProofError::OldRootMismatch);
    }
    if s_r != *new_root {
        return Err(ProofError::NewRootMismatch);
    }
    Ok(())
}

/// `inclusion-proof.json`: an entry's inclusion in the tree of a given size.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InclusionProof {
    /// The entry's index in the log.
    pub log_index: u64,
    /// The size of the tree the proof is for.
    pub tree_size: u64,
    /// That tree's root hash.
    #[serde(with = "b64::hash")]
    pub root_hash: Hash,
    /// The proof, from the leaf up.
    #[serde(with = "b64::hashes")]
    pub hashes: Vec<Hash>,
}

impl InclusionProof {
    /// Reads the file.
    ///
    /// # Errors
    ///
    /// [`ProofError::Malformed`] for anything but the documented JSON.
    pub fn from_json(bytes: &[u8]) -> Result<InclusionProof, ProofError> {
        serde_json::from_slice(bytes).map_err(|e| ProofError::Malformed(e.to_string()))
    }

    /// The file's text: pretty-printed JSON and a final newline.
    pub fn to_json(&self) -> String {
        pretty(self)
    }

    /// Checks that `leaf_hash` is in the tree this proof names, against its own root. A
    /// verifier checks the root and size against a signed checkpoint as well.
    ///
    /// # Errors
    ///
    /// As [`verify_inclusion`].
    pub fn verify(&self, leaf_hash: &Hash) -> Result<(), ProofError> {
        verify_inclusion(
            self.log_index,
            self.tree_size,
            leaf_hash,
            &self.hashes,
            &self.root_hash,
        )
    }
}

/// A consistency proof file: the tree of `new_size` leaves extends the one of `old_size`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsistencyProof {
    /// The older tree's size.
    pub old_size: u64,
    /// The newer tree's size.
    pub new_size: u64,
    /// The proof.
    #[serde(with = "b64::hashes")]
    pub hashes: Vec<Hash>,
}

impl ConsistencyProof {
    /// Reads the file.
    ///
    /// # Errors
    ///
    /// [`ProofError::Malformed`] for anything but the documented JSON.
    pub fn from_json(bytes: &[u8]) -> Result<ConsistencyProof, ProofError> {
        serde_json::from_slice(bytes).map_err(|e| ProofError::Malformed(e.to_string()))
    }

    /// The file's text: pretty-printed JSON and a final newline.
    pub fn to_json(&self) -> String {
        pretty(self)
    }

    /// Checks the proof between the two roots.
    ///
    /// # Errors
    ///
    /// As [`verify_consistency`].
    pub fn verify(&self, old_root: &Hash, new_root: &Hash) -> Result<(), ProofError> {
        verify_consistency(
            self.old_size,
            self.new_size,
            old_root,
            new_root,
            &self.hashes,
        )
    }
}

fn pretty<T: Serialize>(value: &T) -> String {
    // Integers and strings only: serializing cannot fail.
    let mut text = serde_json::to_string_pretty(value).unwrap_or_default();
    text.push('\n');
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proof_files_round_trip_and_refuse_unknown_fields() {
        let proof = InclusionProof {
            log_index: 2,
            tree_size: 5,
            root_hash: [7; 32],
            hashes: vec![[1; 32], [2; 32]],
        };
        let text = proof.to_json();
        assert!(text.contains("\"root_hash\": \"BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=\""));
        assert_eq!(InclusionProof::from_json(text.as_bytes()).unwrap(), proof);
        let extra = text.replacen('{', "{\"extra\": 1,", 1);
        assert!(InclusionProof::from_json(extra.as_bytes()).is_err());
        let short = text.replace("BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=", "Bwc=");
        assert!(InclusionProof::from_json(short.as_bytes()).is_err());

        let proof = ConsistencyProof {
            old_size: 3,
            new_size: 9,
            hashes: vec![[3; 32]],
        };
        assert_eq!(
            ConsistencyProof::from_json(proof.to_json().as_bytes()).unwrap(),
            proof
        );
    }

    #[test]
    fn the_empty_tree_is_consistent_with_every_tree() {
        verify_consistency(0, 5, &empty_root(), &[9; 32], &[]).unwrap();
        verify_consistency(0, 0, &empty_root(), &empty_root(), &[]).unwrap();
        assert_eq!(
            verify_consistency(0, 5, &[1; 32], &[9; 32], &[]),
            Err(ProofError::OldRootMismatch)
        );
    }

    #[test]
    fn equal_sizes_need_equal_roots_and_no_proof() {
        verify_consistency(4, 4, &[1; 32], &[1; 32], &[]).unwrap();
        assert!(verify_consistency(4, 4, &[1; 32], &[2; 32], &[]).is_err());
        assert!(verify_consistency(4, 4, &[1; 32], &[1; 32], &[[1; 32]]).is_err());
        assert!(verify_consistency(5, 4, &[1; 32], &[1; 32], &[]).is_err());
    }
}
