//! The application side of Malachite: one loop over `AppMsg` that proposes blocks from
//! the mempool, validates and assembles proposals from peers, signs checkpoints in vote
//! extensions, commits decided blocks to the ledger, and serves and checks value sync
//! (`specs/consensus.md` §5-§6).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use arc_malachitebft_app_channel::app::consensus::{ProposedValue, VoteExtensionError};
use arc_malachitebft_app_channel::app::engine::host::{Next, SyncedValueOutcome};
use arc_malachitebft_app_channel::app::streaming::{StreamContent, StreamId, StreamMessage};
use arc_malachitebft_app_channel::app::types::core::{
    CommitCertificate, Context as _, ExtendedCommitCertificate, HeightParams, LinearTimeouts, Round, Validity, Value as _,
    VoteExtensionPolicy, VoteExtensions,
};
use arc_malachitebft_app_channel::app::types::sync::RawDecidedValue;
use arc_malachitebft_app_channel::app::types::{LocallyProposedValue, PeerId};
use arc_malachitebft_app_channel::{AppMsg, Channels, NetworkMsg};
use bytes::Bytes;
use dojang_core::admission::{AdmissionError, Candidate, Rules};
use dojang_core::checkpoint::Checkpoint;
use dojang_core::hash::Hash;

use super::block::{Block, decode_record, encode_record};
use super::codec::{decode_certificate, encode_certificate};
use super::mempool::Mempool;
use super::signing::{DojangSigner, stream_bytes, verify};
use super::types::{Address, BlockHeader, DojangContext, Height, ProposalPart, PublicKey, Signature, ValidatorSet, ValueId, entries_hash};
use crate::clock::Clock;
use crate::ledger::{Ledger, LedgerError, Prepared};
use crate::metrics::Metrics;
use crate::storage::{Put, StateReader, Table, keys};
use crate::writepath::verify_parallel;

/// Test-only misbehaviour, enabled only by an explicit config value (`specs/consensus.md` §8).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Misbehaviour {
    #[default]
    None,
    /// Adds an entry with a forged signature to every block this validator proposes.
    ForgeEntry,
    /// Runs with a p2p identity that genesis does not list (peers must refuse it).
    RogueKey,
    /// Proposes only empty blocks: what it receives must still reach the ledger through
    /// gossip and the other proposers.
    Censor,
}

/// Most parts a proposal stream may have, and most streams buffered at once.
const MAX_PARTS: usize = 4096;
const MAX_STREAMS: usize = 64;
/// Entry bytes per `Data` part, kept well under the pub-sub message limit.
const PART_BYTES: usize = 1 << 20;

#[derive(Debug, Clone)]
pub struct Tuning {
    pub timeouts: LinearTimeouts,
    pub max_block_entries: usize,
    pub max_block_bytes: usize,
    pub block_wait: Duration,
    pub misbehaviour: Misbehaviour,
}

/// A block whose entries were decoded and checked, waiting for a decision.
struct Checked {
    block: Block,
    candidates: Option<Vec<Candidate>>,
}

#[derive(Default)]
struct Partial {
    parts: BTreeMap<u64, Option<ProposalPart>>,
    fin: Option<u64>,
    bytes: usize,
    height: u64,
}

pub struct App {
    pub ctx: DojangContext,
    pub ledger: Arc<Ledger>,
    pub rules: Arc<Rules>,
    pub genesis_hash: Hash,
    pub vset: ValidatorSet,
    pub me: Address,
    pub signer: DojangSigner,
    pub mempool: Arc<Mempool>,
    pub metrics: Arc<Metrics>,
    pub clock: Arc<dyn Clock>,
    pub tuning: Tuning,
    /// The height consensus is working on.
    height: u64,
    last_ts: u64,
    blocks: HashMap<ValueId, Checked>,
    prepared: HashMap<ValueId, Prepared>,
    streams: HashMap<(PeerId, StreamId), Partial>,
    /// Gossiped entries go to the intake task, which checks them off this loop.
    intake: tokio::sync::mpsc::Sender<(PeerId, Vec<Vec<u8>>)>,
}

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    #[error(transparent)]
    Storage(#[from] crate::storage::StorageError),
    #[error("consensus decided value {0} at height {1}, but this node does not hold its block")]
    MissingBlock(ValueId, u64),
    #[error("a consensus channel closed: the engine stopped")]
    EngineStopped,
    #[error("a blocking task failed: {0}")]
    Join(String),
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App").field("height", &self.height).finish_non_exhaustive()
    }
}

