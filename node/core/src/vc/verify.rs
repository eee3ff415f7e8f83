//! Issuing and verifying credentials (`specs/credentials.md` §5): every check reports
//! separately in the VC-API result shape `{verified, checks, problems}`, so a credential
//! that is cryptographically valid but revoked, expired or from an untrusted issuer says
//! exactly which check failed.
//!
//! The verifier's view of the ledger (DID documents at a time, the registry, status bits)
//! comes through [`Environment`]: a node answers from its own state, the CLI from proofs
//! it checked against the genesis file.

use serde::Serialize;
use serde_json::Value;

use super::status_list::StatusPurpose;
use super::suite::{self, ParsedProof, ProofOptions};
use super::{VcError, contexts, did_of, find_method, has_relationship, issuer_id, types};
use crate::did_dojang::parse_rfc3339;
use crate::registry::Registry;

/// A status bit as the verifier's environment knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusAnswer {
    /// The DID of the list's issuer.
    pub issuer: String,
    pub purpose: StatusPurpose,
    pub bit: bool,
    /// Where the answer comes from (e.g. "proven at checkpoint 42").
    pub source: String,
}

/// The verifier's view of the ledger.
pub trait Environment {
    /// The DID document of `did` as it was at `at_ms` (the latest when None). `did:key`
    /// DIDs never reach this: they resolve locally.
    fn resolve(&self, did: &str, at_ms: Option<u64>) -> Result<Value, String>;
    /// The trusted-issuer registry the issuer is judged against.
    fn registry(&self) -> Result<&Registry, String>;
    /// Bit `index` of status list `list`.
    fn status(&self, list: &str, index: u64) -> Result<StatusAnswer, String>;
}

/// Resolves `did` locally (did:key) or through the environment.
pub fn resolve_did(env: &dyn Environment, did: &str, at_ms: Option<u64>) -> Result<Value, String> {
    if did.starts_with("did:key:") { super::did_key_document(did) } else { env.resolve(did, at_ms) }
}

/// The outcome of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CheckStatus {
    Passed,
    Failed,
    Skipped,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    pub check: &'static str,
    pub status: CheckStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// An RFC 9457-style problem for one failed check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    #[serde(rename = "type")]
    pub problem_type: String,
    pub title: String,
    pub detail: String,
}

/// The VC-API verification result (§5.3).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VerificationResult {
    pub verified: bool,
    pub checks: Vec<Check>,
    pub problems: Vec<Problem>,
    /// For a presentation: the result of each embedded credential, in order.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub credentials: Vec<VerificationResult>,
}

impl VerificationResult {
    fn new() -> Self {
        VerificationResult { verified: true, checks: Vec::new(), problems: Vec::new(), credentials: Vec::new() }
    }

    pub(crate) fn pass(&mut self, check: &'static str, detail: Option<String>) {
        self.checks.push(Check { check, status: CheckStatus::Passed, detail });
    }

    pub(crate) fn skip(&mut self, check: &'static str, detail: &str) {
        self.checks.push(Check { check, status: CheckStatus::Skipped, detail: Some(detail.to_owned()) });
    }

    pub(crate) fn fail(&mut self, check: &'static str, slug: &str, title: &str, detail: String) {
        self.verified = false;
        self.checks.push(Check { check, status: CheckStatus::Failed, detail: Some(detail.clone()) });
        self.problems.push(Problem { problem_type: format!("urn:dojang:problem:{slug}"), title: title.to_owned(), detail });
    }

    /// Adds a passed check computed outside the core (a node's replay memory, §7.3).
    pub fn pass_check(&mut self, check: &'static str, detail: &str) {
        self.pass(check, Some(detail.to_owned()));
    }

    /// Adds a failed check computed outside the core, with its problem.
    pub fn fail_check(&mut self, check: &'static str, slug: &str, title: &str, detail: String) {
        self.fail(check, slug, title, detail);
    }

    /// The status of a check by name.
    pub fn status_of(&self, check: &str) -> Option<CheckStatus> {
        self.checks.iter().find(|c| c.check == check).map(|c| c.status)
    }

    /// The names of the failed checks.
    pub fn failed(&self) -> Vec<&'static str> {
        self.checks.iter().filter(|c| c.status == CheckStatus::Failed).map(|c| c.check).collect()
    }
}

