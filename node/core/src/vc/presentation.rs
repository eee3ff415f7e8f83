//! Verifiable Presentations signed by the holder (`specs/credentials.md` §7): an
//! `authentication` proof with the verifier's `challenge` and `domain` bound in it.
//!
//! Replay protection needs memory of used challenges, which is state: the core checks that
//! the proof carries the expected challenge and domain; a node's verify endpoint also
//! remembers each challenge it accepted until the challenge expires (§7.3).

use ed25519_dalek::SigningKey;
use serde_json::{Value, json};

use super::suite::{self, Cryptosuite, ProofOptions};
use super::verify::{CHECKS, Environment, VerificationResult, check_format, check_proof, check_purpose, verify_credential};
use super::{VcError, contexts};

/// Longest challenge or domain accepted (bytes).
pub const MAX_CHALLENGE_LEN: usize = 256;
/// Most credentials in one presentation.
pub const MAX_CREDENTIALS: usize = 16;

/// What the verifier expects the holder's proof to carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expected {
    pub challenge: String,
    pub domain: String,
}

/// Builds and signs a presentation of `credentials` by `holder` (§7.1). The arguments are
/// the fields of the proof, each needed: a struct would only rename them.
#[allow(clippy::too_many_arguments)]
pub fn present(
    holder: &str,
    credentials: &[Value],
    key: &SigningKey,
    verification_method: &str,
    challenge: &str,
    domain: &str,
    created: &str,
    suite: Cryptosuite,
) -> Result<Value, VcError> {
    if challenge.is_empty() || challenge.len() > MAX_CHALLENGE_LEN || domain.is_empty() || domain.len() > MAX_CHALLENGE_LEN {
        return Err(VcError::Malformed(format!("challenge and domain must be 1 to {MAX_CHALLENGE_LEN} bytes")));
    }
    if credentials.len() > MAX_CREDENTIALS {
        return Err(VcError::Malformed(format!("at most {MAX_CREDENTIALS} credentials")));
    }
    let vp = json!({
        "@context": [contexts::CREDENTIALS_V2],
        "type": ["VerifiablePresentation"],
        "holder": holder,
        "verifiableCredential": credentials,
    });
    let options = ProofOptions {
        cryptosuite: suite,
        verification_method: verification_method.to_owned(),
        proof_purpose: "authentication".into(),
        created: Some(created.to_owned()),
        challenge: Some(challenge.to_owned()),
        domain: Some(domain.to_owned()),
        expires: None,
    };
    suite::add_proof(&vp, &options, key)
}

/// The `challenge` of a presentation's proof, if any (for the node's replay memory).
pub fn challenge_of(vp: &Value) -> Option<&str> {
    vp.get("proof").and_then(|p| p.get("challenge")).and_then(Value::as_str)
}

/// Verifies a presentation (§7.2): format; the holder's proof (`authentication`, by a
/// method of the `holder` DID); `challenge` and `domain` equal to the expected ones; each
/// credential with every check of §5.2; and holder binding (each credential's subject is
/// the holder). Each is a separate check of the result.
pub fn verify_presentation(vp: &Value, env: &dyn Environment, now_ms: u64, expected: &Expected) -> VerificationResult {
    let mut r = VerificationResult { verified: true, checks: Vec::new(), problems: Vec::new(), credentials: Vec::new() };
    let holder = vp.get("holder").and_then(Value::as_str).unwrap_or_default().to_owned();
    let creds: Vec<Value> = match vp.get("verifiableCredential") {
        Some(Value::Array(a)) => a.clone(),
        Some(v @ Value::Object(_)) => vec![v.clone()],
        _ => Vec::new(),
    };
    let shape = check_format(vp, "VerifiablePresentation").and_then(|()| {
        if !holder.starts_with("did:") {
            Err(("holder must be a did".into(), "vc-malformed"))
        } else if creds.is_empty() || creds.len() > MAX_CREDENTIALS {
            Err((format!("verifiableCredential must hold 1 to {MAX_CREDENTIALS} credentials"), "vc-malformed"))
        } else {
            Ok(())
        }
    });
    if let Err((detail, slug)) = shape {
        r.fail("format", slug, "not a valid presentation", detail);
        for c in ["proof", "proofPurpose", "challenge", "domain", "credentials", "holderBinding"] {
            r.skip(c, "the presentation is malformed");
        }
        return r;
    }
    r.pass("format", None);
    let proof = check_proof(env, vp, &mut r);
    check_purpose(&mut r, proof.as_ref(), "authentication", "authentication", &holder);
    match proof.as_ref().map(|p| &p.0) {
        None => {
            r.skip("challenge", "needs a valid proof");
            r.skip("domain", "needs a valid proof");
        }
        Some(p) => {
            if p.challenge.as_deref() == Some(expected.challenge.as_str()) {
                r.pass("challenge", None);
            } else {
                let d = format!(
                    "the proof's challenge {:?} is not the expected one",
                    p.challenge.as_deref().unwrap_or("").chars().take(64).collect::<String>()
                );
                r.fail("challenge", "vp-challenge-mismatch", "challenge mismatch", d);
            }
            if p.domain.as_deref() == Some(expected.domain.as_str()) {
                r.pass("domain", None);
            } else {
                let d = format!(
                    "the proof's domain {:?} is not {:?}",
                    p.domain.as_deref().unwrap_or("").chars().take(64).collect::<String>(),
                    expected.domain
                );
                r.fail("domain", "vp-domain-mismatch", "domain mismatch", d);
            }
        }
    }
    let mut failed = Vec::new();
    let mut unbound = Vec::new();
    for (i, c) in creds.iter().enumerate() {
        let res = verify_credential(c, env, now_ms);
        if !res.verified {
            failed.push(format!("credential {i}: {}", res.failed().join(", ")));
        }
        let subjects: Vec<&str> = match c.get("credentialSubject") {
            Some(Value::Array(a)) => a.iter().filter_map(|s| s.get("id").and_then(Value::as_str)).collect(),
            Some(s) => s.get("id").and_then(Value::as_str).into_iter().collect(),
            None => Vec::new(),
        };
        if !subjects.contains(&holder.as_str()) {
            unbound.push(i.to_string());
        }
        r.credentials.push(res);
    }
    if failed.is_empty() {
        r.pass("credentials", Some(format!("{} credential(s) verified", creds.len())));
    } else {
        r.fail("credentials", "vp-credential-invalid", "a credential does not verify", failed.join("; "));
    }
    if unbound.is_empty() {
        r.pass("holderBinding", None);
    } else {
        r.fail(
            "holderBinding",
            "vp-holder-mismatch",
            "credential of another subject",
            format!("credential(s) {} are not about the holder {holder}", unbound.join(", ")),
        );
    }
    let _ = CHECKS;
    r
}
