//! The genesis file: chain id, validator agencies, their keys and voting power, and the
//! chain parameters (`specs/genesis.md`).
//!
//! The genesis hash is BLAKE3 over the RFC 8785 (JCS) canonical JSON of the parsed
//! file. It is bound into every entry signature and every checkpoint, so a verifier who
//! holds only the genesis file can check any node's answer.

use std::collections::BTreeSet;

use ed25519_dalek::VerifyingKey;
use serde::{Deserialize, Serialize};

use crate::did_key::DidKey;
use crate::hash::Hash;

/// The `format` value of version 1 genesis files.
pub const GENESIS_FORMAT: &str = "dojang-genesis/v1";
/// Largest integer a genesis field may hold (2^53 - 1; `specs/genesis.md` §4).
pub const MAX_SAFE_INTEGER: u64 = (1 << 53) - 1;
/// Largest genesis file accepted, in bytes; a genesis is small, and it is parsed from
/// user-supplied paths and from peers.
pub const MAX_GENESIS_LEN: usize = 1024 * 1024;
/// Most auditors a genesis may list: each is one more HPKE seal on every access event.
pub const MAX_AUDITORS: usize = 4;

/// A parsed, validated genesis file (`specs/genesis.md` §2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Genesis {
    pub format: String,
    /// Names the ledger; appears in every checkpoint origin line.
    pub chain_id: String,
    /// Milliseconds since the Unix epoch.
    pub genesis_time_ms: u64,
    pub validators: Vec<Validator>,
    #[serde(default)]
    pub params: Params,
    /// The initial trusted-issuer registry (`specs/documents.md` §2). Omitted when empty,
    /// so genesis files without one keep their hash.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub trusted_issuers: Vec<TrustedIssuer>,
    /// Governance thresholds (`specs/documents.md` §2.2). Omitted when default.
    #[serde(default, skip_serializing_if = "Governance::is_default")]
    pub governance: Governance,
    /// Auditors (e.g. a data-protection authority) to whom agencies also seal access
    /// events (`specs/access-log.md` §7.3). Omitted when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub auditors: Vec<AuditorEntry>,
}

/// An auditor listed in genesis: access events may be sealed to its key, and it may read
/// what is sealed to it through the audit API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditorEntry {
    pub name: String,
    /// The auditor's `did:key` (Ed25519): it authenticates with it, and its X25519
    /// key-agreement key (derived as did:key derives it) receives the sealed copies.
    pub did: String,
}

/// An issuer the registry trusts for some document and credential types.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrustedIssuer {
    /// The issuer's DID (an agency's did:key or did:dojang).
    pub did: String,
    pub name: String,
    /// Key ids (`did:key:…#…`) that sign issuances and revocations for this issuer.
    pub keys: Vec<String>,
    #[serde(default)]
    pub document_types: Vec<String>,
    #[serde(default)]
    pub credential_types: Vec<String>,
}

/// Who must approve changes to shared state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Governance {
    /// Voting power whose approval a registry change needs; default (None): more than
    /// two thirds of the total.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registry_threshold: Option<u64>,
}

impl Governance {
    pub fn is_default(&self) -> bool {
        *self == Governance::default()
    }
}

/// One validator agency.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Validator {
    /// Short key name used in checkpoint signature lines: `[a-z0-9.-]{1,64}`.
    pub id: String,
    /// Human name of the agency, e.g. "Ministry of the Interior and Safety".
    pub name: String,
    /// The agency's DID.
    pub did: String,
    /// The validator's Ed25519 signing key for checkpoints and votes, as a `did:key`.
    pub consensus_key: String,
    pub voting_power: u64,
    /// Key ids (`did:key:…#…`) the agency's systems sign ledger entries with.
    #[serde(default)]
    pub writer_keys: Vec<String>,
    /// Where the validator's HTTP API listens, e.g. `127.0.0.1:7300`.
    #[serde(default)]
    pub api_address: String,
    /// The validator's libp2p identity key (Ed25519), as a `did:key`; its libp2p PeerId is
    /// derived from it and is the only identity peers accept for this validator
    /// (`specs/genesis.md` §2, `specs/consensus.md` §3). Required when there are several
    /// validators; omitted when empty, so older genesis files keep their hash.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub p2p_key: String,
    /// Where the validator's consensus p2p endpoint listens, as `host:port`
    /// (e.g. `127.0.0.1:27000`). Omitted when empty.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub p2p_address: String,
}

impl Validator {
    /// The libp2p identity key, when the genesis lists one.
    pub fn p2p_verifying_key(&self) -> Option<VerifyingKey> {
        DidKey::parse(&self.p2p_key).ok().map(|k| k.verifying_key())
    }
}

/// Chain parameters with safe defaults (`specs/genesis.md` §3).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// How far an entry's timestamp may be from the node clock at admission.
    pub max_clock_skew_ms: u64,
}

