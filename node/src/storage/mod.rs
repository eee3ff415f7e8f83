//! Storage: typed tables over a small key-value backend (`specs/ledger.md` §8).
//!
//! Layout:
//! - [`Table`] names the column families and [`keys`] their key encodings, in one place.
//! - [`KvBackend`] is the only thing a backend implements: point reads, prefix-free range
//!   reads, and one atomic, durable write per batch. [`rocks::RocksBackend`] is the
//!   deployed backend and the only module in the workspace that imports `rocksdb`;
//!   [`memory::MemoryBackend`] serves tests.
//! - [`Store`] adds the typed, per-concern read traits ([`EntryReader`], [`TreeReader`],
//!   [`IndexReader`], [`CheckpointReader`], [`DidReader`]) and [`Store::commit`], which writes a whole
//!   sequenced batch — entries, tree nodes, indexes, nonces, checkpoint — atomically.
//!   That atomicity is what makes a crash lose nothing acknowledged and leave nothing
//!   half-applied.

pub mod memory;
pub mod rocks;

use std::sync::Arc;

use dojang_core::hash::Hash;
use dojang_core::merkle::{NodeId, NodeSource, NodeSourceError};

/// The column families.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Table {
    /// leaf index (u64 BE) -> canonical entry bytes.
    Entries,
    /// node key ([`keys::node`]) -> 32-byte hash of a complete subtree.
    Nodes,
    /// leaf hash (32 bytes) -> leaf index (u64 BE).
    LeafIndex,
    /// author key id (utf-8) -> last accepted nonce (u64 BE).
    Nonces,
    /// tree size (u64 BE) -> signed checkpoint text.
    Checkpoints,
    /// fixed names -> metadata (tree size, genesis file).
    Meta,
    /// DID (utf-8) -> its current state, JSON (`specs/did-method-dojang.md`).
    Dids,
    /// `state` -> the trusted-issuer registry (JSON); `changes` -> ledger indices of every
    /// registry change (u64 BE each), for registry-at-height proofs (`specs/documents.md`).
    Registry,
    /// document commitment (32 bytes) -> its record, JSON.
    Documents,
    /// holder pseudonym (32 bytes) || commitment (32 bytes) -> empty: the expiry feed index.
    Holders,
    /// access-map node id ([`dojang_core::sparse_map::MapNodeId::to_key_bytes`]) -> node
    /// (`specs/access-log.md` §13, §14.4): the sparse Merkle map committed in every checkpoint.
    MapNodes,
    /// access-event tag (32 bytes) -> leaf index (u64 BE) of the event carrying it.
    AccessTags,
    /// BLAKE3(auditor key id)[..8] || leaf index (u64 BE) -> empty: events sealed to an auditor.
    AuditorEvents,
    /// `m` || list id -> a status list's state (JSON); `b` || list id -> its bits
    /// (`specs/credentials.md` §6.3).
    StatusLists,
    /// consensus height (u64 BE) -> the decided block and its commit certificate
    /// (`specs/consensus.md` §6), served to peers that catch up through value sync.
    Blocks,
}

impl Table {
    pub const ALL: [Table; 15] = [
        Table::Entries,
        Table::Nodes,
        Table::LeafIndex,
        Table::Nonces,
        Table::Checkpoints,
        Table::Meta,
        Table::Dids,
        Table::Registry,
        Table::Documents,
        Table::Holders,
        Table::MapNodes,
        Table::AccessTags,
        Table::AuditorEvents,
        Table::StatusLists,
        Table::Blocks,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Table::Entries => "entries",
            Table::Nodes => "nodes",
            Table::LeafIndex => "leaf_index",
            Table::Nonces => "nonces",
            Table::Checkpoints => "checkpoints",
            Table::Meta => "meta",
            Table::Dids => "dids",
            Table::Registry => "registry",
            Table::Documents => "documents",
            Table::Holders => "holders",
            Table::MapNodes => "map_nodes",
            Table::AccessTags => "access_tags",
            Table::AuditorEvents => "auditor_events",
            Table::StatusLists => "status_lists",
            Table::Blocks => "blocks",
        }
    }
}

/// Key encodings. Big-endian integers so that RocksDB's byte order is numeric order.
pub mod keys {
    use super::*;

    pub fn index(i: u64) -> [u8; 8] {
        i.to_be_bytes()
    }

    /// Levels below this are stored clustered by their level-`TILE_LEVELS` ancestor.
    pub const TILE_LEVELS: u8 = 4;

