//! A citizen's access history as a node serves it, and its offline verification
//! (`specs/access-log.md` §15): every event of every (writer key, subject) chain with an
//! inclusion proof and an access-map proof, and for each chain a map proof that the next
//! slot is empty — all against one quorum-signed checkpoint.
//!
//! The verifier never takes a tag from the node: it derives each slot's tag from its own
//! key (`access::SubjectKey`), so a node cannot substitute, reorder, inject or omit an
//! event without a proof failing. Every field here is adversarial input.

use std::collections::{BTreeMap, BTreeSet};

use base64::Engine as _;
use rand_core::{CryptoRng, RngCore};
use serde::{Deserialize, Serialize};

use crate::access::{AccessDetails, AccessError, AccessEvent, GrantNode, SubjectKey, tag_from_secret};
use crate::checkpoint::{Checkpoint, CheckpointError, SignedCheckpoint, VerifiedCheckpoint};
use crate::entry::{self, Entry, EntryError, Kind};
use crate::genesis::Genesis;
use crate::hash::Hash;
use crate::merkle::{self, Blake3Hasher, VerifyError};
use crate::signature;
use crate::sparse_map::{self, MapProof};

/// The checkpoint extension line that carries the access-map root: `access-map <hex>`
/// (`specs/access-log.md` §14.3, `specs/ledger.md` §5.1).
pub const MAP_EXTENSION: &str = "access-map";

/// Most events a history bundle may carry, over all chains; bounds the verifier's work.
pub const MAX_HISTORY_EVENTS: usize = 1 << 20;

/// The map value for an event: BLAKE3 derive_key over its leaf index and leaf hash
/// (§14.2), so a map proof pins the exact entry and its position.
pub fn map_value(index: u64, leaf_hash: &Hash) -> Hash {
    let mut h = blake3::Hasher::new_derive_key("dojang access map value v1");
    h.update(&index.to_be_bytes());
    h.update(&leaf_hash.0);
    Hash(*h.finalize().as_bytes())
}

/// The extension line for a map root.
pub fn map_extension(root: &Hash) -> String {
    format!("{MAP_EXTENSION} {}", root.to_hex())
}

/// The access-map root a checkpoint commits to: its one `access-map` extension line.
pub fn map_root(cp: &Checkpoint) -> Result<Hash, AuditError> {
    let mut found = None;
    for line in &cp.extensions {
        if let Some(hex) = line.strip_prefix(MAP_EXTENSION).and_then(|r| r.strip_prefix(' ')) {
            if found.is_some() {
                return Err(AuditError::MapRoot("two access-map lines".into()));
            }
            found = Some(Hash::from_hex(hex).map_err(|e| AuditError::MapRoot(format!("{hex:?}: {e}")))?);
        }
    }
    found.ok_or_else(|| AuditError::MapRoot("the checkpoint has no access-map line".into()))
}

/// The request header carrying a subject's grants (§16.3): base64url of the JSON list of
/// [`ChainGrant`]s. A header, not a query parameter, so slot secrets stay out of access logs.
pub const GRANT_HEADER: &str = "dojang-audit-grant";
/// Largest slot range one grant may open: a node derives at most this many tags per grant.
pub const MAX_GRANT_SLOTS: u64 = 1 << 16;
/// Most grants in one request.
pub const MAX_GRANTS: usize = 64;

/// One grant: the GGM seed of an aligned range of a chain's slots (§4.2), handed to the
/// node answering a history or feed request so it can find the subject's events without
/// being able to derive any slot outside the range.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChainGrant {
    pub writer: String,
    /// GGM depth: the range has 2^(32 - depth) slots.
    pub depth: u8,
    /// Position at that depth: the range starts at slot `index << (32 - depth)`.
    pub index: u32,
    /// The node's seed, hex.
    pub seed: String,
}

impl ChainGrant {
    pub fn new(writer: &str, node: &GrantNode) -> Self {
        ChainGrant { writer: writer.to_owned(), depth: node.depth, index: node.index, seed: hex::encode(node.seed) }
    }

