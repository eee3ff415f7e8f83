//! W3C Verifiable Credentials 2.0 with Data Integrity EdDSA proofs
//! (`specs/credentials.md`): pure functions only, shared by the node, the CLI and any
//! embedding verifier.
//!
//! Layout:
//! - [`contexts`]: the JSON-LD contexts bundled in the binary (§3.2); [`jsonld`]: JSON-LD
//!   1.1 expansion and deserialisation to RDF in safe mode (§3); [`rdfc`]: RDFC-1.0.
//! - [`suite`]: the `eddsa-jcs-2022` and `eddsa-rdfc-2022` cryptosuites (§4).
//! - [`verify`]: credential verification with separate checks in the VC-API result shape
//!   (§5); [`presentation`]: holder-signed presentations bound to a challenge and a
//!   domain (§7).
//! - [`zip215`]: ZIP 215 verification on curve25519-dalek 4 (the ledger's rule, faster).
//! - [`status_list`]: Bitstring Status Lists anchored on the ledger, with offline proofs
//!   of one bit (§6).

pub mod contexts;
pub mod jsonld;
pub mod presentation;
pub mod rdfc;
pub mod status_list;
pub mod suite;
pub mod verify;
pub mod zip215;

use serde_json::{Map, Value};

use crate::did_key::{DidKey, ED25519_PUB_CODEC, multibase_decode_base58btc, read_multicodec_prefix};

/// Largest credential or presentation accepted, in bytes of JSON.
pub const MAX_DOCUMENT_LEN: usize = 256 * 1024;

