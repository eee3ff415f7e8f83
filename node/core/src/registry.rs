//! The trusted-issuer registry: which issuers (agencies, by DID) may issue which document
//! and credential types with which signing keys, and how the validator agencies change
//! that list together (`specs/documents.md` §2; the quorum rule is §2.2).
//!
//! Everything here is pure and parses untrusted input: payloads are size-bounded before
//! parsing and accepted only in their one canonical (RFC 8785) spelling, and every refusal
//! is an error value naming the bad value (truncated, control characters escaped), never
//! a panic. The rules below are written so that the spec can copy them.
//!
//! # R1. State
//!
//! The registry is a version number and a map from issuer DID to an [`IssuerRecord`]: the
//! [`TrustedIssuer`] data (`did`, `name`, signing `keys`, `documentTypes`,
//! `credentialTypes`), a status (`active`, `suspended`, `removed`) and the ledger indices of
//! the changes that touched the issuer, oldest first. The genesis state
//! ([`Registry::from_genesis`]) is version 0 with every genesis `trusted_issuers` entry
//! `active` and no change indices. Every applied change increments the version by exactly
//! one. The registry at ledger height `h` is the genesis state with every
//! `trust-registry-change/v1` entry below `h` applied in ledger order ([`replay`]).
//!
//! # R2. Payload
//!
//! A `trust-registry-change/v1` entry (kind `0x0501`) carries, as its payload, the RFC 8785
//! (JCS) canonical JSON of a [`RegistryChange`], at most [`MAX_CHANGE_LEN`] bytes (the
//! entry envelope's 61 440-byte payload limit is the tighter bound in practice). A decoder
//! accepts exactly the bytes the encoder produces: no unknown member, no whitespace, members
//! sorted, empty `documentTypes`/`credentialTypes` lists omitted, `approvals` always
//! present (possibly `[]`). Members are camelCase; the action is tagged by `type`:
//!
//! ```json
//! {"action":{"issuer":{"did":"did:web:passport.example.kr","documentTypes":["passport"],
//!  "keys":["did:key:z6Mk…#z6Mk…"],"name":"Passport Office"},"type":"add-issuer"},
//!  "approvals":[{"signature":"<base64 of 64 bytes>","validator":"agency-1"},
//!  {"signature":"…","validator":"agency-2"}],"version":1}
//! ```
//!
//! (shown wrapped; the payload is one line). The actions ([`RegistryAction`]):
//!
//! | `type` | members | effect |
//! |--------|---------|--------|
//! | `add-issuer` | `issuer` {`did`, `name`, `keys`, `documentTypes`?, `credentialTypes`?} | a new `active` issuer |
//! | `remove-issuer` | `did` | status `removed`, for good |
//! | `suspend-issuer` | `did` | status `suspended` (authorises nothing) |
//! | `reinstate-issuer` | `did` | status `active` again |
//! | `add-types` | `did`, `documentTypes`?, `credentialTypes`? | the types are added |
//! | `remove-types` | `did`, `documentTypes`?, `credentialTypes`? | the types are removed |
//! | `set-keys` | `did`, `keys` | the issuer's signing keys are replaced |
//!
//! The *subject* of a change is the issuer DID it is about (`issuer.did` or `did`).
//!
//! # R3. Approvals and quorum
//!
//! Anyone may submit the entry: its authority is the validator approvals inside it, not
//! its author. Each approval is `{"validator": <genesis validator id>, "signature":
//! <canonical padded base64 of a 64-byte Ed25519 signature>}` by that validator's
//! `consensus_key` over the signing bytes
//!
//! ```text
//! "dojang/registry-change/v1" ‖ 0x00 ‖ genesis hash (32 bytes) ‖ JCS({"action": …, "version": …})
//! ```
//!
//! ([`RegistryChange::signing_bytes`]; the approvals themselves are not signed, so they can
//! be gathered in any order). The genesis hash binds an approval to one chain and the
//! version to one position in the registry's history. Signatures are checked under ZIP 215
//! ([`crate::signature::verify`]), like entry signatures.
//!
//! - `approvals` holds at most [`MAX_APPROVALS`] items, sorted by `validator` (byte order),
//!   each validator at most once: a duplicate or out-of-order item refuses the change.
//! - Every approval must name a genesis validator and carry a valid signature by its
//!   consensus key; an unknown validator, a malformed or a wrong signature refuses the whole
//!   change (nothing is skipped silently).
//! - **One agency cannot approve changes about itself**: approvals by a validator whose
//!   agency `did` equals the subject DID are valid but count for nothing. The counted power
//!   is the sum of the `voting_power` of the other approving validators.
//! - The change passes when `Genesis::registry_quorum(counted)` holds: counted power ≥
//!   `governance.registry_threshold` if set, else counted power > ⅔ of the total voting
//!   power (the total includes the subject agency's power). With four agencies of power 1,
//!   three approvals are needed, and an agency's own change needs the other three.
//!
//! # R4. Validity of each action
//!
//! Stateless rules ([`RegistryChange::validate`]):
//!
//! - a new issuer's `did` is `did:<method>:<id>`, at most 512 bytes, method `[a-z0-9]+`,
//!   an id without `#`, `?`, `/` or whitespace; a `did:key` must parse
//!   ([`DidKey::parse`]) and a `did:dojang` must be well-formed
//!   ([`crate::did_dojang::parse_did`]). The `did` of the other actions only has to start
//!   with `did:` and fit in 512 bytes (it must name an existing issuer, below);
//! - `name`: 1 to 256 bytes, no control characters;
//! - `keys`: 1 to [`MAX_KEYS`] distinct Ed25519 key ids, each accepted by
//!   [`DidKey::parse_key_id`] and in canonical spelling (`did:key:z6Mk…#z6Mk…`);
//! - each type: 1 to 128 bytes, no control characters; no type listed twice in one list;
//!   at most [`MAX_TYPES`] document and credential types together;
//! - `add-types` and `remove-types` name at least one type;
//! - `version` is 1 to 2^53 − 1 (JCS writes numbers as IEEE 754 doubles, so a larger
//!   integer has no exact canonical form; such a payload fails canonical decoding anyway).
//!
//! State rules ([`Registry::apply`]), against the registry left by earlier changes:
//!
//! - `version` = current version + 1 (replay protection: a replayed, reordered or stale
//!   change is refused), and the ledger index is above that of the previous change;
//! - `add-issuer`: no issuer with that DID exists — **including a removed one: removal is
//!   final**, a removed DID can be neither reinstated nor re-added (the returning agency is
//!   listed under a new DID), so that what a DID was trusted for never changes after the
//!   fact; at most [`MAX_ISSUERS`] records;
//! - every other action: the subject exists and is not removed;
//! - `suspend-issuer` needs an `active` issuer, `reinstate-issuer` a `suspended` one;
//!   `remove-issuer` accepts either. Types and keys may be changed while suspended (the
//!   usual recovery from a key compromise is suspend, set-keys, reinstate);
//! - `add-types`: no type is already listed, and the result has at most [`MAX_TYPES`] types;
//!   `remove-types`: every type is listed;
//! - `set-keys`: the new key set differs from the current one;
//! - **a key id belongs to at most one issuer**: `add-issuer` and `set-keys` refuse a key
//!   that any other record lists, removed records included (their keys stay attached to
//!   them, so old signatures remain attributable).
//!
//! The checks run in this order, and the first failure decides the error: ledger order,
//! version, stateless rules, state rules, approvals (each in list order), quorum. A refused
//! change leaves the registry unchanged. [`RegistryChange::check`] runs the parts that need
//! only the genesis file (stateless rules, approvals, quorum), for admission.
//!
//! # R5. Authorisation
//!
//! An issuance signed by key id `k` for document type `t` is authorised
//! ([`Registry::authorize_document`]) when an issuer listing `k` among its keys is `active`
//! and lists `t` in `documentTypes`; a credential type is authorised
//! ([`Registry::authorize_credential`]) by issuer DID and `credentialTypes` the same way.
//! The refusals, checked in this order, are: unknown key (or DID), removed, suspended, type
//! not listed.
//!
//! # Errors
//!
//! [`RegistryError::slug`] gives a stable `registry-…` slug per error for problem+json
//! `type` URIs.

use std::collections::{BTreeMap, BTreeSet};

use base64::Engine as _;
use ed25519_dalek::{Signer as _, SigningKey};
use serde::{Deserialize, Serialize};

use crate::did_key::DidKey;
use crate::entry::{Entry, Kind};
use crate::genesis::{Genesis, MAX_SAFE_INTEGER, TrustedIssuer, Validator};
use crate::hash::Hash;
use crate::signature;

/// Domain-separation tag prefixed to the approval signing bytes (R3).
pub const SIGNING_DOMAIN: &[u8] = b"dojang/registry-change/v1\0";
/// Largest change payload, in bytes (R2).
pub const MAX_CHANGE_LEN: usize = 64 * 1024;
/// Most signing keys of one issuer (R4; as in the genesis rules).
pub const MAX_KEYS: usize = 16;
/// Most document and credential types of one issuer together (R4; as in the genesis rules).
pub const MAX_TYPES: usize = 256;
/// Longest type, in bytes (R4).
pub const MAX_TYPE_LEN: usize = 128;
/// Longest issuer name, in bytes (R4).
pub const MAX_NAME_LEN: usize = 256;
/// Longest issuer DID, in bytes (R4; as in the genesis rules).
pub const MAX_DID_LEN: usize = 512;
/// Most approvals in one change (R3).
pub const MAX_APPROVALS: usize = 256;
/// Most issuer records, removed ones included (R4).
pub const MAX_ISSUERS: usize = 10_000;
/// How much of a bad value an error message repeats: enough for a whole `did:key` key id
/// (105 bytes).
const SHOWN_CHARS: usize = 128;
/// How much of a JSON parser message an error repeats.
const SHOWN_PARSER_CHARS: usize = 240;

// ---------------------------------------------------------------------------------------
// Payload (R2)
// ---------------------------------------------------------------------------------------

/// The payload of a `trust-registry-change/v1` entry (R2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RegistryChange {
    /// The registry version this change creates: the current version + 1 (R4).
    pub version: u64,
    pub action: RegistryAction,
    /// Validator approvals, sorted by validator id (R3).
    pub approvals: Vec<Approval>,
}

/// What a change does (R2). Tagged by `type`; members are camelCase.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case", rename_all_fields = "camelCase", deny_unknown_fields)]
pub enum RegistryAction {
    /// List a new issuer, `active`.
    AddIssuer {
        #[serde(with = "issuer_json")]
        issuer: TrustedIssuer,
    },
    /// Remove an issuer for good.
    RemoveIssuer { did: String },
    /// Suspend an active issuer: it authorises nothing until reinstated.
    SuspendIssuer { did: String },
    /// Reinstate a suspended issuer.
    ReinstateIssuer { did: String },
    /// Add document and/or credential types.
    AddTypes {
        did: String,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        document_types: Vec<String>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        credential_types: Vec<String>,
    },
    /// Remove document and/or credential types.
    RemoveTypes {
        did: String,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        document_types: Vec<String>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        credential_types: Vec<String>,
    },
    /// Replace the issuer's signing key ids.
    SetKeys { did: String, keys: Vec<String> },
}

