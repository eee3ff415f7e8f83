//! The Data Integrity EdDSA cryptosuites `eddsa-jcs-2022` and `eddsa-rdfc-2022`, exactly
//! as W3C vc-di-eddsa v1.0 §3.3 (jcs) and §3.2 (rdfc) define them (`specs/credentials.md`
//! §4): transformation (canonical document), proof configuration (canonical proof options
//! with the document's `@context`), hashing (`SHA-256(canonical proof config) ‖
//! SHA-256(canonical document)`, 64 bytes), Ed25519 over that hash, and `proofValue` the
//! base58btc multibase of the 64-byte signature.
//!
//! Signing uses ed25519-dalek; verification follows ZIP 215, like every other signature of
//! the ledger, through [`super::zip215::verify`] (the same rule on the faster
//! curve25519-dalek 4 arithmetic).

use ed25519_dalek::{Signer as _, SigningKey};
use serde::Serialize;
use serde_json::{Map, Value};
use sha2::{Digest as _, Sha256};

use super::{VcError, jsonld, rdfc};
use crate::did_key::{multibase_decode_base58btc, multibase_encode_base58btc};

pub const DATA_INTEGRITY_PROOF: &str = "DataIntegrityProof";
pub const EDDSA_JCS_2022: &str = "eddsa-jcs-2022";
pub const EDDSA_RDFC_2022: &str = "eddsa-rdfc-2022";

/// The two cryptosuites.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Cryptosuite {
    #[serde(rename = "eddsa-jcs-2022")]
    EddsaJcs2022,
    #[serde(rename = "eddsa-rdfc-2022")]
    EddsaRdfc2022,
}

impl Cryptosuite {
    pub fn name(self) -> &'static str {
        match self {
            Cryptosuite::EddsaJcs2022 => EDDSA_JCS_2022,
            Cryptosuite::EddsaRdfc2022 => EDDSA_RDFC_2022,
        }
    }

    pub fn from_name(s: &str) -> Option<Cryptosuite> {
        match s {
            EDDSA_JCS_2022 => Some(Cryptosuite::EddsaJcs2022),
            EDDSA_RDFC_2022 => Some(Cryptosuite::EddsaRdfc2022),
            _ => None,
        }
    }

    /// The canonical form of a document (the "transformation" step).
    pub fn canonicalize(self, doc: &Value) -> Result<String, VcError> {
        match self {
            Cryptosuite::EddsaJcs2022 => jcs(doc),
            Cryptosuite::EddsaRdfc2022 => {
                let quads = jsonld::to_rdf(doc)?;
                rdfc::canonicalize(&quads).map_err(|e| VcError::Canonicalization(e.to_string()))
            }
        }
    }
}

/// RFC 8785 canonical JSON. serde_jcs formats numbers as ECMAScript does (`1e+21`,
/// `0.000001`); a value it cannot encode is an error, never a panic.
pub fn jcs(v: &Value) -> Result<String, VcError> {
    serde_jcs::to_string(v).map_err(|e| VcError::Canonicalization(e.to_string()))
}

/// The options of a new proof.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProofOptions {
    pub cryptosuite: Cryptosuite,
    pub verification_method: String,
    pub proof_purpose: String,
    /// xsd:dateTime, e.g. `2023-02-24T23:36:38Z`.
    pub created: Option<String>,
    pub challenge: Option<String>,
    pub domain: Option<String>,
    pub expires: Option<String>,
}

impl ProofOptions {
    /// The proof options as a JSON object, without `proofValue` or `@context`.
    pub fn to_json(&self) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("type".into(), DATA_INTEGRITY_PROOF.into());
        m.insert("cryptosuite".into(), self.cryptosuite.name().into());
        if let Some(c) = &self.created {
            m.insert("created".into(), c.clone().into());
        }
        m.insert("verificationMethod".into(), self.verification_method.clone().into());
        m.insert("proofPurpose".into(), self.proof_purpose.clone().into());
        if let Some(c) = &self.challenge {
            m.insert("challenge".into(), c.clone().into());
        }
        if let Some(d) = &self.domain {
            m.insert("domain".into(), d.clone().into());
        }
        if let Some(e) = &self.expires {
            m.insert("expires".into(), e.clone().into());
        }
        m
    }
}

/// Intermediate values of a proof, for the spec vectors and for debugging.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProofHashes {
    pub canonical_document: String,
    pub canonical_proof_config: String,
    /// SHA-256(canonical proof config) ‖ SHA-256(canonical document).
    pub hash_data: [u8; 64],
}

