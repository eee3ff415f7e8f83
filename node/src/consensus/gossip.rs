//! Mempool gossip between validators (`specs/consensus.md` §3.2). Malachite has no
//! mempool and its app channel offers one outbound network message, a proposal part; so
//! entries travel as `ProposalPart::Mempool` messages on the proposal-parts channel, which
//! reaches every connected validator and nobody else (permissioned peers, genesis-salted
//! topic). They are never part of a proposal: the application takes them out before its
//! stream assembly.
//!
//! - [`publish`]: entries new to this validator's pool (from its API) go out in batches.
//! - [`intake`]: a peer's batch is treated as adversarial — decoded, signature-checked in
//!   batch, authorised, stale nonces dropped — before it joins the pool.

use std::sync::Arc;

use arc_malachitebft_app_channel::NetworkMsg;
use arc_malachitebft_app_channel::app::streaming::{StreamContent, StreamId, StreamMessage};
use arc_malachitebft_app_channel::app::types::PeerId;
use bytes::Bytes;
use dojang_core::admission::{Candidate, Rules};
use tokio::sync::mpsc;

use super::mempool::Mempool;
use super::types::{Address, DojangContext, ProposalPart};
use crate::clock::Clock;
use crate::ledger::Ledger;
use crate::writepath::{CommittedNonces, verify_parallel};

/// Most entry bytes in one gossip message: under the 16 MiB pub-sub message limit set in
/// `engine_config`, and above the entry bytes of the largest default HTTP request (16 MiB
/// of JSON with base64 entries is at most 12 MiB of entries), so a submission through the
/// API always travels whole.
pub const GOSSIP_BYTES: usize = 14 << 20;
/// Batches waiting to be published or checked; beyond this gossip is dropped (the origin
/// still proposes its own entries, so a dropped batch costs latency, never an entry).
pub const GOSSIP_QUEUE: usize = 256;

/// Publishes this validator's new entries to the other validators. Each submission goes
/// out whole in one message (several queued submissions may share one): an author's later
/// nonce committed before an earlier one would get the earlier one refused as a replay, so
/// a submission's order must not depend on how the transport orders separate messages.
/// Only a submission larger than [`GOSSIP_BYTES`] is split.
pub async fn publish(network: mpsc::Sender<NetworkMsg<DojangContext>>, mut rx: mpsc::Receiver<Vec<Vec<u8>>>, me: Address) {
    let mut counter = 0u64;
    let size = |b: &[Vec<u8>]| b.iter().map(|e| e.len() + 4).sum::<usize>();
    let mut carry: Option<Vec<Vec<u8>>> = None;
    loop {
        let first = match carry.take() {
            Some(c) => c,
            None => match rx.recv().await {
                Some(f) => f,
                None => return,
            },
        };
        let mut message = first;
        while size(&message) < GOSSIP_BYTES {
            match rx.try_recv() {
                Ok(next) if size(&message) + size(&next) <= GOSSIP_BYTES => message.extend(next),
                Ok(next) => {
                    carry = Some(next);
                    break;
                }
                Err(_) => break,
            }
        }
        let mut pieces = Vec::new();
        let mut piece = Vec::new();
        let mut bytes = 0usize;
        for e in message {
            if bytes + e.len() + 4 > GOSSIP_BYTES && !piece.is_empty() {
                pieces.push(std::mem::take(&mut piece));
                bytes = 0;
            }
            bytes += e.len() + 4;
            piece.push(e);
        }
        if !piece.is_empty() {
            pieces.push(piece);
        }
        for entries in pieces {
            // Stream ids of gossip start with "m" and never collide with a proposal's
            // (height, round) id, which is 16 bytes long.
            let mut sid = Vec::with_capacity(17);
            sid.push(b'm');
            sid.extend_from_slice(me.0.get(..8).unwrap_or_default());
            sid.extend_from_slice(&counter.to_be_bytes());
            counter = counter.wrapping_add(1);
            let msg = StreamMessage::new(StreamId::new(Bytes::from(sid)), 0, StreamContent::Data(ProposalPart::Mempool(entries)));
            if network.send(NetworkMsg::PublishProposalPart(msg)).await.is_err() {
                return;
            }
        }
    }
}

/// Checks gossiped batches and adds what passes to the pool.
pub async fn intake(
    rules: Arc<Rules>,
    ledger: Arc<Ledger>,
    mempool: Arc<Mempool>,
    clock: Arc<dyn Clock>,
    mut rx: mpsc::Receiver<(PeerId, Vec<Vec<u8>>)>,
) {
    while let Some((peer, entries)) = rx.recv().await {
        let fresh = mempool.unknown(entries);
        if fresh.is_empty() {
            continue;
        }
        let (rules, ledger, now) = (rules.clone(), ledger.clone(), clock.now_ms());
        let Ok((good, refused)) = tokio::task::spawn_blocking(move || check_gossip(&rules, &ledger, fresh, now)).await else { return };
        if let Some((n, reason)) = refused {
            tracing::warn!(%peer, refused = n, %reason, "gossiped entries refused");
        }
        let offered = mempool.offer(good);
        if offered.dropped_full > 0 {
            tracing::debug!(%peer, dropped = offered.dropped_full, "mempool full: gossiped entries dropped");
        }
    }
}

/// The admission checks of the write path (`specs/ledger.md` §6.1-§6.3) on entries from a
/// peer, plus dropping entries whose nonce the ledger has already passed. Returns the good
/// candidates and, if any were refused, how many and the first reason.
fn check_gossip(rules: &Rules, ledger: &Ledger, entries: Vec<Vec<u8>>, now: u64) -> (Vec<Candidate>, Option<(usize, String)>) {
    let mut refused = 0usize;
    let mut first: Option<String> = None;
    let mut note = |e: &dyn std::fmt::Display| {
        refused += 1;
        if first.is_none() {
            first = Some(e.to_string());
        }
    };
    let mut cands = Vec::with_capacity(entries.len());
    for e in entries {
        match rules.decode(e, now, crate::writepath::author_key) {
            Ok(c) => cands.push(c),
            Err(e) => note(&e),
        }
    }
    let verdicts = verify_parallel(rules, &cands);
    let mut nonces = CommittedNonces::new(ledger);
    let mut good = Vec::with_capacity(cands.len());
    for (mut c, v) in cands.into_iter().zip(verdicts) {
        if let Err(e) = v {
            note(&e);
            continue;
        }
        match rules.authorize(&c.entry) {
            Ok(p) => c.payload = p,
            Err(e) => {
                note(&e);
                continue;
            }
        }
        if nonces.check(&c.entry).is_err() {
            // Already committed (a late copy) or replayed: not an error of the peer's.
            continue;
        }
        good.push(c);
    }
    (good, first.map(|r| (refused, r)))
}