/// One validator's approval of a change (R3).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Approval {
    /// The genesis validator id, e.g. `agency-1`.
    pub validator: String,
    /// Canonical padded base64 of the 64-byte Ed25519 signature over the signing bytes.
    pub signature: String,
}

/// [`TrustedIssuer`] in the payload and state JSON: camelCase members, empty type lists
/// omitted, unknown members refused. (The genesis file spells the same data snake_case.)
mod issuer_json {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use crate::genesis::TrustedIssuer;

    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct Borrowed<'a> {
        did: &'a str,
        name: &'a str,
        keys: &'a [String],
        #[serde(skip_serializing_if = "is_empty")]
        document_types: &'a [String],
        #[serde(skip_serializing_if = "is_empty")]
        credential_types: &'a [String],
    }

    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    struct Owned {
        did: String,
        name: String,
        keys: Vec<String>,
        #[serde(default)]
        document_types: Vec<String>,
        #[serde(default)]
        credential_types: Vec<String>,
    }

    fn is_empty(v: &&[String]) -> bool {
        v.is_empty()
    }

    pub(super) fn serialize<S: Serializer>(i: &TrustedIssuer, s: S) -> Result<S::Ok, S::Error> {
        Borrowed { did: &i.did, name: &i.name, keys: &i.keys, document_types: &i.document_types, credential_types: &i.credential_types }
            .serialize(s)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<TrustedIssuer, D::Error> {
        let o = Owned::deserialize(d)?;
        Ok(TrustedIssuer { did: o.did, name: o.name, keys: o.keys, document_types: o.document_types, credential_types: o.credential_types })
    }
}

/// What JCS signs for an approval: the change without its approvals (R3).
#[derive(Serialize)]
struct SignedPart<'a> {
    version: u64,
    action: &'a RegistryAction,
}

impl RegistryChange {
    /// A change creating `version`, without approvals yet.
    pub fn new(version: u64, action: RegistryAction) -> RegistryChange {
        RegistryChange { version, action, approvals: Vec::new() }
    }

    /// The canonical payload bytes: JCS (RFC 8785) of the change (R2).
    pub fn encode(&self) -> Vec<u8> {
        // Serialising these plain structs cannot fail (string keys, integers, no floats);
        // an empty result would be refused by decode anyway.
        serde_jcs::to_vec(self).unwrap_or_default()
    }

    /// Decodes a payload (R2): at most [`MAX_CHANGE_LEN`] bytes, valid JSON of this shape
    /// with no unknown member, and exactly the canonical encoding. The validity rules are
    /// [`RegistryChange::validate`], [`RegistryChange::check`] and [`Registry::apply`].
    pub fn decode(payload: &[u8]) -> Result<RegistryChange, RegistryError> {
        if payload.len() > MAX_CHANGE_LEN {
            return Err(RegistryError::PayloadTooLarge { len: payload.len(), max: MAX_CHANGE_LEN });
        }
        let change: RegistryChange = serde_json::from_slice(payload)
            .map_err(|e| RegistryError::Malformed(crate::text::shown_n(&e.to_string(), SHOWN_PARSER_CHARS)))?;
        if change.encode() != payload {
            return Err(RegistryError::NotCanonical);
        }
        Ok(change)
    }

    /// Decodes the payload of a sequenced entry, checking its kind.
    pub fn from_entry(entry: &Entry) -> Result<RegistryChange, RegistryError> {
        if entry.kind != Kind::TrustRegistryChange {
            return Err(RegistryError::WrongKind(entry.kind.name()));
        }
        RegistryChange::decode(&entry.payload)
    }

    /// The bytes each approval signs (R3): [`SIGNING_DOMAIN`] ‖ genesis hash ‖
    /// JCS({"action", "version"}). Approvals are not covered.
    pub fn signing_bytes(&self, genesis_hash: &Hash) -> Vec<u8> {
        let body = serde_jcs::to_vec(&SignedPart { version: self.version, action: &self.action }).unwrap_or_default();
        let mut out = Vec::with_capacity(SIGNING_DOMAIN.len() + 32 + body.len());
        out.extend_from_slice(SIGNING_DOMAIN);
        out.extend_from_slice(genesis_hash.as_bytes());
        out.extend_from_slice(&body);
        out
    }

    /// Signs the change as validator `validator_id` with its consensus `key`, replacing that
    /// validator's earlier approval if any, and keeps the approvals sorted by validator id.
    pub fn approve(&mut self, validator_id: &str, key: &SigningKey, genesis_hash: &Hash) {
        let signature = key.sign(&self.signing_bytes(genesis_hash)).to_bytes();
        let approval =
            Approval { validator: validator_id.to_owned(), signature: base64::engine::general_purpose::STANDARD.encode(signature) };
        match self.approvals.binary_search_by(|a| a.validator.as_str().cmp(validator_id)) {
            Ok(i) => {
                if let Some(slot) = self.approvals.get_mut(i) {
                    *slot = approval;
                }
            }
            Err(i) => self.approvals.insert(i, approval),
        }
    }

    /// The issuer DID the action is about.
    pub fn subject(&self) -> &str {
        self.action.subject()
    }

    /// The stateless rules (R4) and the shape of the approvals (R3: count, order, one per
    /// validator, base64 of 64 bytes). Needs neither state nor genesis.
    pub fn validate(&self) -> Result<(), RegistryError> {
        let len = self.encode().len();
        if len > MAX_CHANGE_LEN {
            return Err(RegistryError::PayloadTooLarge { len, max: MAX_CHANGE_LEN });
        }
        if self.version == 0 || self.version > MAX_SAFE_INTEGER {
            return Err(RegistryError::InvalidVersion { version: self.version });
        }
        self.action.validate()?;
        if self.approvals.len() > MAX_APPROVALS {
            return Err(RegistryError::TooManyApprovals { count: self.approvals.len(), max: MAX_APPROVALS });
        }
        let mut previous: Option<&str> = None;
        for a in &self.approvals {
            if let Some(p) = previous {
                if a.validator.as_str() == p {
                    return Err(RegistryError::DuplicateApproval { validator: shown(&a.validator) });
                }
                if a.validator.as_str() < p {
                    return Err(RegistryError::ApprovalsNotSorted { validator: shown(&a.validator), after: shown(p) });
                }
            }
            decode_signature(a)?;
            previous = Some(a.validator.as_str());
        }
        Ok(())
    }

    /// Everything that needs only the genesis file (R3, R4): the stateless rules, every
    /// approval's validator and signature, and the quorum with the subject agency's own
    /// approvals left out. An admission layer may run this before sequencing; the state
    /// rules (version, existence, status, key ownership) are [`Registry::apply`]'s.
    pub fn check(&self, genesis: &Genesis) -> Result<(), RegistryError> {
        self.validate()?;
        self.check_approvals(genesis, &genesis.hash())
    }

    /// Approvals (in list order) and quorum (R3). Assumes [`RegistryChange::validate`] passed.
    fn check_approvals(&self, genesis: &Genesis, genesis_hash: &Hash) -> Result<(), RegistryError> {
        let msg = self.signing_bytes(genesis_hash);
        let subject = self.subject();
        let mut counted: u64 = 0;
        let mut own: u64 = 0;
        let mut own_validator: Option<&Validator> = None;
        for a in &self.approvals {
            let Some(v) = genesis.validators.iter().find(|v| v.id == a.validator) else {
                return Err(RegistryError::UnknownValidator { validator: shown(&a.validator) });
            };
            let sig = decode_signature(a)?;
            let key = DidKey::parse(&v.consensus_key).map_err(|_| RegistryError::BadSignature { validator: v.id.clone() })?;
            if !signature::verify(key.as_bytes(), &msg, &sig) {
                return Err(RegistryError::BadSignature { validator: v.id.clone() });
            }
            if v.did == subject {
                own = own.saturating_add(v.voting_power);
                own_validator = own_validator.or(Some(v));
            } else {
                counted = counted.saturating_add(v.voting_power);
            }
        }
        if genesis.registry_quorum(counted) {
            return Ok(());
        }
        if let Some(v) = own_validator
            && genesis.registry_quorum(counted.saturating_add(own))
        {
            return Err(RegistryError::SelfApproval {
                validator: v.id.clone(),
                did: shown(subject),
                power: counted,
                needed: needed_power(genesis),
            });
        }
        Err(RegistryError::NoQuorum { power: counted, needed: needed_power(genesis), total: genesis.total_power() })
    }
}

/// The smallest voting power that passes `genesis.registry_quorum` (for messages).
fn needed_power(genesis: &Genesis) -> u64 {
    match genesis.governance.registry_threshold {
        Some(t) => t,
        None => u64::try_from(u128::from(genesis.total_power()) * 2 / 3 + 1).unwrap_or(u64::MAX),
    }
}

/// The 64 signature bytes of an approval: canonical padded base64 (R3).
fn decode_signature(a: &Approval) -> Result<[u8; 64], RegistryError> {
    a.signature_bytes().map_err(|reason| RegistryError::MalformedSignature { validator: shown(&a.validator), reason })
}

impl Approval {
    /// The 64-byte signature; only canonical padded base64 is accepted, so one signature
    /// has one spelling (the payload must re-encode byte for byte).
    pub fn signature_bytes(&self) -> Result<[u8; 64], String> {
        if self.signature.len() != 88 {
            return Err("must be 88 characters of padded base64 (64 bytes)".into());
        }
        let bytes = base64::engine::general_purpose::STANDARD.decode(&self.signature).map_err(|e| format!("not canonical base64: {e}"))?;
        let sig: [u8; 64] = bytes.as_slice().try_into().map_err(|_| "must decode to 64 bytes".to_owned())?;
        if base64::engine::general_purpose::STANDARD.encode(sig) != self.signature {
            return Err("not canonical base64".into());
        }
        Ok(sig)
    }
}

impl RegistryAction {
    /// The `type` member.
    pub fn name(&self) -> &'static str {
        match self {
            RegistryAction::AddIssuer { .. } => "add-issuer",
            RegistryAction::RemoveIssuer { .. } => "remove-issuer",
            RegistryAction::SuspendIssuer { .. } => "suspend-issuer",
            RegistryAction::ReinstateIssuer { .. } => "reinstate-issuer",
            RegistryAction::AddTypes { .. } => "add-types",
            RegistryAction::RemoveTypes { .. } => "remove-types",
            RegistryAction::SetKeys { .. } => "set-keys",
        }
    }

    /// The issuer DID the action is about.
    pub fn subject(&self) -> &str {
        match self {
            RegistryAction::AddIssuer { issuer } => &issuer.did,
            RegistryAction::RemoveIssuer { did }
            | RegistryAction::SuspendIssuer { did }
            | RegistryAction::ReinstateIssuer { did }
            | RegistryAction::AddTypes { did, .. }
            | RegistryAction::RemoveTypes { did, .. }
            | RegistryAction::SetKeys { did, .. } => did,
        }
    }

    /// The stateless rules of R4.
    pub fn validate(&self) -> Result<(), RegistryError> {
        match self {
            RegistryAction::AddIssuer { issuer } => {
                check_new_did(&issuer.did)?;
                check_name(&issuer.name)?;
                check_keys(&issuer.keys)?;
                check_types(&issuer.document_types, &issuer.credential_types)
            }
            RegistryAction::RemoveIssuer { did } | RegistryAction::SuspendIssuer { did } | RegistryAction::ReinstateIssuer { did } => {
                check_target_did(did)
            }
            RegistryAction::AddTypes { did, document_types, credential_types }
            | RegistryAction::RemoveTypes { did, document_types, credential_types } => {
                check_target_did(did)?;
                if document_types.is_empty() && credential_types.is_empty() {
                    return Err(RegistryError::NoChange { did: shown(did), reason: "names no document or credential type" });
                }
                check_types(document_types, credential_types)
            }
            RegistryAction::SetKeys { did, keys } => {
                check_target_did(did)?;
                check_keys(keys)
            }
        }
    }
}

