//! BFT consensus between the genesis validators on Malachite (Tendermint) over libp2p
//! (`specs/consensus.md`). This module is the only one that knows Malachite or libp2p;
//! the rest of the node sees a [`Sequencer`] whose ordering is the decided blocks.
//!
//! - `types` — Dojang's `Context` (header-only values, proposals, votes, parts).
//! - `signing` — what each consensus signature covers; the `Signer`/`Verifier`.
//! - `codec` — wire, sync and WAL encodings.
//! - `block` — blocks and stored records.
//! - `mempool` — the bounded, deduplicated pool every validator proposes from.
//! - `gossip` — entries from one validator's API reach the others' pools.
//! - `app` — the loop over `AppMsg`: propose, validate, extend votes, commit, sync.
//! - `certificate` — commit-certificate checks, checkpoint signatures from vote
//!   extensions, and how a decided height is stored (shared by validators and replicas).
//! - `replica` — non-voting read replicas that follow validators over HTTP (§10).

pub mod app;
pub mod block;
pub mod certificate;
pub mod codec;
pub mod gossip;
pub mod mempool;
pub mod replica;
pub mod signing;
pub mod types;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use arc_malachitebft_app_channel::app::config::{
    ConsensusConfig, DiscoveryConfig, GossipSubConfig, NodeConfig as MalachiteNodeConfig, P2pConfig, ProtocolNames, PubSubProtocol,
    ValuePayload, ValueSyncConfig,
};
use arc_malachitebft_app_channel::app::net::Multiaddr;
use arc_malachitebft_app_channel::app::types::Keypair;
use arc_malachitebft_app_channel::app::types::core::LinearTimeouts;
use arc_malachitebft_app_channel::{
    ConsensusContext, EngineHandle, NetworkContext, NetworkIdentity, RequestContext, SyncContext, WalContext, start_engine,
};
use dojang_core::admission::{Candidate, Rules};
use dojang_core::genesis::Genesis;
use ed25519_dalek::{SigningKey, VerifyingKey};
use tokio::sync::oneshot;

use self::app::{App, Misbehaviour, Tuning};
use self::codec::DojangCodec;
use self::mempool::Mempool;
use self::signing::{DojangSigner, DojangVerifier};
use self::types::{Address, DojangContext, ValidatorSet};
use crate::clock::Clock;
use crate::ledger::Ledger;
use crate::metrics::Metrics;
use crate::sequencer::{Sequencer, SequencerError, SubmitFuture};

#[derive(Debug, thiserror::Error)]
pub enum ConsensusError {
    #[error("validator {id:?} has no p2p_key in the genesis file: every validator of a multi-validator chain needs one")]
    NoP2pKey { id: String },
    #[error("validator {id:?} has no p2p_address in the genesis file and the config gives none")]
    NoP2pAddress { id: String },
    #[error("p2p address {address:?} of {id:?} is not host:port with an IPv4 or IPv6 host")]
    BadAddress { id: String, address: String },
    #[error("this node has no p2p key: set p2p_key in the config to the key file whose did:key is {expected}")]
    MissingP2pKeyFile { expected: String },
    #[error("p2p key file holds {found}, but genesis lists {expected} for validator {id:?}")]
    P2pKeyMismatch { id: String, found: String, expected: String },
    #[error("the genesis validator set is empty or has an invalid consensus key")]
    ValidatorSet,
    #[error("cannot start the consensus engine: {0}")]
    Engine(String),
    #[error("cannot start the read replica: {0}")]
    Replica(String),
}

/// Consensus settings of one node (from its config file; `specs/api.md` §1).
#[derive(Debug, Clone)]
pub struct ConsensusSettings {
    pub moniker: String,
    pub wal_dir: PathBuf,
    pub p2p_key: SigningKey,
    /// Overrides of validators' p2p addresses (validator id -> host:port).
    pub peer_addresses: BTreeMap<String, String>,
    pub listen: Option<String>,
    pub tuning: Tuning,
    pub mempool_bytes: usize,
}

/// The libp2p identity of an Ed25519 key.
pub fn keypair(key: &SigningKey) -> Option<Keypair> {
    let mut seed = key.to_bytes();
    Keypair::ed25519_from_bytes(&mut seed).ok()
}

