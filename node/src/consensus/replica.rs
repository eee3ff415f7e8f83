//! Non-voting read replicas (`specs/consensus.md` §10). A replica takes no part in
//! consensus and joins no libp2p network (validators refuse every non-genesis peer); it
//! follows the chain over HTTP, fetching each decided height's stored record from
//! `GET /v1/blocks/{height}` of the validators (or other replicas) in its config, and
//! trusts nothing but the genesis file: every record is verified — block encoding, height,
//! commit certificate against the genesis validator set, timestamps, every entry with the
//! validators' own admission checks, the checkpoint note signatures — before it is applied
//! and stored exactly as a validator stores it. A source that serves anything else is
//! logged and passed over for the next one; a replica never signs a checkpoint.

use std::io::Read as _;
use std::sync::Arc;
use std::time::Duration;

use arc_malachitebft_app_channel::app::types::core::{ExtendedCommitCertificate, Value as _};
use dojang_core::admission::{Candidate, Rules};
use tokio::sync::watch;

use super::ConsensusError;
use super::app::check_entries;
use super::block::{Block, decode_record, encode_record};
use super::certificate::{certificate_signatures, decided_puts, stored_height, stored_record, verify_certificate};
use super::codec::{decode_certificate, encode_certificate};
use super::types::{DojangContext, ValidatorSet, ValueId};
use crate::ledger::{Ledger, LedgerError};
use crate::metrics::Metrics;
use crate::sequencer::Outcome;

/// The largest record a replica reads from a source (a block is at most 256 MiB of entries,
/// `specs/consensus.md` §6); anything longer is refused before it is decoded.
pub const MAX_RECORD_BYTES: u64 = 512 << 20;

/// Why a record from a source was refused. Every variant is the source's fault (or a
/// byzantine validator's), never this node's.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("record does not decode: {0}")]
    Decode(String),
    #[error("block is for height {found}, expected {expected}")]
    BlockHeight { expected: u64, found: u64 },
    #[error("commit certificate is for height {found}, expected {expected}")]
    CertificateHeight { expected: u64, found: u64 },
    #[error("commit certificate is for value {found}, but the block's id is {expected}")]
    WrongValue { expected: ValueId, found: ValueId },
    #[error("commit certificate refused: {0}")]
    Certificate(String),
    #[error("block time {timestamp_ms} is before the previous block's {previous_ms}")]
    TimeRegression { timestamp_ms: u64, previous_ms: u64 },
    #[error("block holds an invalid entry: {0}")]
    Entry(String),
    #[error("a verification task failed: {0}")]
    Join(String),
}

/// A failure to apply a verified block: this node's own (storage), not the source's.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    #[error("a commit task failed: {0}")]
    Join(String),
}

/// A record that passed every check that does not need the ledger state: ready for
/// [`apply`].
pub struct Verified {
    pub height: u64,
    pub block: Block,
    pub certificate: ExtendedCommitCertificate<DojangContext>,
    candidates: Vec<Candidate>,
}

impl std::fmt::Debug for Verified {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verified").field("height", &self.height).field("entries", &self.block.entries.len()).finish_non_exhaustive()
    }
}