impl Default for Params {
    fn default() -> Self {
        Params { max_clock_skew_ms: 10 * 60 * 1000 }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GenesisError {
    #[error("genesis file is {0} bytes, over the limit of {MAX_GENESIS_LEN}")]
    TooLarge(usize),
    #[error("genesis file is not valid json: {0}")]
    Json(String),
    #[error("unsupported genesis format {0:?} (expected {GENESIS_FORMAT:?})")]
    Format(String),
    #[error("genesis chain_id {0:?} must be 1-64 characters of [a-z0-9.-]")]
    ChainId(String),
    #[error("genesis has no validators")]
    NoValidators,
    #[error("validator id {0:?} must be 1-64 characters of [a-z0-9.-]")]
    ValidatorId(String),
    #[error("validator id {0:?} appears twice")]
    DuplicateValidator(String),
    #[error("consensus key {0:?} appears twice")]
    DuplicateKey(String),
    #[error("validator {id:?} has an invalid consensus key {key:?}: {reason}")]
    ConsensusKey { id: String, key: String, reason: String },
    #[error("validator {id:?} has an invalid writer key {key:?}: {reason}")]
    WriterKey { id: String, key: String, reason: String },
    #[error("validator {0:?} has zero voting power")]
    ZeroPower(String),
    #[error("total voting power overflows")]
    PowerOverflow,
    #[error("{field} = {value} is above 2^53 - 1, the largest integer the canonical json hash represents exactly")]
    IntegerTooLarge { field: &'static str, value: u64 },
    #[error("trusted issuer {did:?} is invalid: {reason}")]
    TrustedIssuer { did: String, reason: String },
    #[error("governance registry_threshold {threshold} must be 1..={total} (the total voting power)")]
    Threshold { threshold: u64, total: u64 },
    #[error("auditor {did:?} is invalid: {reason}")]
    Auditor { did: String, reason: String },
    #[error("validator {id:?} has an invalid p2p key {key:?}: {reason}")]
    P2pKey { id: String, key: String, reason: String },
    #[error("validator {id:?} has p2p_address {address:?}: expected host:port")]
    P2pAddress { id: String, address: String },
    #[error("validator {id:?} has an invalid agency did {did:?}: expected did:<method>:<id>")]
    AgencyDid { id: String, did: String },
}

fn valid_name(s: &str) -> bool {
    (1..=64).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-')
}

impl Genesis {
    /// A version 1 genesis with default parameters. Not yet validated.
    pub fn new(chain_id: &str, genesis_time_ms: u64, validators: Vec<Validator>) -> Genesis {
        Genesis {
            format: GENESIS_FORMAT.into(),
            chain_id: chain_id.to_owned(),
            genesis_time_ms,
            validators,
            params: Params::default(),
            trusted_issuers: Vec::new(),
            governance: Governance::default(),
            auditors: Vec::new(),
        }
    }

    /// Parses and validates a genesis file.
    pub fn from_json(bytes: &[u8]) -> Result<Genesis, GenesisError> {
        if bytes.len() > MAX_GENESIS_LEN {
            return Err(GenesisError::TooLarge(bytes.len()));
        }
        let g: Genesis = serde_json::from_slice(bytes).map_err(|e| GenesisError::Json(e.to_string()))?;
        g.validate()?;
        Ok(g)
    }

    /// Pretty JSON for writing to disk. The hash does not depend on this layout.
    pub fn to_json_pretty(&self) -> String {
        // Serialising plain structs of strings and integers cannot fail.
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// Checks every rule of `specs/genesis.md` §2.
    pub fn validate(&self) -> Result<(), GenesisError> {
        // RFC 8785 serialises numbers as IEEE 754 doubles: larger integers would collide
        // in the genesis hash while meaning different things.
        let ints = [
            ("genesis_time_ms", self.genesis_time_ms),
            ("params.max_clock_skew_ms", self.params.max_clock_skew_ms),
            ("governance.registry_threshold", self.governance.registry_threshold.unwrap_or(0)),
        ];
        for (field, value) in ints.into_iter().chain(self.validators.iter().map(|v| ("voting_power", v.voting_power))) {
            if value > MAX_SAFE_INTEGER {
                return Err(GenesisError::IntegerTooLarge { field, value });
            }
        }
        if self.format != GENESIS_FORMAT {
            return Err(GenesisError::Format(self.format.clone()));
        }
        if !valid_name(&self.chain_id) {
            return Err(GenesisError::ChainId(self.chain_id.clone()));
        }
        if self.validators.is_empty() {
            return Err(GenesisError::NoValidators);
        }
        let mut ids = BTreeSet::new();
        let mut keys = BTreeSet::new();
        let mut total: u64 = 0;
        for v in &self.validators {
            if !valid_name(&v.id) {
                return Err(GenesisError::ValidatorId(v.id.clone()));
            }
            let did_ok = v.did.len() <= 512
                && v.did.split(':').count() >= 3
                && v.did.starts_with("did:")
                && v.did
                    .split(':')
                    .nth(1)
                    .is_some_and(|m| !m.is_empty() && m.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()))
                && !v.did.ends_with(':');
            if !did_ok || (v.did.starts_with("did:key:") && DidKey::parse(&v.did).is_err()) {
                return Err(GenesisError::AgencyDid { id: v.id.clone(), did: v.did.chars().take(120).collect() });
            }
            if !ids.insert(v.id.as_str()) {
                return Err(GenesisError::DuplicateValidator(v.id.clone()));
            }
            let key = DidKey::parse(&v.consensus_key).map_err(|e| GenesisError::ConsensusKey {
                id: v.id.clone(),
                key: v.consensus_key.clone(),
                reason: e.to_string(),
            })?;
            if key.verifying_key().is_weak() {
                return Err(GenesisError::ConsensusKey { id: v.id.clone(), key: v.consensus_key.clone(), reason: "weak key".into() });
            }
            if !keys.insert(v.consensus_key.as_str()) {
                return Err(GenesisError::DuplicateKey(v.consensus_key.clone()));
            }
            for w in &v.writer_keys {
                DidKey::parse_key_id(w).map_err(|e| GenesisError::WriterKey { id: v.id.clone(), key: w.clone(), reason: e.to_string() })?;
            }
            if !v.p2p_key.is_empty() {
                DidKey::parse(&v.p2p_key).map_err(|e| GenesisError::P2pKey {
                    id: v.id.clone(),
                    key: v.p2p_key.clone(),
                    reason: e.to_string(),
                })?;
                if !keys.insert(v.p2p_key.as_str()) {
                    return Err(GenesisError::DuplicateKey(v.p2p_key.clone()));
                }
            }
            if !v.p2p_address.is_empty()
                && (v.p2p_address.len() > 255
                    || !v.p2p_address.rsplit_once(':').is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok_and(|p| p > 0)))
            {
                return Err(GenesisError::P2pAddress { id: v.id.clone(), address: v.p2p_address.chars().take(120).collect() });
            }
            if v.voting_power == 0 {
                return Err(GenesisError::ZeroPower(v.id.clone()));
            }
            total = total.checked_add(v.voting_power).ok_or(GenesisError::PowerOverflow)?;
        }
        if let Some(t) = self.governance.registry_threshold
            && (t == 0 || t > total)
        {
            return Err(GenesisError::Threshold { threshold: t, total });
        }
        let mut seen = BTreeSet::new();
        for i in &self.trusted_issuers {
            let bad = |reason: &str| GenesisError::TrustedIssuer { did: i.did.chars().take(120).collect(), reason: reason.to_owned() };
            if !i.did.starts_with("did:") || i.did.len() > 512 {
                return Err(bad("not a did"));
            }
            if !seen.insert(i.did.as_str()) {
                return Err(bad("listed twice"));
            }
            if i.keys.is_empty() || i.keys.len() > 16 {
                return Err(bad("needs 1..=16 keys"));
            }
            for k in &i.keys {
                DidKey::parse_key_id(k).map_err(|e| bad(&format!("key {k:?}: {e}")))?;
            }
            let types = i.document_types.iter().chain(&i.credential_types);
            if types.clone().any(|t| t.is_empty() || t.len() > 128 || t.chars().any(char::is_control)) || types.count() > 256 {
                return Err(bad("types must be 1-128 printable characters, at most 256 of them"));
            }
        }
        if self.auditors.len() > MAX_AUDITORS {
            return Err(GenesisError::Auditor { did: String::new(), reason: format!("at most {MAX_AUDITORS} auditors") });
        }
        let mut seen = BTreeSet::new();
        for a in &self.auditors {
            let bad = |reason: String| GenesisError::Auditor { did: a.did.chars().take(120).collect(), reason };
            DidKey::parse(&a.did).map_err(|e| bad(format!("expected an ed25519 did:key: {e}")))?;
            if !seen.insert(a.did.as_str()) {
                return Err(bad("listed twice".into()));
            }
            if a.name.is_empty() || a.name.len() > 256 || a.name.chars().any(char::is_control) {
                return Err(bad("name must be 1-256 printable characters".into()));
            }
        }
        Ok(())
    }

    /// The auditor whose did:key is `did`, if genesis lists one.
    pub fn auditor(&self, did: &str) -> Option<&AuditorEntry> {
        self.auditors.iter().find(|a| a.did == did)
    }

    /// Whether approvals worth `power` pass a registry change (`specs/documents.md` §2.2).
    pub fn registry_quorum(&self, power: u64) -> bool {
        match self.governance.registry_threshold {
            Some(t) => power >= t,
            None => u128::from(power) * 3 > u128::from(self.total_power()) * 2,
        }
    }

    /// BLAKE3 of the JCS (RFC 8785) canonical form (`specs/genesis.md` §4).
    pub fn hash(&self) -> Hash {
        let canonical = serde_jcs::to_vec(self).unwrap_or_default();
        Hash(*blake3::hash(&canonical).as_bytes())
    }

    pub fn total_power(&self) -> u64 {
        self.validators.iter().fold(0u64, |a, v| a.saturating_add(v.voting_power))
    }

    /// The checkpoint origin line (`specs/ledger.md` §5.1).
    pub fn origin(&self) -> String {
        format!("dojang/{}", self.chain_id)
    }

    /// The validator whose consensus key is `key`.
    pub fn validator_by_key(&self, key: &VerifyingKey) -> Option<&Validator> {
        let did = DidKey::from_verifying_key(key).did();
        self.validators.iter().find(|v| v.consensus_key == did)
    }

    /// Whether `author` (a key id) is a registered writer key of some validator agency.
    pub fn agency_of_writer(&self, author: &str) -> Option<&Validator> {
        self.validators.iter().find(|v| v.writer_keys.iter().any(|w| w == author))
    }
}

impl Validator {
    /// A validator of power 1 whose agency DID is its consensus key's did:key, and whose
    /// agency writes with `writers` (signing keys of its systems).
    pub fn with_keys(id: &str, name: &str, consensus: &VerifyingKey, writers: &[VerifyingKey], api_address: &str) -> Validator {
        let did = DidKey::from_verifying_key(consensus).did();
        Validator {
            id: id.to_owned(),
            name: name.to_owned(),
            did: did.clone(),
            consensus_key: did,
            voting_power: 1,
            writer_keys: writers.iter().map(|w| DidKey::from_verifying_key(w).key_id()).collect(),
            api_address: api_address.to_owned(),
            p2p_key: String::new(),
            p2p_address: String::new(),
        }
    }

    /// Adds the libp2p identity key and p2p address a multi-validator chain needs.
    pub fn with_p2p(mut self, p2p: &VerifyingKey, p2p_address: &str) -> Validator {
        self.p2p_key = DidKey::from_verifying_key(p2p).did();
        self.p2p_address = p2p_address.to_owned();
        self
    }

    /// The decoded consensus key; `validate` has already checked it parses.
    pub fn consensus_verifying_key(&self) -> Option<VerifyingKey> {
        DidKey::parse(&self.consensus_key).ok().map(|d| d.verifying_key())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]
    use super::*;
    use crate::testing::sample_genesis as sample;

    #[test]
    fn round_trips_and_hash_ignores_layout() {
        let (g, _) = sample(4);
        let pretty = g.to_json_pretty();
        let compact = serde_json::to_string(&g).unwrap();
        let a = Genesis::from_json(pretty.as_bytes()).unwrap();
        let b = Genesis::from_json(compact.as_bytes()).unwrap();
        assert_eq!(a, g);
        assert_eq!(a.hash(), b.hash());
        let mut c = g.clone();
        c.validators[0].voting_power = 2;
        assert_ne!(c.hash(), g.hash());
    }

    #[test]
    fn rejects_bad_files() {
        let (g, _) = sample(2);
        let mut x = g.clone();
        x.validators[1].id = x.validators[0].id.clone();
        assert_eq!(x.validate(), Err(GenesisError::DuplicateValidator("agency-0".into())));
        let mut x = g.clone();
        x.validators[0].voting_power = 0;
        assert!(matches!(x.validate(), Err(GenesisError::ZeroPower(_))));
        let mut x = g.clone();
        x.validators[0].consensus_key = "did:key:zBAD".into();
        assert!(matches!(x.validate(), Err(GenesisError::ConsensusKey { .. })));
        let mut x = g.clone();
        x.chain_id = "Bad Chain".into();
        assert!(matches!(x.validate(), Err(GenesisError::ChainId(_))));
        let mut x = g.clone();
        x.validators[0].voting_power = 1 << 53;
        assert!(matches!(x.validate(), Err(GenesisError::IntegerTooLarge { field: "voting_power", .. })));
        let mut x = g.clone();
        x.validators[0].did = "not-a-did".into();
        assert!(matches!(x.validate(), Err(GenesisError::AgencyDid { .. })));
        let mut x = g.clone();
        x.validators.clear();
        assert_eq!(x.validate(), Err(GenesisError::NoValidators));
        assert!(matches!(Genesis::from_json(b"{\"format\":1}"), Err(GenesisError::Json(_))));
        let mut v = serde_json::to_value(&g).unwrap();
        v["extra"] = 1.into();
        assert!(matches!(Genesis::from_json(v.to_string().as_bytes()), Err(GenesisError::Json(_))));
    }
}
