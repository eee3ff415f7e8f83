//! Wires storage, ledger, sequencer, write path and API into a running node, and stops
//! it cleanly: the HTTP server drains, the committer finishes its batch, RocksDB closes.

use std::net::SocketAddr;
use std::sync::Arc;

use dojang_core::admission::Rules;
use dojang_core::genesis::Genesis;

use crate::api::{self, ApiState};
use crate::clock::Clock;
use crate::config::{NodeConfig, StorageKind};
use crate::keyfile::{KeyFile, KeyFileError};
use crate::ledger::{CheckpointSigner, Ledger, LedgerError};
use crate::metrics::Metrics;
use crate::sequencer::{CommitterHandle, LocalSequencer, Sequencer};
use crate::storage::{KvBackend, StorageError, Store, memory::MemoryBackend, rocks::RocksBackend};
use crate::writepath::WritePath;

#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error("cannot read genesis file {path}: {source}")]
    GenesisRead { path: String, source: std::io::Error },
    #[error("genesis file {path} is invalid: {reason}")]
    Genesis { path: String, reason: String },
    #[error(transparent)]
    Key(#[from] KeyFileError),
    #[error("validator id {id:?} is not in genesis {path} (known: {known})")]
    UnknownValidator { id: String, path: String, known: String },
    #[error("key file {key} holds {did}, but genesis lists {expected} for validator {id:?}")]
    KeyMismatch { key: String, did: String, expected: String, id: String },
    #[error(
        "validator {id:?} holds {power} of {total} voting power: alone it cannot sign checkpoints with the > 2/3 quorum verifiers require, and this node has no consensus engine to gather co-signatures"
    )]
    NoSoloQuorum { id: String, power: u64, total: u64 },
    #[error("cannot create data directory {path}: {source}")]
    DataDir { path: String, source: std::io::Error },
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    #[error("cannot start the committer thread: {0}")]
    Committer(std::io::Error),
    #[error("cannot load [credentials]: {0}")]
    Credentials(String),
    #[error("cannot load [tls]: {0}")]
    Tls(String),
    #[error("cannot listen on {addr}: {source}")]
    Listen { addr: SocketAddr, source: std::io::Error },
}

/// The parts of a node, shared by the API and in-process users (devnet, benchmarks).
#[derive(Debug, Clone)]
pub struct NodeParts {
    pub ledger: Arc<Ledger>,
    pub write: Arc<WritePath>,
    pub metrics: Arc<Metrics>,
    pub genesis: Arc<Genesis>,
    pub genesis_json: Arc<String>,
}

/// Loads and cross-checks genesis, key and validator id, opens storage and the ledger,
/// and starts the sequencer. Every misconfiguration is reported here, before serving.
pub fn assemble(cfg: &NodeConfig, clock: Arc<dyn Clock>) -> Result<(NodeParts, CommitterHandle), NodeError> {
    let gpath = cfg.genesis.display().to_string();
    let genesis_json = std::fs::read_to_string(&cfg.genesis).map_err(|source| NodeError::GenesisRead { path: gpath.clone(), source })?;
    let genesis =
        Genesis::from_json(genesis_json.as_bytes()).map_err(|e| NodeError::Genesis { path: gpath.clone(), reason: e.to_string() })?;
    let (kf, key) = KeyFile::load(&cfg.validator_key)?;
    let v = genesis.validators.iter().find(|v| v.id == cfg.validator_id).ok_or_else(|| NodeError::UnknownValidator {
        id: cfg.validator_id.clone(),
        path: gpath.clone(),
        known: genesis.validators.iter().map(|v| v.id.as_str()).collect::<Vec<_>>().join(", "),
    })?;
    if v.consensus_key != kf.did {
        return Err(NodeError::KeyMismatch {
            key: cfg.validator_key.display().to_string(),
            did: kf.did,
            expected: v.consensus_key.clone(),
            id: v.id.clone(),
        });
    }
    // Until validators agree through consensus, a node signs checkpoints alone; refuse a
    // genesis where that signature can never reach the quorum verifiers require.
    if u128::from(v.voting_power) * 3 <= u128::from(genesis.total_power()) * 2 {
        return Err(NodeError::NoSoloQuorum { id: v.id.clone(), power: v.voting_power, total: genesis.total_power() });
    }
    let backend: Arc<dyn KvBackend> = match cfg.storage {
        StorageKind::Memory => Arc::new(MemoryBackend::default()),
        StorageKind::Rocksdb => {
            let dir = cfg.data_dir.join("ledger");
            std::fs::create_dir_all(&dir).map_err(|source| NodeError::DataDir { path: dir.display().to_string(), source })?;
            Arc::new(RocksBackend::open(&dir)?)
        }
    };
    let rules = Arc::new(Rules::new(genesis.clone()));
    let store = Store::new(backend);
    store.bind_genesis(genesis_json.as_bytes(), &rules.genesis_hash, &cfg.data_dir.display().to_string())?;
    let signer = CheckpointSigner { id: cfg.validator_id.clone(), key };
    let ledger = Arc::new(Ledger::open(store, rules.clone(), signer, clock.now_ms())?);
    let metrics = Arc::new(Metrics::default());
    metrics.tree_size.store(ledger.size(), std::sync::atomic::Ordering::Relaxed);
    let (local, committer) = LocalSequencer::start(ledger.clone(), clock.clone(), metrics.clone(), cfg.max_batch, cfg.queue_bytes)
        .map_err(NodeError::Committer)?;
    let sequencer: Arc<dyn Sequencer> = Arc::new(local);
    let write = Arc::new(WritePath::new(rules, sequencer, clock, metrics.clone()));
    Ok((NodeParts { ledger, write, metrics, genesis: Arc::new(genesis), genesis_json: Arc::new(genesis_json) }, committer))
}

