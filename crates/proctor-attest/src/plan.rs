//! Which stored subtree hashes an append or a proof needs, and how to put the answer together.
//!
//! Everything here is pure. A store that lives in a database runs the three steps itself:
//! plan (here), fetch [`AppendPlan::reads`] or [`ProofPlan::reads`] in one query, assemble
//! (here). [`crate::log`] does exactly that over a [`crate::log::NodeStore`]; a SQL store
//! that must do its reads and writes inside its own transaction can call these directly.
//!
//! Costs: an append reads the peaks of the current tree (at most 64 hashes, popcount of the
//! size) and writes the new leaf and the perfect subtrees it completes (on average two). An
//! inclusion or consistency proof reads at most about 2·log2(n) hashes and never a leaf it does
//! not need.

use crate::merkle::{self, Hash, NodeId, fold, leaf_hash, node_hash, range_nodes, split};

/// A plan that cannot be made or an answer that does not fit it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    /// An inclusion proof was asked for a leaf the tree does not have.
    #[error("leaf {index} is not in a tree of {size} leaves")]
    LeafOutOfRange {
        /// The leaf asked for.
        index: u64,
        /// The tree's size.
        size: u64,
    },
    /// A consistency proof was asked from a larger tree to a smaller one.
    #[error("cannot prove a tree of {old} leaves consistent with a smaller one of {new}")]
    SizesOutOfOrder {
        /// The older size.
        old: u64,
        /// The newer size.
        new: u64,
    },
    /// The store answered with another number of hashes than the plan asked for.
    #[error("the plan needs {expected} stored hashes; {got} were given")]
    WrongCount {
        /// Hashes asked for.
        expected: usize,
        /// Hashes given.
        got: usize,
    },
    /// The tree would have more than 2^64 - 1 leaves.
    #[error("the log is full")]
    Full,
}

/// An append of one or more leaves to a tree of a given size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppendPlan {
    size: u64,
    reads: Vec<NodeId>,
}

/// What an append changes: the nodes to write and the new head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppendOutcome {
    /// The index the first appended leaf took.
    pub first_index: u64,
    /// The tree's size after the append.
    pub tree_size: u64,
    /// The tree's root hash after the append.
    pub root: Hash,
    /// Every new leaf hash and every perfect subtree the append completed, to be stored.
    /// Nothing stored before is changed.
    pub writes: Vec<(NodeId, Hash)>,
}

impl AppendPlan {
    /// Plans an append to the tree of `size` leaves.
    pub fn new(size: u64) -> AppendPlan {
        AppendPlan {
            size,
            reads: merkle::peaks(size),
        }
    }

    /// The stored nodes to fetch: the current tree's peaks.
    pub fn reads(&self) -> &[NodeId] {
        &self.reads
    }

    /// Appends the entries whose bytes are given: see [`AppendPlan::assemble`].
    ///
    /// # Errors
    ///
    /// As [`AppendPlan::assemble`].
    pub fn assemble_entries<E: AsRef<[u8]>>(
        &self,
        peaks: &[Hash],
        entries: &[E],
    ) -> Result<AppendOutcome, PlanError> {
        let leaves: Vec<Hash> = entries.iter().map(|e| leaf_hash(e.as_ref())).collect();
        self.assemble(peaks, &leaves)
    }

    /// Appends `leaves` (leaf hashes) given the hashes of [`AppendPlan::reads`], in order.
    ///
    /// # Errors
    ///
    /// [`PlanError::WrongCount`] when `peaks` does not match the reads;
    /// [`PlanError::Full`] when the tree would overflow.
    pub fn assemble(&self, peaks: &[Hash], leaves: &[Hash]) -> Result<AppendOutcome, PlanError> {
        if peaks.len() != self.reads.len() {
            return Err(PlanError::WrongCount {
                expected: self.reads.len(),
                got: peaks.len(),
            });
        }
        let tree_size = u64::try_from(leaves.len())
            .ok()
            .and_then(|n| self.size.checked_add(n))
            .ok_or(PlanError::Full)?;
        // The peaks are a stack of perfect subtrees, tallest first. Adding a leaf is a binary
        // increment: it merges with every peak of its own height.
        let mut stack: Vec<(NodeId, Hash)> = self
            .reads
            .iter()
            .copied()
            .zip(peaks.iter().copied())
            .collect();
        let mut writes = Vec::with_capacity(leaves.len() * 2 + 64);
        for (leaf_index, leaf) in (self.size..).zip(leaves) {
            let mut node = (NodeId::new(0, leaf_index), *leaf);
            writes.push(node);
            while let Some(&(left_id, left)) = stack.last() {
                if left_id.level != node.0.level {
                    break;
                }
                stack.pop();
                node = (
                    NodeId::new(node.0.level + 1, node.0.index / 2),
                    node_hash(&left, &node.1),
                );
                writes.push(node);
            }
            stack.push(node);
        }
        let hashes: Vec<Hash> = stack.iter().map(|(_, h)| *h).collect();
        Ok(AppendOutcome {
            first_index: self.size,
            tree_size,
            root: fold(&hashes),
            writes,
        })
    }
}

/// A list of subtree hashes to compute from stored nodes: a root, an inclusion proof or a
/// consistency proof.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProofPlan {
    reads: Vec<NodeId>,
    /// How many consecutive reads fold into each output hash.
    parts: Vec<usize>,
}

