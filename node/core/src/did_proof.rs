//! Proof bundles for `did:dojang` resolution (`specs/did-method-dojang.md` §7): the
//! operation entries that produced a DID document, each with its inclusion proof, against
//! one quorum checkpoint. A verifier replays the operations with the same pure code the
//! node uses and compares the result with the answer, so it need not trust the node.

use base64::Engine as _;
use serde::{Deserialize, Serialize};

use crate::checkpoint::{CheckpointError, SignedCheckpoint, VerifiedCheckpoint};
use crate::did_dojang::{self, DidError, DidOperation, OpRecord, Resolved, VersionSelector};
use crate::entry::{self, Entry, EntryError, Kind};
use crate::genesis::Genesis;
use crate::hash::Hash;
use crate::merkle::{self, Blake3Hasher, VerifyError};

/// Largest number of operations a bundle may carry (a DID's whole history).
pub const MAX_BUNDLE_OPS: usize = 10_000;

/// One operation entry with its audit path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EntryProof {
    pub index: u64,
    /// Canonical entry bytes, standard base64.
    pub entry: String,
    pub proof: Vec<Hash>,
}

/// The proof carried in a did:dojang resolution result, under
/// `didResolutionMetadata.dojangProof`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct DidProof {
    pub did: String,
    /// The resolution query the answer is for: `versionId` (hex) and/or `versionTime` (ms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version_id: Option<Hash>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version_time_ms: Option<u64>,
    /// The signed checkpoint every entry proves against.
    pub checkpoint: String,
    /// Every operation of the DID up to the checkpoint, in ledger order.
    pub entries: Vec<EntryProof>,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DidProofError {
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    #[error("operation {index}: {source}")]
    Entry { index: u64, source: EntryError },
    #[error("operation {index}: {source}")]
    Inclusion { index: u64, source: VerifyError },
    #[error("operation {0}: entry is not base64")]
    Encoding(u64),
    #[error("operation {index} is a {kind} entry, not a did operation")]
    NotADidOperation { index: u64, kind: &'static str },
    #[error("operation {index} is about {found}, not {expected}")]
    OtherDid { index: u64, found: String, expected: String },
    #[error("operations are not in strictly increasing ledger order at index {0}")]
    Order(u64),
    #[error("the bundle carries {0} operations, over the limit of {MAX_BUNDLE_OPS}")]
    TooMany(usize),
    #[error("replaying the operations failed: {0}")]
    Replay(#[from] DidError),
    #[error("the answer's {what} differs from the one the proven operations produce")]
    Mismatch { what: &'static str },
}

impl DidProof {
    /// The version selector this proof answers.
    pub fn selector(&self) -> VersionSelector {
        match (self.version_id, self.version_time_ms) {
            (Some(v), _) => VersionSelector::VersionId(v),
            (None, Some(t)) => VersionSelector::VersionTime(t),
            (None, None) => VersionSelector::Latest,
        }
    }

    /// Checks the checkpoint quorum, each entry's signature and inclusion, that every entry
    /// is an operation on this DID in ledger order, replays them, and compares the result
    /// with the answer's document and metadata. Returns the proven resolution.
    pub fn verify(
        &self,
        genesis: &Genesis,
        document: &serde_json::Value,
        metadata: &serde_json::Value,
    ) -> Result<(Resolved, VerifiedCheckpoint), DidProofError> {
        if self.entries.len() > MAX_BUNDLE_OPS {
            return Err(DidProofError::TooMany(self.entries.len()));
        }
        let cp = SignedCheckpoint::parse(&self.checkpoint)?.verify(genesis)?;
        let root = cp.checkpoint.root;
        let size = cp.checkpoint.size;
        let mut records = Vec::with_capacity(self.entries.len());
        let mut last: Option<u64> = None;
        for p in &self.entries {
            if last.is_some_and(|l| p.index <= l) {
                return Err(DidProofError::Order(p.index));
            }
            last = Some(p.index);
            let bytes = base64::engine::general_purpose::STANDARD.decode(&p.entry).map_err(|_| DidProofError::Encoding(p.index))?;
            let e = Entry::decode(&bytes).map_err(|source| DidProofError::Entry { index: p.index, source })?;
            e.verify(&cp.checkpoint.genesis_hash, &bytes).map_err(|source| DidProofError::Entry { index: p.index, source })?;
            let leaf = entry::leaf_hash(&bytes);
            merkle::verify_inclusion::<Blake3Hasher>(&leaf, p.index, size, &p.proof, &root)
                .map_err(|source| DidProofError::Inclusion { index: p.index, source })?;
            if e.kind != Kind::DidOperation {
                return Err(DidProofError::NotADidOperation { index: p.index, kind: e.kind.name() });
            }
            let op = DidOperation::decode(&e.payload)?;
            let about = op.did()?;
            if about != self.did {
                return Err(DidProofError::OtherDid { index: p.index, found: about, expected: self.did.clone() });
            }
            records.push(OpRecord { index: p.index, leaf_hash: leaf, timestamp_ms: e.timestamp_ms, author: e.author, op });
        }
        let resolved = did_dojang::resolve(&records, self.selector())?;
        if &resolved.document != document {
            return Err(DidProofError::Mismatch { what: "didDocument" });
        }
        if &resolved.metadata != metadata {
            return Err(DidProofError::Mismatch { what: "didDocumentMetadata" });
        }
        Ok((resolved, cp))
    }
}