/// A node serving HTTP. Dropping the shutdown sender, or calling [`RunningNode::stop`],
/// stops it.
#[derive(Debug)]
pub struct RunningNode {
    pub addr: SocketAddr,
    pub parts: NodeParts,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
    committer: Option<CommitterHandle>,
    https: bool,
}

impl RunningNode {
    pub fn url(&self) -> String {
        format!("{}://{}", if self.https { "https" } else { "http" }, self.addr)
    }

    /// Stops accepting requests, lets in-flight ones finish, commits everything queued,
    /// and waits until the ledger (and with it RocksDB) is closed.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        let _ = (&mut self.server).await;
        if let Some(c) = self.committer.take() {
            c.shutdown().await;
        }
    }
}

/// Assembles the node and serves its API on `cfg.listen` (port 0 picks a free port).
pub async fn start(cfg: &NodeConfig, clock: Arc<dyn Clock>) -> Result<RunningNode, NodeError> {
    let clock_for_api = clock.clone();
    let (parts, committer) = assemble(cfg, clock)?;
    let listener = tokio::net::TcpListener::bind(cfg.listen).await.map_err(|source| NodeError::Listen { addr: cfg.listen, source })?;
    let addr = listener.local_addr().map_err(|source| NodeError::Listen { addr: cfg.listen, source })?;
    let state = ApiState {
        ledger: parts.ledger.clone(),
        write: parts.write.clone(),
        metrics: parts.metrics.clone(),
        genesis_json: parts.genesis_json.clone(),
        did_answers: Arc::default(),
        clock: clock_for_api.clone(),
        auth: Arc::default(),
        credentials: Arc::new(
            crate::credentials::CredentialService::new(parts.ledger.clone(), parts.write.clone(), clock_for_api, cfg.credentials.as_ref())
                .map_err(|e| NodeError::Credentials(e.to_string()))?,
        ),
    };
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let stop = async {
        let _ = rx.await;
    };
    let tls = match &cfg.tls {
        Some(t) => Some(api::tls::server_config(&t.cert, &t.key).map_err(|e| NodeError::Tls(e.to_string()))?),
        None => None,
    };
    let https = tls.is_some();
    let server = match tls {
        Some(t) => tokio::spawn(api::tls::serve_tls(listener, state, cfg.max_request_bytes, t, stop)),
        None => tokio::spawn(api::serve(listener, state, cfg.max_request_bytes, stop)),
    };
    tracing::info!(%addr, https, size = parts.ledger.size(), "node serving");
    Ok(RunningNode { addr, parts, shutdown: Some(tx), server, committer: Some(committer), https })
}
