//! `did:dojang`: the ledger's own DID method. Every operation (create, update, rotate,
//! deactivate) is the payload of one `did-operation/v1` ledger entry; the entry envelope
//! already provides the signature (by the entry author, a `did:key` key id), replay
//! protection (per-author nonces) and ordering. This module defines the payload, the
//! validation and state-transition rules, and resolution (current and historic).
//!
//! The normative text is `specs/did-method-dojang.md`; section numbers below refer to it.
//!
//! Everything here is pure and parses untrusted input: payload bytes are size-bounded
//! before parsing, accepted only in their one canonical (RFC 8785) spelling, and every
//! refusal is an error value naming the bad value, never a panic. Documents carry public
//! keys only; there is nowhere to put private key material.

use std::collections::BTreeSet;
use std::fmt;

use curve25519_dalek::montgomery::MontgomeryPoint;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::did_key::{self, DID_CONTEXT_V1_1, DidKey, ED25519_PUB_CODEC, MULTIKEY_TYPE, X25519_PUB_CODEC};
use crate::entry::{Entry, Kind};
use crate::hash::Hash;

/// The DID prefix of this method (§2, §3.1).
pub const METHOD_PREFIX: &str = "did:dojang:";
/// The method name (§2).
pub const METHOD_NAME: &str = "dojang";
/// Domain tag of the identifier derivation (§3.2).
pub const ID_DOMAIN: &[u8] = b"dojang/did/v1\0";
/// Bytes of the BLAKE3 digest kept as the method-specific id (§3.2).
pub const ID_LEN: usize = 16;
/// Largest operation payload, in bytes (§4.1).
pub const MAX_OP_LEN: usize = 32 * 1024;
/// Most verification methods in one document (§4.4).
pub const MAX_VERIFICATION_METHODS: usize = 32;
/// Most services in one document (§4.4).
pub const MAX_SERVICES: usize = 32;
/// Most controller keys of one DID (§4.5).
pub const MAX_CONTROLLER_KEYS: usize = 8;
/// Longest fragment id after the `#` (§4.4).
pub const MAX_FRAGMENT_LEN: usize = 64;
/// Longest service type (§4.4).
pub const MAX_SERVICE_TYPE_LEN: usize = 64;
/// Longest service endpoint (§4.4).
pub const MAX_SERVICE_ENDPOINT_LEN: usize = 1024;
/// Longest create salt (§5.2).
pub const MAX_SALT_LEN: usize = 64;
/// Longest `did:dojang` DID looked at; a valid one is at most 33 bytes (§3.3).
const MAX_DID_STRING_LEN: usize = 64;
/// Longest `publicKeyMultibase` looked at; a valid one is 48 characters (§4.4).
const MAX_MULTIBASE_LEN: usize = 128;
/// How much of a bad value an error message repeats.
const SHOWN_CHARS: usize = 96;
/// How much of a JSON parser message an error repeats.
const SHOWN_PARSER_CHARS: usize = 240;

/// The relationship names of a document, in output order (§4.3).
const RELATIONSHIPS: [&str; 5] = ["authentication", "assertionMethod", "keyAgreement", "capabilityInvocation", "capabilityDelegation"];

// ---------------------------------------------------------------------------------------
// Operations (§4, §5)
// ---------------------------------------------------------------------------------------

/// The payload of a did-operation/v1 entry: RFC 8785 (JCS) canonical JSON of this enum
/// (§4.1). The `op` member names the operation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "lowercase", deny_unknown_fields)]
pub enum DidOperation {
    Create(CreateOp),
    Update(UpdateOp),
    Rotate(RotateOp),
    Deactivate(DeactivateOp),
}

/// Create a DID (§5.2). The DID is derived from these bytes (§3.2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateOp {
    /// The initial document content.
    pub document: DocumentContent,
    /// `did:key` DIDs (not key ids) whose keys may sign updates (§4.5).
    pub controller_keys: Vec<String>,
    /// BLAKE3 of the UTF-8 `did:key` DID of the pre-committed next controller key (§4.5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_key_commitment: Option<Hash>,
    /// Optional free salt so that identical content can yield distinct DIDs (§5.2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub salt: Option<String>,
}

/// Replace the document content (§5.3).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdateOp {
    pub did: String,
    /// The versionId this operation builds on (§5.1).
    pub previous: Hash,
    pub document: DocumentContent,
}

/// Replace the controller keys and the next-key commitment (§5.4).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RotateOp {
    pub did: String,
    pub previous: Hash,
    pub controller_keys: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_key_commitment: Option<Hash>,
}

/// Deactivate the DID for good (§5.5).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DeactivateOp {
    pub did: String,
    pub previous: Hash,
}

/// The document content an operation carries (§4.3): ids and references are fragments
/// (`#key-1`), made absolute against the DID when the document is rendered (§6.2). Empty
/// lists are omitted from the encoding.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DocumentContent {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub verification_method: Vec<VerificationMethod>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub authentication: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub assertion_method: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub key_agreement: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub capability_invocation: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub capability_delegation: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub service: Vec<Service>,
}

/// A Multikey verification method (§4.3): Ed25519 (`z6Mk…`) or X25519 (`z6LS…`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct VerificationMethod {
    /// Fragment id, e.g. `#key-1`.
    pub id: String,
    /// Always `Multikey`.
    #[serde(rename = "type")]
    pub method_type: String,
    pub public_key_multibase: String,
}

/// A service entry (§4.3).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Service {
    /// Fragment id, e.g. `#hub`.
    pub id: String,
    #[serde(rename = "type")]
    pub service_type: String,
    /// A URI string.
    pub service_endpoint: String,
}

impl DidOperation {
    /// The canonical payload bytes: JCS (RFC 8785) of the operation (§4.1).
    pub fn encode(&self) -> Vec<u8> {
        // Serialising these plain structs cannot fail (string keys, no floats, no maps
        // with non-string keys); an empty result would be refused by decode anyway.
        serde_jcs::to_vec(self).unwrap_or_default()
    }

    /// Decodes a payload (§4.1): at most [`MAX_OP_LEN`] bytes, valid JSON of this shape with
    /// no unknown member, and exactly the canonical encoding (re-encoding must give the same
    /// bytes). Semantic rules are [`DidOperation::validate`] and the state machine's.
    pub fn decode(payload: &[u8]) -> Result<DidOperation, DidError> {
        if payload.len() > MAX_OP_LEN {
            return Err(DidError::PayloadTooLarge { len: payload.len(), max: MAX_OP_LEN });
        }
        let op: DidOperation =
            serde_json::from_slice(payload).map_err(|e| DidError::Malformed(crate::text::shown_n(&e.to_string(), SHOWN_PARSER_CHARS)))?;
        if op.encode() != payload {
            return Err(DidError::NotCanonical);
        }
        Ok(op)
    }

    /// The operation name as in the `op` member.
    pub fn name(&self) -> &'static str {
        match self {
            DidOperation::Create(_) => "create",
            DidOperation::Update(_) => "update",
            DidOperation::Rotate(_) => "rotate",
            DidOperation::Deactivate(_) => "deactivate",
        }
    }

    /// The DID this operation is about: derived for create (§3.2), the checked `did`
    /// member otherwise (§3.3).
    pub fn did(&self) -> Result<String, DidError> {
        match self {
            DidOperation::Create(c) => Ok(derive_did(c)),
            DidOperation::Update(UpdateOp { did, .. })
            | DidOperation::Rotate(RotateOp { did, .. })
            | DidOperation::Deactivate(DeactivateOp { did, .. }) => {
                parse_did(did)?;
                Ok(did.clone())
            }
        }
    }

    /// The `previous` versionId, absent for create (§5.1).
    pub fn previous(&self) -> Option<&Hash> {
        match self {
            DidOperation::Create(_) => None,
            DidOperation::Update(UpdateOp { previous, .. })
            | DidOperation::Rotate(RotateOp { previous, .. })
            | DidOperation::Deactivate(DeactivateOp { previous, .. }) => Some(previous),
        }
    }

    /// The stateless rules (§4.4, §4.5): size, DID syntax, document, controller keys,
    /// commitment, salt. The state machine runs this first; an admission layer may run it
    /// to refuse a bad operation before sequencing.
    pub fn validate(&self) -> Result<(), DidError> {
        let len = self.encode().len();
        if len > MAX_OP_LEN {
            return Err(DidError::PayloadTooLarge { len, max: MAX_OP_LEN });
        }
        match self {
            DidOperation::Create(c) => {
                c.document.validate()?;
                let keys = validate_controller_keys(&c.controller_keys)?;
                validate_commitment(c.next_key_commitment.as_ref(), &keys)?;
                if let Some(salt) = &c.salt {
                    validate_salt(salt)?;
                }
                Ok(())
            }
            DidOperation::Update(u) => {
                parse_did(&u.did)?;
                u.document.validate()?;
                Ok(())
            }
            DidOperation::Rotate(r) => {
                parse_did(&r.did)?;
                let keys = validate_controller_keys(&r.controller_keys)?;
                validate_commitment(r.next_key_commitment.as_ref(), &keys)
            }
            DidOperation::Deactivate(d) => parse_did(&d.did).map(|_| ()),
        }
    }
}

// ---------------------------------------------------------------------------------------
// Identifier (§3)
// ---------------------------------------------------------------------------------------

/// Derives the DID of a create operation (§3.2):
/// `did:dojang:` ‖ base58btc(BLAKE3(`dojang/did/v1\0` ‖ JCS(create op))[0..16]), where the
/// JCS bytes are those of the whole operation including `"op":"create"`, i.e. exactly the
/// entry payload.
pub fn derive_did(create: &CreateOp) -> String {
    // The enum adds the `"op":"create"` member, so these are the payload bytes.
    let payload = DidOperation::Create(create.clone()).encode();
    did_from_create_payload(&payload)
}

/// The DID for canonical create payload bytes (§3.2).
pub fn did_from_create_payload(payload: &[u8]) -> String {
    let mut hasher = blake3::Hasher::new();
    hasher.update(ID_DOMAIN);
    hasher.update(payload);
    let digest = hasher.finalize();
    let id = digest.as_bytes().get(..ID_LEN).unwrap_or_default();
    format!("{METHOD_PREFIX}{}", bs58::encode(id).into_string())
}

/// Parses a `did:dojang` DID (§3.3) and returns its 16 id bytes. Refuses other methods
/// (`methodNotSupported`), DID URLs, and any id that is not the canonical base58btc of
/// exactly 16 bytes (`invalidDid`).
pub fn parse_did(did: &str) -> Result<[u8; ID_LEN], DidError> {
    let invalid = |reason: &str| DidError::InvalidDid { value: shown(did), reason: reason.to_owned() };
    if did.is_empty() {
        return Err(invalid("empty string"));
    }
    if did.len() > MAX_DID_STRING_LEN {
        return Err(invalid("longer than 64 bytes"));
    }
    let mut parts = did.splitn(3, ':');
    if parts.next() != Some("did") {
        return Err(invalid("scheme must be \"did\""));
    }
    let method = parts.next().unwrap_or_default();
    if method.is_empty() || !method.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()) {
        return Err(invalid("method name must be one or more of [a-z0-9]"));
    }
    if method != METHOD_NAME {
        return Err(DidError::MethodNotSupported { method: shown(method) });
    }
    let msid = parts.next().unwrap_or_default();
    if msid.is_empty() {
        return Err(invalid("missing method-specific identifier"));
    }
    if msid.contains([':', '#', '?', '/']) {
        return Err(invalid("the method-specific identifier is one base58btc segment: no ':', path, query or fragment"));
    }
    let bytes = bs58::decode(msid).into_vec().map_err(|_| invalid("method-specific identifier is not base58btc"))?;
    let id: [u8; ID_LEN] = bytes.as_slice().try_into().map_err(|_| invalid("method-specific identifier must decode to 16 bytes"))?;
    if bs58::encode(id).into_string() != msid {
        return Err(invalid("method-specific identifier is not in canonical base58btc form"));
    }
    Ok(id)
}

/// The next-key commitment of a key (§4.5): BLAKE3 of the UTF-8 `did:key` DID.
pub fn next_key_commitment(key: &DidKey) -> Hash {
    Hash(*blake3::hash(key.did().as_bytes()).as_bytes())
}

// ---------------------------------------------------------------------------------------
// Validation (§4.4, §4.5)
// ---------------------------------------------------------------------------------------

/// The kind of key a `publicKeyMultibase` holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KeyType {
    Ed25519,
    X25519,
}

impl KeyType {
    fn name(self) -> &'static str {
        match self {
            KeyType::Ed25519 => "ed25519",
            KeyType::X25519 => "x25519",
        }
    }
}

impl DocumentContent {
    /// The document rules of §4.4: bounded counts, fragment syntax, unique ids, decodable
    /// keys of the right type for each relationship, references to existing methods,
    /// bounded services.
    pub fn validate(&self) -> Result<(), DocumentError> {
        if self.verification_method.len() > MAX_VERIFICATION_METHODS {
            return Err(DocumentError::TooMany {
                what: "verification methods",
                count: self.verification_method.len(),
                max: MAX_VERIFICATION_METHODS,
            });
        }
        if self.service.len() > MAX_SERVICES {
            return Err(DocumentError::TooMany { what: "services", count: self.service.len(), max: MAX_SERVICES });
        }
        let mut ids: BTreeSet<&str> = BTreeSet::new();
        let mut methods: Vec<(&str, KeyType)> = Vec::with_capacity(self.verification_method.len());
        for vm in &self.verification_method {
            check_fragment(&vm.id)?;
            if !ids.insert(vm.id.as_str()) {
                return Err(DocumentError::DuplicateId(shown(&vm.id)));
            }
            if vm.method_type != MULTIKEY_TYPE {
                return Err(DocumentError::UnsupportedMethodType { id: shown(&vm.id), method_type: shown(&vm.method_type) });
            }
            let key_type = decode_multikey(&vm.public_key_multibase).map_err(|(value, reason)| DocumentError::InvalidKey {
                id: shown(&vm.id),
                value: value.unwrap_or_else(|| shown(&vm.public_key_multibase)),
                reason,
            })?;
            methods.push((vm.id.as_str(), key_type));
        }
        for s in &self.service {
            check_fragment(&s.id)?;
            if !ids.insert(s.id.as_str()) {
                return Err(DocumentError::DuplicateId(shown(&s.id)));
            }
            check_service_type(s)?;
            check_service_endpoint(s)?;
        }
        for (relationship, refs) in self.relationships() {
            let expected = if relationship == "keyAgreement" { KeyType::X25519 } else { KeyType::Ed25519 };
            let mut seen: BTreeSet<&str> = BTreeSet::new();
            for r in refs {
                check_fragment(r)?;
                if !seen.insert(r.as_str()) {
                    return Err(DocumentError::DuplicateReference { relationship, reference: shown(r) });
                }
                let Some((_, key_type)) = methods.iter().find(|(id, _)| *id == r.as_str()) else {
                    return Err(DocumentError::DanglingReference { relationship, reference: shown(r) });
                };
                if *key_type != expected {
                    return Err(DocumentError::WrongKeyType {
                        relationship,
                        reference: shown(r),
                        expected: expected.name(),
                        actual: key_type.name(),
                    });
                }
            }
        }
        Ok(())
    }

