//! The pure admission rules of the write path (`specs/ledger.md` §6): decode with a size
//! limit, verify the signature, check authorisation, and check the replay nonce.
//!
//! These are the rules every node applies identically, so they live here and take the
//! clock as an argument. The node's sequencer calls them; it owns ordering and state.

use std::collections::HashMap;

use ed25519_dalek::VerifyingKey;
use rand_core::{CryptoRng, RngCore};

use crate::entry::{self, Entry, EntryError, Kind, signing_input};
use crate::genesis::Genesis;
use crate::hash::Hash;
use crate::signature;

/// A decoded entry whose signature has not yet been checked.
#[derive(Debug, Clone)]
pub struct Candidate {
    pub entry: Entry,
    /// The exact bytes submitted; canonical, so equal to `entry.encode()`.
    pub encoded: Vec<u8>,
    pub leaf_hash: Hash,
    pub key: VerifyingKey,
    /// The payload as [`Rules::authorize`] decoded it, so applying the entry does not
    /// decode it again (`Opaque` until then, and for kinds whose payload is not parsed).
    pub payload: Payload,
}

/// A decoded payload of the kinds whose payload the ledger interprets.
#[derive(Debug, Clone, Default)]
pub enum Payload {
    #[default]
    Opaque,
    Did(crate::did_dojang::DidOperation),
    Registry(crate::registry::RegistryChange),
    Issuance(crate::documents::Issuance),
    Status(crate::documents::StatusChange),
    Access(crate::access::AccessEvent),
    StatusList(crate::vc::status_list::StatusListUpdate),
}

impl Candidate {
    /// The DID operation, from the admission step's decoding when there was one.
    pub fn did_operation(&self) -> Result<crate::did_dojang::DidOperation, crate::did_dojang::DidError> {
        match &self.payload {
            Payload::Did(op) => Ok(op.clone()),
            _ => crate::did_dojang::DidOperation::decode(&self.entry.payload),
        }
    }

    pub fn registry_change(&self) -> Result<crate::registry::RegistryChange, crate::registry::RegistryError> {
        match &self.payload {
            Payload::Registry(c) => Ok(c.clone()),
            _ => crate::registry::RegistryChange::decode(&self.entry.payload),
        }
    }

    pub fn issuance(&self) -> Result<crate::documents::Issuance, crate::documents::DocumentError> {
        match &self.payload {
            Payload::Issuance(i) => Ok(i.clone()),
            _ => crate::documents::Issuance::decode(&self.entry.payload),
        }
    }

    pub fn access_event(&self) -> Result<crate::access::AccessEvent, crate::access::AccessError> {
        match &self.payload {
            Payload::Access(e) => Ok(e.clone()),
            _ => crate::access::AccessEvent::decode(&self.entry.payload),
        }
    }

    pub fn status_change(&self) -> Result<crate::documents::StatusChange, crate::documents::DocumentError> {
        match &self.payload {
            Payload::Status(c) => Ok(c.clone()),
            _ => crate::documents::StatusChange::decode(&self.entry.payload),
        }
    }
}