/// The libp2p PeerId of an Ed25519 public key (`specs/consensus.md` §3).
pub fn peer_id(key: &VerifyingKey) -> Option<libp2p_identity::PeerId> {
    let pk = libp2p_identity::ed25519::PublicKey::try_from_bytes(key.as_bytes()).ok()?;
    Some(libp2p_identity::PublicKey::from(pk).to_peer_id())
}

fn multiaddr(id: &str, hostport: &str, peer: Option<&libp2p_identity::PeerId>) -> Result<Multiaddr, ConsensusError> {
    let bad = || ConsensusError::BadAddress { id: id.to_owned(), address: hostport.to_owned() };
    let sa: std::net::SocketAddr = hostport.parse().map_err(|_| bad())?;
    let ip = match sa.ip() {
        std::net::IpAddr::V4(a) => format!("/ip4/{a}"),
        std::net::IpAddr::V6(a) => format!("/ip6/{a}"),
    };
    let s = match peer {
        Some(p) => format!("{ip}/tcp/{}/p2p/{p}", sa.port()),
        None => format!("{ip}/tcp/{}", sa.port()),
    };
    s.parse().map_err(|_| bad())
}

/// Malachite's node configuration, derived from genesis and the node config.
#[derive(Debug, Clone)]
struct EngineConfig {
    moniker: String,
    consensus: ConsensusConfig,
    value_sync: ValueSyncConfig,
}

impl MalachiteNodeConfig for EngineConfig {
    fn moniker(&self) -> &str {
        &self.moniker
    }
    fn consensus(&self) -> &ConsensusConfig {
        &self.consensus
    }
    fn consensus_mut(&mut self) -> &mut ConsensusConfig {
        &mut self.consensus
    }
    fn value_sync(&self) -> &ValueSyncConfig {
        &self.value_sync
    }
    fn value_sync_mut(&mut self) -> &mut ValueSyncConfig {
        &mut self.value_sync
    }
}

/// Checks the genesis and this node's settings for consensus and derives the engine
/// configuration: listen address, and every other validator as a persistent peer by
/// PeerId — the only peers this node talks to (`persistent_peers_only`).
fn engine_config(genesis: &Genesis, my_id: &str, s: &ConsensusSettings) -> Result<EngineConfig, ConsensusError> {
    let mut peers = Vec::new();
    let mut listen = None;
    for v in &genesis.validators {
        let key = v.p2p_verifying_key().ok_or_else(|| ConsensusError::NoP2pKey { id: v.id.clone() })?;
        let addr = s.peer_addresses.get(&v.id).cloned().unwrap_or_else(|| v.p2p_address.clone());
        if v.id == my_id {
            let found = dojang_core::did_key::DidKey::from_verifying_key(&s.p2p_key.verifying_key()).did();
            if found != v.p2p_key && s.tuning.misbehaviour != Misbehaviour::None {
                tracing::warn!("test misbehaviour: running with a p2p key that is not in genesis");
            } else if found != v.p2p_key {
                return Err(ConsensusError::P2pKeyMismatch { id: v.id.clone(), found, expected: v.p2p_key.clone() });
            }
            let l = s.listen.clone().unwrap_or_else(|| v.p2p_address.clone());
            if l.is_empty() {
                return Err(ConsensusError::NoP2pAddress { id: v.id.clone() });
            }
            listen = Some(multiaddr(&v.id, &l, None)?);
            continue;
        }
        if addr.is_empty() {
            return Err(ConsensusError::NoP2pAddress { id: v.id.clone() });
        }
        let pid = peer_id(&key).ok_or_else(|| ConsensusError::NoP2pKey { id: v.id.clone() })?;
        peers.push(multiaddr(&v.id, &addr, Some(&pid))?);
    }
    let listen = listen.ok_or(ConsensusError::NoP2pAddress { id: my_id.to_owned() })?;
    // Protocol and topic names carry the genesis hash: nodes of another chain never even
    // speak the same protocol.
    let salt = genesis.hash().to_hex();
    let salt = salt.get(..16).unwrap_or_default();
    let protocol_names = ProtocolNames {
        consensus: format!("/dojang/{salt}/consensus/v1"),
        discovery_kad: format!("/dojang/{salt}/kad/v1"),
        discovery_regres: format!("/dojang/{salt}/reqres/v1"),
        sync: format!("/dojang/{salt}/sync/v1"),
        validator_proof: format!("/dojang/{salt}/validator-proof/v1"),
    };
    let mut p2p = P2pConfig {
        listen_addr: listen,
        persistent_peers: peers,
        persistent_peers_only: true,
        discovery: DiscoveryConfig {
            enabled: false,
            max_connections_per_ip: 256,
            dial_max_retries: usize::MAX / 2,
            ip_throttle_duration: Duration::from_millis(100),
            ..DiscoveryConfig::default()
        },
        // GossipSub, not the direct Broadcast protocol: Broadcast (libp2p-scatter) opens a
        // substream per message and, under load, its connections were closed and re-dialled
        // about once a second, losing proposals and votes in flight (rounds timed out; p99
        // commit latency 10-18 s). GossipSub keeps one stream per peer, in order; every
        // validator is an explicit peer (always sent to) and publishing floods to all
        // (`specs/consensus.md` §3.1, §11).
        protocol: PubSubProtocol::GossipSub(GossipSubConfig::new(3, 6, 2, 1, false, true, true)),
        protocol_names,
        ..P2pConfig::default()
    };
    // Room for a whole gossiped submission in one message (gossip::GOSSIP_BYTES).
    p2p.pubsub_max_size = bytesize(16 << 20);
    p2p.rpc_max_size = bytesize(512 << 20);
    p2p.channel_names.consensus = format!("/dojang/{salt}/consensus");
    p2p.channel_names.proposal_parts = format!("/dojang/{salt}/proposal-parts");
    p2p.channel_names.sync = format!("/dojang/{salt}/sync");
    p2p.channel_names.liveness = format!("/dojang/{salt}/liveness");
    let consensus = ConsensusConfig { enabled: true, p2p, value_payload: ValuePayload::ProposalAndParts, ..ConsensusConfig::default() };
    let value_sync = ValueSyncConfig {
        enabled: true,
        status_update_interval: Duration::from_millis(500),
        request_timeout: Duration::from_secs(20),
        max_response_size: bytesize(256 << 20),
        batch_size: 4,
        ..ValueSyncConfig::default()
    };
    Ok(EngineConfig { moniker: s.moniker.clone(), consensus, value_sync })
}