    /// The five relationships with their names, in output order (§4.3).
    fn relationships(&self) -> [(&'static str, &Vec<String>); 5] {
        let [a, b, c, d, e] = RELATIONSHIPS;
        [
            (a, &self.authentication),
            (b, &self.assertion_method),
            (c, &self.key_agreement),
            (d, &self.capability_invocation),
            (e, &self.capability_delegation),
        ]
    }
}

/// `#` followed by 1 to 64 of `[A-Za-z0-9._-]` (§4.4).
fn check_fragment(value: &str) -> Result<(), DocumentError> {
    let bad = |reason| Err(DocumentError::InvalidFragment { value: shown(value), reason });
    let Some(name) = value.strip_prefix('#') else {
        return bad("must start with '#'");
    };
    if name.is_empty() || name.len() > MAX_FRAGMENT_LEN {
        return bad("must have 1 to 64 characters after '#'");
    }
    if !name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-')) {
        return bad("may contain only [A-Za-z0-9._-] after '#'");
    }
    Ok(())
}

/// 1 to 64 visible ASCII characters (§4.4).
fn check_service_type(s: &Service) -> Result<(), DocumentError> {
    let t = &s.service_type;
    if t.is_empty() || t.len() > MAX_SERVICE_TYPE_LEN || !t.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(DocumentError::InvalidServiceType {
            id: shown(&s.id),
            value: shown(t),
            reason: "must be 1 to 64 visible ascii characters (no spaces)",
        });
    }
    Ok(())
}

/// An absolute URI of visible ASCII, at most 1024 bytes (§4.4).
fn check_service_endpoint(s: &Service) -> Result<(), DocumentError> {
    let e = &s.service_endpoint;
    let bad = |reason| Err(DocumentError::InvalidServiceEndpoint { id: shown(&s.id), value: shown(e), reason });
    if e.is_empty() || e.len() > MAX_SERVICE_ENDPOINT_LEN {
        return bad("must be 1 to 1024 bytes");
    }
    if !e.bytes().all(|b| b.is_ascii_graphic()) {
        return bad("must be visible ascii (percent-encode anything else)");
    }
    let Some((scheme, rest)) = e.split_once(':') else {
        return bad("must be an absolute uri with a scheme");
    };
    let mut chars = scheme.bytes();
    let scheme_ok = chars.next().is_some_and(|b| b.is_ascii_alphabetic())
        && chars.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'));
    if !scheme_ok || rest.is_empty() {
        return bad("must be an absolute uri with a scheme");
    }
    Ok(())
}

/// Decodes a `publicKeyMultibase` (§4.4). On error returns the value to show (None: show
/// it; Some: a replacement, used to withhold what may be private key material) and why.
fn decode_multikey(mb: &str) -> Result<KeyType, (Option<String>, String)> {
    if mb.len() > MAX_MULTIBASE_LEN {
        return Err((None, format!("longer than {MAX_MULTIBASE_LEN} characters")));
    }
    let bytes = did_key::multibase_decode_base58btc(mb).map_err(|e| (None, e.to_string()))?;
    let (codec, key) = did_key::read_multicodec_prefix(&bytes).map_err(|e| (None, e.to_string()))?;
    let key_type = match codec {
        ED25519_PUB_CODEC => KeyType::Ed25519,
        X25519_PUB_CODEC => KeyType::X25519,
        other => {
            // Never echo a value of another codec: it may be a private key (e.g. 0x1300).
            return Err((
                Some("(withheld)".to_owned()),
                format!("multicodec {other:#x} is neither ed25519-pub (0xed) nor x25519-pub (0xec)"),
            ));
        }
    };
    let key: [u8; 32] = key.try_into().map_err(|_| (None, format!("{} key must be 32 bytes, got {}", key_type.name(), key.len())))?;
    match key_type {
        KeyType::Ed25519 => {
            DidKey::from_public_key_bytes(&key).map_err(|e| (None, e.to_string()))?;
        }
        KeyType::X25519 => check_x25519(&key).map_err(|reason| (None, format!("invalid x25519 public key: {reason}")))?,
    }
    if did_key::multibase_encode_base58btc(&bytes) != mb {
        return Err((None, "not the canonical base58btc spelling".to_owned()));
    }
    Ok(key_type)
}

/// An X25519 public key must be a canonical u-coordinate (u < 2^255 - 19) of a point on
/// Curve25519 (not its twist) that is not of small order (§4.4).
fn check_x25519(u: &[u8; 32]) -> Result<(), &'static str> {
    // p = 2^255 - 19, little-endian.
    let mut p = [0xffu8; 32];
    if let Some(first) = p.first_mut() {
        *first = 0xed;
    }
    if let Some(last) = p.last_mut() {
        *last = 0x7f;
    }
    // Compare from the most significant byte: the first difference decides.
    let below_p = u.iter().rev().zip(p.iter().rev()).find(|(a, b)| a != b).is_some_and(|(a, b)| a < b);
    if !below_p {
        return Err("non-canonical u-coordinate (not below 2^255 - 19)");
    }
    let Some(point) = MontgomeryPoint(*u).to_edwards(0) else {
        return Err("not a point of curve25519 (twist point or u = -1)");
    };
    if point.is_small_order() {
        return Err("small-order point");
    }
    Ok(())
}

/// 1 to 8 distinct, canonical Ed25519 `did:key` DIDs (§4.5).
fn validate_controller_keys(keys: &[String]) -> Result<Vec<DidKey>, DidError> {
    if keys.is_empty() || keys.len() > MAX_CONTROLLER_KEYS {
        return Err(DidError::ControllerKeyCount { count: keys.len(), max: MAX_CONTROLLER_KEYS });
    }
    let mut out: Vec<DidKey> = Vec::with_capacity(keys.len());
    for k in keys {
        let bad = |reason: String| DidError::InvalidControllerKey { key: shown(k), reason };
        let key = DidKey::parse(k).map_err(|e| bad(e.to_string()))?;
        if key.did() != *k {
            return Err(bad("not the canonical spelling of the did".to_owned()));
        }
        if out.contains(&key) {
            return Err(bad("listed twice".to_owned()));
        }
        out.push(key);
    }
    Ok(out)
}

/// A next-key commitment must not commit to one of the controller keys it is set with
/// (§4.5): the recovery key has to be a different key.
fn validate_commitment(commitment: Option<&Hash>, keys: &[DidKey]) -> Result<(), DidError> {
    let Some(c) = commitment else { return Ok(()) };
    if let Some(k) = keys.iter().find(|k| next_key_commitment(k) == *c) {
        return Err(DidError::InvalidCommitment {
            commitment: c.to_hex(),
            reason: format!("commits to {}, which is also a controller key; the next key must be a different key", k.did()),
        });
    }
    Ok(())
}

/// 1 to 64 of `[A-Za-z0-9_-]` (§5.2).
fn validate_salt(salt: &str) -> Result<(), DidError> {
    if salt.is_empty() || salt.len() > MAX_SALT_LEN || !salt.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-')) {
        return Err(DidError::InvalidSalt(shown(salt)));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// State machine (§5)
// ---------------------------------------------------------------------------------------

/// One operation as recorded on the ledger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpRecord {
    /// Leaf index of the entry.
    pub index: u64,
    /// Leaf hash of the entry: the versionId of the version it produces (§6.3).
    pub leaf_hash: Hash,
    /// The entry's signed timestamp (§5.1).
    pub timestamp_ms: u64,
    /// The entry author's key id, `did:key:z6Mk…#z6Mk…`.
    pub author: String,
    pub op: DidOperation,
}

impl OpRecord {
    /// Builds a record from a sequenced entry: checks the kind and decodes the payload.
    pub fn from_entry(entry: &Entry, index: u64, leaf_hash: Hash) -> Result<OpRecord, DidError> {
        if entry.kind != Kind::DidOperation {
            return Err(DidError::WrongKind(entry.kind.name()));
        }
        let op = DidOperation::decode(&entry.payload)?;
        Ok(OpRecord { index, leaf_hash, timestamp_ms: entry.timestamp_ms, author: entry.author.clone(), op })
    }
}

/// One version of a DID: produced by one operation (§6.3).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct VersionMeta {
    /// Hex leaf hash of the operation's entry.
    pub version_id: String,
    /// Leaf index of the operation's entry.
    pub index: u64,
    /// The entry timestamp.
    pub time_ms: u64,
}

/// The current state of one DID (§5), persisted by the node (serde JSON) between operations.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DidState {
    did: String,
    /// The current document content (kept after deactivation, for audit; not rendered).
    document: DocumentContent,
    /// Current controller keys (`did:key` DIDs).
    controller_keys: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    next_key_commitment: Option<Hash>,
    deactivated: bool,
    /// Position in `versions` of the operation that set the current controller keys and
    /// commitment (the create or the last rotate): the start of the recovery window (§5.1).
    keys_version: usize,
    /// Every version, oldest first.
    versions: Vec<VersionMeta>,
}

impl DidState {
    /// Validates a create op (§5.2): stateless rules, author among the initial controller
    /// keys; returns the new state.
    pub fn create(record: &OpRecord) -> Result<DidState, DidError> {
        let DidOperation::Create(create) = &record.op else {
            return Err(DidError::NotFound { did: record.op.did().unwrap_or_default() });
        };
        record.op.validate()?;
        let did = derive_did(create);
        let author = parse_author(&record.author)?;
        if !create.controller_keys.contains(&author.did()) {
            return Err(DidError::Unauthorized {
                author: shown(&record.author),
                action: "create",
                reason: "the author must be one of the initial controller keys".into(),
            });
        }
        Ok(DidState {
            did,
            document: create.document.clone(),
            controller_keys: create.controller_keys.clone(),
            next_key_commitment: create.next_key_commitment,
            deactivated: false,
            keys_version: 0,
            versions: vec![VersionMeta { version_id: record.leaf_hash.to_hex(), index: record.index, time_ms: record.timestamp_ms }],
        })
    }

    /// Validates `record` against this state and applies it (update/rotate/deactivate,
    /// §5.3-§5.5). On error the state is unchanged.
    pub fn apply(&mut self, record: &OpRecord) -> Result<(), DidError> {
        let op_did = record.op.did()?;
        if let DidOperation::Create(_) = record.op {
            return Err(if op_did == self.did {
                DidError::AlreadyExists { did: op_did }
            } else {
                DidError::DidMismatch { op_did, state_did: self.did.clone() }
            });
        }
        if op_did != self.did {
            return Err(DidError::DidMismatch { op_did, state_did: self.did.clone() });
        }
        if self.deactivated {
            return Err(DidError::Deactivated { did: self.did.clone() });
        }
        record.op.validate()?;
        self.check_order(record)?;
        let author = parse_author(&record.author)?;
        // Every check happens before the first mutation, so a refusal changes nothing.
        match &record.op {
            DidOperation::Create(_) => return Err(DidError::AlreadyExists { did: op_did }),
            DidOperation::Update(u) => {
                self.require_controller(&author, &record.author, "update")?;
                self.require_latest(&u.previous)?;
                self.document = u.document.clone();
            }
            DidOperation::Rotate(r) => {
                self.authorise_key_op(&author, &record.author, &r.previous, "rotate")?;
                if let (Some(old), Some(new)) = (&self.next_key_commitment, &r.next_key_commitment)
                    && old == new
                {
                    return Err(DidError::InvalidCommitment {
                        commitment: new.to_hex(),
                        reason: "equals the commitment this rotation consumes; commit to a fresh next key".into(),
                    });
                }
                self.controller_keys = r.controller_keys.clone();
                self.next_key_commitment = r.next_key_commitment;
                self.keys_version = self.versions.len();
            }
            DidOperation::Deactivate(d) => {
                self.authorise_key_op(&author, &record.author, &d.previous, "deactivate")?;
                self.deactivated = true;
            }
        }
        self.versions.push(VersionMeta { version_id: record.leaf_hash.to_hex(), index: record.index, time_ms: record.timestamp_ms });
        Ok(())
    }

    pub fn did(&self) -> &str {
        &self.did
    }

    pub fn versions(&self) -> &[VersionMeta] {
        &self.versions
    }

    pub fn deactivated(&self) -> bool {
        self.deactivated
    }

    /// The latest version (None only for a corrupt stored state).
    pub fn latest_version(&self) -> Option<&VersionMeta> {
        self.versions.last()
    }

    /// The current controller keys (`did:key` DIDs).
    pub fn controller_keys(&self) -> &[String] {
        &self.controller_keys
    }

    /// The current next-key commitment, if any.
    pub fn next_key_commitment(&self) -> Option<&Hash> {
        self.next_key_commitment.as_ref()
    }

    /// The current document content as last set by create or update.
    pub fn content(&self) -> &DocumentContent {
        &self.document
    }

    /// The DID document of the current version (§6.2).
    pub fn document(&self) -> Value {
        render_document(&self.did, &self.document, self.deactivated)
    }

    /// Ledger order and non-decreasing version times (§5.1).
    fn check_order(&self, record: &OpRecord) -> Result<(), DidError> {
        let Some(latest) = self.versions.last() else {
            return Err(DidError::CorruptState { did: self.did.clone(), reason: "no versions" });
        };
        if record.index <= latest.index {
            return Err(DidError::OutOfOrder { index: record.index, latest: latest.index });
        }
        if record.timestamp_ms < latest.time_ms {
            return Err(DidError::TimestampRegression { timestamp_ms: record.timestamp_ms, latest_ms: latest.time_ms });
        }
        Ok(())
    }

    fn is_controller(&self, author: &DidKey) -> bool {
        let did = author.did();
        self.controller_keys.contains(&did)
    }

    fn require_controller(&self, author: &DidKey, author_id: &str, action: &'static str) -> Result<(), DidError> {
        if self.is_controller(author) {
            Ok(())
        } else {
            Err(DidError::Unauthorized {
                author: shown(author_id),
                action,
                reason: format!("not a current controller key of {}", self.did),
            })
        }
    }

    /// `previous` must be the latest versionId (§5.1).
    fn require_latest(&self, previous: &Hash) -> Result<(), DidError> {
        let latest = self.versions.last().map(|v| v.version_id.as_str()).unwrap_or_default();
        if previous.to_hex() == latest {
            Ok(())
        } else {
            Err(DidError::WrongPrevious {
                did: self.did.clone(),
                previous: previous.to_hex(),
                expected: format!("the latest version {latest}"),
            })
        }
    }