/// The check names, in order (§5.2).
pub const CHECKS: [&str; 6] = ["format", "proof", "proofPurpose", "issuer", "validity", "status"];

/// Data-model checks shared by credentials and presentations (§5.1): `@context` starts
/// with credentials v2 and names only bundled contexts; `type` includes `required_type`.
pub(crate) fn check_format(doc: &Value, required_type: &str) -> Result<(), (String, &'static str)> {
    let ctx: Vec<&Value> = match doc.get("@context") {
        Some(Value::Array(a)) => a.iter().collect(),
        Some(v @ Value::String(_)) => vec![v],
        _ => return Err(("@context must be an array starting with https://www.w3.org/ns/credentials/v2".into(), "vc-malformed")),
    };
    if ctx.first().and_then(|v| v.as_str()) != Some(contexts::CREDENTIALS_V2) {
        return Err(("the first @context must be https://www.w3.org/ns/credentials/v2".into(), "vc-malformed"));
    }
    for c in &ctx {
        match c {
            Value::String(url) if !contexts::is_known(url) => {
                return Err((
                    format!(
                        "unknown @context {:?}: only bundled contexts are accepted, none is fetched",
                        url.chars().take(96).collect::<String>()
                    ),
                    "vc-unknown-context",
                ));
            }
            Value::String(_) | Value::Object(_) => {}
            _ => return Err(("@context entries must be strings or objects".into(), "vc-malformed")),
        }
    }
    if !types(doc).contains(&required_type) {
        return Err((format!("type must include {required_type}"), "vc-malformed"));
    }
    Ok(())
}

/// Checks the proof of `doc` with the key of its verification method, resolved at the
/// proof's `created` time (§5.2 "proof"). Returns the parsed proof and the controller's
/// DID document for the purpose check.
pub(crate) fn check_proof(env: &dyn Environment, doc: &Value, result: &mut VerificationResult) -> Option<(ParsedProof, Value)> {
    let parsed = match suite::split_proof(doc) {
        Ok((_, p)) => p,
        Err(e) => {
            result.fail("proof", e.slug(), "invalid proof", e.to_string());
            return None;
        }
    };
    let did = did_of(&parsed.verification_method).to_owned();
    let did_doc = match resolve_did(env, &did, parsed.created_ms) {
        Ok(d) => d,
        Err(e) => {
            let at = parsed.created.as_deref().map(|c| format!(" as of {c}")).unwrap_or_default();
            result.fail("proof", "vc-verification-method", "unresolvable verification method", format!("cannot resolve {did}{at}: {e}"));
            return None;
        }
    };
    let method = match find_method(&did_doc, &parsed.verification_method) {
        Ok(m) => m,
        Err(e) => {
            let at = parsed.created.as_deref().map(|c| format!(" as of {c}")).unwrap_or_default();
            let e = VcError::VerificationMethod(parsed.verification_method.chars().take(120).collect(), format!("{e}{at}"));
            result.fail("proof", e.slug(), "unknown verification method", e.to_string());
            return None;
        }
    };
    match suite::verify_proof(doc, &method.public_key) {
        Ok(p) => {
            result.pass("proof", Some(format!("{} signature by {}", p.suite.name(), p.verification_method)));
            Some((p, did_doc))
        }
        Err(e) => {
            result.fail("proof", e.slug(), "invalid proof", e.to_string());
            None
        }
    }
}

/// §5.2 "proofPurpose": the purpose is `expected`, the verification method belongs to
/// `controller` and is listed under that relationship in its DID document.
pub(crate) fn check_purpose(
    result: &mut VerificationResult,
    proof: Option<&(ParsedProof, Value)>,
    expected: &str,
    relationship: &str,
    controller: &str,
) {
    let Some((p, did_doc)) = proof else {
        result.skip("proofPurpose", "needs a valid proof");
        return;
    };
    if p.proof_purpose != expected {
        let d = format!("proofPurpose {:?}, expected {expected}", p.proof_purpose.chars().take(64).collect::<String>());
        result.fail("proofPurpose", "vc-proof-purpose-mismatch", "wrong proof purpose", d);
    } else if did_of(&p.verification_method) != controller {
        let d = format!("verification method {} does not belong to {controller}", p.verification_method);
        result.fail("proofPurpose", "vc-proof-purpose-mismatch", "verification method of another did", d);
    } else if !has_relationship(did_doc, relationship, &p.verification_method) {
        let d = format!("{} is not an {relationship} method of {controller}", p.verification_method);
        result.fail("proofPurpose", "vc-proof-purpose-mismatch", "verification relationship missing", d);
    } else {
        result.pass("proofPurpose", Some(format!("{expected} of {controller}")));
    }
}