/// Verifies the record of `height` against the genesis alone (`specs/consensus.md` §10):
/// it decodes (the block's entries match its header), the block and the certificate are
/// for `height` and for this block's value id, the certificate carries precommit
/// signatures with vote extensions of distinct genesis validators holding more than two
/// thirds of the power ([`verify_certificate`]), the block time is not before
/// `previous_ms`, and every entry passes decode, signature and authorisation with the
/// block time as the clock — the checks a validator makes before voting (§2.3).
pub async fn verify_record(
    rules: &Arc<Rules>,
    vset: &ValidatorSet,
    height: u64,
    previous_ms: u64,
    record: &[u8],
) -> Result<Verified, RecordError> {
    let (b, c) = decode_record(record).map_err(|e| RecordError::Decode(e.to_string()))?;
    let block = Block::decode(b).map_err(|e| RecordError::Decode(e.to_string()))?;
    let certificate = decode_certificate(c).map_err(|e| RecordError::Decode(e.to_string()))?;
    if block.header.height != height {
        return Err(RecordError::BlockHeight { expected: height, found: block.header.height });
    }
    if certificate.height.0 != height {
        return Err(RecordError::CertificateHeight { expected: height, found: certificate.height.0 });
    }
    let id = block.header.id();
    if certificate.value_id != id {
        return Err(RecordError::WrongValue { expected: id, found: certificate.value_id });
    }
    verify_certificate(rules.genesis_hash, vset, &certificate).await.map_err(RecordError::Certificate)?;
    let ts = block.header.timestamp_ms;
    if ts < previous_ms {
        return Err(RecordError::TimeRegression { timestamp_ms: ts, previous_ms });
    }
    let r = rules.clone();
    let (block, checked) = tokio::task::spawn_blocking(move || {
        let checked = check_entries(&r, &block.entries, ts, Vec::new());
        (block, checked)
    })
    .await
    .map_err(|e| RecordError::Join(e.to_string()))?;
    let candidates = checked.map_err(RecordError::Entry)?;
    Ok(Verified { height, block, certificate, candidates })
}

/// Applies a verified block like a validator's `Decided` (`specs/consensus.md` §6): the
/// ledger runs its state rules in block order with the block time, the checkpoint
/// carries the note signatures of the certificate's extensions that verify over the body
/// this node computed (never a signature of its own), and the entries, checkpoint, record
/// and height go to storage in one atomic write.
pub async fn apply(ledger: &Arc<Ledger>, vset: &ValidatorSet, v: Verified) -> Result<Vec<Outcome>, ApplyError> {
    let Verified { height, block, certificate, candidates } = v;
    let l = ledger.clone();
    let ts = block.header.timestamp_ms;
    let prepared = tokio::task::spawn_blocking(move || l.prepare(candidates, ts)).await.map_err(|e| ApplyError::Join(e.to_string()))??;
    let sigs = match &prepared.checkpoint {
        Some(cp) => certificate_signatures(vset, &cp.body(), &certificate),
        None => Vec::new(),
    };
    let record = encode_record(&block.encode(), &encode_certificate(&certificate));
    let extra = decided_puts(height, record);
    let l = ledger.clone();
    let outcomes = tokio::task::spawn_blocking(move || l.commit_prepared(prepared, sigs, extra))
        .await
        .map_err(|e| ApplyError::Join(e.to_string()))??;
    Ok(outcomes)
}

/// Where and how often a replica asks for blocks (from `[replica]`, `specs/api.md` §1).
#[derive(Debug, Clone)]
pub struct ReplicaSettings {
    pub follow: Vec<String>,
    pub poll: Duration,
}