    /// Rotate and deactivate (§5.4, §5.5): with a next-key commitment only the committed
    /// key may act, and `previous` may be any version since the keys were last set (so
    /// that updates by a stolen current key cannot keep the recovery stale); without one,
    /// a current controller key acts on the latest version.
    fn authorise_key_op(&self, author: &DidKey, author_id: &str, previous: &Hash, action: &'static str) -> Result<(), DidError> {
        let Some(commitment) = &self.next_key_commitment else {
            self.require_controller(author, author_id, action)?;
            return self.require_latest(previous);
        };
        if next_key_commitment(author) != *commitment {
            let reason = if self.is_controller(author) {
                format!(
                    "{} has a next-key commitment: only the pre-committed next key may {action}, not a current controller key",
                    self.did
                )
            } else {
                format!("not the pre-committed next key of {}", self.did)
            };
            return Err(DidError::Unauthorized { author: shown(author_id), action, reason });
        }
        let hex = previous.to_hex();
        let window = self.versions.get(self.keys_version..).unwrap_or_default();
        if window.iter().any(|v| v.version_id == hex) {
            Ok(())
        } else {
            let since = window.first().map(|v| v.version_id.as_str()).unwrap_or_default();
            Err(DidError::WrongPrevious {
                did: self.did.clone(),
                previous: hex,
                expected: format!("a version since the keys were last set ({since})"),
            })
        }
    }
}

/// Applies a record to an optional existing state: create when None, apply otherwise.
pub fn apply_record(state: Option<DidState>, record: &OpRecord) -> Result<DidState, DidError> {
    match state {
        None => DidState::create(record),
        Some(mut s) => {
            s.apply(record)?;
            Ok(s)
        }
    }
}

/// The author key id must be an Ed25519 did:key key id (`specs/did-key.md` §4).
fn parse_author(author: &str) -> Result<DidKey, DidError> {
    DidKey::parse_key_id(author).map_err(|e| DidError::InvalidAuthor { author: shown(author), reason: e.to_string() })
}

// ---------------------------------------------------------------------------------------
// Resolution (§6)
// ---------------------------------------------------------------------------------------

/// Which version to resolve (§6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VersionSelector {
    Latest,
    VersionId(Hash),
    /// Milliseconds since the Unix epoch.
    VersionTime(u64),
}

impl fmt::Display for VersionSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VersionSelector::Latest => f.write_str("the latest version"),
            VersionSelector::VersionId(h) => write!(f, "versionId {h}"),
            VersionSelector::VersionTime(ms) => write!(f, "versionTime {}", format_rfc3339_ms(*ms)),
        }
    }
}

/// A resolved DID document and its didDocumentMetadata (§6.2, §6.4).
#[derive(Debug, Clone, PartialEq)]
pub struct Resolved {
    pub document: Value,
    pub metadata: Value,
    pub deactivated: bool,
}

/// Replays the ordered history of one DID and returns the DID document and
/// didDocumentMetadata as they were at the selected version (§6).
///
/// The DID is the one of the first record that is a valid create; records that do not
/// validate against the state at their position are not versions and are skipped (§6.1),
/// so operations appended by third parties can never make a DID unresolvable.
pub fn resolve(records: &[OpRecord], selector: VersionSelector) -> Result<Resolved, DidError> {
    let Some(full) = replay(records, None) else {
        return Err(DidError::NotFound { did: records.first().and_then(|r| r.op.did().ok()).unwrap_or_default() });
    };
    let versions = full.versions();
    let pos = match selector {
        VersionSelector::Latest => versions.len().checked_sub(1),
        VersionSelector::VersionId(h) => {
            let hex = h.to_hex();
            versions.iter().position(|v| v.version_id == hex)
        }
        // Version times never decrease (§5.1), so this is the version in effect at t.
        VersionSelector::VersionTime(t) => versions.iter().rposition(|v| v.time_ms <= t),
    };
    let Some(pos) = pos else {
        return Err(DidError::VersionNotFound { did: full.did.clone(), selector: selector.to_string() });
    };
    let at = if pos.saturating_add(1) == versions.len() {
        full.clone()
    } else {
        replay(records, Some(pos.saturating_add(1))).unwrap_or_else(|| full.clone())
    };
    let mut meta = Map::new();
    if let Some(created) = versions.first() {
        meta.insert("created".into(), json!(format_rfc3339_ms(created.time_ms)));
    }
    if let Some(this) = versions.get(pos) {
        if pos > 0 {
            meta.insert("updated".into(), json!(format_rfc3339_ms(this.time_ms)));
        }
        meta.insert("versionId".into(), json!(this.version_id));
    }
    if at.deactivated {
        meta.insert("deactivated".into(), json!(true));
    }
    if let Some(next) = versions.get(pos.saturating_add(1)) {
        meta.insert("nextUpdate".into(), json!(format_rfc3339_ms(next.time_ms)));
        meta.insert("nextVersionId".into(), json!(next.version_id));
    }
    Ok(Resolved { document: at.document(), metadata: Value::Object(meta), deactivated: at.deactivated })
}

/// Runs the state machine over `records`, skipping those that do not apply; stops once
/// the state has `limit` versions.
fn replay(records: &[OpRecord], limit: Option<usize>) -> Option<DidState> {
    let mut state: Option<DidState> = None;
    for r in records {
        match state.as_mut() {
            None => state = DidState::create(r).ok(),
            Some(s) => {
                // A refused record is not a version (§6.1).
                let _ = s.apply(r);
            }
        }
        if let (Some(s), Some(n)) = (&state, limit)
            && s.versions.len() >= n
        {
            break;
        }
    }
    state
}

/// The DID document for `content` (§6.2). A deactivated DID's document has only
/// `@context` and `id`: no key of it can be used any more.
fn render_document(did: &str, content: &DocumentContent, deactivated: bool) -> Value {
    let mut doc = Map::new();
    doc.insert("@context".into(), json!([DID_CONTEXT_V1_1]));
    doc.insert("id".into(), json!(did));
    if deactivated {
        return Value::Object(doc);
    }
    doc.insert("controller".into(), json!(did));
    let abs = |fragment: &str| format!("{did}{fragment}");
    if !content.verification_method.is_empty() {
        let vms: Vec<Value> = content
            .verification_method
            .iter()
            .map(|vm| json!({"id": abs(&vm.id), "type": vm.method_type, "controller": did, "publicKeyMultibase": vm.public_key_multibase}))
            .collect();
        doc.insert("verificationMethod".into(), Value::Array(vms));
    }
    for (name, refs) in content.relationships() {
        if !refs.is_empty() {
            doc.insert(name.into(), Value::Array(refs.iter().map(|r| json!(abs(r))).collect()));
        }
    }
    if !content.service.is_empty() {
        let services: Vec<Value> = content
            .service
            .iter()
            .map(|s| json!({"id": abs(&s.id), "type": s.service_type, "serviceEndpoint": s.service_endpoint}))
            .collect();
        doc.insert("service".into(), Value::Array(services));
    }
    Value::Object(doc)
}

// ---------------------------------------------------------------------------------------
// Time (§6.5)
// ---------------------------------------------------------------------------------------

const MS_PER_DAY: u64 = 86_400_000;

/// Days since 1970-01-01 of a proleptic Gregorian date (era-based civil calendar
/// arithmetic: 400-year eras of 146 097 days, years counted from March).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = i64::from((month + 9) % 12);
    let doy = (153 * mp + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The inverse of [`days_from_civil`].
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

fn is_leap(year: i64) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if is_leap(year) => 29,
        2 => 28,
        _ => 0,
    }
}

/// Milliseconds since the Unix epoch as RFC 3339 / xsd:dateTime UTC with seconds
/// precision, `YYYY-MM-DDTHH:MM:SSZ` (§6.5). Milliseconds are truncated. Years after 9999
/// are written with more digits (valid xsd:dateTime, not RFC 3339); admission's clock
/// window keeps ledger times far from that.
pub fn format_rfc3339_ms(ms: u64) -> String {
    let days = (ms / MS_PER_DAY) as i64;
    let secs = (ms % MS_PER_DAY) / 1000;
    let (y, m, d) = civil_from_days(days);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z", secs / 3600, secs / 60 % 60, secs % 60)
}

/// Parses RFC 3339 `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)` to milliseconds since the
/// epoch (§6.5). `T` and `Z` may be lowercase; fractions beyond milliseconds are
/// truncated. Returns None for anything else: other layouts, impossible dates, a leap
/// second (`:60`), times before 1970, input over 64 bytes. Never panics.
pub fn parse_rfc3339(s: &str) -> Option<u64> {
    if s.len() > 64 || !s.is_ascii() {
        return None;
    }
    let b = s.as_bytes();
    let num = |from: usize, to: usize| -> Option<u32> {
        let digits = b.get(from..to)?;
        digits.iter().try_fold(0u32, |acc, &c| c.is_ascii_digit().then(|| acc * 10 + u32::from(c - b'0')))
    };
    let is = |at: usize, allowed: &[u8]| b.get(at).is_some_and(|c| allowed.contains(c));
    if !(is(4, b"-") && is(7, b"-") && is(10, b"Tt") && is(13, b":") && is(16, b":")) {
        return None;
    }
    let (year, month, day) = (i64::from(num(0, 4)?), num(5, 7)?, num(8, 10)?);
    let (hour, minute, second) = (num(11, 13)?, num(14, 16)?, num(17, 19)?);
    if !(1..=12).contains(&month) || day == 0 || day > days_in_month(year, month) || hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    let mut pos = 19;
    let mut frac_ms = 0u64;
    if is(pos, b".") {
        let digits = b.get(pos + 1..)?.iter().take_while(|c| c.is_ascii_digit()).count();
        if digits == 0 {
            return None;
        }
        for i in 0..3 {
            let d = if i < digits { u64::from(b.get(pos + 1 + i)?.wrapping_sub(b'0')) } else { 0 };
            frac_ms = frac_ms * 10 + d;
        }
        pos += 1 + digits;
    }
    let offset_secs: i64 = match b.get(pos) {
        Some(b'Z' | b'z') if b.len() == pos + 1 => 0,
        Some(sign @ (b'+' | b'-')) if b.len() == pos + 6 && is(pos + 3, b":") => {
            let (oh, om) = (num(pos + 1, pos + 3)?, num(pos + 4, pos + 6)?);
            if oh > 23 || om > 59 {
                return None;
            }
            let secs = i64::from(oh * 3600 + om * 60);
            if *sign == b'+' { secs } else { -secs }
        }
        _ => return None,
    };
    let local = days_from_civil(year, month, day) * 86_400 + i64::from(hour * 3600 + minute * 60 + second);
    let utc = u64::try_from(local - offset_secs).ok()?;
    utc.checked_mul(1000)?.checked_add(frac_ms)
}

// ---------------------------------------------------------------------------------------
// Errors (§7)
// ---------------------------------------------------------------------------------------

