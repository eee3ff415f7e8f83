//! The RocksDB backend: one column family per [`Table`], one synced `WriteBatch` per
//! sequenced batch (group commit). This is the only module that imports `rocksdb`
//! (ARCHITECTURE.md, "one owner per dependency").

use std::path::Path;

use rocksdb::{BlockBasedOptions, Cache, ColumnFamilyDescriptor, DB, DBCompressionType, Options, WriteBatch, WriteOptions};

use super::{KvBackend, Put, StorageError, Table};

#[derive(Debug)]
pub struct RocksBackend {
    db: DB,
}

fn backend(e: rocksdb::Error) -> StorageError {
    StorageError::Backend(e.to_string())
}

impl RocksBackend {
    /// Opens (creating if needed) the database at `path`.
    pub fn open(path: &Path) -> Result<Self, StorageError> {
        let cache = Cache::new_lru_cache(256 << 20).map_err(backend)?;
        let mut db_opts = Options::default();
        db_opts.create_if_missing(true);
        db_opts.create_missing_column_families(true);
        db_opts.set_max_background_jobs(2);
        // Proof reads touch random blocks of the node table: reading them through mmap
        // saves a syscall and a copy per block-cache miss.
        db_opts.set_allow_mmap_reads(true);
        let cfs = Table::ALL.iter().map(|t| {
            let mut o = Options::default();
            let mut block = BlockBasedOptions::default();
            block.set_block_cache(&cache);
            block.set_bloom_filter(10.0, false);
            o.set_block_based_table_factory(&block);
            // Entries repeat author key ids and payload structure, so they compress;
            // hashes do not, so tree and index tables skip the CPU cost.
            o.set_compression_type(match t {
                Table::Entries | Table::Checkpoints => DBCompressionType::Lz4,
                _ => DBCompressionType::None,
            });
            ColumnFamilyDescriptor::new(t.name(), o)
        });
        let db = DB::open_cf_descriptors(&db_opts, path, cfs).map_err(backend)?;
        Ok(RocksBackend { db })
    }

    fn cf(&self, t: Table) -> Result<&rocksdb::ColumnFamily, StorageError> {
        self.db.cf_handle(t.name()).ok_or_else(|| StorageError::Backend(format!("missing column family {}", t.name())))
    }
}

impl KvBackend for RocksBackend {
    fn get(&self, table: Table, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
        self.db.get_cf(self.cf(table)?, key).map_err(backend)
    }

    fn multi_get(&self, table: Table, keys: &[Vec<u8>]) -> Result<Vec<Option<Vec<u8>>>, StorageError> {
        let cf = self.cf(table)?;
        self.db.multi_get_cf(keys.iter().map(|k| (cf, k.as_slice()))).into_iter().map(|r| r.map_err(backend)).collect()
    }

    fn write(&self, puts: Vec<Put>) -> Result<(), StorageError> {
        let mut batch = WriteBatch::default();
        for p in &puts {
            batch.put_cf(self.cf(p.table)?, &p.key, &p.value);
        }
        let mut wo = WriteOptions::default();
        // The WAL is fsynced before the write returns: this is the durability point of
        // the whole write path, paid once per batch rather than once per entry.
        wo.set_sync(true);
        self.db.write_opt(batch, &wo).map_err(backend)
    }

    fn scan_prefix(&self, table: Table, prefix: &[u8], limit: usize) -> Result<super::KvPairs, StorageError> {
        self.scan_from(table, prefix, prefix, limit)
    }

    fn scan_from(&self, table: Table, prefix: &[u8], start: &[u8], limit: usize) -> Result<super::KvPairs, StorageError> {
        let cf = self.cf(table)?;
        let from = if start > prefix { start } else { prefix };
        let mut out = Vec::new();
        for item in self.db.iterator_cf(cf, rocksdb::IteratorMode::From(from, rocksdb::Direction::Forward)) {
            let (k, v) = item.map_err(backend)?;
            if !k.starts_with(prefix) || out.len() >= limit {
                break;
            }
            out.push((k.to_vec(), v.to_vec()));
        }
        Ok(out)
    }

    fn disk_bytes(&self) -> u64 {
        Table::ALL
            .iter()
            .filter_map(|t| self.cf(*t).ok())
            .filter_map(|cf| self.db.property_int_value_cf(cf, "rocksdb.total-sst-files-size").ok().flatten())
            .sum::<u64>()
            + self.db.property_int_value("rocksdb.cur-size-all-mem-tables").ok().flatten().unwrap_or(0)
    }

    fn compact(&self) {
        let _ = self.db.flush();
        for t in Table::ALL {
            if let Ok(cf) = self.cf(t) {
                self.db.compact_range_cf(cf, None::<&[u8]>, None::<&[u8]>);
            }
        }
    }
}
