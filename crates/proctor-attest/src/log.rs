//! The transparency log over a store of perfect-subtree hashes.
//!
//! A [`NodeStore`] keeps the log's size and the hash of every complete perfect subtree
//! ([`NodeId`]): about 2n hashes for n leaves, each written once and never changed. The
//! entries themselves (the envelope bytes) live wherever the caller keeps them; the log needs
//! only their hashes.
//!
//! Every function here is plan, one batched read, assemble (see [`crate::plan`]):
//!
//! - [`append`]: reads the size and the peaks, writes the new nodes and the new head. The store
//!   may be a database transaction: a SQL store takes the row lock on the log head in
//!   [`NodeStore::size`] (`SELECT ... FOR UPDATE`), so concurrent appenders, also on other
//!   servers, queue behind it and the log never forks; the caller inserts the entry row with
//!   the returned index in the same transaction and commits.
//! - [`inclusion_proof`], [`consistency_proof`], [`root_at`]: O(log n) stored-hash reads in
//!   one batch, for any tree size up to the current one.

use async_trait::async_trait;

use crate::merkle::{Hash, NodeId, leaf_hash};
use crate::plan::{AppendPlan, PlanError, ProofPlan};

/// Storage for the log: its head and its perfect-subtree hashes.
///
/// Methods take `&mut self` because a store may be one database transaction, whose connection
/// is used by one query at a time.
#[async_trait]
pub trait NodeStore: Send {
    /// What can go wrong in the store.
    type Error: std::error::Error + Send + Sync + 'static;

    /// The number of leaves in the log. A store that serializes appends takes its lock here:
    /// [`append`] calls it first.
    async fn size(&mut self) -> Result<u64, Self::Error>;

    /// The hashes of `ids`, in the same order, one per id. Every id asked for is a complete
    /// subtree of the current tree; a store that lacks one reports an error.
    async fn nodes(&mut self, ids: &[NodeId]) -> Result<Vec<Hash>, Self::Error>;

    /// Stores new nodes and the new head, as one unit. `nodes` holds only nodes never stored
    /// before, leaves and parents in an order where each node's children come first.
    async fn store(&mut self, head: TreeHead, nodes: &[(NodeId, Hash)]) -> Result<(), Self::Error>;
}

/// A tree size and its root hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TreeHead {
    /// Leaves in the tree.
    pub size: u64,
    /// The root hash.
    pub root: Hash,
}

/// What [`append`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Appended {
    /// The index the (first) appended entry took.
    pub index: u64,
    /// The head after the append.
    pub head: TreeHead,
}