/// Why a credential, presentation or proof cannot be processed. Messages are lowercase
/// and name the bad value; [`VcError::slug`] gives the problem type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VcError {
    #[error("{0} must be a json object")]
    NotAnObject(&'static str),
    #[error("malformed credential: {0}")]
    Malformed(String),
    #[error("the document has no proof")]
    NoProof,
    #[error("missing proof member {0}")]
    MissingMember(&'static str),
    #[error("proof type {0:?} is not DataIntegrityProof")]
    ProofType(String),
    #[error("unsupported cryptosuite {0:?}: expected eddsa-jcs-2022 or eddsa-rdfc-2022")]
    Cryptosuite(String),
    #[error("{member} {value:?} is not an xsd:dateTime")]
    DateTime { member: &'static str, value: String },
    #[error("proofValue is not a base58btc multibase ed25519 signature: {0}")]
    ProofValue(String),
    #[error("the proof's @context is not a prefix of the document's @context")]
    ContextMismatch,
    #[error("the signature does not verify")]
    BadSignature,
    #[error("canonicalization failed: {0}")]
    Canonicalization(String),
    #[error(transparent)]
    JsonLd(#[from] jsonld::JsonLdError),
    #[error("verification method {0:?}: {1}")]
    VerificationMethod(String, String),
}

impl VcError {
    pub fn slug(&self) -> &'static str {
        match self {
            VcError::NotAnObject(_) | VcError::Malformed(_) => "vc-malformed",
            VcError::NoProof | VcError::MissingMember(_) | VcError::ProofType(_) | VcError::DateTime { .. } => "vc-proof-malformed",
            VcError::Cryptosuite(_) => "vc-unsupported-cryptosuite",
            VcError::ProofValue(_) => "vc-bad-proof-value",
            VcError::ContextMismatch => "vc-context-mismatch",
            VcError::BadSignature => "vc-bad-signature",
            VcError::Canonicalization(_) => "vc-canonicalization-failed",
            VcError::JsonLd(jsonld::JsonLdError::UnknownContext(_)) => "vc-unknown-context",
            VcError::JsonLd(_) => "vc-jsonld-invalid",
            VcError::VerificationMethod(..) => "vc-verification-method",
        }
    }
}

/// The Ed25519 key of a Multikey `publicKeyMultibase` (`z6Mk…`).
pub fn ed25519_from_multikey(multibase: &str) -> Result<[u8; 32], String> {
    let bytes = multibase_decode_base58btc(multibase).map_err(|e| e.to_string())?;
    let (codec, key) = read_multicodec_prefix(&bytes).map_err(|e| e.to_string())?;
    if codec != ED25519_PUB_CODEC {
        return Err(format!("multicodec 0x{codec:x} is not ed25519-pub"));
    }
    key.try_into().map_err(|_| "an ed25519 public key is 32 bytes".to_owned())
}

/// The DID of a DID URL (everything before `#`, `?` or `/` after the method-specific id).
pub fn did_of(did_url: &str) -> &str {
    let end = did_url.find(['#', '?']).unwrap_or(did_url.len());
    did_url.get(..end).unwrap_or(did_url)
}

fn absolute(doc_id: &str, r: &str) -> String {
    if r.starts_with('#') { format!("{doc_id}{r}") } else { r.to_owned() }
}

/// A verification method found in a DID document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FoundMethod {
    pub id: String,
    pub controller: Option<String>,
    pub public_key: [u8; 32],
}

/// Finds verification method `vm_id` in `doc` (in `verificationMethod` or embedded in a
/// relationship) and decodes its Ed25519 Multikey.
pub fn find_method(doc: &Value, vm_id: &str) -> Result<FoundMethod, String> {
    let doc_id = doc.get("id").and_then(Value::as_str).unwrap_or_default();
    let mut candidates: Vec<&Map<String, Value>> = Vec::new();
    for key in ["verificationMethod", "assertionMethod", "authentication", "capabilityInvocation", "capabilityDelegation"] {
        if let Some(Value::Array(a)) = doc.get(key) {
            candidates.extend(a.iter().filter_map(Value::as_object));
        }
    }
    let m = candidates
        .into_iter()
        .find(|m| m.get("id").and_then(Value::as_str).is_some_and(|id| absolute(doc_id, id) == vm_id))
        .ok_or_else(|| format!("not found in the document of {doc_id}"))?;
    let ty = m.get("type").and_then(Value::as_str).unwrap_or_default();
    if ty != "Multikey" && ty != "Ed25519VerificationKey2020" {
        return Err(format!("type {ty:?} is not Multikey"));
    }
    let mb = m.get("publicKeyMultibase").and_then(Value::as_str).ok_or("no publicKeyMultibase")?;
    let public_key = ed25519_from_multikey(mb)?;
    Ok(FoundMethod { id: vm_id.to_owned(), controller: m.get("controller").and_then(Value::as_str).map(str::to_owned), public_key })
}

/// Whether `doc` lists `vm_id` under the verification relationship `relationship`
/// (`assertionMethod`, `authentication`, …), by reference or embedded.
pub fn has_relationship(doc: &Value, relationship: &str, vm_id: &str) -> bool {
    let doc_id = doc.get("id").and_then(Value::as_str).unwrap_or_default();
    doc.get(relationship).and_then(Value::as_array).is_some_and(|a| {
        a.iter().any(|r| match r {
            Value::String(s) => absolute(doc_id, s) == vm_id,
            Value::Object(m) => m.get("id").and_then(Value::as_str).is_some_and(|id| absolute(doc_id, id) == vm_id),
            _ => false,
        })
    })
}

/// The did:key document for a `did:key` DID (resolution is local: the key is the DID).
pub fn did_key_document(did: &str) -> Result<Value, String> {
    DidKey::parse(did).map(|k| k.document()).map_err(|e| e.to_string())
}

/// The `id` of a credential's `issuer` (a string or an object with `id`).
pub fn issuer_id(vc: &Value) -> Option<&str> {
    match vc.get("issuer")? {
        Value::String(s) => Some(s),
        Value::Object(m) => m.get("id").and_then(Value::as_str),
        _ => None,
    }
}

/// The `type` values of a document (a string or an array of strings).
pub fn types(v: &Value) -> Vec<&str> {
    match v.get("type") {
        Some(Value::String(s)) => vec![s.as_str()],
        Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    }
}

/// The `created` value for a proof made at `now_ms`: xsd:dateTime with seconds precision,
/// rounded **up**, so that resolving the signer's DID as of `created` (§5.2) includes every
/// version made before the signature, even within the same second.
pub fn created_at(now_ms: u64) -> String {
    crate::did_dojang::format_rfc3339_ms(now_ms.div_ceil(1000).saturating_mul(1000))
}

/// Parses credential JSON text with the size bound of §5.1.
pub fn parse_document(text: &[u8]) -> Result<Value, VcError> {
    if text.len() > MAX_DOCUMENT_LEN {
        return Err(VcError::Malformed(format!("{} bytes, over the limit of {MAX_DOCUMENT_LEN}", text.len())));
    }
    let v: Value = serde_json::from_slice(text).map_err(|e| VcError::Malformed(e.to_string().chars().take(96).collect()))?;
    if !v.is_object() {
        return Err(VcError::NotAnObject("credential"));
    }
    Ok(v)
}

#[cfg(test)]
mod tests;
