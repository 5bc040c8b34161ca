//! RFC 6962 / RFC 9162 Merkle tree hashing, and the names of the perfect subtrees the log
//! stores.
//!
//! - leaf hash: `SHA-256(0x00 || entry)`
//! - node hash: `SHA-256(0x01 || left || right)`
//! - the root of the empty tree: `SHA-256("")`
//!
//! The tree over leaves `D[0:n]` splits at the largest power of two `k < n`: its left part is
//! always a perfect subtree. So the tree of any size is a right fold of the perfect subtrees in
//! the binary decomposition of its size, the *peaks*; the same holds for every subtree that a
//! proof names. A perfect subtree, once complete, never changes; that is what lets the log
//! store each one's hash once and answer proofs for any past size from them.

use ring::digest::{Context, SHA256};

/// A SHA-256 hash.
pub type Hash = [u8; 32];

/// A perfect subtree: the `2^level` leaves starting at leaf `index << level`.
///
/// Level 0 nodes are the leaf hashes. Node `(level + 1, i)` is the node hash of
/// `(level, 2i)` and `(level, 2i + 1)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId {
    /// Height above the leaves.
    pub level: u8,
    /// Position among the nodes of its level, from the left.
    pub index: u64,
}

impl NodeId {
    /// The node at `level`, `index`.
    pub const fn new(level: u8, index: u64) -> NodeId {
        NodeId { level, index }
    }

    /// The first leaf it covers.
    pub fn first_leaf(self) -> u64 {
        self.index << self.level
    }

    /// How many leaves it covers.
    pub fn width(self) -> u64 {
        1 << self.level
    }
}

/// The leaf hash of a log entry.
pub fn leaf_hash(entry: &[u8]) -> Hash {
    let mut ctx = Context::new(&SHA256);
    ctx.update(&[0x00]);
    ctx.update(entry);
    finish(ctx)
}

/// The hash of an inner node.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut ctx = Context::new(&SHA256);
    ctx.update(&[0x01]);
    ctx.update(left);
    ctx.update(right);
    finish(ctx)
}

/// The root hash of the empty tree.
pub fn empty_root() -> Hash {
    finish(Context::new(&SHA256))
}

fn finish(ctx: Context) -> Hash {
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    out
}

/// The perfect subtrees that make up leaves `[start, end)`, left to right, largest first.
///
/// `start` must be aligned so that the decomposition follows the RFC's split (true of every
/// subtree of the tree and of every range a proof names): then the range's subtree hash is
/// [`fold`] of these nodes' hashes.
pub fn range_nodes(start: u64, end: u64) -> Vec<NodeId> {
    let mut nodes = Vec::new();
    let mut at = start;
    while at < end {
        // The largest perfect subtree that starts at `at` and fits before `end`.
        let align = if at == 0 { 63 } else { at.trailing_zeros() };
        let fit = 63 - (end - at).leading_zeros();
        let level = align.min(fit);
        nodes.push(NodeId::new(level as u8, at >> level));
        at += 1 << level;
    }
    nodes
}

/// The peaks of the tree of `size` leaves: [`range_nodes`]`(0, size)`.
pub fn peaks(size: u64) -> Vec<NodeId> {
    range_nodes(0, size)
}

/// The hash of a subtree from the hashes of its perfect parts, left to right: a right fold,
/// `H(h0, H(h1, ... H(hk-1, hk)))`. The empty list folds to the empty tree's root.
pub fn fold(hashes: &[Hash]) -> Hash {
    let mut iter = hashes.iter().rev();
    let Some(last) = iter.next() else {
        return empty_root();
    };
    iter.fold(*last, |acc, left| node_hash(left, &acc))
}

/// The root hash of a whole tree, computed from all its leaf hashes: the RFC's recursive
/// definition, kept as the reference the stored-subtree log is tested against.
pub fn root_of_leaves(leaves: &[Hash]) -> Hash {
    match leaves.len() {
        0 => empty_root(),
        1 => leaves[0],
        n => {
            let k = split(n as u64) as usize;
            node_hash(&root_of_leaves(&leaves[..k]), &root_of_leaves(&leaves[k..]))
        }
    }
}

/// The largest power of two smaller than `n` (`n >= 2`): where the RFC splits a tree of `n`.
pub(crate) fn split(n: u64) -> u64 {
    debug_assert!(n >= 2);
    1 << (63 - (n - 1).leading_zeros())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(text: &str) -> Hash {
        hex::decode(text).unwrap().try_into().unwrap()
    }

    #[test]
    fn the_empty_tree_hashes_to_the_sha256_of_nothing() {
        assert_eq!(
            empty_root(),
            h("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        );
    }

    #[test]
    fn the_empty_leaf_has_the_rfc_6962_hash() {
        // transparency-dev/merkle rfc6962/rfc6962_test.go: HashLeaf([]byte{}).
        assert_eq!(
            leaf_hash(b""),
            h("6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d")
        );
    }

    #[test]
    fn a_range_decomposes_into_aligned_perfect_subtrees() {
        assert_eq!(
            range_nodes(0, 11),
            vec![NodeId::new(3, 0), NodeId::new(1, 4), NodeId::new(0, 10)]
        );
        assert_eq!(range_nodes(8, 12), vec![NodeId::new(2, 2)]);
        assert_eq!(
            range_nodes(4, 7),
            vec![NodeId::new(1, 2), NodeId::new(0, 6)]
        );
        assert!(range_nodes(5, 5).is_empty());
        for size in 0..200u64 {
            let nodes = peaks(size);
            assert_eq!(nodes.len(), size.count_ones() as usize);
            assert_eq!(nodes.iter().map(|n| n.width()).sum::<u64>(), size);
        }
    }

    #[test]
    fn folding_the_peaks_gives_the_recursive_root() {
        let leaves: Vec<Hash> = (0..40u8).map(|i| leaf_hash(&[i])).collect();
        for size in 0..=leaves.len() {
            let peak_hashes: Vec<Hash> = peaks(size as u64)
                .iter()
                .map(|n| {
                    let start = n.first_leaf() as usize;
                    root_of_leaves(&leaves[start..start + n.width() as usize])
                })
                .collect();
            assert_eq!(fold(&peak_hashes), root_of_leaves(&leaves[..size]));
        }
    }

    #[test]
    fn the_split_is_the_largest_power_of_two_below_n() {
        assert_eq!(split(2), 1);
        assert_eq!(split(3), 2);
        assert_eq!(split(4), 2);
        assert_eq!(split(5), 4);
        assert_eq!(split(8), 4);
        assert_eq!(split(9), 8);
        assert_eq!(split(u64::MAX), 1 << 63);
    }
}
