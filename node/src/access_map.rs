//! The stored access map as the ledger sees it (`specs/access-log.md` §13, §14.4): the sparse
//! Merkle map's nodes in the `map_nodes` table, with the upper levels cached in memory so
//! that an insert or a proof reads only the lower part of its path from storage.
//!
//! The pure algorithms (insert, prove, verify) are in `dojang_core::sparse_map`; this is
//! only where nodes come from. Writes go through the ledger's atomic batch; the cache is
//! updated after the batch is durable, under the ledger's map lock.

use std::collections::HashMap;
use std::sync::RwLock;

use dojang_core::sparse_map::{MapNode, MapNodeId, MapSource, MapSourceError};

use crate::storage::{Put, StateReader, StorageError, Store, Table};

/// Map depths up to this one live in memory: at 10^7 keys the map is ~24 levels deep, so
/// the cache (≤ 2^(CACHED_DEPTH+1) nodes, at most ~40 MB) answers three quarters of each
/// path's reads and only the last few levels come from RocksDB.
pub const CACHED_DEPTH: u16 = 17;

#[derive(Debug)]
pub struct MapStore {
    store: Store,
    cache: RwLock<HashMap<MapNodeId, MapNode>>,
}

fn decode(key: &[u8], value: &[u8]) -> Result<(MapNodeId, MapNode), StorageError> {
    let corrupt = |what: String| StorageError::Corrupt { table: "map_nodes", what };
    let id = MapNodeId::from_key_bytes(key).map_err(|e| corrupt(format!("node key: {e}")))?;
    let node = MapNode::decode(value).map_err(|e| corrupt(format!("node at depth {}: {e}", id.depth())))?;
    Ok((id, node))
}

impl MapStore {
    /// Loads the cached levels from storage.
    pub fn load(store: Store) -> Result<Self, StorageError> {
        let mut cache = HashMap::new();
        for depth in 0..=CACHED_DEPTH {
            let prefix = depth.to_be_bytes();
            for (k, v) in store.state_scan(Table::MapNodes, &prefix, usize::MAX)? {
                let (id, node) = decode(&k, &v)?;
                cache.insert(id, node);
            }
        }
        Ok(MapStore { store, cache: RwLock::new(cache) })
    }

    /// The table writes for `writes` (from `sparse_map::insert_batch`). The map only grows,
    /// so a position never becomes empty: a deletion would mean a corrupt update.
    pub fn puts(writes: &[(MapNodeId, Option<MapNode>)]) -> Result<Vec<Put>, StorageError> {
        writes
            .iter()
            .map(|(id, node)| match node {
                Some(n) => Ok(Put { table: Table::MapNodes, key: id.to_key_bytes(), value: n.encode() }),
                None => Err(StorageError::Corrupt {
                    table: "map_nodes",
                    what: format!("insert-only map update deletes a node at depth {}", id.depth()),
                }),
            })
            .collect()
    }

    /// Brings the cache up to date after the batch holding `writes` is durable.
    pub fn committed(&self, writes: &[(MapNodeId, Option<MapNode>)]) {
        let mut cache = self.cache.write().unwrap_or_else(|p| p.into_inner());
        for (id, node) in writes.iter().filter(|(id, _)| id.depth() <= CACHED_DEPTH) {
            match node {
                Some(n) => cache.insert(*id, *n),
                None => cache.remove(id),
            };
        }
    }
}

/// Stored map levels read per store call below the cache: at 10^7 keys the paths end a
/// few levels below it, and every level asked for beyond a path's end is a miss.
const STORED_LEVELS_PER_READ: u16 = 4;

impl MapSource for MapStore {
    fn levels_per_read(&self, depth: u16) -> u16 {
        if depth <= CACHED_DEPTH { CACHED_DEPTH + 1 - depth } else { STORED_LEVELS_PER_READ }
    }

    fn get_many(&self, ids: &[MapNodeId]) -> Result<Vec<Option<MapNode>>, MapSourceError> {
        let mut out: Vec<Option<MapNode>> = vec![None; ids.len()];
        let mut misses = Vec::new();
        {
            let cache = self.cache.read().unwrap_or_else(|p| p.into_inner());
            for (slot, id) in out.iter_mut().zip(ids) {
                if id.depth() <= CACHED_DEPTH {
                    *slot = cache.get(id).copied();
                } else {
                    misses.push(id);
                }
            }
        }
        if misses.is_empty() {
            return Ok(out);
        }
        let keys: Vec<Vec<u8>> = misses.iter().map(|id| id.to_key_bytes()).collect();
        let values = self.store.backend().multi_get(Table::MapNodes, &keys).map_err(|e| MapSourceError(e.to_string()))?;
        let mut values = values.into_iter();
        for (slot, id) in out.iter_mut().zip(ids) {
            if id.depth() > CACHED_DEPTH
                && let Some(v) = values.next().flatten()
            {
                *slot = Some(MapNode::decode(&v).map_err(|e| MapSourceError(format!("stored map node at depth {}: {e}", id.depth())))?);
            }
        }
        Ok(out)
    }
}