impl App {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        ledger: Arc<Ledger>,
        rules: Arc<Rules>,
        vset: ValidatorSet,
        me: Address,
        signer: DojangSigner,
        mempool: Arc<Mempool>,
        metrics: Arc<Metrics>,
        clock: Arc<dyn Clock>,
        tuning: Tuning,
        intake: tokio::sync::mpsc::Sender<(PeerId, Vec<Vec<u8>>)>,
    ) -> Self {
        let genesis_hash = rules.genesis_hash;
        App {
            ctx: DojangContext,
            ledger,
            rules,
            genesis_hash,
            vset,
            me,
            signer,
            mempool,
            metrics,
            clock,
            tuning,
            height: 0,
            last_ts: 0,
            blocks: HashMap::new(),
            prepared: HashMap::new(),
            streams: HashMap::new(),
            intake,
        }
    }

    fn params(&self) -> HeightParams<DojangContext> {
        HeightParams::new(self.vset.clone(), self.tuning.timeouts, None).with_vote_extension_policy(VoteExtensionPolicy::Required)
    }

    /// The last height whose block is stored.
    pub fn stored_height(&self) -> Result<u64, AppError> {
        Ok(match self.ledger.store().state(Table::Meta, keys::META_CONSENSUS_HEIGHT)? {
            Some(v) => <[u8; 8]>::try_from(v.as_slice()).map(u64::from_be_bytes).unwrap_or(0),
            None => 0,
        })
    }

    fn stored_block(&self, h: u64) -> Result<Option<(Block, ExtendedCommitCertificate<DojangContext>)>, AppError> {
        let Some(rec) = self.ledger.store().state(Table::Blocks, &h.to_be_bytes())? else { return Ok(None) };
        let parsed = decode_record(&rec).and_then(|(b, c)| Ok((Block::decode(b)?, decode_certificate(c)?)));
        match parsed {
            Ok(x) => Ok(Some(x)),
            Err(e) => {
                tracing::error!(height = h, error = %e, "stored block is corrupt");
                Ok(None)
            }
        }
    }

    /// Runs until the engine stops. A closed channel is fatal: the engine's actors are
    /// gone and the node must not keep serving as if it were still a validator.
    pub async fn run(mut self, mut channels: Channels<DojangContext>) -> Result<(), AppError> {
        let last = self.stored_height()?;
        if let Some((b, _)) = self.stored_block(last)? {
            self.last_ts = b.header.timestamp_ms;
        }
        while let Some(msg) = channels.consensus.recv().await {
            self.handle(msg, &channels).await?;
        }
        self.mempool.fail_all();
        Err(AppError::EngineStopped)
    }

    async fn handle(&mut self, msg: AppMsg<DojangContext>, channels: &Channels<DojangContext>) -> Result<(), AppError> {
        match msg {
            AppMsg::ConsensusReady { reply } => {
                let start = self.stored_height()? + 1;
                self.height = start;
                tracing::info!(height = start, "consensus ready");
                let _ = reply.send((Height(start), self.params()));
            }
            AppMsg::StartedRound { height, round, proposer, role, reply_value } => {
                tracing::debug!(%height, %round, ?proposer, ?role, "round started");
                self.height = height.0;
                // Undecided proposals are not persisted: after a crash the round times out
                // and the next proposer proposes again (liveness only, never safety).
                let _ = reply_value.send(Vec::new());
            }
            AppMsg::GetValue { height, round, timeout, reply } => {
                let header = self.propose(height, round, timeout, channels).await?;
                let _ = reply.send(LocallyProposedValue::new(height, round, header));
            }
            AppMsg::ExtendVote { height: _, round: _, value_id, vote_extension_policy: _, reply } => {
                let ext = self.extension(value_id).await?;
                let _ = reply.send(Some(ext));
            }
            AppMsg::VerifyVoteExtensions { height: _, round: _, value_id, extensions, reply } => {
                let body = self.body_for(value_id).await?;
                let verdicts = extensions
                    .into_iter()
                    .map(|(addr, ext)| {
                        let ok = self.check_extension(&addr, &ext, body.as_ref());
                        (addr, if ok { Ok(()) } else { Err(VoteExtensionError::InvalidVoteExtension) })
                    })
                    .collect();
                let _ = reply.send(verdicts);
            }
            AppMsg::RestreamProposal { height, round, valid_round, address: _, value_id } => {
                if let Some(c) = self.blocks.get(&value_id) {
                    let block = c.block.clone();
                    self.stream(&block, height, round, valid_round, channels).await?;
                }
            }
            AppMsg::GetHistoryMinHeight { reply } => {
                let _ = reply.send(Height(1));
            }
            AppMsg::ReceivedProposalPart { from, published_by, part, reply } => {
                let value = self.received_part(published_by.unwrap_or(from), part).await?;
                let _ = reply.send(value);
            }
            AppMsg::Decided { certificate, extensions, reply } => {
                self.decided(certificate, extensions).await?;
                let _ = reply.send(());
            }
            AppMsg::Finalized { certificate, extensions: _, evidence, reply } => {
                if !evidence.is_empty() {
                    tracing::warn!(height = %certificate.height, ?evidence, "misbehaviour evidence observed");
                }
                let next = certificate.height.0 + 1;
                self.height = next;
                let _ = reply.send(Next::Start(Height(next), self.params()));
            }
            AppMsg::GetDecidedValues { range, reply } => {
                let top = self.stored_height()?;
                let mut out = Vec::new();
                let mut bytes = 0usize;
                let mut h = range.start().0.max(1);
                while h <= range.end().0.min(top) && out.len() < 64 && bytes < (64 << 20) {
                    let Some(rec) = self.ledger.store().state(Table::Blocks, &h.to_be_bytes())? else { break };
                    let Ok((b, c)) = decode_record(&rec) else { break };
                    let Ok(cert) = decode_certificate(c) else { break };
                    bytes += b.len();
                    out.push(RawDecidedValue::new(Bytes::copy_from_slice(b), cert));
                    h += 1;
                }
                let _ = reply.send(out);
            }
            AppMsg::ProcessSyncedValue { height, round, proposer, value_bytes, reply } => {
                let outcome = match Block::decode(&value_bytes) {
                    Err(e) => {
                        tracing::warn!(%height, error = %e, "synced block does not decode");
                        SyncedValueOutcome::PeerFault
                    }
                    Ok(block) if block.header.height != height.0 => SyncedValueOutcome::PeerFault,
                    Ok(block) => {
                        let header = block.header;
                        match self.check_block(block, None).await? {
                            Ok(()) => SyncedValueOutcome::Verdict(ProposedValue {
                                height,
                                round,
                                valid_round: Round::Nil,
                                proposer,
                                value: header,
                                validity: Validity::Valid,
                            }),
                            Err(reason) => {
                                tracing::warn!(%height, %reason, "synced block holds an invalid entry");
                                SyncedValueOutcome::PeerFault
                            }
                        }
                    }
                };
                let _ = reply.send(outcome);
            }
        }
        Ok(())
    }

    /// Builds this validator's block for (height, round) from the mempool and streams it.
    async fn propose(
        &mut self,
        height: Height,
        round: Round,
        timeout: Duration,
        channels: &Channels<DojangContext>,
    ) -> Result<BlockHeader, AppError> {
        // Wait a little for entries, so an idle chain does not spin through empty blocks.
        if self.mempool.is_empty() {
            let wait = self.tuning.block_wait.min(timeout / 3);
            let _ = tokio::time::timeout(wait, self.mempool.notify.notified()).await;
        }
        let ts = self.clock.now_ms().max(self.last_ts);
        let skew = self.rules.genesis.params.max_clock_skew_ms;
        let candidates = if self.tuning.misbehaviour == Misbehaviour::Censor {
            Vec::new()
        } else {
            self.mempool.select(self.tuning.max_block_entries, self.tuning.max_block_bytes, ts, skew)
        };
        let mut entries: Vec<Vec<u8>> = candidates.iter().map(|c| c.encoded.clone()).collect();
        let mut forged_block = false;
        if self.tuning.misbehaviour == Misbehaviour::ForgeEntry
            && let Some(first) = entries.first().cloned()
        {
            forged_block = true;
            // Same author and nonce, one payload byte changed: the signature no longer covers it.
            let mut forged = first;
            if let Some(b) = forged.last_mut() {
                *b ^= 1;
            }
            entries.push(forged);
            tracing::warn!("test misbehaviour: proposing a block with a forged entry");
        }
        let header = BlockHeader {
            height: height.0,
            timestamp_ms: ts,
            proposer: self.me,
            count: u32::try_from(entries.len()).unwrap_or(u32::MAX),
            entries_hash: entries_hash(entries.iter().map(Vec::as_slice)),
        };
        let id = header.id();
        let block = Block { header, entries };
        self.persist_pending(&id, &block).await?;
        self.stream(&block, height, round, Round::Nil, channels).await?;
        // Our own entries passed admission; a forged block keeps no candidates so that
        // this node, too, refuses to prepare it.
        let cands = if forged_block { None } else { Some(candidates) };
        self.blocks.insert(id, Checked { block, candidates: cands });
        tracing::debug!(%height, %round, entries = header.count, "proposed");
        Ok(header)
    }

    async fn stream(
        &self,
        block: &Block,
        height: Height,
        round: Round,
        valid_round: Round,
        channels: &Channels<DojangContext>,
    ) -> Result<(), AppError> {
        let mut sid = Vec::with_capacity(16);
        sid.extend_from_slice(&height.0.to_be_bytes());
        sid.extend_from_slice(&(round.as_i64() as u64).to_be_bytes());
        let stream_id = StreamId::new(Bytes::from(sid));
        let mut parts = vec![ProposalPart::Init { height, round, valid_round, proposer: self.me, header: block.header }];
        let mut chunk = Vec::new();
        let mut chunk_bytes = 0usize;
        for e in &block.entries {
            if chunk_bytes + e.len() > PART_BYTES && !chunk.is_empty() {
                parts.push(ProposalPart::Data(std::mem::take(&mut chunk)));
                chunk_bytes = 0;
            }
            chunk_bytes += e.len() + 4;
            chunk.push(e.clone());
        }
        if !chunk.is_empty() {
            parts.push(ProposalPart::Data(chunk));
        }
        let sig = self.signer.sign(&stream_bytes(&self.genesis_hash, height, round, &block.header.id()));
        parts.push(ProposalPart::Fin(sig));
        let mut seq = 0u64;
        for p in parts {
            let msg = StreamMessage::new(stream_id.clone(), seq, StreamContent::Data(p));
            channels.network.send(NetworkMsg::PublishProposalPart(msg)).await.map_err(|_| AppError::EngineStopped)?;
            seq += 1;
        }
        let fin = StreamMessage::new(stream_id, seq, StreamContent::Fin);
        channels.network.send(NetworkMsg::PublishProposalPart(fin)).await.map_err(|_| AppError::EngineStopped)?;
        Ok(())
    }

    /// Collects one part; when a stream is complete, checks it and answers with the value.
    async fn received_part(
        &mut self,
        peer: PeerId,
        part: StreamMessage<ProposalPart>,
    ) -> Result<Option<ProposedValue<DojangContext>>, AppError> {
        if let StreamContent::Data(ProposalPart::Mempool(entries)) = part.content {
            // Checked by the intake task; when it is behind, the batch is dropped (the
            // origin still proposes its own entries).
            if self.intake.try_send((peer, entries)).is_err() {
                tracing::debug!(%peer, "gossip intake busy: batch dropped");
            }
            return Ok(None);
        }
        let key = (peer, part.stream_id.clone());
        if !self.streams.contains_key(&key) && self.streams.len() >= MAX_STREAMS {
            // Drop streams for heights already decided, then refuse if still full.
            let h = self.height;
            self.streams.retain(|_, p| p.height >= h);
            if self.streams.len() >= MAX_STREAMS {
                return Ok(None);
            }
        }
        let p = self.streams.entry(key.clone()).or_default();
        if part.sequence as usize >= MAX_PARTS {
            self.streams.remove(&key);
            return Ok(None);
        }
        match part.content {
            StreamContent::Fin => p.fin = Some(part.sequence),
            StreamContent::Data(data) => {
                let size = match &data {
                    ProposalPart::Data(es) => es.iter().map(|e| e.len() + 4).sum(),
                    ProposalPart::Init { height, .. } => {
                        p.height = height.0;
                        128
                    }
                    ProposalPart::Fin(_) => 64,
                    ProposalPart::Mempool(_) => return Ok(None),
                };
                p.bytes += size;
                if p.bytes > self.tuning.max_block_bytes.saturating_mul(2) {
                    self.streams.remove(&key);
                    return Ok(None);
                }
                p.parts.insert(part.sequence, Some(data));
            }
        }
        let complete = p.fin.is_some_and(|f| p.parts.len() as u64 == f && p.parts.keys().copied().eq(0..f));
        if !complete {
            return Ok(None);
        }
        let Some(p) = self.streams.remove(&key) else { return Ok(None) };
        let mut it = p.parts.into_values().flatten();
        let Some(ProposalPart::Init { height, round, valid_round, proposer, header }) = it.next() else { return Ok(None) };
        let mut entries = Vec::new();
        let mut fin = None;
        for part in it {
            match part {
                ProposalPart::Data(es) => entries.extend(es),
                ProposalPart::Fin(sig) => fin = Some(sig),
                ProposalPart::Init { .. } | ProposalPart::Mempool(_) => return Ok(None),
            }
        }
        let Some(sig) = fin else { return Ok(None) };
        if height.0 < self.height {
            return Ok(None);
        }
        // Only the round's proposer may stream its value, and it signs the stream.
        let expected = self.ctx.select_proposer(&self.vset, height, round).address;
        let pk = PublicKey(proposer.0);
        if proposer != expected || !verify(&pk, &stream_bytes(&self.genesis_hash, height, round, &header.id()), &sig) {
            tracing::warn!(%height, %round, ?proposer, "proposal stream not signed by the round's proposer; ignored");
            return Ok(None);
        }
        let block = Block { header, entries };
        let id = header.id();
        let verdict = if self.blocks.get(&id).is_some_and(|c| c.candidates.is_some() || self.prepared.contains_key(&id)) {
            Ok(())
        } else {
            self.check_block(block, Some(self.clock.now_ms())).await?
        };
        let validity = match verdict {
            Ok(()) => Validity::Valid,
            Err(reason) => {
                tracing::warn!(%height, %round, ?proposer, %reason, "invalid proposal: voting nil");
                Validity::Invalid
            }
        };
        Ok(Some(ProposedValue { height, round, valid_round, proposer, value: header, validity }))
    }

    /// Checks a block's structure and every entry (decode, signature, authorisation), the
    /// same rules as admission, with the block's timestamp as the clock; `now` also bounds
    /// the proposer's clock for live proposals. On success the block is kept for the
    /// decision; Err carries the reason.
    async fn check_block(&mut self, block: Block, now: Option<u64>) -> Result<Result<(), String>, AppError> {
        if let Err(e) = block.check() {
            return Ok(Err(e.to_string()));
        }
        let ts = block.header.timestamp_ms;
        if let Some(now) = now {
            let skew = self.rules.genesis.params.max_clock_skew_ms;
            if ts > now.saturating_add(skew) || (block.header.height == self.stored_height()? + 1 && ts < self.last_ts) {
                return Ok(Err(format!("block time {ts} is off (local clock {now}, previous block {})", self.last_ts)));
            }
        }
        if block.entries.len() > self.tuning.max_block_entries.saturating_mul(2) {
            return Ok(Err(format!("{} entries is over the block limit", block.entries.len())));
        }
        let rules = self.rules.clone();
        let mempool = self.mempool.clone();
        // The block travels to the blocking thread and back rather than being copied.
        let (block, res) = tokio::task::spawn_blocking(move || {
            let hashes: Vec<_> = block.entries.iter().map(|e| dojang_core::entry::leaf_hash(e)).collect();
            let known = mempool.checked(&hashes);
            let res = check_entries(&rules, &block.entries, ts, known);
            (block, res)
        })
        .await
        .map_err(|e| AppError::Join(e.to_string()))?;
        match res {
            Ok(cands) => {
                let id = block.header.id();
                self.persist_pending(&id, &block).await?;
                self.blocks.insert(id, Checked { block, candidates: Some(cands) });
                Ok(Ok(()))
            }
            Err(e) => Ok(Err(e)),
        }
    }

    /// Stores a block this node proposed or accepted, before it votes for it.
    async fn persist_pending(&self, id: &ValueId, block: &Block) -> Result<(), AppError> {
        let put = Put { table: Table::Blocks, key: pending_key(id), value: block.encode() };
        let store = self.ledger.store().clone();
        tokio::task::spawn_blocking(move || store.backend().write(vec![put])).await.map_err(|e| AppError::Join(e.to_string()))??;
        Ok(())
    }

    /// Reloads (and re-checks) a block stored by [`App::persist_pending`] before a crash.
    async fn load_pending(&mut self, id: &ValueId) -> Result<(), AppError> {
        if self.blocks.contains_key(id) {
            return Ok(());
        }
        let Some(bytes) = self.ledger.store().state(Table::Blocks, &pending_key(id))? else { return Ok(()) };
        let Ok(block) = Block::decode(&bytes) else { return Ok(()) };
        if block.header.id() != *id {
            return Ok(());
        }
        let rules = self.rules.clone();
        let (block, res) = tokio::task::spawn_blocking(move || {
            let res = check_entries(&rules, &block.entries, block.header.timestamp_ms, Vec::new());
            (block, res)
        })
        .await
        .map_err(|e| AppError::Join(e.to_string()))?;
        if let Ok(cands) = res {
            self.blocks.insert(*id, Checked { block, candidates: Some(cands) });
        }
        Ok(())
    }

    /// Prepares (once) the ledger batch of a held block; None when the block is unknown.
    async fn prepare(&mut self, id: ValueId) -> Result<Option<&Prepared>, AppError> {
        if !self.prepared.contains_key(&id) {
            self.load_pending(&id).await?;
            let Some(c) = self.blocks.get_mut(&id) else { return Ok(None) };
            let Some(cands) = c.candidates.take() else { return Ok(None) };
            let ts = c.block.header.timestamp_ms;
            let ledger = self.ledger.clone();
            let p = tokio::task::spawn_blocking(move || ledger.prepare(cands, ts)).await.map_err(|e| AppError::Join(e.to_string()))??;
            self.prepared.insert(id, p);
        }
        Ok(self.prepared.get(&id))
    }

    /// The checkpoint body a block yields: Some(None) when it accepts no entry (no new
    /// checkpoint), None when this node does not hold the block.
    async fn body_for(&mut self, id: ValueId) -> Result<Option<Option<String>>, AppError> {
        Ok(self.prepare(id).await?.map(|p| p.checkpoint.as_ref().map(Checkpoint::body)))
    }

    /// This validator's vote extension: its note signature over the checkpoint body
    /// (empty when the block yields no checkpoint).
    async fn extension(&mut self, id: ValueId) -> Result<Vec<u8>, AppError> {
        let key = self.ledger.signer().key.clone();
        Ok(match self.body_for(id).await? {
            Some(Some(body)) => ed25519_dalek::Signer::sign(&key, body.as_bytes()).to_bytes().to_vec(),
            _ => Vec::new(),
        })
    }

    /// A peer's extension is its note signature over the body this node computed. When the
    /// block is not held yet the signature cannot be checked here; it is checked against
    /// the body when the block commits, and dropped there if wrong.
    fn check_extension(&self, addr: &Address, ext: &[u8], body: Option<&Option<String>>) -> bool {
        if self.vset.by_address(addr).is_none() {
            return false;
        }
        match body {
            None => ext.is_empty() || ext.len() == 64,
            Some(None) => ext.is_empty(),
            Some(Some(body)) => <[u8; 64]>::try_from(ext).is_ok_and(|s| verify(&PublicKey(addr.0), body.as_bytes(), &Signature(s))),
        }
    }

    async fn decided(
        &mut self,
        certificate: CommitCertificate<DojangContext>,
        extensions: VoteExtensions<DojangContext>,
    ) -> Result<(), AppError> {
        let h = certificate.height.0;
        let id = certificate.value_id;
        if h <= self.stored_height()? {
            return Ok(());
        }
        // Preparing loads the block if only its pending copy survived a crash.
        if self.prepare(id).await?.is_none() {
            return Err(AppError::MissingBlock(id, h));
        }
        let Some(prepared) = self.prepared.remove(&id) else { return Err(AppError::MissingBlock(id, h)) };
        // Taken, not copied: every block at this height is dropped after the commit anyway.
        let Some(Checked { block, .. }) = self.blocks.remove(&id) else { return Err(AppError::MissingBlock(id, h)) };
        let mut sigs = Vec::new();
        if let Some(cp) = &prepared.checkpoint {
            let exts = extensions.extensions.iter().map(|(addr, ext)| (addr, ext.message.as_slice()));
            sigs = super::certificate::checkpoint_signatures(&self.vset, &cp.body(), h, exts);
            let me = self.ledger.signer();
            sigs.push(cp.sign(&me.id, &me.key));
        }
        let ext_cert = ExtendedCommitCertificate::from_commit_certificate_and_extensions(certificate, extensions);
        let record = encode_record(&block.encode(), &encode_certificate(&ext_cert));
        let extra = vec![
            Put { table: Table::Blocks, key: h.to_be_bytes().to_vec(), value: record },
            Put { table: Table::Meta, key: keys::META_CONSENSUS_HEIGHT.to_vec(), value: h.to_be_bytes().to_vec() },
            // The backend has no delete: an empty value retires the pending copy.
            Put { table: Table::Blocks, key: pending_key(&id), value: Vec::new() },
        ];
        let ledger = self.ledger.clone();
        let started = std::time::Instant::now();
        let ts = block.header.timestamp_ms;
        let (outcomes, hashes) = tokio::task::spawn_blocking(move || {
            let outcomes = ledger.commit_prepared(prepared, sigs, extra)?;
            let hashes: Vec<Hash> = block.entries.iter().map(|e| dojang_core::entry::leaf_hash(e)).collect();
            Ok::<_, LedgerError>((outcomes, hashes))
        })
        .await
        .map_err(|e| AppError::Join(e.to_string()))??;
        self.metrics.record_batch(&outcomes, started.elapsed());
        self.last_ts = ts;
        tracing::debug!(height = h, entries = outcomes.len(), size = self.ledger.size(), "committed");
        // The block's entries leave every validator's pool (whoever proposed it); the
        // submitters waiting on them here are answered with the ledger's outcomes.
        self.mempool.committed(hashes.iter().zip(&outcomes));
        let keep_height = h + 1;
        self.blocks.retain(|_, c| c.block.header.height >= keep_height);
        self.prepared.clear();
        self.streams.retain(|_, p| p.height >= keep_height);
        self.height = keep_height;
        Ok(())
    }
}