    /// The first slot and the tags of every slot of the range, for `subject`.
    pub fn tags(&self, subject: &str) -> Result<(u32, Vec<[u8; 32]>), AuditError> {
        let bad = |reason: String| AuditError::Grant(reason);
        let seed: [u8; 32] =
            hex::decode(&self.seed).ok().and_then(|s| s.try_into().ok()).ok_or_else(|| bad("seed is not 64 hex digits".into()))?;
        if self.depth > 32 {
            return Err(bad(format!("depth {} is above 32", self.depth)));
        }
        let width = 1u64 << (32 - u32::from(self.depth));
        if width > MAX_GRANT_SLOTS {
            return Err(bad(format!("a grant at depth {} opens {width} slots, over the limit of {MAX_GRANT_SLOTS}", self.depth)));
        }
        if u64::from(self.index) >= 1u64 << self.depth {
            return Err(bad(format!("index {} does not exist at depth {}", self.index, self.depth)));
        }
        let node = GrantNode { depth: self.depth, index: self.index, seed };
        let start = u64::from(self.index) * width;
        let mut tags = Vec::with_capacity(width as usize);
        for j in start..start + width {
            let slot = u32::try_from(j).map_err(|_| bad("slot beyond 2^32".into()))?;
            let secret = node.slot_secret(slot).ok_or_else(|| bad(format!("slot {slot} is outside the grant")))?;
            tags.push(tag_from_secret(&secret, subject));
        }
        Ok((u32::try_from(start).unwrap_or(u32::MAX), tags))
    }
}

/// Encodes grants for the [`GRANT_HEADER`].
pub fn encode_grants(grants: &[ChainGrant]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(serde_json::to_vec(grants).unwrap_or_default())
}

/// Decodes the [`GRANT_HEADER`], bounding its size and count.
pub fn decode_grants(text: &str) -> Result<Vec<ChainGrant>, AuditError> {
    if text.len() > 64 * 1024 {
        return Err(AuditError::Grant(format!("grant header is {} bytes, over 64 KiB", text.len())));
    }
    let json = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(text.trim())
        .map_err(|_| AuditError::Grant("grant header is not base64url".into()))?;
    let grants: Vec<ChainGrant> = serde_json::from_slice(&json).map_err(|e| AuditError::Grant(format!("grant json: {e}")))?;
    if grants.len() > MAX_GRANTS {
        return Err(AuditError::Grant(format!("{} grants, over the limit of {MAX_GRANTS}", grants.len())));
    }
    Ok(grants)
}

/// One event of a chain, proven (§15.1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventProof {
    pub index: u64,
    /// Canonical entry bytes, standard base64.
    pub entry: String,
    /// RFC 9162 audit path of the entry against the checkpoint.
    pub inclusion: Vec<Hash>,
    /// Map proof: the slot's tag maps to `map_value(index, leaf hash)`.
    pub map: MapProof,
}

/// The events of one (writer key, subject) chain, slots `start..start+events.len()`,
/// and the proof that slot `start + events.len()` is empty.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChainProof {
    /// The agency writer key id (`did:key:…#…`) that records this chain.
    pub writer: String,
    pub start: u32,
    pub events: Vec<EventProof>,
    /// Non-membership of the next slot's tag.
    pub next: MapProof,
}

/// What `GET /v1/audit/history` returns (§15.1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HistoryBundle {
    /// The subject DID the history is for.
    pub subject: String,
    /// The quorum checkpoint every proof verifies against, signed-note text.
    pub checkpoint: String,
    /// One chain per writer key of the genesis validators.
    pub chains: Vec<ChainProof>,
}

/// A verified, still sealed event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProvenEvent {
    pub writer: String,
    pub slot: u32,
    pub index: u64,
    pub leaf_hash: Hash,
    /// The entry timestamp: when the agency recorded the event.
    pub recorded_ms: u64,
    pub event: AccessEvent,
}

