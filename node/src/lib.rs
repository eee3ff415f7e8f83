//! `dojang-node`: the host layer around `dojang-core` — storage, sequencing, the ledger
//! and the HTTP API — and the `dojangd` daemon built from it.
//!
//! Layout (see ARCHITECTURE.md for the invariants):
//! - [`config`], [`keyfile`]: what an operator writes, validated at start-up.
//! - [`storage`]: typed tables over RocksDB (the only `rocksdb` importer) or memory.
//! - [`tree`]: the stored Merkle tree with its in-memory upper levels, for proofs.
//! - [`access_map`]: the stored access map (sparse Merkle tree) with cached upper levels.
//! - [`ledger`]: applies ordered batches, serves entries, checkpoints and proof bundles.
//! - [`sequencer`]: the ordering seam; [`sequencer::LocalSequencer`] group-commits.
//! - [`writepath`]: decode, verify, authorise, then sequence — the one way in.
//! - [`api`]: the axum HTTP API (the only `axum` importer).
//! - [`credentials`], [`status_lists`]: the issuer service, verifier environment and
//!   challenge memory of `/credentials` and `/presentations`; status lists in the ledger
//!   (`specs/credentials.md`).
//! - [`node`]: wires the parts together and runs them until shutdown.
//! - [`clock`], [`metrics`]: time as an input; Prometheus counters.

pub mod access_map;
pub mod api;
pub mod clock;
pub mod config;
pub mod consensus;
pub mod credentials;
pub mod keyfile;
pub mod ledger;
pub mod metrics;
pub mod node;
pub mod sequencer;
pub mod status_lists;
pub mod storage;
pub mod tree;
pub mod writepath;