/// Why a document is invalid (§4.4). Messages are lowercase and name the bad value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DocumentError {
    #[error("too many {what}: {count}, the limit is {max}")]
    TooMany { what: &'static str, count: usize, max: usize },
    #[error("invalid fragment id {value:?}: {reason}")]
    InvalidFragment { value: String, reason: &'static str },
    #[error("duplicate id {0:?}: verification method and service ids must be unique")]
    DuplicateId(String),
    #[error("verification method {id:?} has unsupported type {method_type:?}: expected \"Multikey\"")]
    UnsupportedMethodType { id: String, method_type: String },
    #[error("verification method {id:?} has invalid publicKeyMultibase {value:?}: {reason}")]
    InvalidKey { id: String, value: String, reason: String },
    #[error("{relationship} reference {reference:?} names no verification method of the document")]
    DanglingReference { relationship: &'static str, reference: String },
    #[error("{relationship} lists {reference:?} twice")]
    DuplicateReference { relationship: &'static str, reference: String },
    #[error("{relationship} reference {reference:?} is an {actual} key; {relationship} needs {expected}")]
    WrongKeyType { relationship: &'static str, reference: String, expected: &'static str, actual: &'static str },
    #[error("service {id:?} has invalid type {value:?}: {reason}")]
    InvalidServiceType { id: String, value: String, reason: &'static str },
    #[error("service {id:?} has invalid serviceEndpoint {value:?}: {reason}")]
    InvalidServiceEndpoint { id: String, value: String, reason: &'static str },
}

/// Why an operation is refused or a resolution fails (§7). Messages are lowercase and
/// name the bad value (truncated, control characters escaped).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DidError {
    #[error("did operation payload is {len} bytes, over the limit of {max}")]
    PayloadTooLarge { len: usize, max: usize },
    #[error("malformed did operation payload: {0}")]
    Malformed(String),
    #[error("did operation payload is not canonical: it must be the rfc 8785 (jcs) form, with empty lists and absent options omitted")]
    NotCanonical,
    #[error("entry kind {0} is not did-operation/v1")]
    WrongKind(&'static str),
    #[error("invalid did {value:?}: {reason}")]
    InvalidDid { value: String, reason: String },
    #[error("did method {method:?} is not supported: expected did:dojang")]
    MethodNotSupported { method: String },
    #[error("did {did:?} not found")]
    NotFound { did: String },
    #[error("no version of {did} matches {selector}")]
    VersionNotFound { did: String, selector: String },
    #[error("did {did} already exists")]
    AlreadyExists { did: String },
    #[error("did {did} is deactivated: no operation applies any more")]
    Deactivated { did: String },
    #[error("operation is about {op_did} but was applied to the state of {state_did}")]
    DidMismatch { op_did: String, state_did: String },
    #[error("previous {previous} does not fit {did}: expected {expected}")]
    WrongPrevious { did: String, previous: String, expected: String },
    #[error("record index {index} is not after the latest version's index {latest}")]
    OutOfOrder { index: u64, latest: u64 },
    #[error("timestamp {timestamp_ms} is earlier than the latest version's time {latest_ms}")]
    TimestampRegression { timestamp_ms: u64, latest_ms: u64 },
    #[error("invalid author key id {author:?}: {reason}")]
    InvalidAuthor { author: String, reason: String },
    #[error("author {author:?} may not {action}: {reason}")]
    Unauthorized { author: String, action: &'static str, reason: String },
    #[error("a did needs 1 to {max} controller keys, got {count}")]
    ControllerKeyCount { count: usize, max: usize },
    #[error("invalid controller key {key:?}: {reason}")]
    InvalidControllerKey { key: String, reason: String },
    #[error("invalid next-key commitment {commitment}: {reason}")]
    InvalidCommitment { commitment: String, reason: String },
    #[error("invalid salt {0:?}: must be 1 to 64 of [A-Za-z0-9_-]")]
    InvalidSalt(String),
    #[error("invalid did document: {0}")]
    InvalidDocument(#[from] DocumentError),
    #[error("stored state of {did} is corrupt: {reason}")]
    CorruptState { did: String, reason: &'static str },
}

impl DidError {
    /// W3C DID resolution error code where one applies (§7): `invalidDid`,
    /// `methodNotSupported`, `notFound`, `deactivated`; else `invalidOperation`
    /// (`internalError` for a corrupt stored state).
    pub fn code(&self) -> &'static str {
        match self {
            DidError::InvalidDid { .. } => "invalidDid",
            DidError::MethodNotSupported { .. } => "methodNotSupported",
            DidError::NotFound { .. } | DidError::VersionNotFound { .. } => "notFound",
            DidError::Deactivated { .. } => "deactivated",
            DidError::CorruptState { .. } => "internalError",
            _ => "invalidOperation",
        }
    }

    /// A finer, stable machine-readable slug (§7), for problem+json `type` URIs.
    pub fn slug(&self) -> &'static str {
        match self {
            DidError::PayloadTooLarge { .. } => "did-operation-too-large",
            DidError::Malformed(_) => "did-operation-malformed",
            DidError::NotCanonical => "did-operation-not-canonical",
            DidError::WrongKind(_) => "did-wrong-kind",
            DidError::InvalidDid { .. } => "invalid-did",
            DidError::MethodNotSupported { .. } => "did-method-not-supported",
            DidError::NotFound { .. } => "did-not-found",
            DidError::VersionNotFound { .. } => "did-version-not-found",
            DidError::AlreadyExists { .. } => "did-exists",
            DidError::Deactivated { .. } => "did-deactivated",
            DidError::DidMismatch { .. } => "did-mismatch",
            DidError::WrongPrevious { .. } => "did-wrong-previous",
            DidError::OutOfOrder { .. } => "did-out-of-order",
            DidError::TimestampRegression { .. } => "did-timestamp-regression",
            DidError::InvalidAuthor { .. } => "invalid-author",
            DidError::Unauthorized { .. } => "did-unauthorized",
            DidError::ControllerKeyCount { .. } | DidError::InvalidControllerKey { .. } => "did-invalid-controller-key",
            DidError::InvalidCommitment { .. } => "did-invalid-commitment",
            DidError::InvalidSalt(_) => "did-invalid-salt",
            DidError::InvalidDocument(_) => "did-invalid-document",
            DidError::CorruptState { .. } => "did-corrupt-state",
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
    use ed25519_dalek::SigningKey;
    use proptest::prelude::*;

    /// 2026-12-04T10:00:00Z.
    const T0: u64 = 1_796_378_400_000;
    const MINUTE: u64 = 60_000;

    fn dk(seed: u8) -> DidKey {
        DidKey::from_verifying_key(&SigningKey::from_bytes(&[seed; 32]).verifying_key())
    }
    fn kid(seed: u8) -> String {
        dk(seed).key_id()
    }
    fn did_of(seed: u8) -> String {
        dk(seed).did()
    }
    fn commit(seed: u8) -> Hash {
        next_key_commitment(&dk(seed))
    }

    fn vm(id: &str, mb: String) -> VerificationMethod {
        VerificationMethod { id: id.into(), method_type: MULTIKEY_TYPE.into(), public_key_multibase: mb }
    }

    /// A full document: an Ed25519 key in the four signing relationships, its X25519 key
    /// in keyAgreement, one service.
    fn content(seed: u8) -> DocumentContent {
        let k = dk(seed);
        DocumentContent {
            verification_method: vec![vm("#key-1", k.multibase()), vm("#key-2", k.x25519_multibase())],
            authentication: vec!["#key-1".into()],
            assertion_method: vec!["#key-1".into()],
            key_agreement: vec!["#key-2".into()],
            capability_invocation: vec!["#key-1".into()],
            capability_delegation: vec!["#key-1".into()],
            service: vec![Service {
                id: "#hub".into(),
                service_type: "DojangHub".into(),
                service_endpoint: "https://hub.example.kr/".into(),
            }],
        }
    }

    fn create_op(controllers: &[u8], next: Option<u8>) -> CreateOp {
        CreateOp {
            document: content(50),
            controller_keys: controllers.iter().map(|&s| did_of(s)).collect(),
            next_key_commitment: next.map(commit),
            salt: None,
        }
    }

    /// A made-up leaf hash: distinct per index and operation.
    fn leaf(index: u64, op: &DidOperation) -> Hash {
        let mut h = blake3::Hasher::new();
        h.update(&index.to_be_bytes());
        h.update(&op.encode());
        Hash(*h.finalize().as_bytes())
    }

    fn rec(index: u64, ts: u64, author: u8, op: DidOperation) -> OpRecord {
        OpRecord { index, leaf_hash: leaf(index, &op), timestamp_ms: ts, author: kid(author), op }
    }

    /// A DID's history as a ledger would hold it: every record submitted for it, accepted
    /// or not, with the state the accepted ones produce.
    struct Chain {
        records: Vec<OpRecord>,
        state: DidState,
        index: u64,
        time: u64,
    }

    impl Chain {
        fn new(create: CreateOp, author: u8) -> Chain {
            let r = rec(10, T0, author, DidOperation::Create(create));
            let state = apply_record(None, &r).unwrap();
            Chain { records: vec![r], state, index: 10, time: T0 }
        }
        fn did(&self) -> String {
            self.state.did().to_owned()
        }
        fn latest(&self) -> Hash {
            Hash::from_hex(&self.state.latest_version().unwrap().version_id).unwrap()
        }
        fn version(&self, i: usize) -> Hash {
            Hash::from_hex(&self.state.versions()[i].version_id).unwrap()
        }
        /// Submits `op` by `author` one minute after the previous record.
        fn submit(&mut self, author: u8, op: DidOperation) -> Result<(), DidError> {
            self.index += 3;
            self.time += MINUTE;
            let r = rec(self.index, self.time, author, op);
            self.records.push(r.clone());
            let before = self.state.clone();
            let out = apply_record(Some(self.state.clone()), &r);
            match out {
                Ok(s) => {
                    self.state = s;
                    Ok(())
                }
                Err(e) => {
                    assert_eq!(self.state, before);
                    Err(e)
                }
            }
        }
        fn update(&self, document: DocumentContent) -> DidOperation {
            DidOperation::Update(UpdateOp { did: self.did(), previous: self.latest(), document })
        }
        fn rotate(&self, previous: Hash, controllers: &[u8], next: Option<u8>) -> DidOperation {
            DidOperation::Rotate(RotateOp {
                did: self.did(),
                previous,
                controller_keys: controllers.iter().map(|&s| did_of(s)).collect(),
                next_key_commitment: next.map(commit),
            })
        }
        fn deactivate(&self, previous: Hash) -> DidOperation {
            DidOperation::Deactivate(DeactivateOp { did: self.did(), previous })
        }
        /// Resolution over all records (refused ones included) agrees with the state.
        fn resolve_latest(&self) -> Resolved {
            let r = resolve(&self.records, VersionSelector::Latest).unwrap();
            assert_eq!(r.document, self.state.document());
            assert_eq!(r.metadata["versionId"], json!(self.state.latest_version().unwrap().version_id));
            assert_eq!(r.deactivated, self.state.deactivated());
            r
        }
    }

    fn service_only(endpoint: &str) -> DocumentContent {
        DocumentContent {
            service: vec![Service { id: "#hub".into(), service_type: "DojangHub".into(), service_endpoint: endpoint.into() }],
            ..DocumentContent::default()
        }
    }

    // ---- create and read --------------------------------------------------------------

    #[test]
    fn create_then_resolve() {
        let chain = Chain::new(create_op(&[1], None), 1);
        let did = chain.did();
        assert!(did.starts_with(METHOD_PREFIX));
        parse_did(&did).unwrap();
        let k = dk(50);
        let r = chain.resolve_latest();
        let expected = json!({
            "@context": ["https://www.w3.org/ns/did/v1.1"],
            "id": did,
            "controller": did,
            "verificationMethod": [
                {"id": format!("{did}#key-1"), "type": "Multikey", "controller": did, "publicKeyMultibase": k.multibase()},
                {"id": format!("{did}#key-2"), "type": "Multikey", "controller": did, "publicKeyMultibase": k.x25519_multibase()},
            ],
            "authentication": [format!("{did}#key-1")],
            "assertionMethod": [format!("{did}#key-1")],
            "keyAgreement": [format!("{did}#key-2")],
            "capabilityInvocation": [format!("{did}#key-1")],
            "capabilityDelegation": [format!("{did}#key-1")],
            "service": [{"id": format!("{did}#hub"), "type": "DojangHub", "serviceEndpoint": "https://hub.example.kr/"}],
        });
        assert_eq!(r.document, expected);
        assert_eq!(r.metadata, json!({"created": "2026-12-04T10:00:00Z", "versionId": chain.latest().to_hex()}));
        assert!(!r.deactivated);
        assert_eq!(chain.state.versions(), &[VersionMeta { version_id: chain.latest().to_hex(), index: 10, time_ms: T0 }]);
        assert_eq!(chain.state.controller_keys(), &[did_of(1)]);
        assert_eq!(chain.state.next_key_commitment(), None);
        assert_eq!(chain.state.content(), &content(50));
        // An empty document is allowed: the DID then only names its controller.
        let empty = Chain::new(CreateOp { document: DocumentContent::default(), ..create_op(&[1], None) }, 1);
        let r = empty.resolve_latest();
        assert_eq!(r.document, json!({"@context": [DID_CONTEXT_V1_1], "id": empty.did(), "controller": empty.did()}));
    }

    #[test]
    fn create_requires_an_initial_controller_as_author() {
        let op = DidOperation::Create(create_op(&[1, 2], Some(3)));
        DidState::create(&rec(0, T0, 2, op.clone())).unwrap();
        let e = DidState::create(&rec(0, T0, 9, op.clone())).unwrap_err();
        assert!(matches!(e, DidError::Unauthorized { action: "create", .. }), "{e}");
        assert_eq!(e.code(), "invalidOperation");
        // Not even the pre-committed next key.
        assert!(matches!(DidState::create(&rec(0, T0, 3, op.clone())).unwrap_err(), DidError::Unauthorized { .. }));
        // The author must be a did:key key id, not a DID or another key id.
        for author in [did_of(1), dk(1).x25519_key_id(), "did:web:example.com#k".to_owned(), String::new()] {
            let r = OpRecord { author, ..rec(0, T0, 1, op.clone()) };
            let e = DidState::create(&r).unwrap_err();
            assert!(matches!(e, DidError::InvalidAuthor { .. }), "{e}");
        }
        // create() on a non-create operation: the DID does not exist.
        let upd = DidOperation::Deactivate(DeactivateOp { did: op.did().unwrap(), previous: Hash::ZERO });
        let e = DidState::create(&rec(0, T0, 1, upd.clone())).unwrap_err();
        assert_eq!(e, DidError::NotFound { did: op.did().unwrap() });
        assert_eq!(e.code(), "notFound");
        assert_eq!(apply_record(None, &rec(0, T0, 1, upd)).unwrap_err().code(), "notFound");
    }

    #[test]
    fn create_twice_is_refused() {
        let chain = Chain::new(create_op(&[1], None), 1);
        let again = rec(11, T0 + 1, 1, DidOperation::Create(create_op(&[1], None)));
        let e = apply_record(Some(chain.state.clone()), &again).unwrap_err();
        assert_eq!(e, DidError::AlreadyExists { did: chain.did() });
        // A create of another DID applied to this state is a mismatch.
        let other = rec(11, T0 + 1, 1, DidOperation::Create(create_op(&[1, 2], None)));
        assert!(matches!(apply_record(Some(chain.state.clone()), &other).unwrap_err(), DidError::DidMismatch { .. }));
        // Resolution ignores the second create: one version.
        let records = vec![chain.records[0].clone(), again];
        let r = resolve(&records, VersionSelector::Latest).unwrap();
        assert_eq!(r.metadata["versionId"], json!(chain.latest().to_hex()));
        assert!(r.metadata.get("updated").is_none());
    }

    // ---- update -----------------------------------------------------------------------

    #[test]
    fn update_by_a_controller_key() {
        let mut chain = Chain::new(create_op(&[1, 2], None), 1);
        // Add a key to assertionMethod, drop the service.
        let mut doc = content(50);
        doc.verification_method.push(vm("#key-3", dk(51).multibase()));
        doc.assertion_method.push("#key-3".into());
        doc.service.clear();
        chain.submit(2, chain.update(doc.clone())).unwrap();
        let did = chain.did();
        let r = chain.resolve_latest();
        assert_eq!(r.document["assertionMethod"], json!([format!("{did}#key-1"), format!("{did}#key-3")]));
        assert!(r.document.get("service").is_none());
        assert_eq!(r.document["verificationMethod"][2]["publicKeyMultibase"], json!(dk(51).multibase()));
        assert_eq!(
            r.metadata,
            json!({"created": "2026-12-04T10:00:00Z", "updated": "2026-12-04T10:01:00Z", "versionId": chain.latest().to_hex()})
        );
        assert_eq!(chain.state.content(), &doc);
        // The other controller key may update too.
        chain.submit(1, chain.update(service_only("https://example.org/x"))).unwrap();
        assert_eq!(chain.state.versions().len(), 3);
    }

    #[test]
    fn update_by_a_non_controller_is_refused() {
        let mut chain = Chain::new(create_op(&[1], Some(2)), 1);
        let e = chain.submit(9, chain.update(service_only("https://evil.example/"))).unwrap_err();
        assert!(matches!(&e, DidError::Unauthorized { action: "update", .. }), "{e}");
        assert!(e.to_string().contains(&kid(9)[..40]), "{e}");
        // The next key is not a controller key: it may only rotate or deactivate.
        assert!(matches!(chain.submit(2, chain.update(service_only("https://evil.example/"))).unwrap_err(), DidError::Unauthorized { .. }));
        assert_eq!(chain.state.versions().len(), 1);
        chain.resolve_latest();
    }

    #[test]
    fn stale_or_unknown_previous_is_refused() {
        let mut chain = Chain::new(create_op(&[1], None), 1);
        let first = chain.update(service_only("https://example.org/1"));
        chain.submit(1, first.clone()).unwrap();
        // Replaying the same operation (same previous) in a new entry: stale.
        let e = chain.submit(1, first).unwrap_err();
        assert!(matches!(&e, DidError::WrongPrevious { .. }), "{e}");
        assert_eq!(e.code(), "invalidOperation");
        assert!(e.to_string().contains(&chain.version(0).to_hex()), "{e}");
        // A fork from the create version, and a made-up previous.
        let fork = DidOperation::Update(UpdateOp {
            did: chain.did(),
            previous: chain.version(0),
            document: service_only("https://example.org/fork"),
        });
        assert!(matches!(chain.submit(1, fork).unwrap_err(), DidError::WrongPrevious { .. }));
        let made_up = DidOperation::Update(UpdateOp { did: chain.did(), previous: Hash([7; 32]), document: DocumentContent::default() });
        assert!(matches!(chain.submit(1, made_up).unwrap_err(), DidError::WrongPrevious { .. }));
        // The same record applied twice: out of ledger order.
        let r = chain.records[1].clone();
        assert!(matches!(chain.state.clone().apply(&r).unwrap_err(), DidError::OutOfOrder { .. }));
        let r = chain.resolve_latest();
        assert_eq!(r.document["service"][0]["serviceEndpoint"], json!("https://example.org/1"));
    }

    #[test]
    fn ledger_order_and_non_decreasing_time() {
        let chain = Chain::new(create_op(&[1], None), 1);
        let op = chain.update(DocumentContent::default());
        let e = chain.state.clone().apply(&rec(10, T0 + 1, 1, op.clone())).unwrap_err();
        assert_eq!(e, DidError::OutOfOrder { index: 10, latest: 10 });
        let e = chain.state.clone().apply(&rec(11, T0 - 1, 1, op.clone())).unwrap_err();
        assert_eq!(e, DidError::TimestampRegression { timestamp_ms: T0 - 1, latest_ms: T0 });
        // Equal times are fine.
        chain.state.clone().apply(&rec(11, T0, 1, op)).unwrap();
    }

    #[test]
    fn operations_for_another_did_are_refused() {
        let chain = Chain::new(create_op(&[1], None), 1);
        let other = Chain::new(create_op(&[2], None), 2);
        let op = other.update(DocumentContent::default());
        let e = chain.state.clone().apply(&rec(20, T0, 2, op)).unwrap_err();
        assert!(matches!(e, DidError::DidMismatch { .. }), "{e}");
        for (bad, code) in [("did:dojang:0OIl", "invalidDid"), ("did:web:example.com", "methodNotSupported"), ("", "invalidDid")] {
            let op = DidOperation::Update(UpdateOp { did: bad.into(), previous: chain.latest(), document: DocumentContent::default() });
            assert_eq!(op.did().unwrap_err().code(), code);
            assert_eq!(chain.state.clone().apply(&rec(20, T0, 1, op)).unwrap_err().code(), code);
        }
    }

    // ---- rotate -----------------------------------------------------------------------

    #[test]
    fn rotate_without_commitment() {
        let mut chain = Chain::new(create_op(&[1], None), 1);
        // A stranger cannot rotate.
        assert!(matches!(chain.submit(9, chain.rotate(chain.latest(), &[9], None)).unwrap_err(), DidError::Unauthorized { .. }));
        // Stale previous refused for a controller-key rotation.
        chain.submit(1, chain.update(DocumentContent::default())).unwrap();
        assert!(matches!(chain.submit(1, chain.rotate(chain.version(0), &[2], None)).unwrap_err(), DidError::WrongPrevious { .. }));
        chain.submit(1, chain.rotate(chain.latest(), &[2], Some(3))).unwrap();
        assert_eq!(chain.state.controller_keys(), &[did_of(2)]);
        assert_eq!(chain.state.next_key_commitment(), Some(&commit(3)));
        // The old key lost control; the new one has it.
        assert!(matches!(chain.submit(1, chain.update(service_only("https://old.example/"))).unwrap_err(), DidError::Unauthorized { .. }));
        assert!(matches!(chain.submit(1, chain.rotate(chain.latest(), &[1], None)).unwrap_err(), DidError::Unauthorized { .. }));
        chain.submit(2, chain.update(service_only("https://new.example/"))).unwrap();
        let r = chain.resolve_latest();
        assert_eq!(r.document["service"][0]["serviceEndpoint"], json!("https://new.example/"));
        // Rotation is a version of its own, with an unchanged document.
        assert_eq!(chain.state.versions().len(), 4);
    }

    #[test]
    fn rotate_with_commitment_needs_the_next_key() {
        let mut chain = Chain::new(create_op(&[1], Some(2)), 1);
        // The current key cannot rotate: a stolen current key cannot lock the owner out.
        let e = chain.submit(1, chain.rotate(chain.latest(), &[9], None)).unwrap_err();
        assert!(matches!(&e, DidError::Unauthorized { action: "rotate", .. }), "{e}");
        assert!(e.to_string().contains("pre-committed next key"), "{e}");
        // Nor any other key.
        assert!(matches!(chain.submit(3, chain.rotate(chain.latest(), &[3], None)).unwrap_err(), DidError::Unauthorized { .. }));
        // The next key cannot re-use the commitment it consumes.
        let e = chain.submit(2, chain.rotate(chain.latest(), &[5], Some(2))).unwrap_err();
        assert!(matches!(&e, DidError::InvalidCommitment { .. }), "{e}");
        // Nor commit to a key it makes a controller.
        assert!(matches!(chain.submit(2, chain.rotate(chain.latest(), &[2, 4], Some(4))).unwrap_err(), DidError::InvalidCommitment { .. }));
        // The next key rotates: itself as controller, key 4 as the new next key.
        chain.submit(2, chain.rotate(chain.latest(), &[2], Some(4))).unwrap();
        assert_eq!(chain.state.controller_keys(), &[did_of(2)]);
        // Old key lost control; the new controller updates; the consumed next key (2) is now
        // a controller and cannot rotate again, key 4 can.
        assert!(matches!(chain.submit(1, chain.update(DocumentContent::default())).unwrap_err(), DidError::Unauthorized { .. }));
        chain.submit(2, chain.update(service_only("https://recovered.example/"))).unwrap();
        assert!(matches!(chain.submit(2, chain.rotate(chain.latest(), &[6], Some(7))).unwrap_err(), DidError::Unauthorized { .. }));
        // Rotating to no commitment hands rotation back to the controller keys.
        chain.submit(4, chain.rotate(chain.latest(), &[4], None)).unwrap();
        chain.submit(4, chain.rotate(chain.latest(), &[5], None)).unwrap();
        assert_eq!(chain.state.controller_keys(), &[did_of(5)]);
        chain.resolve_latest();
        // A commitment to an initial controller key is refused at create.
        let e = DidState::create(&rec(0, T0, 1, DidOperation::Create(create_op(&[1, 2], Some(2))))).unwrap_err();
        assert!(matches!(&e, DidError::InvalidCommitment { .. }), "{e}");
        assert!(e.to_string().contains(&did_of(2)), "{e}");
    }

    /// A thief holding the current key keeps updating; the owner's recovery (signed by the
    /// next key) still applies, because it may name any version since the keys were set.
    #[test]
    fn recovery_is_not_blocked_by_a_stolen_current_key() {
        let mut chain = Chain::new(create_op(&[1], Some(2)), 1);
        let seen_by_owner = chain.latest();
        chain.submit(1, chain.update(service_only("https://thief.example/1"))).unwrap();
        chain.submit(1, chain.update(service_only("https://thief.example/2"))).unwrap();
        chain.submit(2, chain.rotate(seen_by_owner, &[3], Some(4))).unwrap();
        assert!(matches!(chain.submit(1, chain.update(DocumentContent::default())).unwrap_err(), DidError::Unauthorized { .. }));
        chain.submit(3, chain.update(content(53))).unwrap();
        // The new window starts at the recovery: the old versions no longer qualify.
        let e = chain.submit(4, chain.rotate(seen_by_owner, &[4], None)).unwrap_err();
        assert!(matches!(&e, DidError::WrongPrevious { .. }), "{e}");
        let rotation = chain.version(3);
        chain.submit(4, chain.rotate(rotation, &[4], None)).unwrap();
        // Controller-key operations still need the latest version.
        let stale = DidOperation::Update(UpdateOp { did: chain.did(), previous: rotation, document: DocumentContent::default() });
        assert!(matches!(chain.submit(4, stale).unwrap_err(), DidError::WrongPrevious { .. }));
        chain.resolve_latest();
    }

    // ---- deactivate -------------------------------------------------------------------

    #[test]
    fn deactivate_with_a_controller_key() {
        let mut chain = Chain::new(create_op(&[1], None), 1);
        assert!(matches!(chain.submit(9, chain.deactivate(chain.latest())).unwrap_err(), DidError::Unauthorized { .. }));
        assert!(matches!(chain.submit(1, chain.deactivate(Hash([1; 32]))).unwrap_err(), DidError::WrongPrevious { .. }));
        let before = chain.latest();
        chain.submit(1, chain.deactivate(chain.latest())).unwrap();
        assert!(chain.state.deactivated());
        // Nothing applies any more.
        for op in [
            chain.update(service_only("https://late.example/")),
            chain.rotate(chain.latest(), &[2], None),
            chain.deactivate(chain.latest()),
        ] {
            let e = chain.submit(1, op).unwrap_err();
            assert_eq!(e, DidError::Deactivated { did: chain.did() });
            assert_eq!(e.code(), "deactivated");
        }
        let e = chain.submit(1, DidOperation::Create(create_op(&[1], None))).unwrap_err();
        assert!(matches!(e, DidError::AlreadyExists { .. }), "a deactivated did cannot be re-created: {e}");
        // Resolution: a bare document and deactivated metadata.
        let r = chain.resolve_latest();
        assert!(r.deactivated);
        assert_eq!(r.document, json!({"@context": [DID_CONTEXT_V1_1], "id": chain.did()}));
        assert_eq!(
            r.metadata,
            json!({"created": "2026-12-04T10:00:00Z", "updated": "2026-12-04T10:03:00Z", "deactivated": true, "versionId": chain.latest().to_hex()})
        );
        // The version before deactivation still resolves, pointing at its successor.
        let r = resolve(&chain.records, VersionSelector::VersionId(before)).unwrap();
        assert!(!r.deactivated);
        assert_eq!(r.document["service"][0]["id"], json!(format!("{}#hub", chain.did())));
        assert_eq!(r.metadata["nextVersionId"], json!(chain.latest().to_hex()));
        assert_eq!(r.metadata["nextUpdate"], json!("2026-12-04T10:03:00Z"));
        assert!(r.metadata.get("deactivated").is_none());
    }

    #[test]
    fn deactivate_with_commitment_needs_the_next_key() {
        let mut chain = Chain::new(create_op(&[1], Some(2)), 1);
        chain.submit(1, chain.update(DocumentContent::default())).unwrap();
        let e = chain.submit(1, chain.deactivate(chain.latest())).unwrap_err();
        assert!(matches!(e, DidError::Unauthorized { action: "deactivate", .. }), "{e}");
        // The next key may name any version since the keys were set.
        chain.submit(2, chain.deactivate(chain.version(0))).unwrap();
        assert!(chain.resolve_latest().deactivated);
        assert_eq!(chain.submit(2, chain.update(DocumentContent::default())).unwrap_err().code(), "deactivated");
    }

    // ---- validation -------------------------------------------------------------------

    /// The error of creating with `content(50)` changed by `f`.
    fn doc_error(f: impl FnOnce(&mut DocumentContent)) -> DocumentError {
        let mut c = create_op(&[1], None);
        f(&mut c.document);
        match DidState::create(&rec(0, T0, 1, DidOperation::Create(c))) {
            Err(DidError::InvalidDocument(e)) => {
                assert!(DidError::InvalidDocument(e.clone()).to_string().starts_with("invalid did document: "));
                assert_eq!(DidError::InvalidDocument(e.clone()).code(), "invalidOperation");
                e
            }
            other => panic!("expected an invalid document, got {other:?}"),
        }
    }

    #[test]
    fn malformed_documents_are_refused() {
        use DocumentError as D;
        // Dangling references, including one to a service id.
        let e = doc_error(|d| d.authentication.push("#key-9".into()));
        assert_eq!(e, D::DanglingReference { relationship: "authentication", reference: "#key-9".into() });
        assert_eq!(e.to_string(), "authentication reference \"#key-9\" names no verification method of the document");
        assert!(matches!(doc_error(|d| d.capability_delegation.push("#hub".into())), D::DanglingReference { .. }));
        assert!(matches!(
            doc_error(|d| {
                d.verification_method.remove(1);
            }),
            D::DanglingReference { relationship: "keyAgreement", .. }
        ));
        // Duplicate ids: two methods, a method and a service; duplicate references.
        assert_eq!(doc_error(|d| d.verification_method[1].id = "#key-1".into()), D::DuplicateId("#key-1".into()));
        assert_eq!(doc_error(|d| d.service[0].id = "#key-2".into()), D::DuplicateId("#key-2".into()));
        assert!(matches!(doc_error(|d| d.authentication.push("#key-1".into())), D::DuplicateReference { .. }));
        // Wrong key types for the relationship.
        let e = doc_error(|d| d.authentication = vec!["#key-2".into()]);
        assert_eq!(
            e,
            D::WrongKeyType { relationship: "authentication", reference: "#key-2".into(), expected: "ed25519", actual: "x25519" }
        );
        assert!(matches!(doc_error(|d| d.key_agreement = vec!["#key-1".into()]), D::WrongKeyType { expected: "x25519", .. }));
        // Unsupported verification method type.
        assert!(matches!(doc_error(|d| d.verification_method[0].method_type = "JsonWebKey2020".into()), D::UnsupportedMethodType { .. }));
        // Keys that do not decode or are not acceptable.
        let bad_keys: Vec<(String, &str)> = vec![
            ("z6Mk0000".into(), "base58btc"),
            (dk(50).did(), "base58btc"),
            (format!("u{}", &dk(50).multibase()[1..]), "base58btc"),
            (did_key::multibase_encode_base58btc(&[0xed, 0x01, 1, 2, 3]), "32 bytes"),
            (did_key::multibase_encode_base58btc(&[[0xed, 0x01, 1].as_slice(), &[0u8; 31]].concat()), "small-order"),
            (did_key::multibase_encode_base58btc(&[[0xec, 0x01].as_slice(), &[0u8; 32]].concat()), "x25519"),
            (did_key::multibase_encode_base58btc(&[[0xe7, 0x01].as_slice(), &[2u8; 33]].concat()), "neither"),
            (String::new(), "base58btc"),
            ("z".repeat(200), "longer"),
        ];
        for (mb, why) in bad_keys {
            let e = doc_error(|d| d.verification_method[0].public_key_multibase = mb.clone());
            assert!(matches!(e, D::InvalidKey { .. }), "{mb}: {e}");
            assert!(e.to_string().contains(why), "{mb}: {e}");
        }
        // A private key (ed25519-priv, 0x1300) is refused without being echoed.
        let secret = did_key::multibase_encode_base58btc(&[[0x80, 0x26].as_slice(), &[0x42u8; 32]].concat());
        let e = doc_error(|d| d.verification_method[0].public_key_multibase = secret.clone());
        assert!(!e.to_string().contains(&secret) && e.to_string().contains("withheld"), "{e}");
        // Fragments.
        for bad in ["key-1", "#", "#key 1", "#ключ", "#a/b", &format!("#{}", "k".repeat(65))] {
            assert!(matches!(doc_error(|d| d.verification_method[0].id = bad.into()), D::InvalidFragment { .. }), "{bad}");
            assert!(matches!(doc_error(|d| d.service[0].id = bad.into()), D::InvalidFragment { .. }), "{bad}");
        }
        assert!(matches!(doc_error(|d| d.assertion_method = vec!["key-1".into()]), D::InvalidFragment { .. }));
        // Services.
        for bad in [
            "",
            "hub.example.kr",
            "https://a b",
            "https://é.example",
            "1http://x",
            "https:",
            "https://\n",
            &format!("https://{}", "a".repeat(1020)),
        ] {
            let e = doc_error(|d| d.service[0].service_endpoint = bad.into());
            assert!(matches!(e, D::InvalidServiceEndpoint { .. }), "{bad:?}: {e}");
        }
        for bad in ["", "Dojang Hub", &"T".repeat(65), "Hub\t"] {
            assert!(matches!(doc_error(|d| d.service[0].service_type = bad.into()), D::InvalidServiceType { .. }), "{bad:?}");
        }
        // Counts.
        let e = doc_error(|d| {
            d.verification_method = (0..33).map(|i| vm(&format!("#k{i}"), dk(60).multibase())).collect();
            d.authentication.clear();
            d.assertion_method.clear();
            d.key_agreement.clear();
            d.capability_delegation.clear();
            d.capability_invocation.clear();
        });
        assert_eq!(e, D::TooMany { what: "verification methods", count: 33, max: 32 });
        let e = doc_error(|d| {
            d.service =
                (0..33).map(|i| Service { id: format!("#s{i}"), service_type: "T".into(), service_endpoint: "urn:x".into() }).collect()
        });
        assert_eq!(e, D::TooMany { what: "services", count: 33, max: 32 });
        // Both X25519 keys of did:key derivation and ed25519 keys of many seeds pass.
        for seed in 0..32u8 {
            let mut c = create_op(&[1], None);
            c.document = content(seed);
            DidOperation::Create(c).validate().unwrap();
        }
    }

    #[test]
    fn x25519_key_checks() {
        let good = dk(5).x25519_public_key();
        check_x25519(&good).unwrap();
        let mut p = [0xffu8; 32];
        p[0] = 0xed;
        p[31] = 0x7f;
        let mut p_minus_1 = p;
        p_minus_1[0] = 0xec;
        let mut top_bit = good;
        top_bit[31] |= 0x80;
        let mut one = [0u8; 32];
        one[0] = 1;
        assert!(check_x25519(&[0; 32]).is_err());
        assert!(check_x25519(&one).is_err());
        assert!(check_x25519(&p_minus_1).is_err());
        assert_eq!(check_x25519(&p), Err("non-canonical u-coordinate (not below 2^255 - 19)"));
        assert!(check_x25519(&top_bit).is_err());
        // A twist point: the first small u with no Edwards counterpart.
        let twist = (2u8..=255)
            .map(|u| {
                let mut b = [0u8; 32];
                b[0] = u;
                b
            })
            .find(|b| MontgomeryPoint(*b).to_edwards(0).is_none())
            .unwrap();
        assert_eq!(check_x25519(&twist), Err("not a point of curve25519 (twist point or u = -1)"));
        // The order-8 points (libsodium's blocklist) are small-order.
        for hex_u in [
            "e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800",
            "5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157",
        ] {
            let u: [u8; 32] = hex::decode(hex_u).unwrap().try_into().unwrap();
            assert_eq!(check_x25519(&u), Err("small-order point"), "{hex_u}");
        }
    }

    #[test]
    fn controller_key_rules() {
        let refuse = |keys: Vec<String>| -> DidError {
            let op = DidOperation::Create(CreateOp { controller_keys: keys, ..create_op(&[1], None) });
            op.validate().unwrap_err()
        };
        assert_eq!(refuse(vec![]), DidError::ControllerKeyCount { count: 0, max: 8 });
        assert_eq!(refuse((1..=9).map(did_of).collect()), DidError::ControllerKeyCount { count: 9, max: 8 });
        assert!(refuse(vec![did_of(1), did_of(1)]).to_string().contains("listed twice"));
        for bad in [
            kid(1),
            "did:key:z6LSeu9HkTHSfLLeUs2nnzUSNedgDUevfNQgQjQC23ZCit6F".to_owned(),
            "did:web:example.com".into(),
            did_of(1).to_uppercase(),
        ] {
            let e = refuse(vec![bad.clone()]);
            assert!(matches!(&e, DidError::InvalidControllerKey { .. }), "{bad}: {e}");
            assert!(e.to_string().contains(&bad.chars().take(18).collect::<String>()), "{e}");
        }
        // Rotate applies the same rules.
        let rot = DidOperation::Rotate(RotateOp {
            did: Chain::new(create_op(&[1], None), 1).did(),
            previous: Hash::ZERO,
            controller_keys: vec![],
            next_key_commitment: None,
        });
        assert!(matches!(rot.validate().unwrap_err(), DidError::ControllerKeyCount { .. }));
        // Salt.
        for bad in ["", "has space", &"s".repeat(65), "ü"] {
            let op = DidOperation::Create(CreateOp { salt: Some(bad.into()), ..create_op(&[1], None) });
            assert!(matches!(op.validate().unwrap_err(), DidError::InvalidSalt(_)), "{bad:?}");
        }
    }

    // ---- encoding ---------------------------------------------------------------------

    fn payload_of(op: &DidOperation) -> String {
        String::from_utf8(op.encode()).unwrap()
    }

    /// JCS of a JSON value: canonical, so a refusal is about content, not spelling.
    fn canonical(v: &Value) -> Vec<u8> {
        serde_jcs::to_vec(v).unwrap()
    }

    #[test]
    fn decode_refuses_unknown_fields_and_non_canonical_bytes() {
        let chain = Chain::new(create_op(&[1], Some(2)), 1);
        let create = DidOperation::Create(CreateOp { salt: Some("s1".into()), ..create_op(&[1], Some(2)) });
        let update = chain.update(content(50));
        for op in [&create, &update, &chain.rotate(chain.latest(), &[2], None), &chain.deactivate(chain.latest())] {
            assert_eq!(&DidOperation::decode(&op.encode()).unwrap(), op);
        }
        let base: Value = serde_json::from_slice(&create.encode()).unwrap();
        let malformed = |v: &Value| DidOperation::decode(&canonical(v)).unwrap_err();
        // Unknown members at every level, including private key material in a method.
        let mut v = base.clone();
        v["extra"] = json!(1);
        let e = malformed(&v);
        assert!(matches!(&e, DidError::Malformed(m) if m.contains("unknown field `extra`")), "{e}");
        let mut v = base.clone();
        v["document"]["controller"] = json!("did:example:x");
        assert!(matches!(malformed(&v), DidError::Malformed(m) if m.contains("controller")));
        let mut v = base.clone();
        v["document"]["verificationMethod"][0]["privateKeyMultibase"] = json!("z3u2en7t5LR2WtQH5PfsRMdXj9iaiRFGUNmUKm8xtbYfx");
        assert!(matches!(malformed(&v), DidError::Malformed(m) if m.contains("privateKeyMultibase")));
        let mut v = base.clone();
        v["document"]["service"][0]["routingKeys"] = json!([]);
        assert!(matches!(malformed(&v), DidError::Malformed(m) if m.contains("routingKeys")));
        let mut v: Value = serde_json::from_slice(&update.encode()).unwrap();
        v["controllerKeys"] = json!([did_of(3)]);
        assert!(matches!(malformed(&v), DidError::Malformed(m) if m.contains("controllerKeys")));
        // Unknown or missing op, missing members, wrong types.
        let mut v = base.clone();
        v["op"] = json!("recover");
        assert!(matches!(malformed(&v), DidError::Malformed(m) if m.contains("recover")));
        let mut v = base.clone();
        v.as_object_mut().unwrap().remove("op");
        assert!(matches!(malformed(&v), DidError::Malformed(_)));
        let mut v = base.clone();
        v.as_object_mut().unwrap().remove("controllerKeys");
        assert!(matches!(malformed(&v), DidError::Malformed(m) if m.contains("controllerKeys")));
        let mut v = base.clone();
        v["nextKeyCommitment"] = json!("abc");
        assert!(matches!(malformed(&v), DidError::Malformed(_)));
        let mut v = base.clone();
        v["salt"] = json!(5);
        assert!(matches!(malformed(&v), DidError::Malformed(_)));
        for bytes in [&b""[..], b"null", b"[]", b"{}", b"\xff\xfe", b"{\"op\":\"create\"", b"{\"op\":\"deactivate\",\"did\":\"x\"} x"] {
            assert!(matches!(DidOperation::decode(bytes).unwrap_err(), DidError::Malformed(_)), "{bytes:?}");
        }
        // Non-canonical spellings of valid operations.
        let text = payload_of(&create);
        let commitment = commit(2).to_hex();
        let spellings = [
            format!("{text} "),
            format!(" {text}"),
            text.replacen(",", ", ", 1),
            text.replacen(":", " : ", 1),
            text.replace("\"op\":\"create\"", "\"op\":\"\\u0063reate\""),
            text.replace(&commitment, &commitment.to_uppercase()),
            text.replace("\"salt\":\"s1\"", "\"salt\":\"s1\",\"salt\":\"s1\""),
            text.replace("\"document\":{", "\"document\":{\"authentication\":[\"#key-1\"],"),
            text.replacen("\"document\":{", "\"document\":{\"service\":[],", 1),
            // "op" moved first: key order is not canonical.
            format!("{{\"op\":\"create\",{}", text.replace(",\"op\":\"create\"", "").trim_start_matches('{')),
        ];
        for s in spellings {
            assert_ne!(s, text);
            let e = DidOperation::decode(s.as_bytes()).unwrap_err();
            assert!(matches!(e, DidError::NotCanonical | DidError::Malformed(_)), "{s}: {e}");
            assert_eq!(e.code(), "invalidOperation");
        }
        assert_eq!(
            DidOperation::decode(text.replace(&commitment, &commitment.to_uppercase()).as_bytes()).unwrap_err(),
            DidError::NotCanonical
        );
        // Duplicate members are malformed.
        let dup = text.replace("\"salt\":\"s1\"", "\"salt\":\"s1\",\"salt\":\"s1\"");
        assert!(
            matches!(DidOperation::decode(dup.as_bytes()).unwrap_err(), DidError::Malformed(m) if m.contains("duplicate field `salt`"))
        );
        // Absent options are omitted, not null; empty lists omitted, not [].
        let none = DidOperation::Create(create_op(&[1], None));
        let t = payload_of(&none);
        assert!(!t.contains("nextKeyCommitment") && !t.contains("salt"));
        let with_null = t.replacen("\"document\"", "\"nextKeyCommitment\":null,\"document\"", 1);
        assert_eq!(DidOperation::decode(with_null.as_bytes()).unwrap_err(), DidError::NotCanonical);
        let d = DidOperation::Deactivate(DeactivateOp { did: chain.did(), previous: chain.latest() });
        assert_eq!(
            DidOperation::decode(payload_of(&d).replace("\"op\"", "\"salt\":null,\"op\"").as_bytes()).unwrap_err().code(),
            "invalidOperation"
        );
        let mut v: Value = serde_json::from_slice(&update.encode()).unwrap();
        v["document"]["keyAgreement"] = json!([]);
        v["document"]["service"] = json!([]);
        assert_eq!(DidOperation::decode(&canonical(&v)).unwrap_err(), DidError::NotCanonical);
    }

    #[test]
    fn oversize_operations_are_refused() {
        // Refused by length before any parsing.
        let big = vec![b'{'; MAX_OP_LEN + 1];
        assert_eq!(DidOperation::decode(&big).unwrap_err(), DidError::PayloadTooLarge { len: MAX_OP_LEN + 1, max: MAX_OP_LEN });
        // A valid-looking document whose encoding exceeds 32 KiB.
        let mut c = create_op(&[1], None);
        c.document.service = (0..32)
            .map(|i| Service { id: format!("#s{i}"), service_type: "T".into(), service_endpoint: format!("https://{}", "a".repeat(1000)) })
            .collect();
        let op = DidOperation::Create(c);
        let len = op.encode().len();
        assert!(len > MAX_OP_LEN);
        assert_eq!(op.validate().unwrap_err(), DidError::PayloadTooLarge { len, max: MAX_OP_LEN });
        assert!(matches!(DidState::create(&rec(0, T0, 1, op.clone())).unwrap_err(), DidError::PayloadTooLarge { .. }));
        assert!(matches!(DidOperation::decode(&op.encode()).unwrap_err(), DidError::PayloadTooLarge { .. }));
        // Deeply nested input is refused by the parser, not by a stack overflow.
        let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
        assert!(matches!(DidOperation::decode(deep.as_bytes()).unwrap_err(), DidError::Malformed(_)));
    }

    #[test]
    fn op_records_from_signed_entries() {
        let k = SigningKey::from_bytes(&[1; 32]);
        let op = DidOperation::Create(create_op(&[1], None));
        let sign = |kind, payload: Vec<u8>| {
            UnsignedEntry { kind, author: kid(1), nonce: 1, timestamp_ms: T0, payload }.sign(&k, &Hash([9; 32])).unwrap()
        };
        let entry = sign(Kind::DidOperation, op.encode());
        let encoded = entry.encode().unwrap();
        let leaf_hash = crate::entry::leaf_hash(&encoded);
        let r = OpRecord::from_entry(&entry, 0, leaf_hash).unwrap();
        assert_eq!(r, OpRecord { index: 0, leaf_hash, timestamp_ms: T0, author: kid(1), op: op.clone() });
        let state = DidState::create(&r).unwrap();
        assert_eq!(state.versions()[0].version_id, leaf_hash.to_hex());
        assert_eq!(
            OpRecord::from_entry(&sign(Kind::AccessEvent, op.encode()), 0, leaf_hash).unwrap_err(),
            DidError::WrongKind("access-event/v1")
        );
        let mut spaced = op.encode();
        spaced.push(b' ');
        assert_eq!(OpRecord::from_entry(&sign(Kind::DidOperation, spaced), 0, leaf_hash).unwrap_err(), DidError::NotCanonical);
    }

    // ---- identifiers ------------------------------------------------------------------

    #[test]
    fn id_derivation_is_deterministic_and_binds_every_field() {
        let base = create_op(&[1], Some(2));
        let did = derive_did(&base);
        assert_eq!(derive_did(&base.clone()), did);
        let op = DidOperation::Create(base.clone());
        assert_eq!(op.did().unwrap(), did);
        assert_eq!(did_from_create_payload(&op.encode()), did);
        // By hand: BLAKE3(domain || payload), first 16 bytes, base58btc.
        let mut h = blake3::Hasher::new();
        h.update(b"dojang/did/v1\0");
        h.update(&op.encode());
        assert_eq!(did, format!("did:dojang:{}", bs58::encode(&h.finalize().as_bytes()[..16]).into_string()));
        assert_eq!(parse_did(&did).unwrap().to_vec(), h.finalize().as_bytes()[..16].to_vec());
        // Frozen: a change to the encoding or the derivation changes this value.
        let fixed = CreateOp {
            document: content(50),
            controller_keys: vec![did_of(1)],
            next_key_commitment: Some(commit(2)),
            salt: Some("golden".into()),
        };
        assert_eq!(derive_did(&fixed), GOLDEN_DID);
        // Any change to any field gives another DID.
        type Mutation = Box<dyn Fn(&mut CreateOp)>;
        let mutations: Vec<Mutation> = vec![
            Box::new(|c| c.document.verification_method[0].public_key_multibase = dk(51).multibase()),
            Box::new(|c| c.document.verification_method[0].id = "#key-0".into()),
            Box::new(|c| c.document.authentication.clear()),
            Box::new(|c| c.document.assertion_method.clear()),
            Box::new(|c| c.document.key_agreement.clear()),
            Box::new(|c| c.document.capability_invocation.clear()),
            Box::new(|c| c.document.capability_delegation.clear()),
            Box::new(|c| c.document.service[0].service_endpoint.push('x')),
            Box::new(|c| c.document.service[0].service_type.push('x')),
            Box::new(|c| c.document.service[0].id = "#hub2".into()),
            Box::new(|c| c.document.service.clear()),
            Box::new(|c| c.controller_keys.push(did_of(3))),
            Box::new(|c| c.controller_keys = vec![did_of(3)]),
            Box::new(|c| c.next_key_commitment = Some(commit(4))),
            Box::new(|c| c.next_key_commitment = None),
            Box::new(|c| c.salt = Some("a".into())),
        ];
        let mut seen = BTreeSet::from([did.clone()]);
        for (i, m) in mutations.iter().enumerate() {
            let mut c = base.clone();
            m(&mut c);
            assert!(seen.insert(derive_did(&c)), "mutation {i} kept the did");
        }
        // Controller order matters (one spelling each; the DID is of the bytes).
        let ab = create_op(&[1, 3], None);
        let ba = create_op(&[3, 1], None);
        assert_ne!(derive_did(&ab), derive_did(&ba));
    }

    const GOLDEN_DID: &str = "did:dojang:J8EcJZ4JZ8j1j7gbqeZaTa";

    #[test]
    fn did_syntax() {
        let did = derive_did(&create_op(&[1], None));
        let msid = did.strip_prefix(METHOD_PREFIX).unwrap();
        assert!((16..=22).contains(&msid.len()), "{msid}");
        parse_did(&did).unwrap();
        // All-zero and all-0xff ids: the shortest and longest spellings.
        let zero = format!("{METHOD_PREFIX}{}", bs58::encode([0u8; 16]).into_string());
        assert_eq!(zero, format!("{METHOD_PREFIX}{}", "1".repeat(16)));
        assert_eq!(parse_did(&zero).unwrap(), [0; 16]);
        let max = format!("{METHOD_PREFIX}{}", bs58::encode([0xffu8; 16]).into_string());
        assert_eq!(max.len(), METHOD_PREFIX.len() + 22);
        parse_did(&max).unwrap();
        let code = |s: &str| parse_did(s).unwrap_err().code();
        assert_eq!(code(&did.replace("dojang", "web")), "methodNotSupported");
        assert_eq!(code(&did.replace("dojang", "key")), "methodNotSupported");
        for bad in [
            String::new(),
            "did:dojang:".into(),
            "did:dojang".into(),
            did.replace("did:", "DID:"),
            did.replace("dojang", "Dojang"),
            format!("{did}#key-1"),
            format!("{did}/path"),
            format!("{did}?versionId=1"),
            format!("{did}:x"),
            format!("did:dojang:1{msid}"),
            format!("{METHOD_PREFIX}{}", bs58::encode([7u8; 15]).into_string()),
            format!("{METHOD_PREFIX}{}", bs58::encode([7u8; 17]).into_string()),
            format!("{METHOD_PREFIX}0{}", &msid[1..]),
            format!("{METHOD_PREFIX}{}", "z".repeat(60)),
            format!("{did}\n"),
        ] {
            assert_eq!(code(&bad), "invalidDid", "{bad:?}");
        }
        let e = parse_did("did:dojang:0OIl").unwrap_err();
        assert_eq!(e.to_string(), "invalid did \"did:dojang:0OIl\": method-specific identifier is not base58btc");
    }

    // ---- historic resolution ----------------------------------------------------------

    #[test]
    fn historic_resolution_by_version_id_and_time() {
        let mut chain = Chain::new(create_op(&[1], Some(2)), 1); // v0 at T0
        chain.submit(9, chain.update(service_only("https://refused.example/"))).unwrap_err(); // junk, T0+1m
        chain.submit(1, chain.update(service_only("https://example.org/v1"))).unwrap(); // v1 at T0+2m
        chain.submit(2, chain.rotate(chain.latest(), &[2], None)).unwrap(); // v2 at T0+3m
        chain.submit(2, chain.update(service_only("https://example.org/v3"))).unwrap(); // v3 at T0+4m
        let versions = chain.state.versions().to_vec();
        assert_eq!(versions.iter().map(|v| v.time_ms).collect::<Vec<_>>(), [T0, T0 + 2 * MINUTE, T0 + 3 * MINUTE, T0 + 4 * MINUTE]);
        let endpoint = |r: &Resolved| r.document["service"][0]["serviceEndpoint"].clone();
        for (i, v) in versions.iter().enumerate() {
            let r = resolve(&chain.records, VersionSelector::VersionId(Hash::from_hex(&v.version_id).unwrap())).unwrap();
            assert_eq!(r.metadata["versionId"], json!(v.version_id));
            assert_eq!(r.metadata["created"], json!("2026-12-04T10:00:00Z"));
            assert_eq!(r.metadata.get("updated").is_some(), i > 0);
            if i > 0 {
                assert_eq!(r.metadata["updated"], json!(format_rfc3339_ms(v.time_ms)));
            }
            match versions.get(i + 1) {
                Some(next) => {
                    assert_eq!(r.metadata["nextVersionId"], json!(next.version_id));
                    assert_eq!(r.metadata["nextUpdate"], json!(format_rfc3339_ms(next.time_ms)));
                }
                None => assert!(r.metadata.get("nextVersionId").is_none() && r.metadata.get("nextUpdate").is_none()),
            }
            assert!(!r.deactivated);
        }
        let at = |t: u64| resolve(&chain.records, VersionSelector::VersionTime(t));
        assert_eq!(endpoint(&at(T0).unwrap()), json!("https://hub.example.kr/"));
        assert_eq!(endpoint(&at(T0 + 2 * MINUTE - 1).unwrap()), json!("https://hub.example.kr/"));
        assert_eq!(at(T0 + 2 * MINUTE - 1).unwrap().metadata["nextVersionId"], json!(versions[1].version_id));
        assert_eq!(endpoint(&at(T0 + 2 * MINUTE).unwrap()), json!("https://example.org/v1"));
        // The rotation left the document as it was.
        assert_eq!(endpoint(&at(T0 + 3 * MINUTE + 30_000).unwrap()), json!("https://example.org/v1"));
        assert_eq!(at(T0 + 3 * MINUTE + 30_000).unwrap().metadata["versionId"], json!(versions[2].version_id));
        assert_eq!(at(u64::MAX).unwrap(), resolve(&chain.records, VersionSelector::Latest).unwrap());
        assert_eq!(endpoint(&at(u64::MAX).unwrap()), json!("https://example.org/v3"));
        let t = parse_rfc3339("2026-12-04T10:02:30.5+00:00").unwrap();
        assert_eq!(at(t).unwrap().metadata["versionId"], json!(versions[1].version_id));
        // Before the DID existed, and unknown versionIds (including the refused op's).
        let e = at(T0 - 1).unwrap_err();
        assert_eq!(e.code(), "notFound");
        assert_eq!(e.to_string(), format!("no version of {} matches versionTime 2026-12-04T09:59:59Z", chain.did()));
        for h in [Hash([3; 32]), chain.records[1].leaf_hash] {
            let e = resolve(&chain.records, VersionSelector::VersionId(h)).unwrap_err();
            assert!(matches!(e, DidError::VersionNotFound { .. }), "{e}");
            assert_eq!(e.code(), "notFound");
        }
        // No records, or no valid create: not found.
        assert_eq!(resolve(&[], VersionSelector::Latest).unwrap_err().code(), "notFound");
        assert_eq!(resolve(&chain.records[1..], VersionSelector::Latest).unwrap_err().code(), "notFound");
        // Junk before the create is skipped.
        let mut records = vec![chain.records[1].clone()];
        records[0].index = 0;
        records.extend(chain.records.iter().cloned());
        assert_eq!(resolve(&records, VersionSelector::Latest).unwrap(), chain.resolve_latest());
    }

    #[test]
    fn state_round_trips_through_json() {
        let mut chain = Chain::new(create_op(&[1], Some(2)), 1);
        chain.submit(1, chain.update(service_only("https://example.org/"))).unwrap();
        chain.submit(2, chain.rotate(chain.version(0), &[3], Some(4))).unwrap();
        let text = serde_json::to_string(&chain.state).unwrap();
        assert!(text.contains("\"keysVersion\":2") && text.contains("\"nextKeyCommitment\""), "{text}");
        let back: DidState = serde_json::from_str(&text).unwrap();
        assert_eq!(back, chain.state);
        chain.state = back;
        chain.submit(3, chain.update(DocumentContent::default())).unwrap();
        assert!(serde_json::from_str::<DidState>(&text.replace("\"deactivated\"", "\"x\":1,\"deactivated\"")).is_err());
        // A corrupt stored state (no versions) is an error, not a panic.
        let mut broken = chain.state.clone();
        broken.versions.clear();
        broken.keys_version = 99;
        let op = DidOperation::Deactivate(DeactivateOp { did: chain.did(), previous: Hash::ZERO });
        assert_eq!(broken.clone().apply(&rec(999, u64::MAX, 3, op)).unwrap_err().code(), "internalError");
        assert!(broken.document().is_object());
    }

    #[test]
    fn documents_never_carry_private_material() {
        let chain = Chain::new(create_op(&[1], Some(2)), 1);
        let r = chain.resolve_latest();
        let text = format!("{} {}", r.document, r.metadata);
        let lower = text.to_lowercase();
        assert!(!lower.contains("private") && !lower.contains("secret") && !text.contains("\"d\""), "{text}");
    }

    #[test]
    fn error_messages_are_lowercase_and_coded() {
        let samples = [
            DidError::PayloadTooLarge { len: 1, max: 0 },
            DidError::Malformed("x".into()),
            DidError::NotCanonical,
            DidError::WrongKind("access-event/v1"),
            parse_did("nope").unwrap_err(),
            parse_did("did:web:x").unwrap_err(),
            DidError::NotFound { did: "did:dojang:x".into() },
            DidError::VersionNotFound { did: "did:dojang:x".into(), selector: VersionSelector::Latest.to_string() },
            DidError::AlreadyExists { did: "did:dojang:x".into() },
            DidError::Deactivated { did: "did:dojang:x".into() },
            DidError::ControllerKeyCount { count: 0, max: 8 },
            DidError::InvalidSalt("x y".into()),
            DidError::InvalidDocument(DocumentError::DuplicateId("#a".into())),
        ];
        let codes: Vec<&str> = samples.iter().map(DidError::code).collect();
        assert_eq!(
            codes,
            [
                "invalidOperation",
                "invalidOperation",
                "invalidOperation",
                "invalidOperation",
                "invalidDid",
                "methodNotSupported",
                "notFound",
                "notFound",
                "invalidOperation",
                "deactivated",
                "invalidOperation",
                "invalidOperation",
                "invalidOperation"
            ]
        );
        for e in &samples {
            let m = e.to_string();
            assert!(m.chars().next().unwrap().is_lowercase(), "{m}");
            assert!(e.slug().bytes().all(|b| b.is_ascii_lowercase() || b == b'-'), "{}", e.slug());
        }
        // Long hostile values are truncated and escaped.
        let e = parse_did(&format!("did:web:{}\n", "a".repeat(500))).unwrap_err().to_string();
        assert!(e.len() < 200 && !e.contains('\n'), "{e}");
    }

    /// The payloads of §10, byte for byte.
    const SPEC_PAYLOADS: [&str; 4] = [
        r##"{"controllerKeys":["did:key:z6Mkon3Necd6NkkyfoGoHxid2znGc59LU3K7mubaRcFbLfLX"],"document":{"assertionMethod":["#key-1"],"authentication":["#key-1"],"keyAgreement":["#key-2"],"service":[{"id":"#hub","serviceEndpoint":"https://hub.example.kr/","type":"DojangHub"}],"verificationMethod":[{"id":"#key-1","publicKeyMultibase":"z6MkvRXNYcE7MMduynWTgeKbDaT1iijDSC8pZqXZc8rHPrf2","type":"Multikey"},{"id":"#key-2","publicKeyMultibase":"z6LSjcM8ZLuTD9UWCXviYTXDi7e7vUMaDK2QukvsPpNzQTW5","type":"Multikey"}]},"nextKeyCommitment":"847e50942ebdff746abe2fc2b0a3ea1ab20994c23b7cb76a49f60e8d5a7c87db","op":"create"}"##,
        r##"{"did":"did:dojang:EmhPbMKF38aoAU9dhKom1p","document":{"assertionMethod":["#key-1"],"authentication":["#key-1"],"verificationMethod":[{"id":"#key-1","publicKeyMultibase":"z6MkvRXNYcE7MMduynWTgeKbDaT1iijDSC8pZqXZc8rHPrf2","type":"Multikey"}]},"op":"update","previous":"2ed771de37fe3d18bfcbdc88bcf05c5b4cb9b1f95400af8f532a8369be08bd25"}"##,
        r##"{"controllerKeys":["did:key:z6Mko9hTggMwjSTEaJaPUfE6tqcy2xvU6BnNq3e3o8qVBiyH"],"did":"did:dojang:EmhPbMKF38aoAU9dhKom1p","nextKeyCommitment":"53478233ffef762b1e3b78b73c9b4bb1a91a8c47b72c032e63cbb546792d3b35","op":"rotate","previous":"9b7964f2d63a9c0da1e5d6cfa60d946047fbc339530614ec95b95a441f0e54bb"}"##,
        r##"{"did":"did:dojang:EmhPbMKF38aoAU9dhKom1p","op":"deactivate","previous":"8fe794b787f3da6df40cfa03ac36f0f5ab317451401b0995587f8820fe3fadd0"}"##,
    ];

    /// The worked example of specs/did-method-dojang.md §10: four real signed entries
    /// (chain genesis hash 32 × 0x42). Freezing the leaf hashes freezes every payload byte.
    #[test]
    fn spec_example_history() {
        let genesis_hash = Hash([0x42; 32]);
        let k3 = dk(3);
        let entry = |seed: u8, nonce: u64, ts: u64, op: &DidOperation| {
            let e = UnsignedEntry { kind: Kind::DidOperation, author: kid(seed), nonce, timestamp_ms: ts, payload: op.encode() }
                .sign(&SigningKey::from_bytes(&[seed; 32]), &genesis_hash)
                .unwrap();
            let leaf_hash = crate::entry::leaf_hash(&e.encode().unwrap());
            OpRecord::from_entry(&e, 0, leaf_hash).unwrap()
        };
        let create = DidOperation::Create(CreateOp {
            document: DocumentContent {
                verification_method: vec![vm("#key-1", k3.multibase()), vm("#key-2", k3.x25519_multibase())],
                authentication: vec!["#key-1".into()],
                assertion_method: vec!["#key-1".into()],
                key_agreement: vec!["#key-2".into()],
                service: vec![Service {
                    id: "#hub".into(),
                    service_type: "DojangHub".into(),
                    service_endpoint: "https://hub.example.kr/".into(),
                }],
                ..DocumentContent::default()
            },
            controller_keys: vec![did_of(1)],
            next_key_commitment: Some(commit(2)),
            salt: None,
        });
        let did = create.did().unwrap();
        let mut records = vec![OpRecord { index: 7, ..entry(1, 1, T0, &create) }];
        let update = DidOperation::Update(UpdateOp {
            did: did.clone(),
            previous: records[0].leaf_hash,
            document: DocumentContent {
                verification_method: vec![vm("#key-1", k3.multibase())],
                authentication: vec!["#key-1".into()],
                assertion_method: vec!["#key-1".into()],
                ..DocumentContent::default()
            },
        });
        records.push(OpRecord { index: 8, ..entry(1, 2, T0 + 60 * MINUTE, &update) });
        let rotate = DidOperation::Rotate(RotateOp {
            did: did.clone(),
            previous: records[1].leaf_hash,
            controller_keys: vec![did_of(2)],
            next_key_commitment: Some(commit(4)),
        });
        records.push(OpRecord { index: 9, ..entry(2, 1, T0 + 120 * MINUTE, &rotate) });
        let deactivate = DidOperation::Deactivate(DeactivateOp { did: did.clone(), previous: records[2].leaf_hash });
        records.push(OpRecord { index: 12, ..entry(4, 1, T0 + 180 * MINUTE, &deactivate) });
        let mut state = None;
        for r in &records {
            state = Some(apply_record(state, r).unwrap());
        }
        let payloads: Vec<String> =
            [&create, &update, &rotate, &deactivate].iter().map(|op| String::from_utf8(op.encode()).unwrap()).collect();
        assert_eq!(payloads, SPEC_PAYLOADS);
        assert_eq!(did, "did:dojang:EmhPbMKF38aoAU9dhKom1p");
        assert_eq!(commit(2).to_hex(), "847e50942ebdff746abe2fc2b0a3ea1ab20994c23b7cb76a49f60e8d5a7c87db");
        let leaves: Vec<String> = records.iter().map(|r| r.leaf_hash.to_hex()).collect();
        assert_eq!(
            leaves,
            [
                "2ed771de37fe3d18bfcbdc88bcf05c5b4cb9b1f95400af8f532a8369be08bd25",
                "9b7964f2d63a9c0da1e5d6cfa60d946047fbc339530614ec95b95a441f0e54bb",
                "8fe794b787f3da6df40cfa03ac36f0f5ab317451401b0995587f8820fe3fadd0",
                "b67545dfdb3494ab72652ac166e49b54db30ab7d83e5d417f0de2723855f614d",
            ]
        );
        let meta = |sel| resolve(&records, sel).unwrap().metadata;
        assert_eq!(
            meta(VersionSelector::VersionId(records[0].leaf_hash)),
            json!({"created": "2026-12-04T10:00:00Z", "nextUpdate": "2026-12-04T11:00:00Z", "nextVersionId": leaves[1], "versionId": leaves[0]})
        );
        let at = parse_rfc3339("2026-12-04T11:30:00Z").unwrap();
        assert_eq!(
            meta(VersionSelector::VersionTime(at)),
            json!({"created": "2026-12-04T10:00:00Z", "updated": "2026-12-04T11:00:00Z", "nextUpdate": "2026-12-04T12:00:00Z", "nextVersionId": leaves[2], "versionId": leaves[1]})
        );
        let latest = resolve(&records, VersionSelector::Latest).unwrap();
        assert_eq!(
            latest.metadata,
            json!({"created": "2026-12-04T10:00:00Z", "updated": "2026-12-04T13:00:00Z", "deactivated": true, "versionId": leaves[3]})
        );
        assert_eq!(latest.document, json!({"@context": ["https://www.w3.org/ns/did/v1.1"], "id": did}));
        assert_eq!(state.unwrap().controller_keys(), &[did_of(2)]);
    }

    // ---- time -------------------------------------------------------------------------

    #[test]
    fn rfc3339_known_values() {
        let cases = [
            (0, "1970-01-01T00:00:00Z"),
            (999, "1970-01-01T00:00:00Z"),
            (951_782_400_000, "2000-02-29T00:00:00Z"),
            (T0, "2026-12-04T10:00:00Z"),
            (4_107_587_696_000, "2100-03-01T12:34:56Z"),
            (253_402_300_799_000, "9999-12-31T23:59:59Z"),
        ];
        for (ms, text) in cases {
            assert_eq!(format_rfc3339_ms(ms), text);
            assert_eq!(parse_rfc3339(text), Some(ms - ms % 1000));
        }
        assert_eq!(format_rfc3339_ms(253_402_300_800_000), "10000-01-01T00:00:00Z");
        let _ = format_rfc3339_ms(u64::MAX);
        for (text, ms) in [
            ("2026-12-04T10:00:00.123Z", T0 + 123),
            ("2026-12-04T10:00:00.1Z", T0 + 100),
            ("2026-12-04T10:00:00.123999999Z", T0 + 123),
            ("2026-12-04t10:00:00z", T0),
            ("2026-12-04T19:00:00+09:00", T0),
            ("2026-12-04T09:30:00-00:30", T0),
            ("2026-12-04T10:00:00-00:00", T0),
            ("1970-01-01T09:00:00+09:00", 0),
        ] {
            assert_eq!(parse_rfc3339(text), Some(ms), "{text}");
        }
        for bad in [
            "",
            "2026-12-04",
            "2026-12-04T10:00:00",
            "2026-12-04 10:00:00Z",
            "2026-12-04T10:00Z",
            "2026-13-04T10:00:00Z",
            "2026-00-04T10:00:00Z",
            "2026-02-29T10:00:00Z",
            "2100-02-29T10:00:00Z",
            "2026-04-31T10:00:00Z",
            "2026-12-00T10:00:00Z",
            "2026-12-04T24:00:00Z",
            "2026-12-04T10:60:00Z",
            "2026-12-04T23:59:60Z",
            "2026-12-04T10:00:00.Z",
            "2026-12-04T10:00:00ZZ",
            "2026-12-04T10:00:00+0900",
            "2026-12-04T10:00:00+24:00",
            "2026-12-04T10:00:00+09:60",
            "+2026-12-04T10:00:00Z",
            "-026-12-04T10:00:00Z",
            "2026-1a-04T10:00:00Z",
            "1969-12-31T23:59:59Z",
            "1970-01-01T00:00:00+00:01",
            "２０２６-12-04T10:00:00Z",
            "2026-12-04T10:00:00.0000000000000000000000000000000000000000000001Z",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad:?}");
        }
    }

    // ---- properties -------------------------------------------------------------------

    fn arb_hash() -> impl Strategy<Value = Hash> {
        any::<[u8; 32]>().prop_map(Hash)
    }

    fn arb_text() -> impl Strategy<Value = String> {
        prop_oneof!["#[a-z0-9._-]{0,10}", "[ -~]{0,16}", any::<String>()]
    }

    fn arb_content() -> impl Strategy<Value = DocumentContent> {
        let vm = (arb_text(), arb_text(), arb_text()).prop_map(|(id, method_type, public_key_multibase)| VerificationMethod {
            id,
            method_type,
            public_key_multibase,
        });
        let svc = (arb_text(), arb_text(), arb_text()).prop_map(|(id, service_type, service_endpoint)| Service {
            id,
            service_type,
            service_endpoint,
        });
        let refs = || proptest::collection::vec(arb_text(), 0..3);
        (proptest::collection::vec(vm, 0..3), refs(), refs(), refs(), refs(), refs(), proptest::collection::vec(svc, 0..3)).prop_map(
            |(
                verification_method,
                authentication,
                assertion_method,
                key_agreement,
                capability_invocation,
                capability_delegation,
                service,
            )| {
                DocumentContent {
                    verification_method,
                    authentication,
                    assertion_method,
                    key_agreement,
                    capability_invocation,
                    capability_delegation,
                    service,
                }
            },
        )
    }

    fn arb_op() -> impl Strategy<Value = DidOperation> {
        let keys = proptest::collection::vec(prop_oneof![any::<u8>().prop_map(did_of), arb_text()], 0..3);
        prop_oneof![
            (arb_content(), keys.clone(), proptest::option::of(arb_hash()), proptest::option::of(arb_text())).prop_map(
                |(document, controller_keys, next_key_commitment, salt)| DidOperation::Create(CreateOp {
                    document,
                    controller_keys,
                    next_key_commitment,
                    salt
                })
            ),
            (arb_text(), arb_hash(), arb_content()).prop_map(|(did, previous, document)| DidOperation::Update(UpdateOp {
                did,
                previous,
                document
            })),
            (arb_text(), arb_hash(), keys, proptest::option::of(arb_hash())).prop_map(
                |(did, previous, controller_keys, next_key_commitment)| {
                    DidOperation::Rotate(RotateOp { did, previous, controller_keys, next_key_commitment })
                }
            ),
            (arb_text(), arb_hash()).prop_map(|(did, previous)| DidOperation::Deactivate(DeactivateOp { did, previous })),
        ]
    }

    /// One step of a random history: what to submit, by which key (seeds 1..=4).
    #[derive(Debug, Clone)]
    enum Step {
        Update { author: u8, stale: bool },
        Rotate { author: u8, stale: bool, to: Vec<u8>, next: Option<u8> },
        Deactivate { author: u8, stale: bool },
        Create { author: u8 },
        Backdated { author: u8 },
    }

    /// Author 0 stands for the key the rules call for (the first controller key for an
    /// update; the next key, else the first controller key, for rotate and deactivate), so
    /// that histories grow long; 1..=4 are fixed keys, often the wrong ones.
    fn arb_step() -> impl Strategy<Value = Step> {
        let author = || prop_oneof![2 => Just(0u8), 1 => 1u8..=4];
        let stale = || prop::bool::weighted(0.2);
        prop_oneof![
            5 => (author(), stale()).prop_map(|(author, stale)| Step::Update { author, stale }),
            4 => (author(), stale(), proptest::collection::vec(1u8..=4, 1..3), proptest::option::of(1u8..=4))
                .prop_map(|(author, stale, to, next)| Step::Rotate { author, stale, to, next }),
            1 => (author(), stale()).prop_map(|(author, stale)| Step::Deactivate { author, stale }),
            1 => (1u8..=4).prop_map(|author| Step::Create { author }),
            1 => author().prop_map(|author| Step::Backdated { author }),
        ]
    }

    /// The seed (1..=4) of the key the rules call for, as [`arb_step`] describes.
    fn right_key(state: &DidState, key_op: bool) -> u8 {
        let first = state.controller_keys().first().cloned().unwrap_or_default();
        let controller = (1u8..=4).find(|&s| did_of(s) == first).unwrap_or(1);
        match state.next_key_commitment() {
            Some(c) if key_op => (1u8..=4).find(|&s| commit(s) == *c).unwrap_or(controller),
            _ => controller,
        }
    }

    proptest! {
        /// decode never panics on arbitrary bytes.
        #[test]
        fn prop_decode_any_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = DidOperation::decode(&bytes);
        }

        /// ... nor on valid payloads with one byte changed, and what it accepts re-encodes
        /// to the same bytes.
        #[test]
        fn prop_decode_mutated_payloads(pos in any::<prop::sample::Index>(), byte in any::<u8>(), next in proptest::option::of(1u8..5)) {
            let mut bytes = DidOperation::Create(create_op(&[1], next)).encode();
            let i = pos.index(bytes.len());
            bytes[i] = byte;
            if let Ok(op) = DidOperation::decode(&bytes) {
                prop_assert_eq!(op.encode(), bytes);
                let _ = op.validate();
                let _ = op.did();
            }
        }

        /// encode/decode round-trips for any operation (valid or not: decoding is syntax),
        /// and validate/did/state functions never panic on it.
        #[test]
        fn prop_encode_decode_round_trip(op in arb_op()) {
            let bytes = op.encode();
            if bytes.len() <= MAX_OP_LEN {
                prop_assert_eq!(DidOperation::decode(&bytes).unwrap(), op.clone());
            }
            let _ = op.validate();
            let _ = op.did();
            let r = rec(1, T0, 1, op);
            let _ = DidState::create(&r);
            let chain = Chain::new(create_op(&[1], None), 1);
            let _ = chain.state.clone().apply(&OpRecord { index: 11, ..r });
        }

        /// Random histories: the state machine never panics, refusals change nothing, and
        /// resolving the full history (refused records included) gives the state's document
        /// at every version.
        #[test]
        fn prop_histories_replay_to_the_same_state(next in proptest::option::of(2u8..=4), steps in proptest::collection::vec(arb_step(), 0..14)) {
            let mut chain = Chain::new(create_op(&[1], next), 1);
            let mut documents = vec![chain.state.document()];
            for (i, step) in steps.into_iter().enumerate() {
                let previous = |c: &Chain, stale: bool| if stale { c.version(0) } else { c.latest() };
                let doc = service_only(&format!("https://example.org/{i}"));
                let pick = |author: u8, key_op: bool| if author == 0 { right_key(&chain.state, key_op) } else { author };
                let step = match step {
                    Step::Update { author, stale } => Step::Update { author: pick(author, false), stale },
                    Step::Rotate { author, stale, to, next } => Step::Rotate { author: pick(author, true), stale, to, next },
                    Step::Deactivate { author, stale } => Step::Deactivate { author: pick(author, true), stale },
                    Step::Backdated { author } => Step::Backdated { author: pick(author, false) },
                    other => other,
                };
                let result = match step {
                    Step::Update { author, stale } => {
                        let op = DidOperation::Update(UpdateOp { did: chain.did(), previous: previous(&chain, stale), document: doc });
                        chain.submit(author, op)
                    }
                    Step::Rotate { author, stale, to, next } => chain.submit(author, chain.rotate(previous(&chain, stale), &to, next)),
                    Step::Deactivate { author, stale } => chain.submit(author, chain.deactivate(previous(&chain, stale))),
                    Step::Create { author } => chain.submit(author, DidOperation::Create(create_op(&[1], next))),
                    Step::Backdated { author } => {
                        chain.index += 1;
                        let r = rec(chain.index, T0 - 1, author, chain.update(doc));
                        chain.records.push(r.clone());
                        chain.state.clone().apply(&r).map(|_| ())
                    }
                };
                if result.is_ok() {
                    documents.push(chain.state.document());
                }
            }
            chain.resolve_latest();
            prop_assert_eq!(documents.len(), chain.state.versions().len());
            for (v, doc) in chain.state.versions().iter().zip(&documents) {
                let r = resolve(&chain.records, VersionSelector::VersionId(Hash::from_hex(&v.version_id).unwrap())).unwrap();
                prop_assert_eq!(&r.document, doc);
            }
        }

        /// RFC 3339 round trip at seconds precision over years 1970..=9999.
        #[test]
        fn prop_rfc3339_round_trip(ms in 0u64..=253_402_300_799_000) {
            let text = format_rfc3339_ms(ms);
            prop_assert_eq!(text.len(), 20);
            prop_assert_eq!(parse_rfc3339(&text), Some(ms - ms % 1000));
        }

        /// parse never panics: arbitrary strings and near-misses of the layout.
        #[test]
        fn prop_rfc3339_parse_never_panics(s in any::<String>(), t in "[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(\\.[0-9]{0,12})?([Zz]|[+-][0-9]{2}:[0-9]{2})?") {
            let _ = parse_rfc3339(&s);
            if let Some(ms) = parse_rfc3339(&t) {
                prop_assert!(ms <= 253_402_300_799_999 + 86_400_000);
            }
        }
    }
}