/// The running follower; stopping it stops the replica's only writer.
#[derive(Debug)]
pub struct ReplicaHandle {
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl ReplicaHandle {
    /// Stops the follower after the block it is applying (if any) is stored; a fetch in
    /// flight is abandoned.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

/// Starts following. Fails if genesis is not a multi-validator chain (a one-validator
/// chain stores no certificates to verify) or the stored chain cannot be read.
pub fn start(
    ledger: Arc<Ledger>,
    rules: Arc<Rules>,
    metrics: Arc<Metrics>,
    settings: ReplicaSettings,
) -> Result<ReplicaHandle, ConsensusError> {
    let vset = ValidatorSet::from_genesis(&rules.genesis).filter(|v| !v.validators.is_empty()).ok_or(ConsensusError::ValidatorSet)?;
    if settings.follow.is_empty() {
        return Err(ConsensusError::Replica("no source to follow: [replica] follow is empty".into()));
    }
    let store = ledger.store();
    let height = stored_height(store).map_err(|e| ConsensusError::Replica(e.to_string()))?;
    // The previous block's time bounds the next one's; the stored top block was verified
    // before it was stored.
    let last_ts = match stored_record(store, height).map_err(|e| ConsensusError::Replica(e.to_string()))? {
        None => 0,
        Some(rec) => decode_record(&rec)
            .and_then(|(b, _)| Block::decode(b))
            .map(|b| b.header.timestamp_ms)
            .map_err(|e| ConsensusError::Replica(format!("stored block {height} is corrupt: {e}")))?,
    };
    let agent = ureq::AgentBuilder::new().timeout_connect(Duration::from_secs(3)).timeout(Duration::from_secs(120)).build();
    let n = settings.follow.len();
    let follower = Follower {
        ledger,
        rules,
        vset,
        metrics,
        sources: settings.follow,
        poll: settings.poll,
        agent,
        height,
        last_ts,
        next: 0,
        failing: vec![None; n],
    };
    let (stop, rx) = watch::channel(false);
    tracing::info!(height, sources = ?follower.sources, "read replica following");
    let task = tokio::spawn(follower.run(rx));
    Ok(ReplicaHandle { stop, task })
}

struct Follower {
    ledger: Arc<Ledger>,
    rules: Arc<Rules>,
    vset: ValidatorSet,
    metrics: Arc<Metrics>,
    sources: Vec<String>,
    poll: Duration,
    agent: ureq::Agent,
    /// The last height stored here.
    height: u64,
    last_ts: u64,
    /// The source asked first for the next height.
    next: usize,
    /// Per source: the last transport error logged, so a source that is down is reported
    /// once, not at every poll.
    failing: Vec<Option<String>>,
}

/// What one source answered for one height.
enum Fetched {
    Record(Vec<u8>),
    NotYet,
}

/// `GET {base}/v1/blocks/{height}`, bounded in time and size. 404 means the source has not
/// decided that height yet.
fn fetch(agent: &ureq::Agent, base: &str, height: u64) -> Result<Fetched, String> {
    let url = format!("{}/v1/blocks/{height}", base.trim_end_matches('/'));
    match agent.get(&url).call() {
        Ok(resp) => {
            let mut buf = Vec::new();
            resp.into_reader().take(MAX_RECORD_BYTES + 1).read_to_end(&mut buf).map_err(|e| format!("reading the record: {e}"))?;
            if buf.len() as u64 > MAX_RECORD_BYTES {
                return Err(format!("record is over {MAX_RECORD_BYTES} bytes"));
            }
            Ok(Fetched::Record(buf))
        }
        Err(ureq::Error::Status(404, _)) => Ok(Fetched::NotYet),
        Err(ureq::Error::Status(code, _)) => Err(format!("answered status {code}")),
        Err(e) => Err(e.to_string()),
    }
}

impl Follower {
    async fn run(mut self, mut stop: watch::Receiver<bool>) {
        loop {
            if *stop.borrow() {
                return;
            }
            let advanced = self.step(&mut stop).await;
            if *stop.borrow() {
                return;
            }
            if !advanced {
                tokio::select! {
                    () = tokio::time::sleep(self.poll) => {}
                    _ = stop.changed() => return,
                }
            }
        }
    }

    /// Tries the sources in turn for the next height, starting with the last one that
    /// served; true when a block was verified and stored. A source that has not decided the
    /// height yet ends the round (the next round asks the next source first, so a source
    /// that lags costs one poll interval); one that fails or serves a block that does not
    /// verify is logged and the next is asked at once.
    async fn step(&mut self, stop: &mut watch::Receiver<bool>) -> bool {
        let height = self.height + 1;
        let n = self.sources.len();
        for k in 0..n {
            let i = (self.next + k) % n;
            let Some(url) = self.sources.get(i).cloned() else { continue };
            let (agent, base) = (self.agent.clone(), url.clone());
            let fetched = tokio::select! {
                r = tokio::task::spawn_blocking(move || fetch(&agent, &base, height)) => r,
                _ = stop.changed() => return false,
            };
            let record = match fetched {
                Ok(Ok(Fetched::Record(r))) => r,
                Ok(Ok(Fetched::NotYet)) => {
                    self.healthy(i);
                    self.next = (i + 1) % n;
                    return false;
                }
                Ok(Err(reason)) => {
                    if self.failing.get(i).and_then(Option::as_ref) != Some(&reason) {
                        tracing::warn!(source = %url, height, %reason, "read replica: source unavailable; trying the next");
                        if let Some(f) = self.failing.get_mut(i) {
                            *f = Some(reason);
                        }
                    }
                    continue;
                }
                Err(e) => {
                    tracing::warn!(source = %url, height, error = %e, "read replica: fetch task failed");
                    continue;
                }
            };
            self.healthy(i);
            let verified = match verify_record(&self.rules, &self.vset, height, self.last_ts, &record).await {
                Ok(v) => v,
                Err(reason) => {
                    tracing::warn!(source = %url, height, %reason, "read replica: refused a block that does not verify; trying the next source");
                    continue;
                }
            };
            let ts = verified.block.header.timestamp_ms;
            let started = std::time::Instant::now();
            match apply(&self.ledger, &self.vset, verified).await {
                Ok(outcomes) => {
                    self.metrics.record_batch(&outcomes, started.elapsed());
                    self.height = height;
                    self.last_ts = ts;
                    self.next = i;
                    tracing::debug!(height, source = %url, entries = outcomes.len(), size = self.ledger.size(), "read replica: applied");
                    return true;
                }
                Err(e) => {
                    // This node's own failure: nothing was stored; retry after the interval.
                    tracing::error!(height, error = %e, "read replica: cannot apply a verified block");
                    return false;
                }
            }
        }
        false
    }

    fn healthy(&mut self, i: usize) {
        if let Some(f) = self.failing.get_mut(i)
            && f.take().is_some()
            && let Some(url) = self.sources.get(i)
        {
            tracing::info!(source = %url, "read replica: source reachable again");
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]
    use super::*;
    use crate::consensus::signing::{DojangSigner, extension_bytes, vote_bytes};
    use crate::consensus::types::{Address, BlockHeader, Height, Vote, entries_hash};
    use crate::ledger::CheckpointSigner;
    use crate::storage::{Store, memory::MemoryBackend};
    use arc_malachitebft_app_channel::app::types::core::{
        ExtendedCommitSignature, NilOrVal, Round, SignedMessage, VoteExtensionScope, VoteType,
    };
    use dojang_core::checkpoint::SignedCheckpoint;
    use dojang_core::did_key::DidKey;
    use dojang_core::entry::{Kind, UnsignedEntry};
    use dojang_core::genesis::{Genesis, Validator};
    use ed25519_dalek::{Signer as _, SigningKey};

    const T0: u64 = 1_700_000_000_000;

    /// A 4-validator chain with one writer, and a replica's ledger over memory storage.
    struct Chain {
        genesis: Genesis,
        rules: Arc<Rules>,
        vset: ValidatorSet,
        validators: Vec<SigningKey>,
        writer: SigningKey,
        ledger: Arc<Ledger>,
    }

    impl Chain {
        fn new() -> Chain {
            let validators: Vec<SigningKey> = (0..4).map(|i| SigningKey::from_bytes(&[20 + i; 32])).collect();
            let writer = SigningKey::from_bytes(&[50; 32]);
            let vs = validators
                .iter()
                .enumerate()
                .map(|(i, k)| {
                    Validator::with_keys(&format!("v{i}"), &format!("Validator {i}"), &k.verifying_key(), &[writer.verifying_key()], "")
                })
                .collect();
            let genesis = Genesis::new("replicatest", 0, vs);
            let rules = Arc::new(Rules::new(genesis.clone()));
            let vset = ValidatorSet::from_genesis(&genesis).unwrap();
            let store = Store::new(Arc::new(MemoryBackend::default()));
            let signer = CheckpointSigner { id: "r1".into(), key: SigningKey::from_bytes(&[90; 32]) };
            let ledger = Arc::new(Ledger::open_follower(store, rules.clone(), signer, 0).unwrap());
            Chain { genesis, rules, vset, validators, writer, ledger }
        }

        fn entry(&self, nonce: u64, ts: u64) -> Vec<u8> {
            UnsignedEntry {
                kind: Kind::AccessEvent,
                author: DidKey::from_verifying_key(&self.writer.verifying_key()).key_id(),
                nonce,
                timestamp_ms: ts,
                payload: dojang_core::access::AccessEvent::cover(&nonce.to_be_bytes()).encode(),
            }
            .sign(&self.writer, &self.genesis.hash())
            .unwrap()
            .encode()
            .unwrap()
        }

        fn block(&self, height: u64, ts: u64, entries: Vec<Vec<u8>>) -> Block {
            let header = BlockHeader {
                height,
                timestamp_ms: ts,
                proposer: Address(self.validators[0].verifying_key().to_bytes()),
                count: entries.len() as u32,
                entries_hash: entries_hash(entries.iter().map(Vec::as_slice)),
            };
            Block { header, entries }
        }

        /// The checkpoint body `block` yields on top of the replica's current ledger (what
        /// each validator signs in its vote extension); None for a block with no entry.
        fn body(&self, block: &Block) -> Option<String> {
            let cands = check_entries(&self.rules, &block.entries, block.header.timestamp_ms, Vec::new()).unwrap();
            self.ledger.prepare(cands, block.header.timestamp_ms).unwrap().checkpoint.map(|c| c.body())
        }

        /// One precommit for (height, round 0, value) by `key`, with its vote extension
        /// (`ext`), both signed as the engine signs them.
        fn commit_sig(&self, key: &SigningKey, height: u64, value: ValueId, ext: Vec<u8>) -> ExtendedCommitSignature<DojangContext> {
            let gh = self.rules.genesis_hash;
            let s = DojangSigner::new(key.clone(), gh);
            let addr = Address(key.verifying_key().to_bytes());
            let vote = Vote {
                vote_type: VoteType::Precommit,
                height: Height(height),
                round: Round::new(0),
                value: NilOrVal::Val(value),
                validator: addr,
                extension: None,
            };
            let sig = s.sign(&vote_bytes(&gh, &vote));
            let scope = VoteExtensionScope::new(Height(height), Round::new(0), value, addr);
            let ext_sig = s.sign(&extension_bytes(&gh, &scope, &ext));
            ExtendedCommitSignature::new(addr, sig, Some(SignedMessage::new(ext, ext_sig)))
        }

        /// A certificate for `block` signed by the validators `signers`, each extension its
        /// note signature over `body`.
        fn certificate(&self, block: &Block, body: Option<&str>, signers: &[usize]) -> ExtendedCommitCertificate<DojangContext> {
            let id = block.header.id();
            let sigs = signers
                .iter()
                .map(|&i| {
                    let k = &self.validators[i];
                    let ext = body.map(|b| k.sign(b.as_bytes()).to_bytes().to_vec()).unwrap_or_default();
                    self.commit_sig(k, block.header.height, id, ext)
                })
                .collect();
            ExtendedCommitCertificate { height: Height(block.header.height), round: Round::new(0), value_id: id, commit_signatures: sigs }
        }

        fn record(block: &Block, cert: &ExtendedCommitCertificate<DojangContext>) -> Vec<u8> {
            encode_record(&block.encode(), &encode_certificate(cert))
        }

        /// A well-formed record for the next height with `n` entries, signed by all four.
        fn good(&self, height: u64, first_nonce: u64, n: u64) -> (Block, Vec<u8>) {
            let ts = T0 + height;
            let block = self.block(height, ts, (first_nonce..first_nonce + n).map(|k| self.entry(k, ts)).collect());
            let body = self.body(&block);
            let cert = self.certificate(&block, body.as_deref(), &[0, 1, 2, 3]);
            let rec = Self::record(&block, &cert);
            (block, rec)
        }

        async fn verify(&self, height: u64, previous_ms: u64, record: &[u8]) -> Result<Verified, RecordError> {
            verify_record(&self.rules, &self.vset, height, previous_ms, record).await
        }
    }

    #[tokio::test]
    async fn good_records_are_applied_and_stored_as_a_validator_stores_them() {
        let c = Chain::new();
        let (b1, rec1) = c.good(1, 1, 5);
        let v = c.verify(1, 0, &rec1).await.unwrap();
        let outcomes = apply(&c.ledger, &c.vset, v).await.unwrap();
        assert!(outcomes.iter().all(Result::is_ok));
        assert_eq!(c.ledger.size(), 5);
        // The stored record is the one served, byte for byte, and the height advanced.
        assert_eq!(stored_record(c.ledger.store(), 1).unwrap().unwrap(), rec1);
        assert_eq!(stored_height(c.ledger.store()).unwrap(), 1);
        // The checkpoint carries the four validators' note signatures and nothing of the
        // replica's: it verifies against genesis alone.
        let cp = SignedCheckpoint::parse(&c.ledger.checkpoint_text(None).unwrap()).unwrap();
        let verified = cp.verify(&c.genesis).unwrap();
        assert_eq!(verified.signers.len(), 4);
        assert!(cp.signatures.iter().all(|s| s.name != "r1"));
        // An empty block (no checkpoint) is stored too; then the chain goes on.
        let ts2 = b1.header.timestamp_ms + 1;
        let empty = c.block(2, ts2, Vec::new());
        let cert = c.certificate(&empty, None, &[1, 2, 3]);
        let v = c.verify(2, b1.header.timestamp_ms, &Chain::record(&empty, &cert)).await.unwrap();
        apply(&c.ledger, &c.vset, v).await.unwrap();
        assert_eq!((c.ledger.size(), stored_height(c.ledger.store()).unwrap()), (5, 2));
        let (_, rec3) = c.good(3, 6, 3);
        let v = c.verify(3, ts2, &rec3).await.unwrap();
        apply(&c.ledger, &c.vset, v).await.unwrap();
        assert_eq!(c.ledger.size(), 8);
    }

    #[tokio::test]
    async fn three_of_four_is_a_quorum_and_a_bad_note_signature_is_left_out() {
        let c = Chain::new();
        let block = c.block(1, T0, (1..4).map(|k| c.entry(k, T0)).collect());
        let body = c.body(&block).unwrap();
        let mut cert = c.certificate(&block, Some(&body), &[0, 1, 2]);
        // Validator 3 signed its precommit and extension properly, but its extension is
        // not a note signature over this body (a byzantine validator): the certificate
        // holds, the checkpoint leaves that line out.
        let junk = c.validators[3].sign(b"another body").to_bytes().to_vec();
        cert.commit_signatures.push(c.commit_sig(&c.validators[3], 1, block.header.id(), junk));
        let v = c.verify(1, 0, &Chain::record(&block, &cert)).await.unwrap();
        apply(&c.ledger, &c.vset, v).await.unwrap();
        let cp = SignedCheckpoint::parse(&c.ledger.checkpoint_text(None).unwrap()).unwrap();
        let verified = cp.verify(&c.genesis).unwrap();
        assert_eq!(verified.signers, vec!["v0".to_owned(), "v1".into(), "v2".into()]);
    }

    fn refused(r: Result<Verified, RecordError>) -> RecordError {
        match r {
            Ok(v) => panic!("a bad record was accepted: {v:?}"),
            Err(e) => e,
        }
    }

    #[tokio::test]
    async fn tampered_records_are_refused() {
        let c = Chain::new();
        let (block, rec) = c.good(1, 1, 3);
        let body = c.body(&block);
        let cert = c.certificate(&block, body.as_deref(), &[0, 1, 2, 3]);
        // An entry changed after the fact: no longer matches the header.
        let mut t = block.clone();
        t.entries[1][20] ^= 1;
        assert!(matches!(refused(c.verify(1, 0, &Chain::record(&t, &cert)).await), RecordError::Decode(_)));
        // The same with the header recomputed: the certificate is for the original value.
        let t = c.block(1, block.header.timestamp_ms, t.entries);
        assert!(matches!(refused(c.verify(1, 0, &Chain::record(&t, &cert)).await), RecordError::WrongValue { .. }));
        // Even with a quorum certificate for it, a block with a forged entry is refused.
        let forged_cert = c.certificate(&t, None, &[0, 1, 2, 3]);
        assert!(matches!(refused(c.verify(1, 0, &Chain::record(&t, &forged_cert)).await), RecordError::Entry(_)));
        // Served for the wrong height.
        assert!(matches!(refused(c.verify(2, 0, &rec).await), RecordError::BlockHeight { expected: 2, found: 1 }));
        // A certificate for another height of the same value.
        let mut other = cert.clone();
        other.height = Height(7);
        assert!(matches!(refused(c.verify(1, 0, &Chain::record(&block, &other)).await), RecordError::CertificateHeight { .. }));
        // A certificate for another value.
        let (other_block, _) = c.good(1, 10, 2);
        let other_cert = c.certificate(&other_block, None, &[0, 1, 2, 3]);
        assert!(matches!(refused(c.verify(1, 0, &Chain::record(&block, &other_cert)).await), RecordError::WrongValue { .. }));
        // Time going backwards.
        assert!(matches!(refused(c.verify(1, block.header.timestamp_ms + 1, &rec).await), RecordError::TimeRegression { .. }));
        // Bytes that are no record at all, and every truncation of a good one.
        assert!(matches!(refused(c.verify(1, 0, b"garbage").await), RecordError::Decode(_)));
        for n in 0..rec.len() {
            assert!(c.verify(1, 0, &rec[..n]).await.is_err(), "a record truncated to {n} bytes was accepted");
        }
        // Nothing of it reached the ledger.
        assert_eq!((c.ledger.size(), stored_height(c.ledger.store()).unwrap()), (0, 0));
    }

    #[tokio::test]
    async fn certificates_without_a_genesis_quorum_are_refused() {
        let c = Chain::new();
        let block = c.block(1, T0, vec![c.entry(1, T0)]);
        let body = c.body(&block);
        let id = block.header.id();
        let ext = |i: usize| body.as_deref().map(|b| c.validators[i].sign(b.as_bytes()).to_bytes().to_vec()).unwrap_or_default();
        let check = |cert: ExtendedCommitCertificate<DojangContext>, what: &'static str| {
            let rec = Chain::record(&block, &cert);
            let c = &c;
            async move {
                match refused(c.verify(1, 0, &rec).await) {
                    RecordError::Certificate(reason) => reason,
                    e => panic!("{what}: refused for the wrong reason: {e}"),
                }
            }
        };
        // Two of four: half the power is not more than two thirds.
        let r = check(c.certificate(&block, body.as_deref(), &[0, 1]), "below 2/3").await;
        assert!(r.contains("voting power"), "{r}");
        // The same signer twice does not count twice.
        let r = check(c.certificate(&block, body.as_deref(), &[0, 1, 1]), "duplicate signer").await;
        assert!(r.to_lowercase().contains("multiple votes from the same validator"), "{r}");
        // A key that is not in genesis, even alongside three genuine signatures.
        let rogue = SigningKey::from_bytes(&[99; 32]);
        let mut cert = c.certificate(&block, body.as_deref(), &[0, 1, 2]);
        cert.commit_signatures.push(c.commit_sig(&rogue, 1, id, ext(0)));
        let r = check(cert, "non-genesis signer").await;
        assert!(r.contains("not in the validator set"), "{r}");
        // A validator's precommit signature from another round.
        let mut cert = c.certificate(&block, body.as_deref(), &[0, 1, 2]);
        let other_round = {
            let gh = c.rules.genesis_hash;
            let addr = Address(c.validators[2].verifying_key().to_bytes());
            let vote = Vote {
                vote_type: VoteType::Precommit,
                height: Height(1),
                round: Round::new(1),
                value: NilOrVal::Val(id),
                validator: addr,
                extension: None,
            };
            DojangSigner::new(c.validators[2].clone(), gh).sign(&vote_bytes(&gh, &vote))
        };
        cert.commit_signatures[2].signature = other_round;
        let r = check(cert, "bad commit signature").await;
        assert!(r.to_lowercase().contains("invalid commit signature"), "{r}");
        // An extension changed after it was signed.
        let mut cert = c.certificate(&block, body.as_deref(), &[0, 1, 2]);
        if let Some(e) = cert.commit_signatures[1].extension.as_mut() {
            e.message[0] ^= 1;
        }
        let r = check(cert, "tampered extension").await;
        assert!(r.contains("Invalid vote extension signature"), "{r}");
        // A precommit without its extension (vote extensions are required).
        let mut cert = c.certificate(&block, body.as_deref(), &[0, 1, 2]);
        cert.commit_signatures[0].extension = None;
        let r = check(cert, "missing extension").await;
        assert!(r.contains("Missing vote extension"), "{r}");
        // The sanity case: the same three genuine signatures verify.
        assert!(c.verify(1, 0, &Chain::record(&block, &c.certificate(&block, body.as_deref(), &[0, 1, 2]))).await.is_ok());
    }
}