    /// The key of tree node `id` (`specs/ledger.md` §8.1).
    ///
    /// Nodes at levels 0..4 are keyed `0x00 || ancestor (u64 BE) || level || offset`,
    /// where `ancestor` is the index of their level-4 ancestor and `offset` their index
    /// within it: the 30 nodes of one 16-leaf subtree sort next to each other, so the
    /// lower half of any proof path is one storage block. Higher nodes are keyed
    /// `level || index (u64 BE)`; their first byte is at least 4, so the ranges never meet.
    pub fn node(id: NodeId) -> Vec<u8> {
        if id.level < TILE_LEVELS {
            let shift = TILE_LEVELS - id.level;
            let mut k = Vec::with_capacity(11);
            k.push(0);
            k.extend_from_slice(&(id.index >> shift).to_be_bytes());
            k.push(id.level);
            // The offset is below 2^shift <= 16, so it fits a byte.
            k.push((id.index & ((1u64 << shift) - 1)) as u8);
            k
        } else {
            let mut k = Vec::with_capacity(9);
            k.push(id.level);
            k.extend_from_slice(&id.index.to_be_bytes());
            k
        }
    }

    pub const META_TREE_SIZE: &[u8] = b"tree_size";
    pub const META_GENESIS: &[u8] = b"genesis";
    pub const META_LATEST_CHECKPOINT: &[u8] = b"latest_checkpoint";
    /// The last consensus height whose block is stored (u64 BE).
    pub const META_CONSENSUS_HEIGHT: &[u8] = b"consensus_height";
}

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("storage backend: {0}")]
    Backend(String),
    #[error("corrupt value in table {table}: {what}")]
    Corrupt { table: &'static str, what: String },
    #[error("data directory {path} holds a ledger for genesis {found}, not {expected}")]
    GenesisMismatch { path: String, found: String, expected: String },
}

/// Key-value pairs from a prefix scan, in key order.
pub type KvPairs = Vec<(Vec<u8>, Vec<u8>)>;

/// One write operation.
#[derive(Debug, Clone)]
pub struct Put {
    pub table: Table,
    pub key: Vec<u8>,
    pub value: Vec<u8>,
}

/// What a storage engine must provide. Implementations must make `write` atomic (all or
/// nothing after a crash) and durable (synced) before it returns.
pub trait KvBackend: Send + Sync + std::fmt::Debug + 'static {
    fn get(&self, table: Table, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError>;
    /// Reads many keys of one table; the default loops over `get`.
    fn multi_get(&self, table: Table, keys: &[Vec<u8>]) -> Result<Vec<Option<Vec<u8>>>, StorageError> {
        keys.iter().map(|k| self.get(table, k)).collect()
    }
    fn write(&self, puts: Vec<Put>) -> Result<(), StorageError>;
    /// Up to `limit` entries whose key starts with `prefix`, in key order.
    fn scan_prefix(&self, table: Table, prefix: &[u8], limit: usize) -> Result<KvPairs, StorageError>;
    /// Up to `limit` entries whose key starts with `prefix` and is at least `start`, in
    /// key order. The default filters a prefix scan; backends override it with a seek.
    fn scan_from(&self, table: Table, prefix: &[u8], start: &[u8], limit: usize) -> Result<KvPairs, StorageError> {
        let mut all = self.scan_prefix(table, prefix, usize::MAX)?;
        all.retain(|(k, _)| k.as_slice() >= start);
        all.truncate(limit);
        Ok(all)
    }
    /// Bytes the engine occupies on disk (live files); 0 for memory.
    fn disk_bytes(&self) -> u64;
    /// Forces a compaction, so that `disk_bytes` measures steady state (benchmarks).
    fn compact(&self) {}
}

/// Everything a sequenced batch writes, committed atomically by [`Store::commit`].
#[derive(Debug, Default)]
pub struct LedgerBatch {
    pub first_index: u64,
    pub entries: Vec<Vec<u8>>,
    pub leaf_hashes: Vec<Hash>,
    pub nodes: Vec<(NodeId, Hash)>,
    pub nonces: Vec<(String, u64)>,
    /// DID -> new state (JSON), for DID operations in the batch.
    pub dids: Vec<(String, Vec<u8>)>,
    /// Further table writes staged by state machines (registry, documents, indexes).
    pub extra: Vec<Put>,
    pub new_size: u64,
    pub checkpoint: String,
}