/// A new issuer's DID (R4).
fn check_new_did(did: &str) -> Result<(), RegistryError> {
    let bad = |reason: String| Err(RegistryError::InvalidDid { did: shown(did), reason });
    if did.len() > MAX_DID_LEN {
        return bad(format!("longer than {MAX_DID_LEN} bytes"));
    }
    let mut parts = did.splitn(3, ':');
    if parts.next() != Some("did") {
        return bad("must start with \"did:\"".into());
    }
    let method = parts.next().unwrap_or_default();
    if method.is_empty() || !method.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()) {
        return bad("method name must be one or more of [a-z0-9]".into());
    }
    let id = parts.next().unwrap_or_default();
    if id.is_empty() || id.ends_with(':') {
        return bad("missing method-specific identifier".into());
    }
    if id.chars().any(|c| matches!(c, '#' | '?' | '/') || c.is_whitespace() || c.is_control()) {
        return bad("must be a did, not a did url: no '#', '?', '/' or whitespace".into());
    }
    match method {
        "key" => DidKey::parse(did).map(|_| ()).map_err(|e| RegistryError::InvalidDid { did: shown(did), reason: e.to_string() }),
        crate::did_dojang::METHOD_NAME => {
            crate::did_dojang::parse_did(did).map(|_| ()).map_err(|e| RegistryError::InvalidDid { did: shown(did), reason: e.to_string() })
        }
        _ => Ok(()),
    }
}

/// The DID an action other than add-issuer names: it only has to be able to name an issuer.
fn check_target_did(did: &str) -> Result<(), RegistryError> {
    if !did.starts_with("did:") || did.len() > MAX_DID_LEN {
        return Err(RegistryError::InvalidDid {
            did: shown(did),
            reason: format!("must start with \"did:\" and be at most {MAX_DID_LEN} bytes"),
        });
    }
    Ok(())
}

fn check_name(name: &str) -> Result<(), RegistryError> {
    if name.is_empty() || name.len() > MAX_NAME_LEN || name.chars().any(char::is_control) {
        return Err(RegistryError::InvalidName { name: shown(name) });
    }
    Ok(())
}

/// 1 to [`MAX_KEYS`] distinct canonical Ed25519 key ids (R4).
fn check_keys(keys: &[String]) -> Result<(), RegistryError> {
    if keys.is_empty() || keys.len() > MAX_KEYS {
        return Err(RegistryError::KeyCount { count: keys.len(), max: MAX_KEYS });
    }
    let mut seen = BTreeSet::new();
    for k in keys {
        let bad = |reason: String| RegistryError::InvalidKey { key: shown(k), reason };
        let key = DidKey::parse_key_id(k).map_err(|e| bad(e.to_string()))?;
        if key.key_id() != *k {
            return Err(bad("not the canonical spelling did:key:z6Mk…#z6Mk…".into()));
        }
        if !seen.insert(k.as_str()) {
            return Err(bad("listed twice".into()));
        }
    }
    Ok(())
}

/// Types: 1 to [`MAX_TYPE_LEN`] bytes without control characters, no duplicates within a
/// list, at most [`MAX_TYPES`] in all (R4).
fn check_types(document_types: &[String], credential_types: &[String]) -> Result<(), RegistryError> {
    let count = document_types.len().saturating_add(credential_types.len());
    if count > MAX_TYPES {
        return Err(RegistryError::TooManyTypes { count, max: MAX_TYPES });
    }
    for (class, list) in [(TypeClass::Document, document_types), (TypeClass::Credential, credential_types)] {
        let mut seen = BTreeSet::new();
        for t in list {
            if t.is_empty() || t.len() > MAX_TYPE_LEN || t.chars().any(char::is_control) {
                return Err(RegistryError::InvalidType {
                    class: class.name(),
                    value: shown(t),
                    reason: "must be 1 to 128 bytes without control characters",
                });
            }
            if !seen.insert(t.as_str()) {
                return Err(RegistryError::InvalidType { class: class.name(), value: shown(t), reason: "listed twice" });
            }
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// State (R1, R4, R5)
// ---------------------------------------------------------------------------------------

/// An issuer's status (R1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IssuerStatus {
    Active,
    Suspended,
    Removed,
}

impl IssuerStatus {
    pub fn name(self) -> &'static str {
        match self {
            IssuerStatus::Active => "active",
            IssuerStatus::Suspended => "suspended",
            IssuerStatus::Removed => "removed",
        }
    }
}

/// One issuer of the registry (R1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IssuerRecord {
    #[serde(with = "issuer_json")]
    pub issuer: TrustedIssuer,
    pub status: IssuerStatus,
    /// Ledger indices of the changes that touched this issuer, oldest first; empty for an
    /// untouched genesis issuer.
    pub changes: Vec<u64>,
}

/// Document or credential types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TypeClass {
    Document,
    Credential,
}

impl TypeClass {
    fn name(self) -> &'static str {
        match self {
            TypeClass::Document => "document",
            TypeClass::Credential => "credential",
        }
    }
}

impl IssuerRecord {
    /// The types of `class` this issuer lists.
    fn types(&self, class: TypeClass) -> &[String] {
        match class {
            TypeClass::Document => &self.issuer.document_types,
            TypeClass::Credential => &self.issuer.credential_types,
        }
    }

    /// R5 for one record: removed, suspended, type not listed.
    fn authorize(&self, class: TypeClass, t: &str) -> Result<(), RegistryError> {
        match self.status {
            IssuerStatus::Removed => Err(RegistryError::IssuerRemoved { did: self.issuer.did.clone() }),
            IssuerStatus::Suspended => Err(RegistryError::IssuerSuspended { did: self.issuer.did.clone() }),
            IssuerStatus::Active if self.types(class).iter().any(|x| x == t) => Ok(()),
            IssuerStatus::Active => {
                Err(RegistryError::NotAuthorized { did: self.issuer.did.clone(), class: class.name(), value: shown(t) })
            }
        }
    }

    /// Whether this issuer is active and lists `document_type`.
    pub fn may_issue_document(&self, document_type: &str) -> bool {
        self.authorize(TypeClass::Document, document_type).is_ok()
    }

    /// Whether this issuer is active and lists `credential_type`.
    pub fn may_issue_credential(&self, credential_type: &str) -> bool {
        self.authorize(TypeClass::Credential, credential_type).is_ok()
    }
}

/// The trusted-issuer registry at one ledger height (R1). Serialisable, so a node can
/// persist it between batches.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Registry {
    version: u64,
    /// Ledger index of the last applied change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    last_index: Option<u64>,
    issuers: BTreeMap<String, IssuerRecord>,
}

impl Registry {
    /// The genesis state (R1): version 0, every genesis trusted issuer active. Assumes a
    /// validated genesis (a DID listed twice keeps its first entry).
    pub fn from_genesis(genesis: &Genesis) -> Registry {
        let mut issuers = BTreeMap::new();
        for i in &genesis.trusted_issuers {
            issuers.entry(i.did.clone()).or_insert_with(|| IssuerRecord {
                issuer: i.clone(),
                status: IssuerStatus::Active,
                changes: Vec::new(),
            });
        }
        Registry { version: 0, last_index: None, issuers }
    }

    /// The number of changes applied since genesis.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// The ledger index of the last applied change, if any.
    pub fn last_index(&self) -> Option<u64> {
        self.last_index
    }

    /// Validates `change` (ledger order, version, action, approvals and quorum; R3, R4) and
    /// applies it as the change at ledger `index`. On error the registry is unchanged.
    pub fn apply(&mut self, change: &RegistryChange, genesis: &Genesis, index: u64) -> Result<(), RegistryError> {
        self.apply_with_hash(change, genesis, &genesis.hash(), index)
    }

    fn apply_with_hash(
        &mut self,
        change: &RegistryChange,
        genesis: &Genesis,
        genesis_hash: &Hash,
        index: u64,
    ) -> Result<(), RegistryError> {
        if let Some(last) = self.last_index
            && index <= last
        {
            return Err(RegistryError::OutOfOrder { index, last });
        }
        let expected = self.version.saturating_add(1);
        if change.version <= self.version {
            return Err(RegistryError::StaleVersion { version: change.version, current: self.version });
        }
        if change.version != expected {
            return Err(RegistryError::VersionGap { version: change.version, expected });
        }
        change.validate()?;
        let mut record = self.next_record(&change.action)?;
        change.check_approvals(genesis, genesis_hash)?;
        // Every check passed: commit.
        record.changes.push(index);
        self.issuers.insert(record.issuer.did.clone(), record);
        self.version = expected;
        self.last_index = Some(index);
        Ok(())
    }