/// Proof configuration (vc-di-eddsa §3.2.5 / §3.3.5): checks type and cryptosuite and the
/// `created` date-time, sets `@context` from the document when it has one, canonicalises.
pub fn proof_config(suite: Cryptosuite, options: &Map<String, Value>, doc_context: Option<&Value>) -> Result<String, VcError> {
    if options.get("type").and_then(Value::as_str) != Some(DATA_INTEGRITY_PROOF) {
        return Err(VcError::ProofType(shown_value(options.get("type"))));
    }
    if options.get("cryptosuite").and_then(Value::as_str) != Some(suite.name()) {
        return Err(VcError::Cryptosuite(shown_value(options.get("cryptosuite"))));
    }
    if let Some(c) = options.get("created") {
        let ok = c.as_str().is_some_and(|s| crate::did_dojang::parse_rfc3339(s).is_some());
        if !ok {
            return Err(VcError::DateTime { member: "created", value: shown_value(Some(c)) });
        }
    }
    let mut config = options.clone();
    if let Some(ctx) = doc_context {
        config.insert("@context".into(), ctx.clone());
    }
    suite.canonicalize(&Value::Object(config))
}

/// Hashing (§3.2.4 / §3.3.4).
pub fn hash_data(canonical_proof_config: &str, canonical_document: &str) -> [u8; 64] {
    let mut out = [0u8; 64];
    out[..32].copy_from_slice(&Sha256::digest(canonical_proof_config.as_bytes()));
    out[32..].copy_from_slice(&Sha256::digest(canonical_document.as_bytes()));
    out
}

fn shown_value(v: Option<&Value>) -> String {
    match v {
        None => "nothing".into(),
        Some(Value::String(s)) => s.chars().take(96).collect(),
        Some(v) => v.to_string().chars().take(96).collect(),
    }
}

/// The hashes of an unsecured document and proof options.
pub fn hashes(suite: Cryptosuite, unsecured: &Value, options: &Map<String, Value>) -> Result<ProofHashes, VcError> {
    let canonical_document = suite.canonicalize(unsecured)?;
    let canonical_proof_config = proof_config(suite, options, unsecured.get("@context"))?;
    let hash_data = hash_data(&canonical_proof_config, &canonical_document);
    Ok(ProofHashes { canonical_document, canonical_proof_config, hash_data })
}

/// Adds a proof to `unsecured` (vc-di-eddsa §3.2.1 / §3.3.1 "Create Proof"): the document
/// must be an object without a `proof`. The proof's `@context` is set to the document's
/// for eddsa-jcs-2022 (as §3.3.1 step 5 does), so that the verifier's context check holds.
pub fn add_proof(unsecured: &Value, options: &ProofOptions, key: &SigningKey) -> Result<Value, VcError> {
    let Value::Object(doc) = unsecured else { return Err(VcError::NotAnObject("document")) };
    if doc.contains_key("proof") {
        return Err(VcError::Malformed("the document already has a proof (proof sets are not supported)".into()));
    }
    let opts = options.to_json();
    let h = hashes(options.cryptosuite, unsecured, &opts)?;
    let signature = key.sign(&h.hash_data).to_bytes();
    let mut proof = opts;
    if options.cryptosuite == Cryptosuite::EddsaJcs2022
        && let Some(ctx) = doc.get("@context")
    {
        proof.insert("@context".into(), ctx.clone());
    }
    proof.insert("proofValue".into(), multibase_encode_base58btc(&signature).into());
    let mut secured = doc.clone();
    secured.insert("proof".into(), Value::Object(proof));
    Ok(Value::Object(secured))
}

/// A parsed proof of a secured document.
#[derive(Debug, Clone, PartialEq)]
pub struct ParsedProof {
    pub suite: Cryptosuite,
    pub verification_method: String,
    pub proof_purpose: String,
    pub created: Option<String>,
    pub created_ms: Option<u64>,
    pub challenge: Option<String>,
    pub domain: Option<String>,
    pub expires_ms: Option<u64>,
    pub signature: [u8; 64],
    /// The proof without `proofValue`.
    pub options: Map<String, Value>,
}

fn opt_str(m: &Map<String, Value>, k: &'static str) -> Result<Option<String>, VcError> {
    match m.get(k) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(VcError::Malformed(format!("proof member {k} must be a string"))),
    }
}

