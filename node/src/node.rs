//! Wires storage, ledger, sequencer, write path and API into a running node, and stops
//! it cleanly: the HTTP server drains, the committer finishes its batch, RocksDB closes.
//! A one-validator genesis runs the [`LocalSequencer`]; a genesis with several validators
//! runs BFT consensus ([`crate::consensus`]) and is checked for it before anything starts.
//! A config with `[replica]` runs a non-voting read replica instead, which follows the
//! validators' decided blocks over HTTP and refuses writes (`specs/consensus.md` §10).

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
use crate::sequencer::{CommitterHandle, LocalSequencer, ReplicaSequencer, Sequencer};
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
    #[error(transparent)]
    Consensus(#[from] crate::consensus::ConsensusError),
    #[error("genesis {path} has {validators} validators: start it with node::start, which runs consensus")]
    NeedsConsensus { path: String, validators: usize },
    #[error("read replica name {id:?} is a validator id in genesis {path}: give the replica a validator_id of its own")]
    ReplicaIdIsValidator { id: String, path: String },
    #[error("key file {key} holds the consensus key of validator {id:?}: a read replica needs a key of its own (dojang key new)")]
    ReplicaKeyIsValidator { key: String, id: String },
    #[error(
        "genesis {path} has {validators} validator(s): read replicas follow a multi-validator chain, whose decided blocks carry commit certificates"
    )]
    ReplicaNeedsBft { path: String, validators: usize },
}

/// What orders entries for this node, to be stopped with it.
#[derive(Debug)]
pub enum SequencerHandle {
    Local(CommitterHandle),
    Bft(crate::consensus::ConsensusHandle),
    /// A read replica's follower (`specs/consensus.md` §10).
    Replica(crate::consensus::replica::ReplicaHandle),
}