    /// The state rules of R4: the subject's record as the action leaves it (without the
    /// new change index).
    fn next_record(&self, action: &RegistryAction) -> Result<IssuerRecord, RegistryError> {
        let did = action.subject();
        if let RegistryAction::AddIssuer { issuer } = action {
            if let Some(existing) = self.issuers.get(did) {
                return Err(match existing.status {
                    IssuerStatus::Removed => RegistryError::IssuerRemoved { did: shown(did) },
                    _ => RegistryError::IssuerExists { did: shown(did) },
                });
            }
            if self.issuers.len() >= MAX_ISSUERS {
                return Err(RegistryError::TooManyIssuers { max: MAX_ISSUERS });
            }
            self.check_keys_free(did, &issuer.keys)?;
            return Ok(IssuerRecord { issuer: issuer.clone(), status: IssuerStatus::Active, changes: Vec::new() });
        }
        let Some(current) = self.issuers.get(did) else {
            return Err(RegistryError::UnknownIssuer { did: shown(did) });
        };
        if current.status == IssuerStatus::Removed {
            return Err(RegistryError::IssuerRemoved { did: shown(did) });
        }
        let mut next = current.clone();
        let wrong_status = |action: &'static str| RegistryError::WrongStatus { did: shown(did), status: current.status.name(), action };
        match action {
            RegistryAction::AddIssuer { .. } => return Err(RegistryError::IssuerExists { did: shown(did) }),
            RegistryAction::RemoveIssuer { .. } => next.status = IssuerStatus::Removed,
            RegistryAction::SuspendIssuer { .. } => {
                if current.status != IssuerStatus::Active {
                    return Err(wrong_status("suspend-issuer"));
                }
                next.status = IssuerStatus::Suspended;
            }
            RegistryAction::ReinstateIssuer { .. } => {
                if current.status != IssuerStatus::Suspended {
                    return Err(wrong_status("reinstate-issuer"));
                }
                next.status = IssuerStatus::Active;
            }
            RegistryAction::AddTypes { document_types, credential_types, .. } => {
                for (class, add) in [(TypeClass::Document, document_types), (TypeClass::Credential, credential_types)] {
                    if let Some(t) = add.iter().find(|t| current.types(class).contains(t)) {
                        return Err(RegistryError::TypeAlreadyListed { did: shown(did), class: class.name(), value: shown(t) });
                    }
                }
                next.issuer.document_types.extend(document_types.iter().cloned());
                next.issuer.credential_types.extend(credential_types.iter().cloned());
                let count = next.issuer.document_types.len().saturating_add(next.issuer.credential_types.len());
                if count > MAX_TYPES {
                    return Err(RegistryError::TooManyTypes { count, max: MAX_TYPES });
                }
            }
            RegistryAction::RemoveTypes { document_types, credential_types, .. } => {
                for (class, remove) in [(TypeClass::Document, document_types), (TypeClass::Credential, credential_types)] {
                    if let Some(t) = remove.iter().find(|t| !current.types(class).contains(t)) {
                        return Err(RegistryError::TypeNotListed { did: shown(did), class: class.name(), value: shown(t) });
                    }
                }
                next.issuer.document_types.retain(|t| !document_types.contains(t));
                next.issuer.credential_types.retain(|t| !credential_types.contains(t));
            }
            RegistryAction::SetKeys { keys, .. } => {
                let old: BTreeSet<&String> = current.issuer.keys.iter().collect();
                let new: BTreeSet<&String> = keys.iter().collect();
                if old == new {
                    return Err(RegistryError::NoChange { did: shown(did), reason: "the key set equals the current one" });
                }
                self.check_keys_free(did, keys)?;
                next.issuer.keys = keys.clone();
            }
        }
        Ok(next)
    }

    /// A key id belongs to at most one issuer, removed ones included (R4).
    fn check_keys_free(&self, did: &str, keys: &[String]) -> Result<(), RegistryError> {
        for r in self.issuers.values().filter(|r| r.issuer.did != did) {
            if let Some(k) = keys.iter().find(|k| r.issuer.keys.contains(k)) {
                return Err(RegistryError::KeyInUse { key: shown(k), did: shown(&r.issuer.did) });
            }
        }
        Ok(())
    }

    /// The issuer with this DID (any status).
    pub fn issuer(&self, did: &str) -> Option<&IssuerRecord> {
        self.issuers.get(did)
    }

    /// The issuer whose `keys` contain `author_key` (a key id), if any (any status). Changes
    /// never give one key to two issuers (R4); should a genesis file do so, the first in DID
    /// order is returned.
    pub fn issuer_by_key(&self, author_key: &str) -> Option<&IssuerRecord> {
        self.issuers.values().find(|r| r.issuer.keys.iter().any(|k| k == author_key))
    }