fn bytesize(n: u64) -> bytesize::ByteSize {
    bytesize::ByteSize::b(n)
}

/// Ordering by BFT consensus: a submission joins this validator's mempool and is
/// gossiped to the others; it resolves when the decided blocks holding its entries commit,
/// whichever validator proposed them.
#[derive(Debug, Clone)]
pub struct BftSequencer {
    mempool: Arc<Mempool>,
    gossip: tokio::sync::mpsc::Sender<Vec<Vec<u8>>>,
}

impl Sequencer for BftSequencer {
    fn submit(&self, candidates: Vec<Candidate>) -> SubmitFuture {
        let (reply, rx) = oneshot::channel();
        let pushed = match self.mempool.submit(candidates, reply) {
            Ok(fresh) => {
                if !fresh.is_empty() && self.gossip.try_send(fresh).is_err() {
                    // Gossip is behind: this validator still proposes the entries itself.
                    tracing::debug!("gossip queue full: entries stay local until proposed");
                }
                Ok(())
            }
            Err((_, e)) => Err(e),
        };
        Box::pin(async move {
            pushed?;
            rx.await.unwrap_or(Err(SequencerError::Stopped))
        })
    }
}

/// The running engine and application loop; stopping it stops consensus.
pub struct ConsensusHandle {
    engine: EngineHandle,
    app: tokio::task::JoinHandle<()>,
    gossip: [tokio::task::JoinHandle<()>; 2],
    mempool: Arc<Mempool>,
    /// Set before a deliberate shutdown, so the engine's closed channels are not mistaken
    /// for a failure.
    stopping: Arc<std::sync::atomic::AtomicBool>,
}

impl std::fmt::Debug for ConsensusHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConsensusHandle").finish_non_exhaustive()
    }
}

impl ConsensusHandle {
    pub async fn shutdown(self) {
        self.stopping.store(true, std::sync::atomic::Ordering::SeqCst);
        self.engine.actor.stop(Some("node stopping".into()));
        let _ = tokio::time::timeout(Duration::from_secs(5), self.engine.handle).await;
        self.app.abort();
        let _ = self.app.await;
        for t in self.gossip {
            t.abort();
            let _ = t.await;
        }
        self.mempool.fail_all();
    }
}