impl SequencerHandle {
    pub async fn shutdown(self) {
        match self {
            SequencerHandle::Local(c) => c.shutdown().await,
            SequencerHandle::Bft(c) => c.shutdown().await,
            SequencerHandle::Replica(c) => c.shutdown().await,
        }
    }
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

struct Opened {
    ledger: Arc<Ledger>,
    rules: Arc<Rules>,
    metrics: Arc<Metrics>,
    genesis: Genesis,
    genesis_json: String,
}

/// Loads and cross-checks genesis, key and validator id, and opens storage and the
/// ledger. Every misconfiguration is reported here, before serving.
fn open(cfg: &NodeConfig, clock: &Arc<dyn Clock>) -> Result<Opened, NodeError> {
    let gpath = cfg.genesis.display().to_string();
    let genesis_json = std::fs::read_to_string(&cfg.genesis).map_err(|source| NodeError::GenesisRead { path: gpath.clone(), source })?;
    let genesis =
        Genesis::from_json(genesis_json.as_bytes()).map_err(|e| NodeError::Genesis { path: gpath.clone(), reason: e.to_string() })?;
    let (kf, key) = KeyFile::load(&cfg.validator_key)?;
    if cfg.replica.is_some() {
        check_replica(cfg, &genesis, &kf.did, &gpath)?;
    } else {
        check_validator(cfg, &genesis, &kf.did, &gpath)?;
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
    // Under consensus the empty ledger's checkpoint carries the genesis time, so every
    // validator's size-0 body is the same.
    let t0 = if genesis.validators.len() > 1 { genesis.genesis_time_ms } else { clock.now_ms() };
    let ledger = Arc::new(if cfg.replica.is_some() {
        Ledger::open_follower(store, rules.clone(), signer, t0)?
    } else {
        Ledger::open(store, rules.clone(), signer, t0)?
    });
    let metrics = Arc::new(Metrics::default());
    metrics.tree_size.store(ledger.size(), std::sync::atomic::Ordering::Relaxed);
    Ok(Opened { ledger, rules, metrics, genesis, genesis_json })
}

/// A validator's id must be in genesis with this key as its consensus key.
fn check_validator(cfg: &NodeConfig, genesis: &Genesis, did: &str, gpath: &str) -> Result<(), NodeError> {
    let v = genesis.validators.iter().find(|v| v.id == cfg.validator_id).ok_or_else(|| NodeError::UnknownValidator {
        id: cfg.validator_id.clone(),
        path: gpath.to_owned(),
        known: genesis.validators.iter().map(|v| v.id.as_str()).collect::<Vec<_>>().join(", "),
    })?;
    if v.consensus_key != did {
        return Err(NodeError::KeyMismatch {
            key: cfg.validator_key.display().to_string(),
            did: did.to_owned(),
            expected: v.consensus_key.clone(),
            id: v.id.clone(),
        });
    }
    // A lone validator signs checkpoints by itself; refuse a one-validator genesis where
    // that signature can never reach the quorum verifiers require.
    if genesis.validators.len() == 1 && u128::from(v.voting_power) * 3 <= u128::from(genesis.total_power()) * 2 {
        return Err(NodeError::NoSoloQuorum { id: v.id.clone(), power: v.voting_power, total: genesis.total_power() });
    }
    Ok(())
}

/// A read replica (`specs/consensus.md` §10) follows a multi-validator chain under a name
/// and key of its own: a validator's id would put the replica's auth tokens and size-0
/// checkpoint under that validator's name, and sharing a consensus key across roles would
/// let one machine's compromise sign as the other.
fn check_replica(cfg: &NodeConfig, genesis: &Genesis, did: &str, gpath: &str) -> Result<(), NodeError> {
    if genesis.validators.len() < 2 {
        return Err(NodeError::ReplicaNeedsBft { path: gpath.to_owned(), validators: genesis.validators.len() });
    }
    if genesis.validators.iter().any(|v| v.id == cfg.validator_id) {
        return Err(NodeError::ReplicaIdIsValidator { id: cfg.validator_id.clone(), path: gpath.to_owned() });
    }
    if let Some(v) = genesis.validators.iter().find(|v| v.consensus_key == did) {
        return Err(NodeError::ReplicaKeyIsValidator { key: cfg.validator_key.display().to_string(), id: v.id.clone() });
    }
    Ok(())
}

/// Loads the config's genesis, key and storage and starts the local sequencer. Refuses a
/// multi-validator genesis, which needs [`assemble_any`] (consensus runs on tokio).
pub fn assemble(cfg: &NodeConfig, clock: Arc<dyn Clock>) -> Result<(NodeParts, CommitterHandle), NodeError> {
    let o = open(cfg, &clock)?;
    if o.genesis.validators.len() > 1 {
        return Err(NodeError::NeedsConsensus { path: cfg.genesis.display().to_string(), validators: o.genesis.validators.len() });
    }
    let (local, committer) = LocalSequencer::start(o.ledger.clone(), clock.clone(), o.metrics.clone(), cfg.max_batch, cfg.queue_bytes)
        .map_err(NodeError::Committer)?;
    let sequencer: Arc<dyn Sequencer> = Arc::new(local);
    let write = Arc::new(WritePath::new(o.rules, o.ledger.clone(), sequencer, clock, o.metrics.clone()));
    Ok((
        NodeParts { ledger: o.ledger, write, metrics: o.metrics, genesis: Arc::new(o.genesis), genesis_json: Arc::new(o.genesis_json) },
        committer,
    ))
}

/// The consensus settings of a config, checked: a multi-validator node must have its p2p
/// key, and it must be the one genesis lists.
fn consensus_settings(cfg: &NodeConfig, genesis: &Genesis) -> Result<crate::consensus::ConsensusSettings, NodeError> {
    use crate::consensus::{ConsensusError, app};
    let expected = genesis.validators.iter().find(|v| v.id == cfg.validator_id).map(|v| v.p2p_key.clone()).unwrap_or_default();
    let misbehaviour = match cfg.test_misbehaviour.as_deref() {
        Some("forge-entry") => app::Misbehaviour::ForgeEntry,
        Some("censor") => app::Misbehaviour::Censor,
        _ => app::Misbehaviour::None,
    };
    let p2p_key = match (&cfg.p2p_key, cfg.test_misbehaviour.as_deref()) {
        // Test only: a fresh identity that no validator's persistent-peer list contains.
        (_, Some("rogue-p2p-key")) => ed25519_dalek::SigningKey::generate(&mut rand_core::OsRng),
        (Some(path), _) => KeyFile::load(path)?.1,
        (None, _) => return Err(ConsensusError::MissingP2pKeyFile { expected }.into()),
    };
    let rogue = cfg.test_misbehaviour.as_deref() == Some("rogue-p2p-key");
    Ok(crate::consensus::ConsensusSettings {
        moniker: cfg.validator_id.clone(),
        wal_dir: cfg.data_dir.join("wal"),
        p2p_key,
        peer_addresses: cfg.peer_addresses.clone(),
        listen: cfg.p2p_listen.clone(),
        tuning: app::Tuning {
            timeouts: crate::consensus::timeouts(cfg.timeout_propose_ms, cfg.timeout_vote_ms),
            max_block_entries: cfg.max_batch,
            max_block_bytes: cfg.queue_bytes.min(256 << 20),
            block_wait: std::time::Duration::from_millis(cfg.block_wait_ms),
            misbehaviour: if rogue { app::Misbehaviour::RogueKey } else { misbehaviour },
        },
        mempool_bytes: cfg.queue_bytes,
    })
}

/// Assembles the node with the sequencer its genesis needs: the local one for a lone
/// validator, BFT consensus for several. `on_fatal` runs if consensus stops by itself.
pub async fn assemble_any(
    cfg: &NodeConfig,
    clock: Arc<dyn Clock>,
    on_fatal: Box<dyn FnOnce(String) + Send>,
) -> Result<(NodeParts, SequencerHandle), NodeError> {
    if let Some(r) = &cfg.replica {
        return assemble_replica(cfg, r, clock);
    }
    if Genesis::from_json(std::fs::read(&cfg.genesis).unwrap_or_default().as_slice()).is_ok_and(|g| g.validators.len() <= 1) {
        let (parts, c) = assemble(cfg, clock)?;
        return Ok((parts, SequencerHandle::Local(c)));
    }
    let o = open(cfg, &clock)?;
    let settings = consensus_settings(cfg, &o.genesis)?;
    let (bft, handle) =
        crate::consensus::start(o.ledger.clone(), o.rules.clone(), o.metrics.clone(), clock.clone(), settings, on_fatal).await?;
    let sequencer: Arc<dyn Sequencer> = Arc::new(bft);
    let write = Arc::new(WritePath::new(o.rules, o.ledger.clone(), sequencer, clock, o.metrics.clone()));
    Ok((
        NodeParts { ledger: o.ledger, write, metrics: o.metrics, genesis: Arc::new(o.genesis), genesis_json: Arc::new(o.genesis_json) },
        SequencerHandle::Bft(handle),
    ))
}

/// Assembles a read replica: the ledger is written only by the follower, which applies
/// the validators' verified decided blocks; the write path refuses every submission.
fn assemble_replica(
    cfg: &NodeConfig,
    r: &crate::config::ReplicaConfig,
    clock: Arc<dyn Clock>,
) -> Result<(NodeParts, SequencerHandle), NodeError> {
    let o = open(cfg, &clock)?;
    let settings =
        crate::consensus::replica::ReplicaSettings { follow: r.follow.clone(), poll: std::time::Duration::from_millis(r.poll_ms) };
    let handle = crate::consensus::replica::start(o.ledger.clone(), o.rules.clone(), o.metrics.clone(), settings)?;
    let sequencer: Arc<dyn Sequencer> = Arc::new(ReplicaSequencer::new(r.follow.clone()));
    let write = Arc::new(WritePath::new(o.rules, o.ledger.clone(), sequencer, clock, o.metrics.clone()));
    Ok((
        NodeParts { ledger: o.ledger, write, metrics: o.metrics, genesis: Arc::new(o.genesis), genesis_json: Arc::new(o.genesis_json) },
        SequencerHandle::Replica(handle),
    ))
}

/// A node serving HTTP. Dropping the shutdown sender, or calling [`RunningNode::stop`],
/// stops it.
#[derive(Debug)]
pub struct RunningNode {
    pub addr: SocketAddr,
    pub parts: NodeParts,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
    committer: Option<SequencerHandle>,
    https: bool,
    fatal: tokio::sync::watch::Receiver<Option<String>>,
}

impl RunningNode {
    pub fn url(&self) -> String {
        format!("{}://{}", if self.https { "https" } else { "http" }, self.addr)
    }

    /// Resolves with the reason if consensus stops by itself (never for a local node).
    pub async fn fatal(&self) -> String {
        let mut rx = self.fatal.clone();
        loop {
            if let Some(r) = rx.borrow().clone() {
                return r;
            }
            if rx.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
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
    let (fatal_tx, fatal) = tokio::sync::watch::channel(None);
    let on_fatal = Box::new(move |reason: String| {
        let _ = fatal_tx.send(Some(reason));
    });
    let (parts, committer) = assemble_any(cfg, clock, on_fatal).await?;
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
    let limits = api::conn::ConnLimits {
        max_connections: cfg.http_max_connections,
        header_timeout: std::time::Duration::from_millis(cfg.http_header_timeout_ms),
    };
    let server = match tls {
        Some(t) => tokio::spawn(api::tls::serve_tls(listener, state, cfg.max_request_bytes, t, limits, stop)),
        None => tokio::spawn(api::serve(listener, state, cfg.max_request_bytes, limits, stop)),
    };
    tracing::info!(%addr, https, size = parts.ledger.size(), "node serving");
    Ok(RunningNode { addr, parts, shutdown: Some(tx), server, committer: Some(committer), https, fatal })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;
    use crate::clock::SystemClock;
    use crate::config::ReplicaConfig;
    use dojang_core::genesis::Validator;
    use ed25519_dalek::SigningKey;

    /// A genesis of `n` validators in `dir`, with validator 0's key file, and a replica
    /// config (memory storage) whose name and key the caller picks.
    fn replica_setup(dir: &std::path::Path, n: u8, id: &str, key: &SigningKey) -> NodeConfig {
        let vs = (0..n)
            .map(|i| {
                let k = SigningKey::from_bytes(&[20 + i; 32]);
                Validator::with_keys(&format!("v{i}"), &format!("Validator {i}"), &k.verifying_key(), &[], "")
            })
            .collect();
        std::fs::write(dir.join("genesis.json"), Genesis::new("replicacfg", 0, vs).to_json_pretty()).unwrap();
        let key_path = dir.join(format!("{id}-{}.key", hex::encode(&key.to_bytes()[..4])));
        if !key_path.exists() {
            KeyFile::from_signing_key(key).write_new(&key_path).unwrap();
        }
        NodeConfig {
            data_dir: dir.join("data"),
            genesis: dir.join("genesis.json"),
            validator_key: key_path,
            validator_id: id.into(),
            storage: StorageKind::Memory,
            // Nothing listens there: the follower retries in the background until stopped.
            replica: Some(ReplicaConfig { follow: vec!["http://127.0.0.1:9".into()], poll_ms: 50 }),
            ..NodeConfig::default()
        }
    }

    async fn assemble(cfg: &NodeConfig) -> Result<(NodeParts, SequencerHandle), NodeError> {
        assemble_any(cfg, Arc::new(SystemClock), Box::new(|_| {})).await
    }

    #[tokio::test]
    async fn a_replica_needs_a_name_and_key_of_its_own_and_a_bft_chain() {
        let dir = tempfile::tempdir().unwrap();
        let own = SigningKey::from_bytes(&[77; 32]);
        let cfg = replica_setup(dir.path(), 4, "v1", &own);
        let e = assemble(&cfg).await.unwrap_err();
        assert!(matches!(e, NodeError::ReplicaIdIsValidator { .. }), "{e}");
        assert!(e.to_string().contains("\"v1\""), "{e}");
        let cfg = replica_setup(dir.path(), 4, "r1", &SigningKey::from_bytes(&[22; 32]));
        let e = assemble(&cfg).await.unwrap_err();
        assert!(matches!(e, NodeError::ReplicaKeyIsValidator { ref id, .. } if id == "v2"), "{e}");
        let cfg = replica_setup(dir.path(), 1, "r1", &own);
        assert!(matches!(assemble(&cfg).await.unwrap_err(), NodeError::ReplicaNeedsBft { validators: 1, .. }));
        // A proper replica starts, refuses writes, and stops although no source answers.
        let cfg = replica_setup(dir.path(), 4, "r1", &own);
        let (parts, handle) = assemble(&cfg).await.unwrap();
        assert_eq!(parts.ledger.size(), 0);
        let e = parts.write.submit(vec![b"anything".to_vec()]).await.unwrap_err();
        assert!(matches!(e, crate::sequencer::SequencerError::ReadReplica { .. }), "{e}");
        assert!(e.to_string().contains("http://127.0.0.1:9"), "{e}");
        tokio::time::timeout(std::time::Duration::from_secs(10), handle.shutdown()).await.unwrap();
    }
}