/// Typed access to the tables.
#[derive(Debug, Clone)]
pub struct Store {
    kv: Arc<dyn KvBackend>,
}

pub trait EntryReader {
    /// Canonical bytes of the entry at leaf `index`.
    fn entry(&self, index: u64) -> Result<Option<Vec<u8>>, StorageError>;
}

pub trait TreeReader {
    fn tree_node(&self, id: NodeId) -> Result<Option<Hash>, StorageError>;
    /// Many nodes in one batched read (RocksDB `multi_get`), in order.
    fn tree_nodes(&self, ids: &[NodeId]) -> Result<Vec<Option<Hash>>, StorageError>;
    fn tree_size(&self) -> Result<u64, StorageError>;
}

pub trait IndexReader {
    fn leaf_index(&self, leaf: &Hash) -> Result<Option<u64>, StorageError>;
    fn last_nonce(&self, author: &str) -> Result<Option<u64>, StorageError>;
}

pub trait DidReader {
    /// The stored state (JSON) of a DID.
    fn did_state(&self, did: &str) -> Result<Option<Vec<u8>>, StorageError>;
}

pub trait StateReader {
    /// A raw state value (registry, document records).
    fn state(&self, table: Table, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError>;
    fn state_scan(&self, table: Table, prefix: &[u8], limit: usize) -> Result<KvPairs, StorageError>;
}

pub trait CheckpointReader {
    fn checkpoint_at(&self, size: u64) -> Result<Option<String>, StorageError>;
    fn latest_checkpoint(&self) -> Result<Option<String>, StorageError>;
}

fn u64_value(table: Table, v: &[u8]) -> Result<u64, StorageError> {
    let arr: [u8; 8] =
        v.try_into().map_err(|_| StorageError::Corrupt { table: table.name(), what: format!("expected 8 bytes, found {}", v.len()) })?;
    Ok(u64::from_be_bytes(arr))
}

fn hash_value(v: &[u8]) -> Result<Hash, StorageError> {
    let arr: [u8; 32] = v.try_into().map_err(|_| StorageError::Corrupt { table: "nodes", what: format!("hash of {} bytes", v.len()) })?;
    Ok(Hash(arr))
}

fn utf8_value(table: Table, v: Vec<u8>) -> Result<String, StorageError> {
    String::from_utf8(v).map_err(|_| StorageError::Corrupt { table: table.name(), what: "not utf-8".into() })
}

impl Store {
    pub fn new(kv: Arc<dyn KvBackend>) -> Self {
        Store { kv }
    }

    pub fn backend(&self) -> &Arc<dyn KvBackend> {
        &self.kv
    }

    /// Binds this store to `genesis` on first use; afterwards refuses any other genesis,
    /// so a node can never serve one ledger under another chain's name.
    pub fn bind_genesis(&self, genesis_json: &[u8], genesis_hash: &Hash, path: &str) -> Result<(), StorageError> {
        match self.kv.get(Table::Meta, keys::META_GENESIS)? {
            Some(stored) => {
                let found = dojang_core::genesis::Genesis::from_json(&stored).map(|g| g.hash().to_hex()).unwrap_or_else(|e| e.to_string());
                if found != genesis_hash.to_hex() {
                    return Err(StorageError::GenesisMismatch { path: path.to_owned(), found, expected: genesis_hash.to_hex() });
                }
                Ok(())
            }
            None => self.kv.write(vec![Put { table: Table::Meta, key: keys::META_GENESIS.to_vec(), value: genesis_json.to_vec() }]),
        }
    }