/// Verifies a credential at `now_ms` (§5.2): format, proof, proofPurpose, issuer, validity
/// and status, each reported separately.
pub fn verify_credential(vc: &Value, env: &dyn Environment, now_ms: u64) -> VerificationResult {
    let mut r = VerificationResult::new();
    if let Err((detail, slug)) = check_format(vc, "VerifiableCredential").and_then(|()| credential_shape(vc)) {
        r.fail("format", slug, "not a valid credential", detail);
        for c in CHECKS.iter().skip(1) {
            r.skip(c, "the credential is malformed");
        }
        return r;
    }
    r.pass("format", None);
    let issuer = issuer_id(vc).unwrap_or_default().to_owned();
    let proof = check_proof(env, vc, &mut r);
    check_purpose(&mut r, proof.as_ref(), "assertionMethod", "assertionMethod", &issuer);
    check_issuer(&mut r, env, vc, &issuer);
    check_validity(&mut r, vc, proof.as_ref().map(|p| &p.0), now_ms);
    check_status(&mut r, env, vc, &issuer);
    r
}

fn credential_shape(vc: &Value) -> Result<(), (String, &'static str)> {
    let issuer = issuer_id(vc).ok_or(("issuer must be a did or an object with an id".to_owned(), "vc-malformed"))?;
    if !issuer.starts_with("did:") && !issuer.contains(':') {
        return Err((format!("issuer {issuer:?} is not an iri"), "vc-malformed"));
    }
    if vc.get("credentialSubject").is_none_or(|s| !(s.is_object() || s.is_array())) {
        return Err(("credentialSubject is missing".into(), "vc-malformed"));
    }
    for member in ["validFrom", "validUntil"] {
        if let Some(v) = vc.get(member)
            && v.as_str().and_then(parse_rfc3339).is_none()
        {
            return Err((format!("{member} is not an xsd:dateTime"), "vc-malformed"));
        }
    }
    Ok(())
}

/// The credential types judged against the registry: every type but
/// `VerifiableCredential`, or that one alone.
pub fn credential_types(vc: &Value) -> Vec<&str> {
    let all = types(vc);
    let specific: Vec<&str> = all.iter().copied().filter(|t| *t != "VerifiableCredential").collect();
    if specific.is_empty() { vec!["VerifiableCredential"] } else { specific }
}

fn check_issuer(r: &mut VerificationResult, env: &dyn Environment, vc: &Value, issuer: &str) {
    let registry = match env.registry() {
        Ok(reg) => reg,
        Err(e) => {
            r.fail("issuer", "vc-issuer-unverifiable", "registry unavailable", e);
            return;
        }
    };
    for t in credential_types(vc) {
        if let Err(e) = registry.authorize_credential(issuer, t) {
            r.fail("issuer", "vc-issuer-not-trusted", "issuer not trusted for this credential type", e.to_string());
            return;
        }
    }
    let name = registry.issuer(issuer).map(|i| i.issuer.name.clone()).unwrap_or_default();
    r.pass("issuer", Some(format!("{name} ({issuer}) is trusted for {}", credential_types(vc).join(", "))));
}

fn check_validity(r: &mut VerificationResult, vc: &Value, proof: Option<&ParsedProof>, now_ms: u64) {
    let at = |m: &str| vc.get(m).and_then(Value::as_str).and_then(parse_rfc3339);
    let now = crate::did_dojang::format_rfc3339_ms(now_ms);
    if let Some(from) = at("validFrom")
        && now_ms < from
    {
        r.fail("validity", "vc-not-yet-valid", "not yet valid", format!("validFrom is after the verification time {now}"));
    } else if let Some(until) = at("validUntil")
        && until <= now_ms
    {
        r.fail("validity", "vc-expired", "expired", format!("validUntil is not after the verification time {now}"));
    } else if let Some(exp) = proof.and_then(|p| p.expires_ms)
        && exp <= now_ms
    {
        r.fail("validity", "vc-expired", "proof expired", format!("the proof expired before the verification time {now}"));
    } else {
        r.pass("validity", Some(format!("valid at {now}")));
    }
}