/// Where a proposed block waits until decided (`specs/consensus.md` §6): Malachite's WAL
/// keeps the header and the votes, so after a crash the engine may decide a value whose
/// entries only this record still holds. Emptied when the block commits.
fn pending_key(id: &ValueId) -> Vec<u8> {
    [&b"p"[..], &id.0].concat()
}

/// Decode, batch-verify (on two threads for large blocks) and authorise every entry of a
/// block. Any failure makes the whole block invalid. `known[i]`, when present, is entry
/// `i` as this validator's pool already checked it (the same bytes: equal leaf hash), so
/// only its time is checked against the block's.
pub(super) fn check_entries(rules: &Rules, entries: &[Vec<u8>], ts: u64, known: Vec<Option<Candidate>>) -> Result<Vec<Candidate>, String> {
    let skew = rules.genesis.params.max_clock_skew_ms;
    let mut slots: Vec<Option<Candidate>> = Vec::with_capacity(entries.len());
    let mut fresh = Vec::new();
    let mut fresh_at = Vec::new();
    let mut known = known.into_iter();
    for (i, e) in entries.iter().enumerate() {
        match known.next().flatten() {
            Some(c) if c.encoded == *e => {
                if c.entry.timestamp_ms.abs_diff(ts) > skew {
                    return Err(format!(
                        "entry {i}: {}",
                        AdmissionError::ClockSkew { timestamp_ms: c.entry.timestamp_ms, now_ms: ts, max_skew_ms: skew }
                    ));
                }
                slots.push(Some(c));
            }
            _ => {
                let c = rules.decode(e.clone(), ts, crate::writepath::author_key).map_err(|e| format!("entry {i}: {e}"))?;
                fresh.push(c);
                fresh_at.push(i);
                slots.push(None);
            }
        }
    }
    let verdicts = verify_parallel(rules, &fresh);
    for ((mut c, v), i) in fresh.into_iter().zip(verdicts).zip(fresh_at) {
        v.map_err(|e| format!("entry {i}: {e}"))?;
        c.payload = rules.authorize(&c.entry).map_err(|e| format!("entry {i}: {e}"))?;
        if let Some(slot) = slots.get_mut(i) {
            *slot = Some(c);
        }
    }
    slots.into_iter().enumerate().map(|(i, c)| c.ok_or_else(|| format!("entry {i}: not checked"))).collect()
}
