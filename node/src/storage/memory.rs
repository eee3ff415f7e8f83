//! In-memory storage backend for tests and benchmarks of the pure write path. It keeps the
//! same atomicity as RocksDB (a batch is applied under one lock) but no durability.

use std::collections::{BTreeMap, HashMap};
use std::sync::RwLock;

use super::{KvBackend, Put, StorageError, Table};

type Tables = HashMap<Table, BTreeMap<Vec<u8>, Vec<u8>>>;

#[derive(Debug, Default)]
pub struct MemoryBackend {
    tables: RwLock<Tables>,
}

fn poisoned() -> StorageError {
    StorageError::Backend("memory backend lock poisoned".into())
}

impl KvBackend for MemoryBackend {
    fn get(&self, table: Table, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
        let t = self.tables.read().map_err(|_| poisoned())?;
        Ok(t.get(&table).and_then(|m| m.get(key)).cloned())
    }

    fn write(&self, puts: Vec<Put>) -> Result<(), StorageError> {
        let mut t = self.tables.write().map_err(|_| poisoned())?;
        for p in puts {
            t.entry(p.table).or_default().insert(p.key, p.value);
        }
        Ok(())
    }

    fn scan_prefix(&self, table: Table, prefix: &[u8], limit: usize) -> Result<super::KvPairs, StorageError> {
        self.scan_from(table, prefix, prefix, limit)
    }

    fn scan_from(&self, table: Table, prefix: &[u8], start: &[u8], limit: usize) -> Result<super::KvPairs, StorageError> {
        let t = self.tables.read().map_err(|_| poisoned())?;
        let from = if start > prefix { start } else { prefix };
        Ok(t.get(&table)
            .map(|m| {
                m.range(from.to_vec()..)
                    .take_while(|(k, _)| k.starts_with(prefix))
                    .take(limit)
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect()
            })
            .unwrap_or_default())
    }

    fn disk_bytes(&self) -> u64 {
        0
    }
}