impl Candidate {
    /// The status-list update (`specs/credentials.md` §6.2), from admission's decoding.
    pub fn status_list_update(&self) -> Result<crate::vc::status_list::StatusListUpdate, crate::vc::status_list::StatusListError> {
        match &self.payload {
            Payload::StatusList(u) => Ok(u.clone()),
            _ => crate::vc::status_list::StatusListUpdate::decode(&self.entry.payload),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AdmissionError {
    #[error(transparent)]
    Entry(#[from] EntryError),
    #[error("entry timestamp {timestamp_ms} is more than {max_skew_ms} ms from the node clock {now_ms}")]
    ClockSkew { timestamp_ms: u64, now_ms: u64, max_skew_ms: u64 },
    #[error("author {author:?} is not authorised to write {kind} entries")]
    Unauthorized { author: String, kind: &'static str },
    #[error("replayed nonce {nonce} from {author:?}: nonces must exceed the last accepted one, {last}")]
    Replay { author: String, nonce: u64, last: u64 },
    #[error(transparent)]
    DidOperation(#[from] crate::did_dojang::DidError),
    #[error(transparent)]
    Registry(#[from] crate::registry::RegistryError),
    #[error(transparent)]
    Document(#[from] crate::documents::DocumentError),
    #[error(transparent)]
    Access(#[from] crate::access::AccessError),
    #[error("access event tag {tag} is already on the ledger: each slot of a chain holds one event")]
    DuplicateAccessTag { tag: String },
    #[error("access event is sealed to {kid:?}, which is not the key-agreement key of a genesis auditor")]
    UnknownAuditor { kid: String },
    #[error(transparent)]
    StatusList(#[from] crate::vc::status_list::StatusListError),
}

impl AdmissionError {
    /// A stable machine-readable slug, used in problem+json `type` URIs.
    pub fn slug(&self) -> &'static str {
        match self {
            AdmissionError::Entry(EntryError::TooLarge { .. }) => "entry-too-large",
            AdmissionError::Entry(EntryError::BadSignature(_)) => "bad-signature",
            AdmissionError::Entry(EntryError::UnknownKind(_)) => "unknown-kind",
            AdmissionError::Entry(EntryError::UnsupportedAuthor(_) | EntryError::InvalidAuthor { .. }) => "invalid-author",
            AdmissionError::Entry(_) => "malformed-entry",
            AdmissionError::ClockSkew { .. } => "clock-skew",
            AdmissionError::Unauthorized { .. } => "unauthorized",
            AdmissionError::Replay { .. } => "replayed-nonce",
            AdmissionError::DidOperation(_) => "invalid-did-operation",
            AdmissionError::Registry(e) => e.slug(),
            AdmissionError::Document(e) => e.slug(),
            AdmissionError::Access(e) => e.slug(),
            AdmissionError::DuplicateAccessTag { .. } => "duplicate-access-tag",
            AdmissionError::UnknownAuditor { .. } => "unknown-auditor",
            AdmissionError::StatusList(e) => e.slug(),
        }
    }
}

/// The chain-wide admission rules, fixed by the genesis file.
#[derive(Debug, Clone)]
pub struct Rules {
    pub genesis: Genesis,
    pub genesis_hash: Hash,
    /// The X25519 key ids of the genesis auditors, derived once: every access event's
    /// auditor seals are checked against them on the write path.
    auditor_kids: Vec<String>,
}

impl Rules {
    pub fn new(genesis: Genesis) -> Self {
        let genesis_hash = genesis.hash();
        let auditor_kids =
            genesis.auditors.iter().filter_map(|a| crate::did_key::DidKey::parse(&a.did).ok()).map(|k| k.x25519_key_id()).collect();
        Rules { genesis, genesis_hash, auditor_kids }
    }

    /// Step 1 (§6.1): decode under the size limit, resolve the author key, and check the
    /// timestamp window. `resolve` lets the caller memoise key decoding.
    pub fn decode(
        &self,
        bytes: Vec<u8>,
        now_ms: u64,
        resolve: impl FnOnce(&str) -> Result<VerifyingKey, EntryError>,
    ) -> Result<Candidate, AdmissionError> {
        let entry = Entry::decode(&bytes)?;
        let max = self.genesis.params.max_clock_skew_ms;
        if entry.timestamp_ms.abs_diff(now_ms) > max {
            return Err(AdmissionError::ClockSkew { timestamp_ms: entry.timestamp_ms, now_ms, max_skew_ms: max });
        }
        let key = resolve(&entry.author)?;
        let leaf_hash = entry::leaf_hash(&bytes);
        Ok(Candidate { entry, encoded: bytes, leaf_hash, key, payload: Payload::Opaque })
    }

    /// Step 2 (§6.2): verify many signatures at once. Batch verification is tried first;
    /// if the batch fails, each signature is checked alone so that one bad entry does not
    /// sink the others. Single and batch checks follow the same rule (ZIP 215, see
    /// [`crate::signature`]), so the outcome never depends on how entries were grouped.
    /// Returns one result per candidate, in order.
    pub fn verify_signatures(&self, cands: &[Candidate], rng: impl RngCore + CryptoRng) -> Vec<Result<(), AdmissionError>> {
        let messages: Vec<Vec<u8>> = cands.iter().map(|c| signing_input(&self.genesis_hash, body(&c.encoded))).collect();
        let keys: Vec<[u8; 32]> = cands.iter().map(|c| c.key.to_bytes()).collect();
        let items = keys.iter().zip(&messages).zip(cands).map(|((k, m), c)| (k, m.as_slice(), &c.entry.signature));
        if signature::verify_batch(items, rng) {
            return vec![Ok(()); cands.len()];
        }
        cands
            .iter()
            .zip(keys.iter().zip(&messages))
            .map(|(c, (k, m))| {
                if signature::verify(k, m, &c.entry.signature) {
                    Ok(())
                } else {
                    Err(AdmissionError::Entry(EntryError::BadSignature(c.entry.author.clone())))
                }
            })
            .collect()
    }

    /// Step 3 (§6.3): who may write what, as far as it can be told without ledger state.
    /// Access events need a writer key of a genesis agency; DID
    /// operations, registry changes, document entries and status-list updates carry their authority in ledger
    /// state or in approvals, checked when the batch is applied. Returns the decoded
    /// payload for the apply step.
    pub fn authorize(&self, entry: &Entry) -> Result<Payload, AdmissionError> {
        match entry.kind {
            // Self-certifying: the payload must be a well-formed operation; who may sign
            // it depends on the DID's state and is checked when the batch is applied.
            Kind::DidOperation => {
                let op = crate::did_dojang::DidOperation::decode(&entry.payload)?;
                op.validate()?;
                Ok(Payload::Did(op))
            }
            // Authority comes from ledger state (the registry, the document's issuer, the
            // approvals inside a registry change) and is checked when the batch is applied
            // (§6.3); here the payload must at least be well formed.
            Kind::TrustRegistryChange => {
                let c = crate::registry::RegistryChange::decode(&entry.payload)?;
                c.validate()?;
                Ok(Payload::Registry(c))
            }
            Kind::DocumentIssuance => {
                let i = crate::documents::Issuance::decode(&entry.payload)?;
                i.validate()?;
                Ok(Payload::Issuance(i))
            }
            Kind::DocumentRevocation => {
                let c = crate::documents::StatusChange::decode(&entry.payload)?;
                c.validate()?;
                Ok(Payload::Status(c))
            }
            // An access event (`specs/access-log.md` §14.1): a genesis agency's writer key,
            // a well-formed sealed payload, and auditor seals only for genesis auditors.
            Kind::AccessEvent => {
                if self.genesis.agency_of_writer(&entry.author).is_none() {
                    return Err(AdmissionError::Unauthorized { author: entry.author.clone(), kind: entry.kind.name() });
                }
                let event = crate::access::AccessEvent::decode(&entry.payload)?;
                for seal in &event.auditors {
                    if !self.auditor_kids.contains(&seal.kid) {
                        return Err(AdmissionError::UnknownAuditor { kid: seal.kid.chars().take(200).collect() });
                    }
                }
                Ok(Payload::Access(event))
            }
            // Issuer authority comes from the registry and the list's state, checked when
            // the batch is applied (`specs/credentials.md` §6.4).
            Kind::StatusListUpdate => Ok(Payload::StatusList(crate::vc::status_list::StatusListUpdate::decode(&entry.payload)?)),
        }
    }

    /// Steps 1-3 for one entry, using the plain did:key resolver.
    pub fn admit_one(&self, bytes: Vec<u8>, now_ms: u64) -> Result<Candidate, AdmissionError> {
        let mut c = self.decode(bytes, now_ms, entry::author_key)?;
        c.entry.verify(&self.genesis_hash, &c.encoded)?;
        c.payload = self.authorize(&c.entry)?;
        Ok(c)
    }
}

fn body(encoded: &[u8]) -> &[u8] {
    encoded.get(..encoded.len().saturating_sub(64)).unwrap_or_default()
}

/// Step 4's replay rule (§6.4), applied by the sequencer in commit order: an author's
/// nonces strictly increase. `pending` tracks nonces accepted earlier in the same batch.
#[derive(Debug, Default)]
pub struct NonceTracker {
    pending: HashMap<String, u64>,
}

impl NonceTracker {
    pub fn new() -> Self {
        Self::default()
    }

    /// Checks `entry` against the committed last nonce (`committed`) and this batch.
    /// On success the nonce is recorded as the author's latest.
    pub fn check_and_record(&mut self, entry: &Entry, committed: Option<u64>) -> Result<(), AdmissionError> {
        self.check(entry, committed)?;
        self.record(entry);
        Ok(())
    }

    /// Checks without recording, for callers with further checks to pass before the
    /// entry is accepted (a refused entry must not consume its nonce).
    pub fn check(&self, entry: &Entry, committed: Option<u64>) -> Result<(), AdmissionError> {
        let last = self.pending.get(&entry.author).copied().or(committed);
        if let Some(last) = last
            && entry.nonce <= last
        {
            return Err(AdmissionError::Replay { author: entry.author.clone(), nonce: entry.nonce, last });
        }
        Ok(())
    }

    /// Records `entry`'s nonce as its author's latest.
    pub fn record(&mut self, entry: &Entry) {
        self.pending.insert(entry.author.clone(), entry.nonce);
    }

    /// The authors whose last nonce changed, for persisting with the batch.
    pub fn into_updates(self) -> HashMap<String, u64> {
        self.pending
    }

    pub fn pending(&self, author: &str) -> Option<u64> {
        self.pending.get(author).copied()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]
    use super::*;
    use crate::did_key::DidKey;
    use crate::entry::UnsignedEntry;
    use crate::testing::sample_genesis;
    use ed25519_dalek::SigningKey;

    const NOW: u64 = 1_780_000_000_000;

    fn make(rules: &Rules, k: &SigningKey, kind: Kind, nonce: u64, ts: u64) -> Vec<u8> {
        UnsignedEntry {
            kind,
            author: DidKey::from_verifying_key(&k.verifying_key()).key_id(),
            nonce,
            timestamp_ms: ts,
            payload: if kind == Kind::AccessEvent {
                crate::access::AccessEvent::cover(&nonce.to_be_bytes()).encode()
            } else {
                vec![1, 2, 3]
            },
        }
        .sign(k, &rules.genesis_hash)
        .unwrap()
        .encode()
        .unwrap()
    }

    #[test]
    fn admits_agency_writer_and_refuses_strangers() {
        let (g, keys) = sample_genesis(1);
        let rules = Rules::new(g);
        rules.admit_one(make(&rules, &keys[0], Kind::AccessEvent, 1, NOW), NOW).unwrap();
        let stranger = SigningKey::from_bytes(&[77; 32]);
        let err = rules.admit_one(make(&rules, &stranger, Kind::AccessEvent, 1, NOW), NOW).unwrap_err();
        assert_eq!(err.slug(), "unauthorized");
        // Anyone may submit a DID operation, if it is one.
        let err = rules.admit_one(make(&rules, &stranger, Kind::DidOperation, 1, NOW), NOW).unwrap_err();
        assert_eq!(err.slug(), "invalid-did-operation");
        use crate::did_dojang::{CreateOp, DidOperation, DocumentContent, VerificationMethod};
        let dk = DidKey::from_verifying_key(&stranger.verifying_key());
        let op = DidOperation::Create(CreateOp {
            document: DocumentContent {
                verification_method: vec![VerificationMethod {
                    id: "#k".into(),
                    method_type: "Multikey".into(),
                    public_key_multibase: dk.multibase(),
                }],
                authentication: vec!["#k".into()],
                ..Default::default()
            },
            controller_keys: vec![dk.did()],
            next_key_commitment: None,
            salt: None,
        });
        let bytes = UnsignedEntry { kind: Kind::DidOperation, author: dk.key_id(), nonce: 2, timestamp_ms: NOW, payload: op.encode() }
            .sign(&stranger, &rules.genesis_hash)
            .unwrap()
            .encode()
            .unwrap();
        rules.admit_one(bytes, NOW).unwrap();
    }

    #[test]
    fn refuses_clock_skew_and_bad_signatures() {
        let (g, keys) = sample_genesis(1);
        let rules = Rules::new(g);
        let err = rules.admit_one(make(&rules, &keys[0], Kind::AccessEvent, 1, NOW - 3_600_000), NOW).unwrap_err();
        assert!(matches!(err, AdmissionError::ClockSkew { .. }));
        let mut bytes = make(&rules, &keys[0], Kind::AccessEvent, 1, NOW);
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        assert_eq!(rules.admit_one(bytes, NOW).unwrap_err().slug(), "bad-signature");
    }

    #[test]
    fn batch_verification_isolates_the_bad_entry() {
        let (g, keys) = sample_genesis(1);
        let rules = Rules::new(g);
        let mut cands: Vec<Candidate> =
            (1..=8).map(|n| rules.decode(make(&rules, &keys[0], Kind::AccessEvent, n, NOW), NOW, entry::author_key).unwrap()).collect();
        assert!(rules.verify_signatures(&cands, crate::testing::TestRng(1)).iter().all(Result::is_ok));
        cands[5].entry.signature[0] ^= 1;
        let res = rules.verify_signatures(&cands, crate::testing::TestRng(2));
        for (i, r) in res.iter().enumerate() {
            assert_eq!(r.is_err(), i == 5, "entry {i}: {r:?}");
        }
        assert!(rules.verify_signatures(&[], crate::testing::TestRng(3)).is_empty());
    }

    #[test]
    fn nonces_strictly_increase_across_batch_and_store() {
        let (g, keys) = sample_genesis(1);
        let rules = Rules::new(g);
        let e = |n| Entry::decode(&make(&rules, &keys[0], Kind::AccessEvent, n, NOW)).unwrap();
        let mut t = NonceTracker::new();
        t.check_and_record(&e(5), Some(4)).unwrap();
        assert!(matches!(t.check_and_record(&e(5), Some(4)), Err(AdmissionError::Replay { last: 5, .. })));
        t.check_and_record(&e(9), Some(4)).unwrap();
        let mut t = NonceTracker::new();
        assert!(matches!(t.check_and_record(&e(3), Some(4)), Err(AdmissionError::Replay { last: 4, .. })));
    }
}