/// A history whose completeness and inclusion verified (§15.2).
#[derive(Debug, Clone)]
pub struct VerifiedHistory {
    pub checkpoint: VerifiedCheckpoint,
    pub map_root: Hash,
    /// Events of all chains, ordered by ledger index.
    pub events: Vec<ProvenEvent>,
    /// Number of events per writer key.
    pub counts: BTreeMap<String, u32>,
}

/// An opened (decrypted and cross-checked) event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditedEvent {
    pub writer: String,
    pub slot: u32,
    pub index: u64,
    pub recorded_ms: u64,
    pub details: AccessDetails,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuditError {
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    #[error("bad grant: {0}")]
    Grant(String),
    #[error("access-map root: {0}")]
    MapRoot(String),
    #[error("history is for {found:?}, not {expected:?}")]
    WrongSubject { found: String, expected: String },
    #[error("history has no chain for writer key {0:?}: events recorded with it could be hidden")]
    MissingChain(String),
    #[error("history has a chain for {0:?}, which is not a genesis writer key or appears twice")]
    UnexpectedChain(String),
    #[error("chain {writer:?} starts at slot {start}, not 0: a full history starts at the first slot")]
    NotFromStart { writer: String, start: u32 },
    #[error("history carries more than {MAX_HISTORY_EVENTS} events")]
    TooManyEvents,
    #[error("chain {writer:?} slot {slot}: {reason}")]
    Event { writer: String, slot: u32, reason: String },
    #[error("chain {writer:?}: slot {slot} is not proven empty, so later events may be hidden: {reason}")]
    NotComplete { writer: String, slot: u32, reason: String },
    #[error("an entry signature does not verify (chain {writer:?} slot {slot})")]
    Signature { writer: String, slot: u32 },
    #[error(transparent)]
    Access(#[from] AccessError),
    #[error("event at index {index} opens to details for slot {found}, but sits in slot {expected}")]
    SlotMismatch { index: u64, found: u32, expected: u32 },
    #[error("event at index {index} names writer {found:?}, but was signed by {expected:?}")]
    WriterMismatch { index: u64, found: String, expected: String },
    #[error("the new history is at tree size {later}, older than the saved one at {earlier}")]
    Older { earlier: u64, later: u64 },
    #[error("the new checkpoint does not extend the saved one: {0}")]
    Fork(String),
    #[error("chain {writer:?} slot {slot} held entry {earlier} in the saved history but {later} now: history was rewritten")]
    Rewritten { writer: String, slot: u32, earlier: String, later: String },
}

impl AuditError {
    pub fn slug(&self) -> &'static str {
        match self {
            AuditError::Access(e) => e.slug(),
            _ => "invalid-history",
        }
    }
}

/// A signature to check in the final batch: key, message, signature, and where it came
/// from (chain writer, slot) for the error message.
type PendingSignature = ([u8; 32], Vec<u8>, [u8; 64], String, u32);

/// Every writer key of the genesis validators, in genesis order: the chains a complete
/// history must cover.
pub fn writer_keys(genesis: &Genesis) -> Vec<String> {
    let mut seen = BTreeSet::new();
    genesis.validators.iter().flat_map(|v| v.writer_keys.iter()).filter(|k| seen.insert(k.as_str())).cloned().collect()
}