    /// Writes a sequenced batch atomically and durably (`specs/ledger.md` §8.2): when
    /// this returns Ok, every entry in it survives `kill -9`.
    pub fn commit(&self, b: LedgerBatch) -> Result<(), StorageError> {
        let mut puts = Vec::with_capacity(b.entries.len() * 2 + b.nodes.len() + b.nonces.len() + 3);
        for (i, (e, h)) in b.entries.into_iter().zip(&b.leaf_hashes).enumerate() {
            let index = b.first_index + i as u64;
            puts.push(Put { table: Table::Entries, key: keys::index(index).to_vec(), value: e });
            puts.push(Put { table: Table::LeafIndex, key: h.0.to_vec(), value: index.to_be_bytes().to_vec() });
        }
        for (id, h) in &b.nodes {
            puts.push(Put { table: Table::Nodes, key: keys::node(*id), value: h.0.to_vec() });
        }
        for (did, state) in b.dids {
            puts.push(Put { table: Table::Dids, key: did.into_bytes(), value: state });
        }
        puts.extend(b.extra);
        for (author, nonce) in b.nonces {
            puts.push(Put { table: Table::Nonces, key: author.as_bytes().to_vec(), value: nonce.to_be_bytes().to_vec() });
        }
        puts.push(Put { table: Table::Checkpoints, key: keys::index(b.new_size).to_vec(), value: b.checkpoint.as_bytes().to_vec() });
        puts.push(Put { table: Table::Meta, key: keys::META_LATEST_CHECKPOINT.to_vec(), value: b.new_size.to_be_bytes().to_vec() });
        puts.push(Put { table: Table::Meta, key: keys::META_TREE_SIZE.to_vec(), value: b.new_size.to_be_bytes().to_vec() });
        self.kv.write(puts)
    }
}

impl EntryReader for Store {
    fn entry(&self, index: u64) -> Result<Option<Vec<u8>>, StorageError> {
        self.kv.get(Table::Entries, &keys::index(index))
    }
}

impl TreeReader for Store {
    fn tree_node(&self, id: NodeId) -> Result<Option<Hash>, StorageError> {
        self.kv.get(Table::Nodes, &keys::node(id))?.map(|v| hash_value(&v)).transpose()
    }

    fn tree_nodes(&self, ids: &[NodeId]) -> Result<Vec<Option<Hash>>, StorageError> {
        let keys: Vec<Vec<u8>> = ids.iter().map(|id| keys::node(*id)).collect();
        self.kv.multi_get(Table::Nodes, &keys)?.into_iter().map(|v| v.map(|v| hash_value(&v)).transpose()).collect()
    }

    fn tree_size(&self) -> Result<u64, StorageError> {
        match self.kv.get(Table::Meta, keys::META_TREE_SIZE)? {
            None => Ok(0),
            Some(v) => u64_value(Table::Meta, &v),
        }
    }
}

impl IndexReader for Store {
    fn leaf_index(&self, leaf: &Hash) -> Result<Option<u64>, StorageError> {
        self.kv.get(Table::LeafIndex, &leaf.0)?.map(|v| u64_value(Table::LeafIndex, &v)).transpose()
    }

    fn last_nonce(&self, author: &str) -> Result<Option<u64>, StorageError> {
        self.kv.get(Table::Nonces, author.as_bytes())?.map(|v| u64_value(Table::Nonces, &v)).transpose()
    }
}

impl DidReader for Store {
    fn did_state(&self, did: &str) -> Result<Option<Vec<u8>>, StorageError> {
        self.kv.get(Table::Dids, did.as_bytes())
    }
}

impl StateReader for Store {
    fn state(&self, table: Table, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
        self.kv.get(table, key)
    }
    fn state_scan(&self, table: Table, prefix: &[u8], limit: usize) -> Result<KvPairs, StorageError> {
        self.kv.scan_prefix(table, prefix, limit)
    }
}

impl CheckpointReader for Store {
    fn checkpoint_at(&self, size: u64) -> Result<Option<String>, StorageError> {
        self.kv.get(Table::Checkpoints, &keys::index(size))?.map(|v| utf8_value(Table::Checkpoints, v)).transpose()
    }