    /// Whether the issuer signing with `author_key` may currently issue `document_type`
    /// (R5): the record if it is active and lists the type; else
    /// [`RegistryError::UnknownIssuerKey`], [`RegistryError::IssuerRemoved`],
    /// [`RegistryError::IssuerSuspended`] or [`RegistryError::NotAuthorized`].
    pub fn authorize_document(&self, author_key: &str, document_type: &str) -> Result<&IssuerRecord, RegistryError> {
        let mut first_error = None;
        // One holder in practice; a genesis file that shares a key is served by any holder
        // that authorises, else the first holder's refusal.
        for r in self.issuers.values().filter(|r| r.issuer.keys.iter().any(|k| k == author_key)) {
            match r.authorize(TypeClass::Document, document_type) {
                Ok(()) => return Ok(r),
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        Err(first_error.unwrap_or_else(|| RegistryError::UnknownIssuerKey { key: shown(author_key) }))
    }

    /// Whether the issuer `issuer_did` may currently issue credentials of `credential_type`
    /// (R5): the record if it is active and lists the type; else
    /// [`RegistryError::UnknownIssuer`], [`RegistryError::IssuerRemoved`],
    /// [`RegistryError::IssuerSuspended`] or [`RegistryError::NotAuthorized`].
    pub fn authorize_credential(&self, issuer_did: &str, credential_type: &str) -> Result<&IssuerRecord, RegistryError> {
        let Some(r) = self.issuers.get(issuer_did) else {
            return Err(RegistryError::UnknownIssuer { did: shown(issuer_did) });
        };
        r.authorize(TypeClass::Credential, credential_type)?;
        Ok(r)
    }

    /// Every issuer record, in DID order, removed ones included.
    pub fn issuers(&self) -> impl Iterator<Item = &IssuerRecord> {
        self.issuers.values()
    }
}

/// Replays `changes` (ledger index, decoded change), in order, from the genesis state: the
/// registry as of the height after the last of them (R1). Only valid changes are ever
/// committed to the ledger, so any refusal means a bad history (or proof) and is returned.
pub fn replay(genesis: &Genesis, changes: &[(u64, RegistryChange)]) -> Result<Registry, RegistryError> {
    let hash = genesis.hash();
    let mut registry = Registry::from_genesis(genesis);
    for (index, change) in changes {
        registry.apply_with_hash(change, genesis, &hash, *index)?;
    }
    Ok(registry)
}

// ---------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------

/// Why a change is refused or an issuance is not authorised. Messages are lowercase and
/// name the bad value (truncated, control characters escaped).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistryError {
    #[error("registry change payload is {len} bytes, over the limit of {max}")]
    PayloadTooLarge { len: usize, max: usize },
    #[error("malformed registry change payload: {0}")]
    Malformed(String),
    #[error("registry change payload is not canonical: it must be the rfc 8785 (jcs) form, with empty type lists omitted")]
    NotCanonical,
    #[error("entry kind {0} is not trust-registry-change/v1")]
    WrongKind(&'static str),
    #[error("registry change record index {index} is not after the previous change's index {last}")]
    OutOfOrder { index: u64, last: u64 },
    #[error("registry change version {version} is stale: the registry is already at version {current} (replayed or superseded change)")]
    StaleVersion { version: u64, current: u64 },
    #[error("registry change version {version} skips ahead: the next version is {expected}")]
    VersionGap { version: u64, expected: u64 },
    #[error("registry change version {version} is invalid: versions are 1 to 2^53 - 1")]
    InvalidVersion { version: u64 },
    #[error("invalid issuer did {did:?}: {reason}")]
    InvalidDid { did: String, reason: String },
    #[error("invalid issuer name {name:?}: must be 1 to 256 bytes without control characters")]
    InvalidName { name: String },
    #[error("an issuer needs 1 to {max} signing keys, got {count}")]
    KeyCount { count: usize, max: usize },
    #[error("invalid issuer key {key:?}: {reason}")]
    InvalidKey { key: String, reason: String },
    #[error("key {key:?} already belongs to issuer {did:?}")]
    KeyInUse { key: String, did: String },
    #[error("invalid {class} type {value:?}: {reason}")]
    InvalidType { class: &'static str, value: String, reason: &'static str },
    #[error("an issuer may list at most {max} document and credential types, got {count}")]
    TooManyTypes { count: usize, max: usize },
    #[error("issuer {did:?} already lists {class} type {value:?}")]
    TypeAlreadyListed { did: String, class: &'static str, value: String },
    #[error("issuer {did:?} does not list {class} type {value:?}")]
    TypeNotListed { did: String, class: &'static str, value: String },
    #[error("change to issuer {did:?} changes nothing: {reason}")]
    NoChange { did: String, reason: &'static str },
    #[error("issuer {did:?} is already listed")]
    IssuerExists { did: String },
    #[error("issuer {did:?} is not in the registry")]
    UnknownIssuer { did: String },
    #[error("issuer {did:?} has been removed from the registry, for good")]
    IssuerRemoved { did: String },
    #[error("issuer {did:?} is suspended")]
    IssuerSuspended { did: String },
    #[error("cannot {action} issuer {did:?}: it is {status}")]
    WrongStatus { did: String, status: &'static str, action: &'static str },
    #[error("the registry is full: at most {max} issuers")]
    TooManyIssuers { max: usize },
    #[error("registry change has {count} approvals, over the limit of {max}")]
    TooManyApprovals { count: usize, max: usize },
    #[error("validator {validator:?} approves the registry change twice")]
    DuplicateApproval { validator: String },
    #[error("approval by {validator:?} comes after {after:?}: approvals must be sorted by validator id")]
    ApprovalsNotSorted { validator: String, after: String },
    #[error("approval by {validator:?}: no genesis validator has that id")]
    UnknownValidator { validator: String },
    #[error("approval by {validator:?} has a malformed signature: {reason}")]
    MalformedSignature { validator: String, reason: String },
    #[error("approval by {validator:?} has a bad signature (wrong key, change or chain)")]
    BadSignature { validator: String },
    #[error("registry change approved by voting power {power} of {total}: the registry quorum needs {needed}")]
    NoQuorum { power: u64, needed: u64, total: u64 },
    #[error(
        "registry change about {did:?} reaches the quorum only with the approval of {validator:?}, the subject agency itself; others approved {power} of the {needed} needed"
    )]
    SelfApproval { validator: String, did: String, power: u64, needed: u64 },
    #[error("key {key:?} is not a signing key of any trusted issuer")]
    UnknownIssuerKey { key: String },
    #[error("issuer {did:?} is not authorised for {class} type {value:?}")]
    NotAuthorized { did: String, class: &'static str, value: String },
}

impl RegistryError {
    /// A stable machine-readable slug, for problem+json `type` URIs.
    pub fn slug(&self) -> &'static str {
        match self {
            RegistryError::PayloadTooLarge { .. } => "registry-change-too-large",
            RegistryError::Malformed(_) => "registry-change-malformed",
            RegistryError::NotCanonical => "registry-change-not-canonical",
            RegistryError::WrongKind(_) => "registry-wrong-kind",
            RegistryError::OutOfOrder { .. } => "registry-out-of-order",
            RegistryError::StaleVersion { .. } => "registry-stale-version",
            RegistryError::VersionGap { .. } => "registry-version-gap",
            RegistryError::InvalidVersion { .. } => "registry-invalid-version",
            RegistryError::InvalidDid { .. } => "registry-invalid-did",
            RegistryError::InvalidName { .. } => "registry-invalid-name",
            RegistryError::KeyCount { .. } | RegistryError::InvalidKey { .. } => "registry-invalid-key",
            RegistryError::KeyInUse { .. } => "registry-key-in-use",
            RegistryError::InvalidType { .. } | RegistryError::TooManyTypes { .. } => "registry-invalid-type",
            RegistryError::TypeAlreadyListed { .. } => "registry-type-listed",
            RegistryError::TypeNotListed { .. } => "registry-type-not-listed",
            RegistryError::NoChange { .. } => "registry-no-change",
            RegistryError::IssuerExists { .. } => "registry-issuer-exists",
            RegistryError::UnknownIssuer { .. } => "registry-unknown-issuer",
            RegistryError::IssuerRemoved { .. } => "registry-issuer-removed",
            RegistryError::IssuerSuspended { .. } => "registry-issuer-suspended",
            RegistryError::WrongStatus { .. } => "registry-wrong-status",
            RegistryError::TooManyIssuers { .. } => "registry-full",
            RegistryError::TooManyApprovals { .. } | RegistryError::DuplicateApproval { .. } | RegistryError::ApprovalsNotSorted { .. } => {
                "registry-bad-approvals"
            }
            RegistryError::UnknownValidator { .. } => "registry-unknown-validator",
            RegistryError::MalformedSignature { .. } | RegistryError::BadSignature { .. } => "registry-bad-signature",
            RegistryError::NoQuorum { .. } => "registry-no-quorum",
            RegistryError::SelfApproval { .. } => "registry-self-approval",
            RegistryError::UnknownIssuerKey { .. } => "registry-unknown-issuer-key",
            RegistryError::NotAuthorized { .. } => "registry-not-authorized",
        }
    }
}

/// A bad value as repeated in an error: at most [`SHOWN_CHARS`] characters, then an
/// ellipsis. Messages format it with `{:?}`, which escapes control characters.
fn shown(value: &str) -> String {
    crate::text::shown_n(value, SHOWN_CHARS)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]
    use super::*;
    use crate::entry::UnsignedEntry;
    use proptest::prelude::*;
    use serde_json::json;

    const PASSPORT_OFFICE: &str = "did:web:passport.example.kr";
    const TAX_OFFICE: &str = "did:web:tax.example.kr";

    fn kid(seed: u8) -> String {
        DidKey::from_verifying_key(&SigningKey::from_bytes(&[seed; 32]).verifying_key()).key_id()
    }

    fn issuer(did: &str, key_seeds: &[u8], documents: &[&str], credentials: &[&str]) -> TrustedIssuer {
        TrustedIssuer {
            did: did.into(),
            name: format!("Issuer {did}"),
            keys: key_seeds.iter().map(|&s| kid(s)).collect(),
            document_types: documents.iter().map(|s| s.to_string()).collect(),
            credential_types: credentials.iter().map(|s| s.to_string()).collect(),
        }
    }

    /// Four agencies of power 1 (seeds 1..=4); agency-0 is itself a trusted issuer (key
    /// seed 101), as is an external passport office (key seed 102).
    struct Fixture {
        genesis: Genesis,
        keys: Vec<SigningKey>,
        hash: Hash,
        registry: Registry,
        index: u64,
    }

    impl Fixture {
        fn new() -> Fixture {
            Fixture::with(|_| {})
        }
        fn with(edit: impl FnOnce(&mut Genesis)) -> Fixture {
            let (mut genesis, keys) = crate::testing::sample_genesis(4);
            let agency0 = genesis.validators[0].did.clone();
            genesis.trusted_issuers = vec![
                issuer(&agency0, &[101], &["resident-registration"], &["ResidentCard"]),
                issuer(PASSPORT_OFFICE, &[102], &["passport"], &["PassportCredential"]),
            ];
            edit(&mut genesis);
            genesis.validate().unwrap();
            let registry = Registry::from_genesis(&genesis);
            Fixture { hash: genesis.hash(), genesis, keys, registry, index: 10 }
        }
        fn agency_did(&self, i: usize) -> String {
            self.genesis.validators[i].did.clone()
        }
        /// The change creating the next version, approved by the agencies `by`.
        fn change(&self, action: RegistryAction, by: &[usize]) -> RegistryChange {
            self.change_at(self.registry.version() + 1, action, by)
        }
        fn change_at(&self, version: u64, action: RegistryAction, by: &[usize]) -> RegistryChange {
            let mut c = RegistryChange::new(version, action);
            for &i in by {
                c.approve(&format!("agency-{i}"), &self.keys[i], &self.hash);
            }
            c
        }
        /// Applies at the next ledger index; a refusal must leave the registry unchanged.
        fn apply(&mut self, c: &RegistryChange) -> Result<(), RegistryError> {
            self.index += 7;
            let before = self.registry.clone();
            let out = self.registry.apply(c, &self.genesis, self.index);
            if out.is_err() {
                assert_eq!(self.registry, before);
            }
            out
        }
        fn status(&self, did: &str) -> IssuerStatus {
            self.registry.issuer(did).unwrap().status
        }
    }

    fn add_tax_office() -> RegistryAction {
        RegistryAction::AddIssuer { issuer: issuer(TAX_OFFICE, &[103, 104], &["tax-certificate"], &[]) }
    }
    fn suspend(did: &str) -> RegistryAction {
        RegistryAction::SuspendIssuer { did: did.into() }
    }
    fn reinstate(did: &str) -> RegistryAction {
        RegistryAction::ReinstateIssuer { did: did.into() }
    }
    fn remove(did: &str) -> RegistryAction {
        RegistryAction::RemoveIssuer { did: did.into() }
    }
    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    const QUORUM: &[usize] = &[1, 2, 3];

    #[test]
    fn from_genesis() {
        let f = Fixture::new();
        assert_eq!(f.registry.version(), 0);
        assert_eq!(f.registry.last_index(), None);
        assert_eq!(f.registry.issuers().count(), 2);
        let p = f.registry.issuer(PASSPORT_OFFICE).unwrap();
        assert_eq!(p.status, IssuerStatus::Active);
        assert_eq!(p.changes, Vec::<u64>::new());
        assert_eq!(p.issuer, f.genesis.trusted_issuers[1]);
        assert_eq!(f.registry.issuer_by_key(&kid(101)).unwrap().issuer.did, f.agency_did(0));
        assert_eq!(f.registry.issuer_by_key(&kid(102)).unwrap().issuer.did, PASSPORT_OFFICE);
        assert!(f.registry.issuer_by_key(&kid(1)).is_none(), "a writer key is not an issuer key");
        // A genesis without issuers gives an empty registry.
        let (g, _) = crate::testing::sample_genesis(1);
        assert_eq!(Registry::from_genesis(&g).issuers().count(), 0);
    }

    #[test]
    fn every_action_applies_with_a_quorum() {
        let mut f = Fixture::new();
        let tax = TAX_OFFICE;

        f.apply(&f.change(add_tax_office(), QUORUM)).unwrap();
        assert_eq!(f.registry.version(), 1);
        let i1 = f.index;
        assert_eq!(f.registry.last_index(), Some(i1));
        let r = f.registry.issuer(tax).unwrap();
        assert_eq!((r.status, r.changes.clone()), (IssuerStatus::Active, vec![i1]));
        assert_eq!(r.issuer.keys, vec![kid(103), kid(104)]);
        assert_eq!(f.registry.issuer_by_key(&kid(104)).unwrap().issuer.did, tax);

        let add = RegistryAction::AddTypes {
            did: tax.into(),
            document_types: strings(&["income-statement"]),
            credential_types: strings(&["TaxpayerCredential"]),
        };
        f.apply(&f.change(add, QUORUM)).unwrap();
        let r = f.registry.issuer(tax).unwrap();
        assert_eq!(r.issuer.document_types, strings(&["tax-certificate", "income-statement"]));
        assert_eq!(r.issuer.credential_types, strings(&["TaxpayerCredential"]));

        let rm = RegistryAction::RemoveTypes { did: tax.into(), document_types: strings(&["tax-certificate"]), credential_types: vec![] };
        f.apply(&f.change(rm, QUORUM)).unwrap();
        assert_eq!(f.registry.issuer(tax).unwrap().issuer.document_types, strings(&["income-statement"]));

        let set = RegistryAction::SetKeys { did: tax.into(), keys: vec![kid(105)] };
        f.apply(&f.change(set, QUORUM)).unwrap();
        assert_eq!(f.registry.issuer(tax).unwrap().issuer.keys, vec![kid(105)]);
        assert!(f.registry.issuer_by_key(&kid(103)).is_none());
        assert_eq!(f.registry.issuer_by_key(&kid(105)).unwrap().issuer.did, tax);

        f.apply(&f.change(suspend(tax), QUORUM)).unwrap();
        assert_eq!(f.status(tax), IssuerStatus::Suspended);
        f.apply(&f.change(reinstate(tax), QUORUM)).unwrap();
        assert_eq!(f.status(tax), IssuerStatus::Active);
        f.apply(&f.change(remove(tax), QUORUM)).unwrap();
        assert_eq!(f.status(tax), IssuerStatus::Removed);

        assert_eq!(f.registry.version(), 7);
        let r = f.registry.issuer(tax).unwrap();
        assert_eq!(r.changes.len(), 7);
        assert!(r.changes.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(r.changes.first(), Some(&i1));
        // The others were not touched.
        assert_eq!(f.registry.issuer(PASSPORT_OFFICE).unwrap().changes, Vec::<u64>::new());
        // Any three of four pass, and all four too.
        f.apply(&f.change(suspend(PASSPORT_OFFICE), &[0, 1, 3])).unwrap();
        f.apply(&f.change(reinstate(PASSPORT_OFFICE), &[0, 1, 2, 3])).unwrap();
    }

    #[test]
    fn short_of_quorum_is_refused() {
        let mut f = Fixture::new();
        for by in [&[][..], &[1], &[1, 2], &[0, 3]] {
            let e = f.apply(&f.change(add_tax_office(), by)).unwrap_err();
            assert_eq!(e, RegistryError::NoQuorum { power: by.len() as u64, needed: 3, total: 4 }, "{by:?}");
            assert_eq!(e.slug(), "registry-no-quorum");
        }
        assert_eq!(f.registry.version(), 0);
        assert!(f.registry.issuer(TAX_OFFICE).is_none());
        // check() agrees, without state.
        assert_eq!(f.change(add_tax_office(), &[1, 2]).check(&f.genesis), Err(RegistryError::NoQuorum { power: 2, needed: 3, total: 4 }));
        f.change(add_tax_office(), QUORUM).check(&f.genesis).unwrap();
    }

    #[test]
    fn an_agency_cannot_approve_changes_about_itself() {
        let mut f = Fixture::new();
        let a0 = f.agency_did(0);
        let a1 = f.agency_did(1);
        // agency-1 becomes an issuer: its own approval does not count.
        let add_a1 = RegistryAction::AddIssuer { issuer: issuer(&a1, &[111], &["vehicle-registration"], &[]) };
        let e = f.apply(&f.change(add_a1.clone(), &[0, 1, 2])).unwrap_err();
        assert_eq!(e, RegistryError::SelfApproval { validator: "agency-1".into(), did: a1.clone(), power: 2, needed: 3 });
        assert_eq!(e.slug(), "registry-self-approval");
        // Short even with itself: a plain quorum failure.
        let e = f.apply(&f.change(add_a1.clone(), &[1, 2])).unwrap_err();
        assert_eq!(e, RegistryError::NoQuorum { power: 1, needed: 3, total: 4 });
        // Counted with all four (three others) and with exactly the three others.
        f.apply(&f.change(add_a1, &[0, 1, 2, 3])).unwrap();
        // agency-0 (a genesis issuer) suspended without itself, then reinstating needs the
        // three others too.
        f.apply(&f.change(suspend(&a0), &[1, 2, 3])).unwrap();
        let e = f.apply(&f.change(reinstate(&a0), &[0, 1, 2])).unwrap_err();
        assert!(matches!(e, RegistryError::SelfApproval { ref validator, .. } if validator == "agency-0"), "{e}");
        let more_types =
            RegistryAction::AddTypes { did: a0.clone(), document_types: strings(&["family-register"]), credential_types: vec![] };
        assert!(matches!(f.apply(&f.change(more_types.clone(), &[0, 2, 3])).unwrap_err(), RegistryError::SelfApproval { .. }));
        f.apply(&f.change(reinstate(&a0), &[1, 2, 3])).unwrap();
        f.apply(&f.change(more_types, &[1, 2, 3])).unwrap();
        assert_eq!(f.status(&a0), IssuerStatus::Active);
        // Under an explicit threshold of 3 and a subject agency with power 2, its own
        // approval still counts for nothing.
        let mut f = Fixture::with(|g| {
            g.validators[0].voting_power = 2;
            g.governance.registry_threshold = Some(3);
        });
        let a0 = f.agency_did(0);
        assert!(matches!(f.apply(&f.change(suspend(&a0), &[0, 1])).unwrap_err(), RegistryError::SelfApproval { power: 1, needed: 3, .. }));
        f.apply(&f.change(suspend(&a0), &[1, 2, 3])).unwrap();
    }

    #[test]
    fn replayed_and_reordered_changes_are_refused() {
        let mut f = Fixture::new();
        let c1 = f.change(add_tax_office(), QUORUM);
        f.apply(&c1).unwrap();
        // The same change again (e.g. resubmitted by someone else under a new nonce).
        let e = f.apply(&c1).unwrap_err();
        assert_eq!(e, RegistryError::StaleVersion { version: 1, current: 1 });
        assert_eq!(e.slug(), "registry-stale-version");
        let c2 = f.change(suspend(TAX_OFFICE), QUORUM);
        f.apply(&c2).unwrap();
        // An older version with an otherwise fine, freshly approved action.
        let old = f.change_at(2, reinstate(TAX_OFFICE), QUORUM);
        assert_eq!(f.apply(&old).unwrap_err(), RegistryError::StaleVersion { version: 2, current: 2 });
        assert_eq!(f.apply(&f.change_at(0, reinstate(TAX_OFFICE), QUORUM)).unwrap_err().slug(), "registry-stale-version");
        // Skipping ahead.
        let e = f.apply(&f.change_at(4, reinstate(TAX_OFFICE), QUORUM)).unwrap_err();
        assert_eq!(e, RegistryError::VersionGap { version: 4, expected: 3 });
        assert_eq!(f.apply(&f.change_at(u64::MAX, reinstate(TAX_OFFICE), QUORUM)).unwrap_err().slug(), "registry-version-gap");
        // Approvals are bound to the version: version 4's approvals do not carry over to 3.
        let mut moved = f.change_at(4, reinstate(TAX_OFFICE), QUORUM);
        moved.version = 3;
        assert!(matches!(f.apply(&moved).unwrap_err(), RegistryError::BadSignature { .. }));
        // Ledger order: an index at or below the last change's.
        let last = f.registry.last_index().unwrap();
        let next = f.change(reinstate(TAX_OFFICE), QUORUM);
        let mut r = f.registry.clone();
        assert_eq!(r.apply(&next, &f.genesis, last), Err(RegistryError::OutOfOrder { index: last, last }));
        r.apply(&next, &f.genesis, last + 1).unwrap();
    }

    #[test]
    fn bad_approvals_are_refused() {
        let mut f = Fixture::new();
        let good = f.change(add_tax_office(), QUORUM);
        // A flipped bit in one signature (still canonical base64).
        let mut bad = good.clone();
        let mut sig = base64::engine::general_purpose::STANDARD.decode(&bad.approvals[1].signature).unwrap();
        sig[5] ^= 1;
        bad.approvals[1].signature = base64::engine::general_purpose::STANDARD.encode(&sig);
        let e = f.apply(&bad).unwrap_err();
        assert_eq!(e, RegistryError::BadSignature { validator: "agency-2".into() });
        assert_eq!(e.slug(), "registry-bad-signature");
        // An extra valid quorum does not excuse a bad approval.
        let mut bad4 = bad.clone();
        bad4.approve("agency-0", &f.keys[0], &f.hash);
        assert!(matches!(f.apply(&bad4).unwrap_err(), RegistryError::BadSignature { .. }));
        // Signed by the wrong key: agency-1's signature presented as agency-3's.
        let mut wrong = f.change(add_tax_office(), &[1, 2]);
        wrong.approve("agency-3", &f.keys[1], &f.hash);
        assert_eq!(f.apply(&wrong).unwrap_err(), RegistryError::BadSignature { validator: "agency-3".into() });
        // A non-validator approver, even with a valid signature by its own key.
        let mut outsider = good.clone();
        outsider.approve("outsider", &SigningKey::from_bytes(&[77; 32]), &f.hash);
        let e = f.apply(&outsider).unwrap_err();
        assert_eq!(e, RegistryError::UnknownValidator { validator: "outsider".into() });
        assert_eq!(e.slug(), "registry-unknown-validator");
        // Signed for another chain: same validators, different genesis hash.
        let other = Fixture::with(|g| g.chain_id = "other".into());
        let foreign = other.change(add_tax_office(), QUORUM);
        assert_ne!(other.hash, f.hash);
        assert_eq!(f.apply(&foreign).unwrap_err(), RegistryError::BadSignature { validator: "agency-1".into() });
        // Malformed signatures.
        // Non-zero trailing bits in the last base64 digit: decodes leniently, not canonical.
        let sig0 = &good.approvals[0].signature;
        let alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let last = alphabet.find(sig0.chars().nth(85).unwrap()).unwrap();
        let loose = format!("{}{}==", &sig0[..85], alphabet.chars().nth(last | 1).unwrap());
        for s in ["", "AAAA", &"A".repeat(88), &format!("{}A=", &sig0[..86]), &loose, &format!("{sig0} ")] {
            let mut m = good.clone();
            m.approvals[0].signature = s.to_string();
            let e = f.apply(&m).unwrap_err();
            assert!(matches!(e, RegistryError::MalformedSignature { .. } | RegistryError::BadSignature { .. }), "{s:?}: {e}");
        }
        let mut m = good.clone();
        m.approvals[0].signature = "x".repeat(88);
        assert!(matches!(f.apply(&m).unwrap_err(), RegistryError::MalformedSignature { .. }));
        // Duplicates and order.
        let mut dup = good.clone();
        dup.approvals.insert(1, good.approvals[0].clone());
        assert_eq!(f.apply(&dup).unwrap_err(), RegistryError::DuplicateApproval { validator: "agency-1".into() });
        let mut unsorted = good.clone();
        unsorted.approvals.swap(0, 2);
        assert!(matches!(f.apply(&unsorted).unwrap_err(), RegistryError::ApprovalsNotSorted { .. }));
        let mut many = good.clone();
        many.approvals = vec![good.approvals[0].clone(); MAX_APPROVALS + 1];
        assert!(matches!(f.apply(&many).unwrap_err(), RegistryError::TooManyApprovals { .. }));
        // And the good one still applies.
        f.apply(&good).unwrap();
    }

    #[test]
    fn approve_replaces_and_sorts() {
        let f = Fixture::new();
        let mut c = RegistryChange::new(1, add_tax_office());
        let before = c.signing_bytes(&f.hash);
        c.approve("agency-3", &f.keys[3], &f.hash);
        c.approve("agency-1", &f.keys[1], &f.hash);
        c.approve("agency-2", &f.keys[0], &f.hash); // wrong key at first
        c.approve("agency-2", &f.keys[2], &f.hash); // replaced
        let ids: Vec<&str> = c.approvals.iter().map(|a| a.validator.as_str()).collect();
        assert_eq!(ids, ["agency-1", "agency-2", "agency-3"]);
        assert_eq!(c.signing_bytes(&f.hash), before, "approvals are not signed");
        c.check(&f.genesis).unwrap();
    }

    #[test]
    fn signing_bytes_layout() {
        let f = Fixture::new();
        let c = RegistryChange::new(7, suspend(PASSPORT_OFFICE));
        let b = c.signing_bytes(&f.hash);
        let mut expected = b"dojang/registry-change/v1\0".to_vec();
        expected.extend_from_slice(f.hash.as_bytes());
        expected.extend_from_slice(br#"{"action":{"did":"did:web:passport.example.kr","type":"suspend-issuer"},"version":7}"#);
        assert_eq!(b, expected);
        assert_ne!(c.signing_bytes(&Hash::ZERO), b);
    }

    #[test]
    fn payload_json_and_canonical_decode() {
        let f = Fixture::new();
        let c = f.change(RegistryAction::AddIssuer { issuer: issuer(TAX_OFFICE, &[103], &["tax-certificate"], &[]) }, &[1, 2]);
        let bytes = c.encode();
        let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(
            v,
            json!({
                "version": 1,
                "action": {"type": "add-issuer", "issuer": {"did": TAX_OFFICE, "name": "Issuer did:web:tax.example.kr", "keys": [kid(103)], "documentTypes": ["tax-certificate"]}},
                "approvals": [
                    {"validator": "agency-1", "signature": c.approvals[0].signature},
                    {"validator": "agency-2", "signature": c.approvals[1].signature},
                ],
            })
        );
        assert!(bytes.starts_with(br#"{"action":{"issuer":{"did":"did:web:tax.example.kr","documentTypes":["tax-certificate"],"keys":["#));
        assert_eq!(RegistryChange::decode(&bytes).unwrap(), c);
        let types = RegistryChange::new(
            2,
            RegistryAction::AddTypes { did: TAX_OFFICE.into(), document_types: vec![], credential_types: strings(&["X"]) },
        );
        assert_eq!(
            types.encode(),
            br#"{"action":{"credentialTypes":["X"],"did":"did:web:tax.example.kr","type":"add-types"},"approvals":[],"version":2}"#
        );
        let keys = RegistryChange::new(3, RegistryAction::SetKeys { did: TAX_OFFICE.into(), keys: vec![kid(9)] });
        assert_eq!(RegistryChange::decode(&keys.encode()).unwrap(), keys);

        let refuse = |s: &str| RegistryChange::decode(s.as_bytes()).unwrap_err();
        let canon = String::from_utf8(types.encode()).unwrap();
        // Not canonical: whitespace, member order, an empty list spelled out, escapes.
        for s in [
            format!("{canon} "),
            canon.replace(r#""action":"#, r#""action" :"#),
            r#"{"version":2,"action":{"credentialTypes":["X"],"did":"did:web:tax.example.kr","type":"add-types"},"approvals":[]}"#
                .to_owned(),
            canon.replace(r#""credentialTypes":["X"],"#, r#""credentialTypes":["X"],"documentTypes":[],"#),
            canon.replace(r#"["X"]"#, r#"["\u0058"]"#),
        ] {
            assert_eq!(refuse(&s), RegistryError::NotCanonical, "{s}");
        }
        assert_eq!(RegistryError::NotCanonical.slug(), "registry-change-not-canonical");
        // Unknown members anywhere, unknown action types, missing members, duplicates.
        for s in [
            canon.replace(r#""version":2"#, r#""version":2,"x":1"#),
            canon.replace(r#""did":"#, r#""comment":"hi","did":"#),
            canon.replace("add-types", "add-everything"),
            canon.replace(r#","approvals":[]"#, ""),
            canon.replace(r#""approvals":[]"#, r#""approvals":[{"signature":"","validator":"a","weight":1}]"#),
            String::from_utf8(c.encode()).unwrap().replace(r#""did":"did:web:tax"#, r#""extra":true,"did":"did:web:tax"#),
            String::from_utf8(c.encode()).unwrap().replace("documentTypes", "document_types"),
            canon.replace(r#""version":2"#, r#""version":2,"version":2"#),
            canon.replace(r#""version":2"#, r#""version":-1"#),
            canon.replace(r#""version":2"#, r#""version":2.0"#),
            "null".into(),
            "".into(),
        ] {
            let e = refuse(&s);
            assert!(matches!(e, RegistryError::Malformed(_)), "{s}: {e}");
            assert_eq!(e.slug(), "registry-change-malformed");
        }
        let big = vec![b' '; MAX_CHANGE_LEN + 1];
        assert_eq!(RegistryChange::decode(&big), Err(RegistryError::PayloadTooLarge { len: MAX_CHANGE_LEN + 1, max: MAX_CHANGE_LEN }));
    }

    #[test]
    fn from_entry_checks_the_kind() {
        let f = Fixture::new();
        let c = f.change(add_tax_office(), QUORUM);
        let entry = |kind| {
            UnsignedEntry { kind, author: kid(200), nonce: 1, timestamp_ms: 0, payload: c.encode() }
                .sign(&SigningKey::from_bytes(&[200; 32]), &f.hash)
                .unwrap()
        };
        assert_eq!(RegistryChange::from_entry(&entry(Kind::TrustRegistryChange)).unwrap(), c);
        assert_eq!(RegistryChange::from_entry(&entry(Kind::DidOperation)), Err(RegistryError::WrongKind("did-operation/v1")));
    }

    #[test]
    fn invalid_actions_are_refused() {
        let mut f = Fixture::new();
        let try_add = |f: &mut Fixture, i: TrustedIssuer| f.apply(&f.change(RegistryAction::AddIssuer { issuer: i }, QUORUM)).unwrap_err();
        let base = issuer(TAX_OFFICE, &[103], &["tax-certificate"], &[]);
        // DIDs.
        for did in [
            "",
            "did:",
            "did:web:",
            "did:Web:x",
            "web:x",
            "did:web:x#frag",
            "did:web:a b",
            "did:key:zBAD",
            "did:dojang:not-base58!",
            &format!("did:web:{}", "a".repeat(600)),
        ] {
            let e = try_add(&mut f, TrustedIssuer { did: did.into(), ..base.clone() });
            assert!(matches!(e, RegistryError::InvalidDid { .. }), "{did:?}: {e}");
            assert_eq!(e.slug(), "registry-invalid-did");
        }
        // A did:key issuer and a did:web with a port-like colon are fine.
        f.apply(&f.change(
            RegistryAction::AddIssuer {
                issuer: TrustedIssuer { did: DidKey::parse_key_id(&kid(120)).unwrap().did(), ..issuer("x", &[121], &[], &[]) },
            },
            QUORUM,
        ))
        .unwrap();
        // Names.
        for name in ["", "a\nb", &"n".repeat(MAX_NAME_LEN + 1)] {
            assert!(matches!(try_add(&mut f, TrustedIssuer { name: name.into(), ..base.clone() }), RegistryError::InvalidName { .. }));
        }
        // Keys: count, syntax, canonical spelling, duplicates, DIDs instead of key ids.
        let k = kid(103);
        let (did_part, _) = k.split_once('#').unwrap();
        for keys in [
            vec![],
            (0..17).map(|i| kid(130 + i)).collect(),
            vec!["did:key:zBAD#zBAD".to_owned()],
            vec![did_part.to_owned()],
            vec![format!("{did_part}#key-1")],
            vec![k.clone(), k.clone()],
            vec!["did:web:example.kr#key-1".to_owned()],
        ] {
            let e = try_add(&mut f, TrustedIssuer { keys: keys.clone(), ..base.clone() });
            assert!(matches!(e, RegistryError::InvalidKey { .. } | RegistryError::KeyCount { .. }), "{keys:?}: {e}");
            assert_eq!(e.slug(), "registry-invalid-key");
        }
        // Types.
        for (d, c) in [
            (vec![String::new()], vec![]),
            (vec!["t".repeat(MAX_TYPE_LEN + 1)], vec![]),
            (vec![], vec!["bad\u{7}".to_owned()]),
            (vec!["a".into(), "a".into()], vec![]),
            ((0..200).map(|i| format!("d{i}")).collect(), (0..57).map(|i| format!("c{i}")).collect()),
        ] {
            let e = try_add(&mut f, TrustedIssuer { document_types: d, credential_types: c, ..base.clone() });
            assert_eq!(e.slug(), "registry-invalid-type", "{e}");
        }
        // The same type as document and credential type is fine; 128 bytes is fine.
        let ok = TrustedIssuer { document_types: vec!["t".repeat(128), "X".into()], credential_types: vec!["X".into()], ..base.clone() };
        f.apply(&f.change(RegistryAction::AddIssuer { issuer: ok }, QUORUM)).unwrap();
        // Already listed; a key of another issuer (even in a fresh issuer).
        assert_eq!(try_add(&mut f, base.clone()), RegistryError::IssuerExists { did: TAX_OFFICE.into() });
        let e = try_add(&mut f, issuer("did:web:other.example.kr", &[150, 102], &[], &[]));
        assert_eq!(e, RegistryError::KeyInUse { key: kid(102), did: PASSPORT_OFFICE.into() });
        assert!(e.to_string().contains(&kid(102)), "the whole key id is shown: {e}");
        assert_eq!(e.slug(), "registry-key-in-use");
        // Targets that do not exist.
        let e = f.apply(&f.change(suspend("did:web:nobody.example.kr"), QUORUM)).unwrap_err();
        assert_eq!(e, RegistryError::UnknownIssuer { did: "did:web:nobody.example.kr".into() });
        assert!(matches!(f.apply(&f.change(suspend("not-a-did"), QUORUM)).unwrap_err(), RegistryError::InvalidDid { .. }));
        // Status rules.
        let e = f.apply(&f.change(reinstate(PASSPORT_OFFICE), QUORUM)).unwrap_err();
        assert_eq!(e, RegistryError::WrongStatus { did: PASSPORT_OFFICE.into(), status: "active", action: "reinstate-issuer" });
        f.apply(&f.change(suspend(PASSPORT_OFFICE), QUORUM)).unwrap();
        assert_eq!(f.apply(&f.change(suspend(PASSPORT_OFFICE), QUORUM)).unwrap_err().slug(), "registry-wrong-status");
        // Types and keys may change while suspended.
        f.apply(&f.change(RegistryAction::SetKeys { did: PASSPORT_OFFICE.into(), keys: vec![kid(160)] }, QUORUM)).unwrap();
        // Type changes.
        let add = |d: &[&str], c: &[&str]| RegistryAction::AddTypes {
            did: PASSPORT_OFFICE.into(),
            document_types: strings(d),
            credential_types: strings(c),
        };
        let rm = |d: &[&str], c: &[&str]| RegistryAction::RemoveTypes {
            did: PASSPORT_OFFICE.into(),
            document_types: strings(d),
            credential_types: strings(c),
        };
        let e = f.apply(&f.change(add(&["visa", "passport"], &[]), QUORUM)).unwrap_err();
        assert_eq!(e, RegistryError::TypeAlreadyListed { did: PASSPORT_OFFICE.into(), class: "document", value: "passport".into() });
        let e = f.apply(&f.change(rm(&[], &["passport"]), QUORUM)).unwrap_err();
        assert_eq!(e, RegistryError::TypeNotListed { did: PASSPORT_OFFICE.into(), class: "credential", value: "passport".into() });
        assert_eq!(f.apply(&f.change(add(&[], &[]), QUORUM)).unwrap_err().slug(), "registry-no-change");
        let too_many: Vec<String> = (0..255).map(|i| format!("t{i}")).collect();
        let refs: Vec<&str> = too_many.iter().map(String::as_str).collect();
        assert!(matches!(f.apply(&f.change(add(&refs, &[]), QUORUM)).unwrap_err(), RegistryError::TooManyTypes { count: 257, .. }));
        // Keys: same set again, and a key held by another (removed) issuer.
        let same = RegistryAction::SetKeys { did: PASSPORT_OFFICE.into(), keys: vec![kid(160)] };
        assert!(matches!(f.apply(&f.change(same, QUORUM)).unwrap_err(), RegistryError::NoChange { .. }));
        f.apply(&f.change(remove(TAX_OFFICE), QUORUM)).unwrap();
        let steal = RegistryAction::SetKeys { did: PASSPORT_OFFICE.into(), keys: vec![kid(103)] };
        assert_eq!(f.apply(&f.change(steal, QUORUM)).unwrap_err(), RegistryError::KeyInUse { key: kid(103), did: TAX_OFFICE.into() });
        // Removal is final: no reinstating, re-adding or changing.
        for action in [
            reinstate(TAX_OFFICE),
            remove(TAX_OFFICE),
            suspend(TAX_OFFICE),
            RegistryAction::AddIssuer { issuer: issuer(TAX_OFFICE, &[170], &["tax-certificate"], &[]) },
            RegistryAction::SetKeys { did: TAX_OFFICE.into(), keys: vec![kid(171)] },
        ] {
            let e = f.apply(&f.change(action, QUORUM)).unwrap_err();
            assert_eq!(e, RegistryError::IssuerRemoved { did: TAX_OFFICE.into() });
            assert_eq!(e.slug(), "registry-issuer-removed");
        }
    }

    #[test]
    fn authorisation() {
        let mut f = Fixture::new();
        let r = f.registry.authorize_document(&kid(102), "passport").unwrap();
        assert_eq!(r.issuer.did, PASSPORT_OFFICE);
        assert!(r.may_issue_document("passport") && !r.may_issue_document("visa"));
        assert_eq!(f.registry.authorize_credential(PASSPORT_OFFICE, "PassportCredential").unwrap().issuer.did, PASSPORT_OFFICE);
        // Unlisted type, including another issuer's and the credential-only one.
        for t in ["visa", "resident-registration", "PassportCredential", ""] {
            let e = f.registry.authorize_document(&kid(102), t).unwrap_err();
            assert_eq!(e, RegistryError::NotAuthorized { did: PASSPORT_OFFICE.into(), class: "document", value: t.into() });
            assert_eq!(e.slug(), "registry-not-authorized");
        }
        assert!(matches!(
            f.registry.authorize_credential(PASSPORT_OFFICE, "passport"),
            Err(RegistryError::NotAuthorized { class: "credential", .. })
        ));
        // Unknown keys: a writer key, a validator key, garbage.
        for k in [kid(1), kid(2), "nonsense".into(), String::new()] {
            let e = f.registry.authorize_document(&k, "passport").unwrap_err();
            assert!(matches!(e, RegistryError::UnknownIssuerKey { .. }), "{e}");
            assert_eq!(e.slug(), "registry-unknown-issuer-key");
        }
        assert_eq!(f.registry.authorize_credential("did:web:x", "T").unwrap_err().slug(), "registry-unknown-issuer");
        // Suspended.
        f.apply(&f.change(suspend(PASSPORT_OFFICE), QUORUM)).unwrap();
        let e = f.registry.authorize_document(&kid(102), "passport").unwrap_err();
        assert_eq!(e, RegistryError::IssuerSuspended { did: PASSPORT_OFFICE.into() });
        assert_eq!(e.slug(), "registry-issuer-suspended");
        assert_eq!(f.registry.authorize_credential(PASSPORT_OFFICE, "PassportCredential").unwrap_err().slug(), "registry-issuer-suspended");
        assert!(f.registry.issuer_by_key(&kid(102)).is_some(), "any status");
        // Reinstated.
        f.apply(&f.change(reinstate(PASSPORT_OFFICE), QUORUM)).unwrap();
        f.registry.authorize_document(&kid(102), "passport").unwrap();
        // Removed.
        f.apply(&f.change(remove(PASSPORT_OFFICE), QUORUM)).unwrap();
        let e = f.registry.authorize_document(&kid(102), "passport").unwrap_err();
        assert_eq!(e, RegistryError::IssuerRemoved { did: PASSPORT_OFFICE.into() });
        assert_eq!(f.registry.issuer_by_key(&kid(102)).unwrap().status, IssuerStatus::Removed);
        // The agency-0 issuer still works.
        assert_eq!(f.registry.authorize_document(&kid(101), "resident-registration").unwrap().issuer.did, f.agency_did(0));
        // A genesis file that shares a key between two issuers: any authorising holder wins.
        let f = Fixture::with(|g| g.trusted_issuers.push(issuer("did:web:shared.example.kr", &[102], &["visa"], &[])));
        f.registry.authorize_document(&kid(102), "visa").unwrap();
        f.registry.authorize_document(&kid(102), "passport").unwrap();
    }

    #[test]
    fn replay_equals_sequential_apply() {
        let mut f = Fixture::new();
        let mut log: Vec<(u64, RegistryChange)> = Vec::new();
        let actions = [
            add_tax_office(),
            suspend(PASSPORT_OFFICE),
            RegistryAction::SetKeys { did: PASSPORT_OFFICE.into(), keys: vec![kid(180), kid(181)] },
            reinstate(PASSPORT_OFFICE),
            RegistryAction::AddTypes { did: TAX_OFFICE.into(), document_types: vec![], credential_types: strings(&["TaxpayerCredential"]) },
            remove(TAX_OFFICE),
        ];
        let mut snapshots = vec![f.registry.clone()];
        for a in actions {
            let c = f.change(a, QUORUM);
            f.apply(&c).unwrap();
            log.push((f.index, c));
            snapshots.push(f.registry.clone());
        }
        for (n, snapshot) in snapshots.iter().enumerate() {
            assert_eq!(&replay(&f.genesis, &log[..n]).unwrap(), snapshot, "after {n} changes");
        }
        // Persisted state round-trips through JSON.
        let json = serde_json::to_string(&f.registry).unwrap();
        assert!(json.contains(r#""status":"removed""#) && json.contains(r#""credentialTypes":["TaxpayerCredential"]"#), "{json}");
        assert_eq!(serde_json::from_str::<Registry>(&json).unwrap(), f.registry);
        // A history with a bad change fails with that change's error.
        let mut bad = log.clone();
        bad.swap(1, 2);
        assert!(matches!(replay(&f.genesis, &bad), Err(RegistryError::VersionGap { version: 3, expected: 2 })));
        let mut bad = log.clone();
        bad[3].1.approvals.pop();
        assert!(matches!(replay(&f.genesis, &bad), Err(RegistryError::NoQuorum { .. })));
        let mut bad = log.clone();
        bad[2].0 = bad[1].0;
        assert!(matches!(replay(&f.genesis, &bad), Err(RegistryError::OutOfOrder { .. })));
        // Replayed against another genesis (same validators, other chain): no approval holds.
        let other = Fixture::with(|g| g.chain_id = "other".into());
        assert!(matches!(replay(&other.genesis, &log), Err(RegistryError::BadSignature { .. })));
    }

    #[test]
    fn explicit_registry_threshold() {
        // Two of four suffice.
        let mut f = Fixture::with(|g| g.governance.registry_threshold = Some(2));
        assert_eq!(f.apply(&f.change(add_tax_office(), &[3])).unwrap_err(), RegistryError::NoQuorum { power: 1, needed: 2, total: 4 });
        f.apply(&f.change(add_tax_office(), &[2, 3])).unwrap();
        // All four needed: three refuse, four pass; an agency's own change then never passes.
        let mut f = Fixture::with(|g| g.governance.registry_threshold = Some(4));
        assert_eq!(f.apply(&f.change(add_tax_office(), QUORUM)).unwrap_err(), RegistryError::NoQuorum { power: 3, needed: 4, total: 4 });
        f.apply(&f.change(add_tax_office(), &[0, 1, 2, 3])).unwrap();
        let a0 = f.agency_did(0);
        assert!(matches!(
            f.apply(&f.change(suspend(&a0), &[0, 1, 2, 3])).unwrap_err(),
            RegistryError::SelfApproval { power: 3, needed: 4, .. }
        ));
        // Voting power, not heads: agency-0 with power 3 of 6 plus one other passes > 2/3.
        let mut f = Fixture::with(|g| g.validators[0].voting_power = 3);
        assert_eq!(f.apply(&f.change(add_tax_office(), QUORUM)).unwrap_err(), RegistryError::NoQuorum { power: 3, needed: 5, total: 6 });
        f.apply(&f.change(add_tax_office(), &[0, 1, 2])).unwrap();
    }

    #[test]
    fn slugs_are_namespaced_and_messages_lowercase() {
        let samples = [
            RegistryError::NotCanonical,
            RegistryError::StaleVersion { version: 1, current: 1 },
            RegistryError::NoQuorum { power: 1, needed: 3, total: 4 },
            RegistryError::SelfApproval { validator: "agency-0".into(), did: "did:web:x".into(), power: 2, needed: 3 },
            RegistryError::BadSignature { validator: "agency-1".into() },
            RegistryError::UnknownIssuerKey { key: "k".into() },
        ];
        for e in samples {
            assert!(e.slug().starts_with("registry-"));
            let msg = e.to_string();
            assert_eq!(msg.chars().next().unwrap().to_lowercase().to_string(), msg.chars().next().unwrap().to_string(), "{msg}");
        }
        let e = RegistryError::UnknownIssuer { did: shown(&"x".repeat(500)) };
        assert!(e.to_string().len() < 200);
    }

    // ---- properties -------------------------------------------------------------------

    fn arb_text() -> impl Strategy<Value = String> {
        prop_oneof!["did:[a-z]{1,4}:[a-z0-9.:-]{0,12}", "[ -~]{0,16}", any::<String>(), any::<u8>().prop_map(kid)]
    }

    fn arb_list() -> impl Strategy<Value = Vec<String>> {
        proptest::collection::vec(arb_text(), 0..4)
    }

    fn arb_action() -> impl Strategy<Value = RegistryAction> {
        prop_oneof![
            (arb_text(), arb_text(), arb_list(), arb_list(), arb_list()).prop_map(|(did, name, keys, document_types, credential_types)| {
                RegistryAction::AddIssuer { issuer: TrustedIssuer { did, name, keys, document_types, credential_types } }
            }),
            arb_text().prop_map(|did| RegistryAction::RemoveIssuer { did }),
            arb_text().prop_map(|did| RegistryAction::SuspendIssuer { did }),
            arb_text().prop_map(|did| RegistryAction::ReinstateIssuer { did }),
            (arb_text(), arb_list(), arb_list()).prop_map(|(did, document_types, credential_types)| RegistryAction::AddTypes {
                did,
                document_types,
                credential_types
            }),
            (arb_text(), arb_list(), arb_list()).prop_map(|(did, document_types, credential_types)| RegistryAction::RemoveTypes {
                did,
                document_types,
                credential_types
            }),
            (arb_text(), arb_list()).prop_map(|(did, keys)| RegistryAction::SetKeys { did, keys }),
        ]
    }

    fn arb_change() -> impl Strategy<Value = RegistryChange> {
        let approval = (prop_oneof!["agency-[0-4]", arb_text()], prop_oneof![arb_text(), "[A-Za-z0-9+/]{86}=="])
            .prop_map(|(validator, signature)| Approval { validator, signature });
        (prop_oneof![0u64..4, 0..=MAX_SAFE_INTEGER], arb_action(), proptest::collection::vec(approval, 0..4))
            .prop_map(|(version, action, approvals)| RegistryChange { version, action, approvals })
    }

    proptest! {
        /// decode never panics on arbitrary bytes.
        #[test]
        fn prop_decode_any_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = RegistryChange::decode(&bytes);
        }

        /// Versions above 2^53 - 1 have no exact JCS form: encoding rounds them (as a
        /// double), so their payloads never decode, and validate refuses them.
        #[test]
        fn prop_versions_beyond_safe_integers(version in (MAX_SAFE_INTEGER + 1)..=u64::MAX) {
            let c = RegistryChange::new(version, suspend(PASSPORT_OFFICE));
            prop_assert_eq!(c.validate(), Err(RegistryError::InvalidVersion { version }));
            let exact = format!(r#"{{"action":{{"did":"{PASSPORT_OFFICE}","type":"suspend-issuer"}},"approvals":[],"version":{version}}}"#);
            if let Ok(d) = RegistryChange::decode(exact.as_bytes()) {
                // Only a value the double represents exactly can survive (e.g. 2^60).
                prop_assert_eq!(d.encode(), exact.into_bytes());
            }
        }

        /// ... nor on a valid payload with one byte changed; what it accepts re-encodes to
        /// the same bytes, and applying it never panics.
        #[test]
        fn prop_decode_mutated_payloads(pos in any::<prop::sample::Index>(), byte in any::<u8>()) {
            let f = Fixture::new();
            let mut bytes = f.change(add_tax_office(), QUORUM).encode();
            let i = pos.index(bytes.len());
            bytes[i] = byte;
            if let Ok(c) = RegistryChange::decode(&bytes) {
                prop_assert_eq!(c.encode(), bytes);
                let _ = f.registry.clone().apply(&c, &f.genesis, 1);
            }
        }

        /// encode/decode round-trips for any change (decoding is syntax only), and the
        /// rules never panic on it; a refused change leaves the registry unchanged.
        #[test]
        fn prop_encode_decode_round_trip(c in arb_change()) {
            let bytes = c.encode();
            prop_assert_eq!(RegistryChange::decode(&bytes).unwrap(), c.clone());
            let _ = c.subject();
            let _ = c.validate();
            let f = Fixture::new();
            let _ = c.check(&f.genesis);
            let mut r = f.registry.clone();
            if r.apply(&c, &f.genesis, 1).is_err() {
                prop_assert_eq!(r, f.registry.clone());
            }
            let _ = f.registry.authorize_document(c.subject(), c.subject());
            let _ = f.registry.authorize_credential(c.subject(), c.subject());
        }
    }
}