/// Verifies a history bundle for the holder of `subject` (§15.2): the checkpoint's
/// quorum, one chain per genesis writer key starting at slot 0, and for every slot the
/// tag *derived from the subject's own key*, the entry's signature (batched with `rng`),
/// its inclusion, the map binding tag → (index, leaf hash), and the next slot's absence.
/// Does not decrypt; see [`VerifiedHistory::open`].
pub fn verify_history(
    genesis: &Genesis,
    bundle: &HistoryBundle,
    subject: &SubjectKey,
    rng: impl RngCore + CryptoRng,
) -> Result<VerifiedHistory, AuditError> {
    if bundle.subject != subject.did() {
        return Err(AuditError::WrongSubject { found: bundle.subject.clone(), expected: subject.did().to_owned() });
    }
    let cp = SignedCheckpoint::parse(&bundle.checkpoint)?.verify(genesis)?;
    let root = map_root(&cp.checkpoint)?;
    let writers = writer_keys(genesis);
    let mut remaining: BTreeSet<&str> = writers.iter().map(String::as_str).collect();
    let total: usize = bundle.chains.iter().map(|c| c.events.len()).sum();
    if total > MAX_HISTORY_EVENTS {
        return Err(AuditError::TooManyEvents);
    }
    let genesis_hash = cp.checkpoint.genesis_hash;
    let mut events = Vec::with_capacity(total);
    let mut counts = BTreeMap::new();
    // Signatures are checked in one batch at the end.
    let mut sigs: Vec<PendingSignature> = Vec::with_capacity(total);
    for chain in &bundle.chains {
        if !remaining.remove(chain.writer.as_str()) {
            return Err(AuditError::UnexpectedChain(chain.writer.chars().take(200).collect()));
        }
        if chain.start != 0 {
            return Err(AuditError::NotFromStart { writer: chain.writer.clone(), start: chain.start });
        }
        let pair = subject.pair_key(&chain.writer)?;
        let writer_key = entry::author_key(&chain.writer).map_err(|e| AuditError::Event {
            writer: chain.writer.clone(),
            slot: 0,
            reason: format!("writer key: {e}"),
        })?;
        let mut slot: u32 = 0;
        for ep in &chain.events {
            let fail = |reason: String| AuditError::Event { writer: chain.writer.clone(), slot, reason };
            let tag = pair.tag(slot, subject.did());
            let bytes = base64::engine::general_purpose::STANDARD.decode(&ep.entry).map_err(|_| fail("entry is not base64".into()))?;
            let e = Entry::decode(&bytes).map_err(|e: EntryError| fail(e.to_string()))?;
            if e.kind != Kind::AccessEvent {
                return Err(fail(format!("entry at index {} is a {}, not an access event", ep.index, e.kind.name())));
            }
            if e.author != chain.writer {
                return Err(fail(format!("entry at index {} is signed by {:?}, not the chain's writer", ep.index, e.author)));
            }
            let leaf = entry::leaf_hash(&bytes);
            merkle::verify_inclusion::<Blake3Hasher>(&leaf, ep.index, cp.checkpoint.size, &ep.inclusion, &cp.checkpoint.root)
                .map_err(|e: VerifyError| fail(format!("inclusion: {e}")))?;
            let event = AccessEvent::decode(&e.payload).map_err(|e| fail(format!("payload: {e}")))?;
            if event.tag != tag {
                return Err(fail(format!("entry at index {} carries another slot's or subject's tag", ep.index)));
            }
            sparse_map::verify_membership(&root, &tag, &map_value(ep.index, &leaf), &ep.map)
                .map_err(|e| fail(format!("map proof: {e}")))?;
            let body = bytes.get(..bytes.len().saturating_sub(64)).unwrap_or_default();
            sigs.push((writer_key.to_bytes(), entry::signing_input(&genesis_hash, body), e.signature, chain.writer.clone(), slot));
            events.push(ProvenEvent {
                writer: chain.writer.clone(),
                slot,
                index: ep.index,
                leaf_hash: leaf,
                recorded_ms: e.timestamp_ms,
                event,
            });
            slot = slot.checked_add(1).ok_or_else(|| fail("slot overflow".into()))?;
        }
        let next = pair.tag(slot, subject.did());
        sparse_map::verify_non_membership(&root, &next, &chain.next).map_err(|e| AuditError::NotComplete {
            writer: chain.writer.clone(),
            slot,
            reason: e.to_string(),
        })?;
        counts.insert(chain.writer.clone(), slot);
    }
    if let Some(w) = remaining.into_iter().next() {
        return Err(AuditError::MissingChain(w.to_owned()));
    }
    let items = sigs.iter().map(|(k, m, s, _, _)| (k, m.as_slice(), s));
    if !sigs.is_empty() && !signature::verify_batch(items, rng) {
        // Find the culprit for the message; the batch and single checks agree (ZIP 215).
        let bad = sigs.iter().find(|(k, m, s, _, _)| !signature::verify(k, m, s));
        let (writer, slot) = bad.map(|(_, _, _, w, s)| (w.clone(), *s)).unwrap_or_default();
        return Err(AuditError::Signature { writer, slot });
    }
    events.sort_by_key(|e| e.index);
    Ok(VerifiedHistory { checkpoint: cp, map_root: root, events, counts })
}