    fn latest_checkpoint(&self) -> Result<Option<String>, StorageError> {
        match self.kv.get(Table::Meta, keys::META_LATEST_CHECKPOINT)? {
            None => Ok(None),
            Some(v) => self.checkpoint_at(u64_value(Table::Meta, &v)?),
        }
    }
}

/// Lets the pure Merkle code read stored nodes for proofs. A missing node means the
/// store is inconsistent with its tree size, which is reported, never papered over.
impl NodeSource for Store {
    fn node(&self, id: NodeId) -> Result<Hash, NodeSourceError> {
        match self.tree_node(id) {
            Ok(Some(h)) => Ok(h),
            Ok(None) => Err(NodeSourceError(format!("missing tree node at level {} index {}", id.level, id.index))),
            Err(e) => Err(NodeSourceError(e.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]
    use super::*;

    fn batch(first: u64, n: u64) -> LedgerBatch {
        LedgerBatch {
            first_index: first,
            entries: (first..first + n).map(|i| vec![i as u8; 10]).collect(),
            leaf_hashes: (first..first + n).map(|i| Hash([i as u8; 32])).collect(),
            nodes: (first..first + n).map(|i| (NodeId { level: 0, index: i }, Hash([i as u8; 32]))).collect(),
            nonces: vec![("did:key:a#a".into(), first + n)],
            dids: vec![(format!("did:dojang:{first}"), b"{}".to_vec())],
            extra: vec![
                Put { table: Table::Holders, key: [&[7u8; 32][..], &[first as u8; 32][..]].concat(), value: vec![] },
                Put { table: Table::Holders, key: [&[8u8; 32][..], &[first as u8; 32][..]].concat(), value: vec![] },
            ],
            new_size: first + n,
            checkpoint: format!("cp {}", first + n),
        }
    }

    #[test]
    fn node_keys_are_distinct_and_clustered() {
        use std::collections::BTreeSet;
        let mut seen = BTreeSet::new();
        for level in 0..8u8 {
            for index in 0..64u64 {
                assert!(seen.insert(keys::node(NodeId { level, index })), "duplicate key for ({level}, {index})");
            }
        }
        // Every node below level 4 sorts inside its level-4 ancestor's cluster.
        let a = keys::node(NodeId { level: 0, index: 17 });
        let b = keys::node(NodeId { level: 3, index: 3 });
        let c = keys::node(NodeId { level: 0, index: 31 });
        let next = keys::node(NodeId { level: 0, index: 32 });
        assert!(a < next && b < next && c < next && a[..9] == b[..9] && b[..9] == c[..9]);
    }

    /// Both backends answer every typed read identically.
    fn exercise(store: Store) {
        assert_eq!(store.tree_size().unwrap(), 0);
        assert_eq!(store.latest_checkpoint().unwrap(), None);
        store.commit(batch(0, 3)).unwrap();
        store.commit(batch(3, 2)).unwrap();
        assert_eq!(store.tree_size().unwrap(), 5);
        assert_eq!(store.entry(4).unwrap(), Some(vec![4u8; 10]));
        assert_eq!(store.entry(5).unwrap(), None);
        assert_eq!(store.leaf_index(&Hash([2; 32])).unwrap(), Some(2));
        assert_eq!(store.last_nonce("did:key:a#a").unwrap(), Some(5));
        assert_eq!(store.last_nonce("did:key:b#b").unwrap(), None);
        assert_eq!(store.did_state("did:dojang:3").unwrap(), Some(b"{}".to_vec()));
        assert_eq!(store.did_state("did:dojang:4").unwrap(), None);
        let holders = store.state_scan(Table::Holders, &[7u8; 32], 10).unwrap();
        assert_eq!(holders.iter().map(|(k, _)| k[32]).collect::<Vec<_>>(), vec![0, 3]);
        assert_eq!(store.state_scan(Table::Holders, &[7u8; 32], 1).unwrap().len(), 1);
        assert!(store.state_scan(Table::Holders, &[9u8; 32], 10).unwrap().is_empty());
        assert_eq!(store.checkpoint_at(3).unwrap().as_deref(), Some("cp 3"));
        assert_eq!(store.latest_checkpoint().unwrap().as_deref(), Some("cp 5"));
        assert_eq!(store.node(NodeId { level: 0, index: 1 }).unwrap(), Hash([1; 32]));
        let many =
            store.tree_nodes(&[NodeId { level: 0, index: 4 }, NodeId { level: 5, index: 0 }, NodeId { level: 0, index: 0 }]).unwrap();
        assert_eq!(many, vec![Some(Hash([4; 32])), None, Some(Hash([0; 32]))]);
        assert!(store.node(NodeId { level: 3, index: 0 }).is_err());
        let h = Hash([7; 32]);
        store.bind_genesis(b"not json", &h, "x").unwrap();
        assert!(matches!(store.bind_genesis(b"not json", &h, "x"), Err(StorageError::GenesisMismatch { .. })));
    }

    #[test]
    fn memory_backend() {
        exercise(Store::new(Arc::new(memory::MemoryBackend::default())));
    }

    #[test]
    fn rocks_backend() {
        let dir = tempfile::tempdir().unwrap();
        exercise(Store::new(Arc::new(rocks::RocksBackend::open(dir.path()).unwrap())));
        // Reopening sees the committed state.
        let store = Store::new(Arc::new(rocks::RocksBackend::open(dir.path()).unwrap()));
        assert_eq!(store.tree_size().unwrap(), 5);
        assert_eq!(store.entry(0).unwrap(), Some(vec![0u8; 10]));
    }
}