/// One `BitstringStatusListEntry` (§6.7).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusEntry {
    pub purpose: StatusPurpose,
    pub list: String,
    pub index: u64,
}

/// The credential's status entries; an entry of another type or shape is an error.
pub fn status_entries(vc: &Value) -> Result<Vec<StatusEntry>, String> {
    let items: Vec<&Value> = match vc.get("credentialStatus") {
        None => return Ok(Vec::new()),
        Some(Value::Array(a)) => a.iter().collect(),
        Some(v) => vec![v],
    };
    if items.len() > 8 {
        return Err("more than 8 credentialStatus entries".into());
    }
    items
        .into_iter()
        .map(|s| {
            if types(s) != ["BitstringStatusListEntry"] {
                return Err("credentialStatus type must be BitstringStatusListEntry".to_owned());
            }
            let purpose = s
                .get("statusPurpose")
                .and_then(Value::as_str)
                .and_then(StatusPurpose::from_name)
                .ok_or("statusPurpose must be revocation or suspension")?;
            let index = s
                .get("statusListIndex")
                .and_then(Value::as_str)
                .filter(|i| !i.is_empty() && i.len() <= 10 && i.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|i| i.parse::<u64>().ok())
                .ok_or("statusListIndex must be a decimal string")?;
            let list = s.get("statusListCredential").and_then(Value::as_str).ok_or("statusListCredential is missing")?;
            Ok(StatusEntry { purpose, list: list.to_owned(), index })
        })
        .collect()
}

fn check_status(r: &mut VerificationResult, env: &dyn Environment, vc: &Value, issuer: &str) {
    let entries = match status_entries(vc) {
        Ok(e) => e,
        Err(e) => {
            r.fail("status", "vc-status-invalid", "invalid credential status", e);
            return;
        }
    };
    if entries.is_empty() {
        r.skip("status", "the credential has no credentialStatus");
        return;
    }
    let mut notes = Vec::new();
    for e in &entries {
        let answer = match env.status(&e.list, e.index) {
            Ok(a) => a,
            Err(err) => {
                r.fail("status", "vc-status-unverifiable", "status unavailable", format!("{} index {}: {err}", e.list, e.index));
                return;
            }
        };
        if answer.issuer != issuer {
            let d = format!("status list {} belongs to {}, not the issuer {issuer}", e.list, answer.issuer);
            r.fail("status", "vc-status-invalid", "status list of another issuer", d);
            return;
        }
        if answer.purpose != e.purpose {
            let d = format!("status list {} is a {} list, not {}", e.list, answer.purpose.as_str(), e.purpose.as_str());
            r.fail("status", "vc-status-invalid", "status purpose mismatch", d);
            return;
        }
        if answer.bit {
            let (slug, title) = match e.purpose {
                StatusPurpose::Revocation => ("vc-revoked", "revoked"),
                StatusPurpose::Suspension => ("vc-suspended", "suspended"),
            };
            r.fail("status", slug, title, format!("bit {} of {} is set ({}; {})", e.index, e.list, e.purpose.as_str(), answer.source));
            return;
        }
        notes.push(format!("{} bit {} of {} clear ({})", e.purpose.as_str(), e.index, e.list, answer.source));
    }
    r.pass("status", Some(notes.join("; ")));
}

/// Issues a credential (§5.4): checks the data model (so an issuer never signs what its
/// own verifier refuses), then adds an `assertionMethod` proof.
pub fn issue_credential(
    unsigned: &Value,
    key: &ed25519_dalek::SigningKey,
    verification_method: &str,
    suite: suite::Cryptosuite,
    created: &str,
) -> Result<Value, VcError> {
    check_format(unsigned, "VerifiableCredential").and_then(|()| credential_shape(unsigned)).map_err(|(d, _)| VcError::Malformed(d))?;
    if let Some(i) = issuer_id(unsigned)
        && did_of(verification_method) != i
    {
        return Err(VcError::Malformed(format!("the verification method {verification_method} is not a key of the issuer {i}")));
    }
    status_entries(unsigned).map_err(VcError::Malformed)?;
    let options = ProofOptions {
        cryptosuite: suite,
        verification_method: verification_method.to_owned(),
        proof_purpose: "assertionMethod".into(),
        created: Some(created.to_owned()),
        challenge: None,
        domain: None,
        expires: None,
    };
    suite::add_proof(unsigned, &options, key)
}
