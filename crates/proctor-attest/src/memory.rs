//! A [`NodeStore`] in memory, for tests, benchmarks and local tools.

use async_trait::async_trait;

use crate::log::{NodeStore, TreeHead};
use crate::merkle::{Hash, NodeId};

/// What the in-memory store refuses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MemoryError {
    /// A node that was never stored was asked for.
    #[error("no stored node at level {}, index {}", .0.level, .0.index)]
    Missing(NodeId),
    /// A node was written out of order or twice: the log only ever adds the next node of a
    /// level.
    #[error("node at level {}, index {} is not the next one of its level", .0.level, .0.index)]
    OutOfOrder(NodeId),
}

/// The log's nodes in memory: one vector of hashes per level, so a node is found by indexing.
#[derive(Debug, Clone, Default)]
pub struct MemoryStore {
    size: u64,
    levels: Vec<Vec<Hash>>,
}

impl MemoryStore {
    /// An empty log.
    pub fn new() -> MemoryStore {
        MemoryStore::default()
    }

    fn get(&self, id: NodeId) -> Option<Hash> {
        let index = usize::try_from(id.index).ok()?;
        self.levels.get(usize::from(id.level))?.get(index).copied()
    }
}

#[async_trait]
impl NodeStore for MemoryStore {
    type Error = MemoryError;

    async fn size(&mut self) -> Result<u64, MemoryError> {
        Ok(self.size)
    }

    async fn nodes(&mut self, ids: &[NodeId]) -> Result<Vec<Hash>, MemoryError> {
        ids.iter()
            .map(|&id| self.get(id).ok_or(MemoryError::Missing(id)))
            .collect()
    }

    async fn store(&mut self, head: TreeHead, nodes: &[(NodeId, Hash)]) -> Result<(), MemoryError> {
        // Check everything before changing anything, so a refused write leaves no trace.
        let mut next: Vec<u64> = self.levels.iter().map(|l| l.len() as u64).collect();
        for &(id, _) in nodes {
            let level = usize::from(id.level);
            if next.len() <= level {
                next.resize(level + 1, 0);
            }
            if next[level] != id.index {
                return Err(MemoryError::OutOfOrder(id));
            }
            next[level] += 1;
        }
        if self.levels.len() < next.len() {
            self.levels.resize_with(next.len(), Vec::new);
        }
        for &(id, hash) in nodes {
            self.levels[usize::from(id.level)].push(hash);
        }
        self.size = head.size;
        Ok(())
    }
}