/// §15.3: checks that `later` extends `earlier` — its checkpoint extends the earlier one
/// (the consistency bundle, whose checkpoints must be the two histories' checkpoints) and
/// every event of `earlier` is still in the same slot as the same leaf. Returns how many
/// events are new. With both complete from slot 0, nothing can be removed or back-dated
/// between the two checkpoints.
pub fn verify_extension(
    genesis: &Genesis,
    earlier: &VerifiedHistory,
    later: &VerifiedHistory,
    consistency: Option<&crate::bundle::ConsistencyBundle>,
) -> Result<usize, AuditError> {
    let (a, b) = (&earlier.checkpoint.checkpoint, &later.checkpoint.checkpoint);
    if b.size < a.size {
        return Err(AuditError::Older { earlier: a.size, later: b.size });
    }
    if b.size == a.size {
        if a.root != b.root {
            return Err(AuditError::Fork(format!("two roots at size {}: {} and {}", a.size, a.root, b.root)));
        }
    } else {
        let c = consistency.ok_or_else(|| AuditError::Fork("no consistency proof between the two checkpoints".into()))?;
        let (_, new) = c.verify_extends(genesis, a).map_err(|e| AuditError::Fork(e.to_string()))?;
        if new.checkpoint.size != b.size || new.checkpoint.root != b.root {
            return Err(AuditError::Fork(format!(
                "the consistency proof ends at size {}, not at the new history's {}",
                new.checkpoint.size, b.size
            )));
        }
    }
    let now: BTreeMap<(&str, u32), (&Hash, u64)> =
        later.events.iter().map(|e| ((e.writer.as_str(), e.slot), (&e.leaf_hash, e.index))).collect();
    for e in &earlier.events {
        match now.get(&(e.writer.as_str(), e.slot)) {
            Some((leaf, index)) if **leaf == e.leaf_hash && *index == e.index => {}
            other => {
                return Err(AuditError::Rewritten {
                    writer: e.writer.clone(),
                    slot: e.slot,
                    earlier: format!("{} at index {}", e.leaf_hash, e.index),
                    later: other.map(|(l, i)| format!("{l} at index {i}")).unwrap_or_else(|| "nothing".into()),
                });
            }
        }
    }
    Ok(later.events.len().saturating_sub(earlier.events.len()))
}

impl VerifiedHistory {
    /// Decrypts every event with the subject's key and checks that the sealed details
    /// agree with where the event sits: its slot, its writer, its subject (§15.2).
    pub fn open(&self, subject: &SubjectKey, genesis_hash: &Hash) -> Result<Vec<AuditedEvent>, AuditError> {
        self.events
            .iter()
            .map(|e| {
                // The tag was derived from the subject's key for (writer, slot) in
                // `verify_history`; the details must name that writer and slot.
                let details = subject.open_proven(genesis_hash, &e.event)?;
                if details.slot != e.slot {
                    return Err(AuditError::SlotMismatch { index: e.index, found: details.slot, expected: e.slot });
                }
                if details.writer != e.writer {
                    return Err(AuditError::WriterMismatch { index: e.index, found: details.writer.clone(), expected: e.writer.clone() });
                }
                Ok(AuditedEvent { writer: e.writer.clone(), slot: e.slot, index: e.index, recorded_ms: e.recorded_ms, details })
            })
            .collect()
    }
}