/// Why a log operation failed.
#[derive(Debug, thiserror::Error)]
pub enum LogError<E: std::error::Error + 'static> {
    /// The store failed.
    #[error("log store: {0}")]
    Store(#[source] E),
    /// The request does not fit the tree, or the store answered with the wrong count.
    #[error(transparent)]
    Plan(#[from] PlanError),
    /// A proof or root was asked for a size the log has not reached.
    #[error("the log has {current} entries; size {asked} was asked for")]
    BeyondHead {
        /// The size asked for.
        asked: u64,
        /// The log's size.
        current: u64,
    },
    /// The caller expected the entry to take another index (the head moved: a caller that
    /// wrote the index into the entry must hold the head lock while it does).
    #[error("the entry would take index {actual}, not {expected}")]
    UnexpectedIndex {
        /// The index the caller wrote into its entry.
        expected: u64,
        /// The index it would take.
        actual: u64,
    },
}

/// Appends one entry (its bytes, hashed here as a leaf).
///
/// # Errors
///
/// [`LogError::Store`] from the store; [`LogError::Plan`] when the log is full or the store
/// answers with the wrong number of hashes.
pub async fn append<S: NodeStore + ?Sized>(
    store: &mut S,
    entry: &[u8],
) -> Result<Appended, LogError<S::Error>> {
    append_leaves(store, &[leaf_hash(entry)]).await
}

/// Appends one entry that records its own log index (as the result predicate does), failing
/// without writing if the log's size is not `expected_index`.
///
/// # Errors
///
/// [`LogError::UnexpectedIndex`] when the head moved; otherwise as [`append`].
pub async fn append_at<S: NodeStore + ?Sized>(
    store: &mut S,
    expected_index: u64,
    entry: &[u8],
) -> Result<Appended, LogError<S::Error>> {
    let size = store.size().await.map_err(LogError::Store)?;
    if size != expected_index {
        return Err(LogError::UnexpectedIndex {
            expected: expected_index,
            actual: size,
        });
    }
    append_to(store, size, &[leaf_hash(entry)]).await
}

/// Appends leaf hashes, in order; [`Appended::index`] is the first one's index.
///
/// # Errors
///
/// As [`append`].
pub async fn append_leaves<S: NodeStore + ?Sized>(
    store: &mut S,
    leaves: &[Hash],
) -> Result<Appended, LogError<S::Error>> {
    let size = store.size().await.map_err(LogError::Store)?;
    append_to(store, size, leaves).await
}

async fn append_to<S: NodeStore + ?Sized>(
    store: &mut S,
    size: u64,
    leaves: &[Hash],
) -> Result<Appended, LogError<S::Error>> {
    let plan = AppendPlan::new(size);
    let peaks = store.nodes(plan.reads()).await.map_err(LogError::Store)?;
    let outcome = plan.assemble(&peaks, leaves)?;
    let head = TreeHead {
        size: outcome.tree_size,
        root: outcome.root,
    };
    store
        .store(head, &outcome.writes)
        .await
        .map_err(LogError::Store)?;
    Ok(Appended {
        index: outcome.first_index,
        head,
    })
}

/// The current head: size and root.
///
/// # Errors
///
/// [`LogError::Store`] from the store.
pub async fn tree_head<S: NodeStore + ?Sized>(
    store: &mut S,
) -> Result<TreeHead, LogError<S::Error>> {
    let size = store.size().await.map_err(LogError::Store)?;
    let root = compute(store, &ProofPlan::root(size)).await?;
    Ok(TreeHead {
        size,
        root: root
            .first()
            .copied()
            .unwrap_or_else(crate::merkle::empty_root),
    })
}

/// The root hash of the tree when it had `size` leaves.
///
/// # Errors
///
/// [`LogError::BeyondHead`] for a size the log has not reached; [`LogError::Store`].
pub async fn root_at<S: NodeStore + ?Sized>(
    store: &mut S,
    size: u64,
) -> Result<Hash, LogError<S::Error>> {
    check_size(store, size).await?;
    let root = compute(store, &ProofPlan::root(size)).await?;
    Ok(root
        .first()
        .copied()
        .unwrap_or_else(crate::merkle::empty_root))
}

/// The inclusion proof of entry `index` in the tree of `size` leaves, hashes from the leaf up.
///
/// # Errors
///
/// [`LogError::BeyondHead`], [`LogError::Plan`] when `index >= size`, [`LogError::Store`].
pub async fn inclusion_proof<S: NodeStore + ?Sized>(
    store: &mut S,
    index: u64,
    size: u64,
) -> Result<Vec<Hash>, LogError<S::Error>> {
    let plan = ProofPlan::inclusion(index, size)?;
    check_size(store, size).await?;
    compute(store, &plan).await
}

/// The consistency proof from the tree of `old` leaves to the tree of `new` leaves.
///
/// # Errors
///
/// [`LogError::BeyondHead`], [`LogError::Plan`] when `old > new`, [`LogError::Store`].
pub async fn consistency_proof<S: NodeStore + ?Sized>(
    store: &mut S,
    old: u64,
    new: u64,
) -> Result<Vec<Hash>, LogError<S::Error>> {
    let plan = ProofPlan::consistency(old, new)?;
    check_size(store, new).await?;
    compute(store, &plan).await
}

async fn check_size<S: NodeStore + ?Sized>(
    store: &mut S,
    asked: u64,
) -> Result<(), LogError<S::Error>> {
    let current = store.size().await.map_err(LogError::Store)?;
    if asked > current {
        return Err(LogError::BeyondHead { asked, current });
    }
    Ok(())
}

async fn compute<S: NodeStore + ?Sized>(
    store: &mut S,
    plan: &ProofPlan,
) -> Result<Vec<Hash>, LogError<S::Error>> {
    let hashes = if plan.reads().is_empty() {
        Vec::new()
    } else {
        store.nodes(plan.reads()).await.map_err(LogError::Store)?
    };
    Ok(plan.assemble(&hashes)?)
}