/// Splits a secured document into the unsecured document and its one proof, checking
/// the proof's shape: `type`, a known `cryptosuite`, `verificationMethod`, `proofPurpose`,
/// `created`/`expires` as date-times, and `proofValue` a base58btc multibase of 64 bytes.
pub fn split_proof(secured: &Value) -> Result<(Value, ParsedProof), VcError> {
    let Value::Object(doc) = secured else { return Err(VcError::NotAnObject("document")) };
    let mut unsecured = doc.clone();
    let proof = match unsecured.remove("proof") {
        Some(Value::Object(p)) => p,
        Some(Value::Array(_)) => return Err(VcError::Malformed("proof sets and chains are not supported: give one proof object".into())),
        Some(_) => return Err(VcError::Malformed("proof must be an object".into())),
        None => return Err(VcError::NoProof),
    };
    if proof.get("type").and_then(Value::as_str) != Some(DATA_INTEGRITY_PROOF) {
        return Err(VcError::ProofType(shown_value(proof.get("type"))));
    }
    let suite_name = proof.get("cryptosuite").and_then(Value::as_str).unwrap_or_default();
    let suite = Cryptosuite::from_name(suite_name).ok_or_else(|| VcError::Cryptosuite(shown_value(proof.get("cryptosuite"))))?;
    let verification_method = opt_str(&proof, "verificationMethod")?.ok_or(VcError::MissingMember("verificationMethod"))?;
    let proof_purpose = opt_str(&proof, "proofPurpose")?.ok_or(VcError::MissingMember("proofPurpose"))?;
    let created = opt_str(&proof, "created")?;
    let created_ms = match &created {
        Some(c) => Some(
            crate::did_dojang::parse_rfc3339(c)
                .ok_or_else(|| VcError::DateTime { member: "created", value: c.chars().take(96).collect() })?,
        ),
        None => None,
    };
    let expires_ms = match opt_str(&proof, "expires")? {
        Some(e) => {
            Some(crate::did_dojang::parse_rfc3339(&e).ok_or(VcError::DateTime { member: "expires", value: e.chars().take(96).collect() })?)
        }
        None => None,
    };
    let pv = opt_str(&proof, "proofValue")?.ok_or(VcError::MissingMember("proofValue"))?;
    let sig = multibase_decode_base58btc(&pv).map_err(|e| VcError::ProofValue(e.to_string()))?;
    let signature: [u8; 64] = sig.try_into().map_err(|v: Vec<u8>| VcError::ProofValue(format!("{} bytes, expected 64", v.len())))?;
    let mut options = proof.clone();
    options.remove("proofValue");
    Ok((
        Value::Object(unsecured),
        ParsedProof {
            suite,
            verification_method,
            proof_purpose,
            created,
            created_ms,
            challenge: opt_str(&proof, "challenge")?,
            domain: opt_str(&proof, "domain")?,
            expires_ms,
            signature,
            options,
        },
    ))
}

/// Verifies the proof of a secured document with the Ed25519 key `public_key` (32 bytes),
/// per vc-di-eddsa §3.2.2 / §3.3.2: for eddsa-jcs-2022 a proof `@context` must be a prefix
/// of the document's and replaces it; the hashes are recomputed and the signature checked.
/// Returns the proof for the caller's further checks (purpose, method, dates).
pub fn verify_proof(secured: &Value, public_key: &[u8; 32]) -> Result<ParsedProof, VcError> {
    let (mut unsecured, proof) = split_proof(secured)?;
    let mut options = proof.options.clone();
    if proof.suite == Cryptosuite::EddsaJcs2022
        && let Some(pctx) = options.remove("@context")
    {
        let as_list = |v: &Value| match v {
            Value::Array(a) => a.clone(),
            v => vec![v.clone()],
        };
        let doc_ctx = unsecured.get("@context").map(as_list).unwrap_or_default();
        let p = as_list(&pctx);
        if p.len() > doc_ctx.len() || p.iter().zip(&doc_ctx).any(|(a, b)| a != b) {
            return Err(VcError::ContextMismatch);
        }
        if let Value::Object(m) = &mut unsecured {
            m.insert("@context".into(), pctx);
        }
    }
    let h = hashes(proof.suite, &unsecured, &options)?;
    if super::zip215::verify(public_key, &h.hash_data, &proof.signature) { Ok(proof) } else { Err(VcError::BadSignature) }
}