/// Starts Malachite and the application loop. `on_fatal` runs if the engine stops on its
/// own (a closed channel is fatal: a validator without its engine must not keep serving).
#[allow(clippy::too_many_arguments)]
pub async fn start(
    ledger: Arc<Ledger>,
    rules: Arc<Rules>,
    metrics: Arc<Metrics>,
    clock: Arc<dyn Clock>,
    settings: ConsensusSettings,
    on_fatal: Box<dyn FnOnce(String) + Send>,
) -> Result<(BftSequencer, ConsensusHandle), ConsensusError> {
    let genesis = &rules.genesis;
    let signer_id = ledger.signer().id.clone();
    let cfg = engine_config(genesis, &signer_id, &settings)?;
    let vset = ValidatorSet::from_genesis(genesis).filter(|v| !v.validators.is_empty()).ok_or(ConsensusError::ValidatorSet)?;
    let consensus_key = ledger.signer().key.clone();
    let me = Address(consensus_key.verifying_key().to_bytes());
    let signer = DojangSigner::new(consensus_key, rules.genesis_hash);
    let verifier = DojangVerifier { genesis: rules.genesis_hash };
    let kp = keypair(&settings.p2p_key).ok_or_else(|| ConsensusError::Engine("invalid p2p key".into()))?;
    let identity = NetworkIdentity::new(settings.moniker.clone(), kp, Some(me.to_string()));
    std::fs::create_dir_all(&settings.wal_dir).map_err(|e| ConsensusError::Engine(format!("wal dir: {e}")))?;
    // A validator always runs with its signer: the engine panics at the first vote of a
    // validator started without one, so this is never optional here.
    let (channels, engine) = start_engine(
        DojangContext,
        cfg,
        WalContext::new(settings.wal_dir.join("consensus.wal"), DojangCodec),
        NetworkContext::new(identity, DojangCodec),
        ConsensusContext::new_validator(me, Box::new(verifier), Box::new(signer.clone())),
        SyncContext::new(DojangCodec),
        RequestContext::new(64),
    )
    .await
    .map_err(|e| ConsensusError::Engine(e.to_string()))?;
    let mempool = Arc::new(Mempool::new(settings.mempool_bytes));
    let (gossip_tx, gossip_rx) = tokio::sync::mpsc::channel(gossip::GOSSIP_QUEUE);
    let (intake_tx, intake_rx) = tokio::sync::mpsc::channel(gossip::GOSSIP_QUEUE);
    let gossip_tasks = [
        tokio::spawn(gossip::publish(channels.network.clone(), gossip_rx, me)),
        tokio::spawn(gossip::intake(rules.clone(), ledger.clone(), mempool.clone(), clock.clone(), intake_rx)),
    ];
    let app = App::new(ledger, rules.clone(), vset, me, signer, mempool.clone(), metrics, clock, settings.tuning, intake_tx);
    let stopping = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let deliberate = stopping.clone();
    let task = tokio::spawn(async move {
        match app.run(channels).await {
            Ok(()) => {}
            Err(e) if deliberate.load(std::sync::atomic::Ordering::SeqCst) => tracing::debug!(error = %e, "consensus stopped on shutdown"),
            Err(e) => {
                tracing::error!(error = %e, "consensus stopped");
                on_fatal(e.to_string());
            }
        }
    });
    Ok((
        BftSequencer { mempool: mempool.clone(), gossip: gossip_tx },
        ConsensusHandle { engine, app: task, gossip: gossip_tasks, mempool, stopping },
    ))
}

/// Default linear timeouts for a loopback or LAN validator set.
pub fn timeouts(propose_ms: u64, vote_ms: u64) -> LinearTimeouts {
    let propose = Duration::from_millis(propose_ms);
    let vote = Duration::from_millis(vote_ms);
    LinearTimeouts {
        propose,
        propose_delta: propose / 2,
        prevote: vote,
        prevote_delta: vote / 2,
        precommit: vote,
        precommit_delta: vote / 2,
        rebroadcast: propose + vote + vote,
        max_timeout: Duration::from_secs(30),
    }
}
