//! The stored Merkle tree as proof generation sees it (`specs/ledger.md` §4.2): the upper
//! levels cached in memory, the lower ones read from storage in one batched read per
//! proof. The pure algorithms are in `dojang_core::merkle`; this is only where nodes come
//! from.

use std::sync::RwLock;

use dojang_core::hash::Hash;
use dojang_core::merkle::{self, Blake3Hasher, NodeId, NodeSource, NodeSourceError, ProofError};

use crate::storage::{StorageError, Store, TreeReader};

#[derive(Debug, thiserror::Error)]
pub enum TreeError {
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("stored tree is corrupt: {0}")]
    Corrupt(String),
}

/// Tree levels at and above this one are kept in memory: 1/8 of all nodes (4 bytes per
/// entry: 40 MB at 10^7 entries). Everything below is the clustered 16-leaf tile of
/// `storage::keys::node`, so a proof reads one storage block plus any partial right edge.
const CACHED_LEVEL: u8 = 4;

/// The upper levels of the tree, in memory, for proof generation (`specs/ledger.md` §4.2).
#[derive(Debug, Default)]
struct TreeCache {
    /// `levels[l - CACHED_LEVEL][i]` is node (l, i).
    levels: RwLock<Vec<Vec<Hash>>>,
}

impl TreeCache {
    fn load(store: &Store, size: u64) -> Result<Self, TreeError> {
        let mut levels = Vec::new();
        for level in CACHED_LEVEL..64 {
            let count = size >> level;
            if count == 0 {
                break;
            }
            let mut hashes = Vec::with_capacity(count as usize);
            let mut i = 0u64;
            while i < count {
                let ids: Vec<NodeId> = (i..count.min(i + 4096)).map(|index| NodeId { level, index }).collect();
                for (id, h) in ids.iter().zip(store.tree_nodes(&ids)?) {
                    hashes.push(h.ok_or_else(|| TreeError::Corrupt(format!("missing node at level {} index {}", id.level, id.index)))?);
                }
                i += ids.len() as u64;
            }
            levels.push(hashes);
        }
        Ok(TreeCache { levels: RwLock::new(levels) })
    }

    /// Adds newly completed nodes, which arrive in index order per level.
    fn extend(&self, nodes: &[(NodeId, Hash)]) {
        let mut levels = self.levels.write().unwrap_or_else(|p| p.into_inner());
        for (id, h) in nodes.iter().filter(|(id, _)| id.level >= CACHED_LEVEL) {
            let l = usize::from(id.level - CACHED_LEVEL);
            while levels.len() <= l {
                levels.push(Vec::new());
            }
            if let Some(level) = levels.get_mut(l)
                && level.len() as u64 == id.index
            {
                level.push(*h);
            }
        }
    }

    fn get(&self, id: NodeId) -> Option<Hash> {
        let l = usize::from(id.level.checked_sub(CACHED_LEVEL)?);
        let levels = self.levels.read().unwrap_or_else(|p| p.into_inner());
        levels.get(l)?.get(usize::try_from(id.index).ok()?).copied()
    }
}

/// Proof generation's view of the tree: upper levels from memory, the rest in one
/// batched storage read.
struct ProofSource<'a> {
    store: &'a Store,
    cache: &'a TreeCache,
}

impl NodeSource for ProofSource<'_> {
    fn node(&self, id: NodeId) -> Result<Hash, NodeSourceError> {
        self.nodes(&[id])?.pop().ok_or_else(|| NodeSourceError("empty answer".into()))
    }

    fn nodes(&self, ids: &[NodeId]) -> Result<Vec<Hash>, NodeSourceError> {
        let mut out: Vec<Option<Hash>> = ids.iter().map(|id| self.cache.get(*id)).collect();
        let missing: Vec<NodeId> = ids.iter().zip(&out).filter(|(_, h)| h.is_none()).map(|(id, _)| *id).collect();
        if !missing.is_empty() {
            let fetched = self.store.tree_nodes(&missing).map_err(|e| NodeSourceError(e.to_string()))?;
            let mut it = missing.iter().zip(fetched);
            for slot in out.iter_mut().filter(|h| h.is_none()) {
                match it.next() {
                    Some((_, Some(h))) => *slot = Some(h),
                    Some((id, None)) => return Err(NodeSourceError(format!("missing tree node at level {} index {}", id.level, id.index))),
                    None => return Err(NodeSourceError("short batched read".into())),
                }
            }
        }
        out.into_iter().map(|h| h.ok_or_else(|| NodeSourceError("unfilled node".into()))).collect()
    }
}

/// The tree of one store with its upper-level cache.
#[derive(Debug)]
pub struct CachedTree {
    store: Store,
    cache: TreeCache,
}

impl CachedTree {
    /// Loads the cached levels of a tree of `size` leaves.
    pub fn load(store: Store, size: u64) -> Result<Self, TreeError> {
        let cache = TreeCache::load(&store, size)?;
        Ok(CachedTree { store, cache })
    }

    /// Records nodes that a durable commit just wrote (call only after the commit).
    pub fn extend(&self, nodes: &[(NodeId, Hash)]) {
        self.cache.extend(nodes);
    }

    fn source(&self) -> ProofSource<'_> {
        ProofSource { store: &self.store, cache: &self.cache }
    }

    pub fn inclusion_proof(&self, index: u64, size: u64) -> Result<Vec<Hash>, ProofError> {
        merkle::inclusion_proof::<Blake3Hasher>(&self.source(), index, size)
    }

    pub fn consistency_proof(&self, from: u64, to: u64) -> Result<Vec<Hash>, ProofError> {
        merkle::consistency_proof::<Blake3Hasher>(&self.source(), from, to)
    }
}