impl ProofPlan {
    /// The root hash of the tree of `size` leaves (one output hash).
    pub fn root(size: u64) -> ProofPlan {
        ProofPlan::from_ranges(&[(0, size)])
    }

    /// The inclusion proof of leaf `index` in the tree of `size` leaves (RFC 9162 §2.1.3.1),
    /// hashes ordered from the leaf up.
    ///
    /// # Errors
    ///
    /// [`PlanError::LeafOutOfRange`] unless `index < size`.
    pub fn inclusion(index: u64, size: u64) -> Result<ProofPlan, PlanError> {
        if index >= size {
            return Err(PlanError::LeafOutOfRange { index, size });
        }
        // Walk down from the root; at each split the proof needs the side the leaf is not on.
        let (mut lo, mut hi) = (0, size);
        let mut ranges = Vec::new();
        while hi - lo > 1 {
            let k = split(hi - lo);
            if index < lo + k {
                ranges.push((lo + k, hi));
                hi = lo + k;
            } else {
                ranges.push((lo, lo + k));
                lo += k;
            }
        }
        // Collected from the root down; the proof lists them from the leaf up.
        ranges.reverse();
        Ok(ProofPlan::from_ranges(&ranges))
    }

    /// The consistency proof from the tree of `old` leaves to the tree of `new` leaves
    /// (RFC 9162 §2.1.4.1). Empty when `old` is 0 or equal to `new`.
    ///
    /// # Errors
    ///
    /// [`PlanError::SizesOutOfOrder`] when `old > new`.
    pub fn consistency(old: u64, new: u64) -> Result<ProofPlan, PlanError> {
        if old > new {
            return Err(PlanError::SizesOutOfOrder { old, new });
        }
        if old == 0 || old == new {
            return Ok(ProofPlan::from_ranges(&[]));
        }
        // SUBPROOF(m, D[lo:hi], b), unrolled: `m` counts the old tree's leaves inside
        // [lo, hi), `whole` is the RFC's b (still on the old tree's left edge).
        let (mut m, mut lo, mut hi, mut whole) = (old, 0, new, true);
        let mut ranges = Vec::new();
        loop {
            let n = hi - lo;
            if m == n {
                if !whole {
                    ranges.push((lo, hi));
                }
                break;
            }
            let k = split(n);
            if m <= k {
                ranges.push((lo + k, hi));
                hi = lo + k;
            } else {
                ranges.push((lo, lo + k));
                m -= k;
                lo += k;
                whole = false;
            }
        }
        ranges.reverse();
        Ok(ProofPlan::from_ranges(&ranges))
    }

    fn from_ranges(ranges: &[(u64, u64)]) -> ProofPlan {
        let mut reads = Vec::new();
        let mut parts = Vec::with_capacity(ranges.len());
        for &(lo, hi) in ranges {
            let nodes = range_nodes(lo, hi);
            parts.push(nodes.len());
            reads.extend(nodes);
        }
        ProofPlan { reads, parts }
    }

    /// The stored nodes to fetch, in the order [`ProofPlan::assemble`] wants their hashes.
    pub fn reads(&self) -> &[NodeId] {
        &self.reads
    }

    /// The output hashes, from the hashes of [`ProofPlan::reads`] in order.
    ///
    /// # Errors
    ///
    /// [`PlanError::WrongCount`] when `hashes` does not match the reads.
    pub fn assemble(&self, hashes: &[Hash]) -> Result<Vec<Hash>, PlanError> {
        if hashes.len() != self.reads.len() {
            return Err(PlanError::WrongCount {
                expected: self.reads.len(),
                got: hashes.len(),
            });
        }
        let mut rest = hashes;
        Ok(self
            .parts
            .iter()
            .map(|&count| {
                let (part, tail) = rest.split_at(count);
                rest = tail;
                fold(part)
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_stay_logarithmic() {
        for size in [1u64, 2, 3, 1000, 1 << 20, 1_000_000, u64::MAX / 3] {
            for index in [0, size / 2, size - 1] {
                let plan = ProofPlan::inclusion(index, size).unwrap();
                assert!(plan.reads().len() <= 2 * 64, "{index} {size}");
            }
            let plan = ProofPlan::consistency(size / 3 + 1, size).unwrap();
            assert!(plan.reads().len() <= 2 * 64);
        }
    }

    #[test]
    fn impossible_plans_are_refused() {
        assert_eq!(
            ProofPlan::inclusion(3, 3),
            Err(PlanError::LeafOutOfRange { index: 3, size: 3 })
        );
        assert_eq!(
            ProofPlan::consistency(4, 3),
            Err(PlanError::SizesOutOfOrder { old: 4, new: 3 })
        );
        assert_eq!(
            ProofPlan::root(3).assemble(&[]),
            Err(PlanError::WrongCount {
                expected: 2,
                got: 0
            })
        );
        assert_eq!(
            AppendPlan::new(u64::MAX).assemble(&vec![[0; 32]; 64], &[[0; 32]]),
            Err(PlanError::Full)
        );
    }

    #[test]
    fn the_empty_root_plan_reads_nothing() {
        let plan = ProofPlan::root(0);
        assert!(plan.reads().is_empty());
        assert_eq!(plan.assemble(&[]).unwrap(), vec![merkle::empty_root()]);
    }
}
