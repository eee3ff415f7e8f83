//! Tests of the credential stack (`specs/credentials.md` §10): the W3C vc-di-eddsa test
//! vectors byte for byte (read in place from `vc-di-eddsa`, w3c/vc-di-eddsa @ abb673eb),
//! RFC 8785 vectors (cyberphone/json-canonicalization @ 19d51d7f), every tampering of the
//! issue, registry, status, validity and key-rotation semantics, presentations, and
//! property tests.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

use std::collections::HashMap;

use ed25519_dalek::SigningKey;
use proptest::prelude::*;
use serde_json::{Value, json};

use super::presentation::{Expected, present, verify_presentation};
use super::status_list::StatusPurpose;
use super::suite::{self, Cryptosuite, ProofOptions};
use super::verify::{CheckStatus, Environment, StatusAnswer, VerificationResult, issue_credential, verify_credential};
use super::*;
use crate::did_dojang::{self, CreateOp, DidOperation, DocumentContent, OpRecord, UpdateOp, VerificationMethod, VersionSelector};
use crate::genesis::TrustedIssuer;
use crate::hash::Hash;
use crate::registry::Registry;
use crate::testing::{read_vector, sample_genesis};

fn text(rel: &str) -> String {
    String::from_utf8(read_vector(&format!("vc-di-eddsa/TestVectors/{rel}"))).unwrap()
}

fn json_vector(rel: &str) -> Value {
    serde_json::from_str(&text(rel)).unwrap()
}

/// The vectors' key: `privateKeyMultibase` is a multicodec ed25519-priv (0x1300) seed.
fn vector_key() -> SigningKey {
    let kp = json_vector("keyPair.json");
    let bytes = multibase_decode_base58btc(kp["privateKeyMultibase"].as_str().unwrap()).unwrap();
    let (codec, seed) = read_multicodec_prefix(&bytes).unwrap();
    assert_eq!(codec, 0x1300);
    let key = SigningKey::from_bytes(seed.try_into().unwrap());
    assert_eq!(DidKey::from_verifying_key(&key.verifying_key()).multibase(), kp["publicKeyMultibase"]);
    key
}

fn options_from(config: &Value, suite: Cryptosuite) -> ProofOptions {
    ProofOptions {
        cryptosuite: suite,
        verification_method: config["verificationMethod"].as_str().unwrap().into(),
        proof_purpose: config["proofPurpose"].as_str().unwrap().into(),
        created: config["created"].as_str().map(str::to_owned),
        challenge: None,
        domain: None,
        expires: None,
    }
}

/// One vc-di-eddsa vector set: canonical document, canonical proof config, both hashes,
/// the signature (hex and multibase) and the signed document, byte for byte.
fn check_vector_set(dir: &str, tag: &str, unsigned: &Value, suite: Cryptosuite) {
    let key = vector_key();
    let config = json_vector(&format!("{dir}/proofConfig{tag}.json"));
    let mut opts = config.as_object().unwrap().clone();
    opts.remove("@context");
    let h = suite::hashes(suite, unsigned, &opts).unwrap();
    assert_eq!(h.canonical_document, text(&format!("{dir}/canonDoc{tag}.txt")), "{dir} canonical document");
    assert_eq!(h.canonical_proof_config, text(&format!("{dir}/proofCanon{tag}.txt")), "{dir} canonical proof config");
    assert_eq!(hex::encode(&h.hash_data[32..]), text(&format!("{dir}/docHash{tag}.txt")).trim(), "{dir} document hash");
    assert_eq!(hex::encode(&h.hash_data[..32]), text(&format!("{dir}/proofHash{tag}.txt")).trim(), "{dir} proof hash");
    assert_eq!(hex::encode(h.hash_data), text(&format!("{dir}/combinedHash{tag}.txt")).trim(), "{dir} combined hash");
    let signed = suite::add_proof(unsigned, &options_from(&config, suite), &key).unwrap();
    let pv = signed["proof"]["proofValue"].as_str().unwrap();
    assert_eq!(pv, text(&format!("{dir}/sigBTC58{tag}.txt")).trim(), "{dir} proofValue");
    assert_eq!(hex::encode(multibase_decode_base58btc(pv).unwrap()), text(&format!("{dir}/sigHex{tag}.txt")).trim());
    let expected = json_vector(&format!("{dir}/signed{tag}.json"));
    assert_eq!(signed, expected, "{dir} signed document");
    // The published signed document verifies, and so does ours.
    let pk = key.verifying_key().to_bytes();
    suite::verify_proof(&expected, &pk).unwrap();
    suite::verify_proof(&signed, &pk).unwrap();
}

#[test]
fn vc_di_eddsa_jcs_vectors_byte_for_byte() {
    check_vector_set("eddsa-jcs-2022", "JCS", &json_vector("unsigned.json"), Cryptosuite::EddsaJcs2022);
}

#[test]
fn vc_di_eddsa_rdfc_vectors_byte_for_byte() {
    check_vector_set("eddsa-rdfc-2022", "DataInt", &json_vector("unsigned.json"), Cryptosuite::EddsaRdfc2022);
    // The employment authorization credential: citizenship context, nested nodes, an issuer object.
    check_vector_set("eddsa-rdfc-2022/employ", "DataInt", &json_vector("employmentAuth.json"), Cryptosuite::EddsaRdfc2022);
}

/// RFC 8785 (cyberphone/json-canonicalization testdata): every input canonicalises to its
/// expected output byte for byte.
#[test]
fn jcs_rfc8785_vectors() {
    let mut n = 0;
    for name in ["arrays.json", "french.json", "structures.json", "unicode.json", "values.json", "weird.json"] {
        let input: Value = serde_json::from_slice(&read_vector(&format!("jcs-rfc8785/testdata/input/{name}"))).unwrap();
        let expected = read_vector(&format!("jcs-rfc8785/testdata/output/{name}"));
        assert_eq!(suite::jcs(&input).unwrap().as_bytes(), expected.as_slice(), "{name}");
        n += 1;
    }
    assert!(n >= 6);
}

/// The ES6 number samples (IEEE-754 hex, expected text) of the RFC 8785 reference.
#[test]
fn jcs_number_samples() {
    let csv = String::from_utf8(read_vector("jcs-rfc8785/es6-number-samples-from-readme.csv")).unwrap();
    let mut n = 0;
    for line in csv.lines().filter(|l| !l.trim().is_empty() && !l.starts_with('#')) {
        let Some((hexbits, expected)) = line.split_once(',') else { continue };
        let Ok(bits) = u64::from_str_radix(hexbits.trim(), 16) else { continue };
        let f = f64::from_bits(bits);
        let got = serde_json::Number::from_f64(f).map(|num| suite::jcs(&Value::Number(num)));
        match got {
            Some(Ok(s)) => assert_eq!(s, expected.trim(), "{hexbits}"),
            _ => assert!(!f.is_finite(), "{hexbits} failed"),
        }
        n += 1;
    }
    assert!(n >= 5, "{n} samples");
}

#[test]
fn numbers_like_1e21_and_0_000001_canonicalise_and_never_panic() {
    let v: Value = serde_json::from_str(r#"{"b": 1e21, "a": 0.000001, "c": 1E+400, "d": -0.0, "e": 123456789012345678901234567890}"#)
        .unwrap_or_else(|_| serde_json::from_str(r#"{"b": 1e21, "a": 0.000001, "d": -0.0}"#).unwrap());
    let s = suite::jcs(&v).unwrap();
    assert!(s.starts_with(r#"{"a":0.000001,"b":1e+21"#), "{s}");
    assert!(s.contains(r#""d":0"#), "{s}");
    // Out-of-range numbers are refused by the JSON parser, not a panic.
    assert!(serde_json::from_str::<Value>("1e400").is_err());
}

// ---------------------------------------------------------------------------------------
// A verifier environment in memory
// ---------------------------------------------------------------------------------------

const NOW: u64 = 1_800_000_000_000; // 2027-01-15

struct TestEnv {
    registry: Registry,
    dids: HashMap<String, Vec<OpRecord>>,
    status: HashMap<(String, u64), StatusAnswer>,
}

impl Environment for TestEnv {
    fn resolve(&self, did: &str, at_ms: Option<u64>) -> Result<Value, String> {
        let records = self.dids.get(did).ok_or_else(|| format!("no did {did}"))?;
        let sel = at_ms.map(VersionSelector::VersionTime).unwrap_or(VersionSelector::Latest);
        did_dojang::resolve(records, sel).map(|r| r.document).map_err(|e| e.to_string())
    }
    fn registry(&self) -> Result<&Registry, String> {
        Ok(&self.registry)
    }
    fn status(&self, list: &str, index: u64) -> Result<StatusAnswer, String> {
        self.status.get(&(list.to_owned(), index)).cloned().ok_or_else(|| "no such list".into())
    }
}

struct Fixture {
    env: TestEnv,
    issuer_key: SigningKey,
    issuer: String,
    vm: String,
    holder_key: SigningKey,
    holder: String,
}

const LIST: &str = "urn:dojang:status-list:mois-1";
const SLIST: &str = "urn:dojang:status-list:mois-s1";

fn fixture() -> Fixture {
    let issuer_key = SigningKey::from_bytes(&[21; 32]);
    let ik = DidKey::from_verifying_key(&issuer_key.verifying_key());
    let (mut g, _) = sample_genesis(1);
    g.trusted_issuers = vec![TrustedIssuer {
        did: ik.did(),
        name: "Ministry (test)".into(),
        keys: vec![ik.key_id()],
        document_types: vec![],
        credential_types: vec!["MobileIdCredential".into()],
    }];
    let holder_key = SigningKey::from_bytes(&[22; 32]);
    let hk = DidKey::from_verifying_key(&holder_key.verifying_key());
    let mut status = HashMap::new();
    for (list, purpose) in [(LIST, StatusPurpose::Revocation), (SLIST, StatusPurpose::Suspension)] {
        for i in 0..4u64 {
            status.insert((list.to_owned(), i), StatusAnswer { issuer: ik.did(), purpose, bit: i == 1, source: "test".into() });
        }
    }
    Fixture {
        env: TestEnv { registry: Registry::from_genesis(&g), dids: HashMap::new(), status },
        vm: ik.key_id(),
        issuer: ik.did(),
        issuer_key,
        holder: hk.did(),
        holder_key,
    }
}

fn unsigned_vc(issuer: &str, subject: &str, status_index: u64) -> Value {
    json!({
        "@context": [contexts::CREDENTIALS_V2, contexts::DOJANG_V1],
        "id": "urn:uuid:0b1c6d0e-5a7b-4b7e-9c55-1e1e1e1e1e1e",
        "type": ["VerifiableCredential", "MobileIdCredential"],
        "issuer": issuer,
        "validFrom": "2026-01-01T00:00:00Z",
        "validUntil": "2030-01-01T00:00:00Z",
        "credentialSubject": {"id": subject, "givenName": "Gil-dong", "familyName": "Hong", "birthDate": "1990-03-01"},
        "credentialStatus": [
            {"id": format!("{LIST}#{status_index}"), "type": "BitstringStatusListEntry", "statusPurpose": "revocation", "statusListIndex": status_index.to_string(), "statusListCredential": LIST},
            {"id": format!("{SLIST}#{status_index}"), "type": "BitstringStatusListEntry", "statusPurpose": "suspension", "statusListIndex": status_index.to_string(), "statusListCredential": SLIST}
        ]
    })
}

fn issue(f: &Fixture, suite: Cryptosuite, index: u64) -> Value {
    issue_credential(&unsigned_vc(&f.issuer, &f.holder, index), &f.issuer_key, &f.vm, suite, "2026-06-01T00:00:00Z").unwrap()
}

fn assert_only_failed(r: &VerificationResult, failed: &[&str]) {
    assert_eq!(r.failed(), failed, "{}", serde_json::to_string_pretty(r).unwrap());
    assert_eq!(r.verified, failed.is_empty());
    assert_eq!(r.problems.len(), failed.len());
}

#[test]
fn a_good_credential_verifies_under_both_suites() {
    let f = fixture();
    for suite in [Cryptosuite::EddsaJcs2022, Cryptosuite::EddsaRdfc2022] {
        let vc = issue(&f, suite, 0);
        let r = verify_credential(&vc, &f.env, NOW);
        assert_only_failed(&r, &[]);
        for c in verify::CHECKS {
            assert_eq!(r.status_of(c), Some(CheckStatus::Passed), "{c}");
        }
    }
}

#[test]
fn every_tampering_fails_the_proof_check() {
    let f = fixture();
    for suite in [Cryptosuite::EddsaJcs2022, Cryptosuite::EddsaRdfc2022] {
        let vc = issue(&f, suite, 0);
        type Tamper = Box<dyn Fn(&mut Value)>;
        let cases: Vec<(&str, Tamper, &str)> = vec![
            ("subject field", Box::new(|v| v["credentialSubject"]["givenName"] = json!("Mallory")), "vc-bad-signature"),
            ("created", Box::new(|v| v["proof"]["created"] = json!("2026-06-01T00:00:01Z")), "vc-bad-signature"),
            (
                "proofValue",
                Box::new(|v| {
                    let pv = v["proof"]["proofValue"].as_str().unwrap().to_owned();
                    let last = if pv.ends_with('2') { '3' } else { '2' };
                    v["proof"]["proofValue"] = json!(format!("{}{last}", &pv[..pv.len() - 1]));
                }),
                "vc-bad-signature",
            ),
            (
                "proofValue not base58btc",
                Box::new(|v| {
                    let pv = v["proof"]["proofValue"].as_str().unwrap().to_owned();
                    v["proof"]["proofValue"] = json!(format!("u{}", &pv[1..]));
                }),
                "vc-bad-proof-value",
            ),
            (
                "proofValue with a non-base58 character",
                Box::new(|v| {
                    let pv = v["proof"]["proofValue"].as_str().unwrap().to_owned();
                    v["proof"]["proofValue"] = json!(format!("{}0", &pv[..pv.len() - 1]));
                }),
                "vc-bad-proof-value",
            ),
            ("cryptosuite", Box::new(|v| v["proof"]["cryptosuite"] = json!("eddsa-2022")), "vc-unsupported-cryptosuite"),
            (
                "other cryptosuite",
                Box::new(move |v| {
                    let other = if suite == Cryptosuite::EddsaJcs2022 { "eddsa-rdfc-2022" } else { "eddsa-jcs-2022" };
                    v["proof"]["cryptosuite"] = json!(other);
                }),
                "vc-bad-signature",
            ),
        ];
        for (what, tamper, slug) in cases {
            let mut t = vc.clone();
            tamper(&mut t);
            let r = verify_credential(&t, &f.env, NOW);
            assert_eq!(r.status_of("proof"), Some(CheckStatus::Failed), "{suite:?} {what}: {}", serde_json::to_string(&r).unwrap());
            assert_eq!(r.problems[0].problem_type, format!("urn:dojang:problem:{slug}"), "{suite:?} {what}");
            assert!(!r.verified);
        }
    }
}

#[test]
fn wrong_verification_method_and_wrong_purpose_are_named() {
    let f = fixture();
    // Signed by a key that is not the issuer's: its own did:key, but not the issuer's.
    let other = SigningKey::from_bytes(&[99; 32]);
    let ok = DidKey::from_verifying_key(&other.verifying_key());
    let mut vc = unsigned_vc(&f.issuer, &f.holder, 0);
    let opts = ProofOptions {
        cryptosuite: Cryptosuite::EddsaJcs2022,
        verification_method: ok.key_id(),
        proof_purpose: "assertionMethod".into(),
        created: Some("2026-06-01T00:00:00Z".into()),
        challenge: None,
        domain: None,
        expires: None,
    };
    let signed = suite::add_proof(&vc, &opts, &other).unwrap();
    assert_only_failed(&verify_credential(&signed, &f.env, NOW), &["proofPurpose"]);
    // The issuer's method id, but the signature is by another key.
    let signed = suite::add_proof(&vc, &ProofOptions { verification_method: f.vm.clone(), ..opts.clone() }, &other).unwrap();
    assert_only_failed(&verify_credential(&signed, &f.env, NOW), &["proof"]);
    // A method id that is not in the issuer's document.
    let bogus = format!("{}#nope", f.issuer);
    let signed = suite::add_proof(&vc, &ProofOptions { verification_method: bogus, ..opts.clone() }, &f.issuer_key).unwrap();
    let r = verify_credential(&signed, &f.env, NOW);
    assert_eq!(r.failed(), ["proof"]);
    assert_eq!(r.problems[0].problem_type, "urn:dojang:problem:vc-verification-method");
    // Wrong purpose, correctly signed.
    let signed = suite::add_proof(
        &vc,
        &ProofOptions { verification_method: f.vm.clone(), proof_purpose: "capabilityDelegation".into(), ..opts.clone() },
        &f.issuer_key,
    )
    .unwrap();
    let r = verify_credential(&signed, &f.env, NOW);
    assert_only_failed(&r, &["proofPurpose"]);
    assert!(r.problems[0].detail.contains("capabilityDelegation"));
    // Unknown context.
    vc["@context"] = json!([contexts::CREDENTIALS_V2, "https://evil.example/ctx"]);
    let r = verify_credential(&vc, &f.env, NOW);
    assert_eq!(r.failed(), ["format"]);
    assert_eq!(r.problems[0].problem_type, "urn:dojang:problem:vc-unknown-context");
}

#[test]
fn reordered_keys_still_verify_under_jcs() {
    let f = fixture();
    let vc = issue(&f, Cryptosuite::EddsaJcs2022, 0);
    // Re-serialise with members in reverse order (serde_json keeps maps sorted, so build text).
    fn reversed(v: &Value) -> String {
        match v {
            Value::Object(m) => {
                let parts: Vec<String> =
                    m.iter().rev().map(|(k, v)| format!("{}: {}", serde_json::to_string(k).unwrap(), reversed(v))).collect();
                format!("{{ {} }}", parts.join(", "))
            }
            Value::Array(a) => format!("[{}]", a.iter().map(reversed).collect::<Vec<_>>().join(", ")),
            v => v.to_string(),
        }
    }
    let text = reversed(&vc);
    assert!(text.starts_with("{ \"validUntil\""));
    let parsed = parse_document(text.as_bytes()).unwrap();
    assert_only_failed(&verify_credential(&parsed, &f.env, NOW), &[]);
}

#[test]
fn issuer_outside_the_registry_or_type_is_untrusted() {
    let mut f = fixture();
    let stranger = SigningKey::from_bytes(&[55; 32]);
    let sk = DidKey::from_verifying_key(&stranger.verifying_key());
    for i in 0..4u64 {
        f.env.status.insert(
            (LIST.into(), i),
            StatusAnswer { issuer: sk.did(), purpose: StatusPurpose::Revocation, bit: false, source: "t".into() },
        );
        f.env.status.insert(
            (SLIST.into(), i),
            StatusAnswer { issuer: sk.did(), purpose: StatusPurpose::Suspension, bit: false, source: "t".into() },
        );
    }
    let vc =
        issue_credential(&unsigned_vc(&sk.did(), &f.holder, 0), &stranger, &sk.key_id(), Cryptosuite::EddsaJcs2022, "2026-06-01T00:00:00Z")
            .unwrap();
    let r = verify_credential(&vc, &f.env, NOW);
    assert_only_failed(&r, &["issuer"]);
    assert_eq!(r.problems[0].problem_type, "urn:dojang:problem:vc-issuer-not-trusted");
    assert_eq!(r.status_of("proof"), Some(CheckStatus::Passed), "cryptographically valid");
    // A trusted issuer, but a type it is not trusted for.
    let f = fixture();
    let mut u = unsigned_vc(&f.issuer, &f.holder, 0);
    u["type"] = json!(["VerifiableCredential", "PassportCredential"]);
    let vc = issue_credential(&u, &f.issuer_key, &f.vm, Cryptosuite::EddsaJcs2022, "2026-06-01T00:00:00Z").unwrap();
    assert_only_failed(&verify_credential(&vc, &f.env, NOW), &["issuer"]);
}

#[test]
fn revoked_suspended_expired_and_not_yet_valid() {
    let f = fixture();
    let vc = issue(&f, Cryptosuite::EddsaJcs2022, 1); // bit 1 is set in both lists
    let r = verify_credential(&vc, &f.env, NOW);
    assert_only_failed(&r, &["status"]);
    assert_eq!(r.problems[0].problem_type, "urn:dojang:problem:vc-revoked");
    let mut env = TestEnv { registry: f.env.registry.clone(), dids: HashMap::new(), status: f.env.status.clone() };
    env.status.get_mut(&(LIST.to_owned(), 1)).unwrap().bit = false;
    let r = verify_credential(&vc, &env, NOW);
    assert_only_failed(&r, &["status"]);
    assert_eq!(r.problems[0].problem_type, "urn:dojang:problem:vc-suspended");
    let vc = issue(&f, Cryptosuite::EddsaJcs2022, 0);
    let expired = verify_credential(&vc, &f.env, did_dojang::parse_rfc3339("2030-01-01T00:00:00Z").unwrap());
    assert_only_failed(&expired, &["validity"]);
    assert_eq!(expired.problems[0].problem_type, "urn:dojang:problem:vc-expired");
    let early = verify_credential(&vc, &f.env, did_dojang::parse_rfc3339("2025-12-31T23:59:59Z").unwrap());
    assert_eq!(early.problems[0].problem_type, "urn:dojang:problem:vc-not-yet-valid");
    // A status list of another issuer, or of the wrong purpose, is refused.
    let mut env = TestEnv { registry: f.env.registry.clone(), dids: HashMap::new(), status: f.env.status.clone() };
    env.status.get_mut(&(LIST.to_owned(), 0)).unwrap().purpose = StatusPurpose::Suspension;
    assert_only_failed(&verify_credential(&vc, &env, NOW), &["status"]);
    env.status.get_mut(&(LIST.to_owned(), 0)).unwrap().issuer = "did:key:other".into();
    assert_only_failed(&verify_credential(&vc, &env, NOW), &["status"]);
}

fn op_record(index: u64, t: u64, key: &SigningKey, op: DidOperation) -> OpRecord {
    let author = DidKey::from_verifying_key(&key.verifying_key()).key_id();
    let bytes = crate::entry::UnsignedEntry {
        kind: crate::entry::Kind::DidOperation,
        author: author.clone(),
        nonce: index + 1,
        timestamp_ms: t,
        payload: op.encode(),
    }
    .sign(key, &Hash::ZERO)
    .unwrap()
    .encode()
    .unwrap();
    OpRecord { index, leaf_hash: crate::entry::leaf_hash(&bytes), timestamp_ms: t, author, op }
}

fn content(key: &SigningKey) -> DocumentContent {
    DocumentContent {
        verification_method: vec![VerificationMethod {
            id: "#key-1".into(),
            method_type: "Multikey".into(),
            public_key_multibase: DidKey::from_verifying_key(&key.verifying_key()).multibase(),
        }],
        authentication: vec!["#key-1".into()],
        assertion_method: vec!["#key-1".into()],
        ..Default::default()
    }
}

/// An issuer with a did:dojang rotates its assertion key after issuing: the old credential
/// still verifies (its key is resolved as of its `created` time), a new signature by the
/// old key does not, and the new key works.
#[test]
fn key_rotated_after_issuance() {
    let mut f = fixture();
    let controller = SigningKey::from_bytes(&[31; 32]);
    let old = SigningKey::from_bytes(&[32; 32]);
    let new = SigningKey::from_bytes(&[33; 32]);
    let create = CreateOp {
        document: content(&old),
        controller_keys: vec![DidKey::from_verifying_key(&controller.verifying_key()).did()],
        next_key_commitment: None,
        salt: None,
    };
    let did = did_dojang::derive_did(&create);
    let t0 = did_dojang::parse_rfc3339("2026-01-01T00:00:00Z").unwrap();
    let r0 = op_record(0, t0, &controller, DidOperation::Create(create));
    let t1 = did_dojang::parse_rfc3339("2026-07-01T00:00:00Z").unwrap();
    let r1 =
        op_record(1, t1, &controller, DidOperation::Update(UpdateOp { did: did.clone(), previous: r0.leaf_hash, document: content(&new) }));
    f.env.dids.insert(did.clone(), vec![r0, r1]);
    f.env.registry = {
        let (mut g, _) = sample_genesis(1);
        g.trusted_issuers = vec![TrustedIssuer {
            did: did.clone(),
            name: "Gov-Pass issuer".into(),
            keys: vec![DidKey::from_verifying_key(&controller.verifying_key()).key_id()],
            document_types: vec![],
            credential_types: vec!["MobileIdCredential".into()],
        }];
        Registry::from_genesis(&g)
    };
    for v in f.env.status.values_mut() {
        v.issuer = did.clone();
    }
    let vm = format!("{did}#key-1");
    let before = issue_credential(&unsigned_vc(&did, &f.holder, 0), &old, &vm, Cryptosuite::EddsaJcs2022, "2026-06-01T00:00:00Z").unwrap();
    assert_only_failed(&verify_credential(&before, &f.env, NOW), &[]);
    let after_old =
        issue_credential(&unsigned_vc(&did, &f.holder, 0), &old, &vm, Cryptosuite::EddsaJcs2022, "2026-08-01T00:00:00Z").unwrap();
    let r = verify_credential(&after_old, &f.env, NOW);
    assert_only_failed(&r, &["proof"]);
    assert_eq!(r.problems[0].problem_type, "urn:dojang:problem:vc-bad-signature");
    let after_new =
        issue_credential(&unsigned_vc(&did, &f.holder, 0), &new, &vm, Cryptosuite::EddsaRdfc2022, "2026-08-01T00:00:00Z").unwrap();
    assert_only_failed(&verify_credential(&after_new, &f.env, NOW), &[]);
    // Before the DID existed there is nothing to resolve.
    let too_early =
        issue_credential(&unsigned_vc(&did, &f.holder, 0), &old, &vm, Cryptosuite::EddsaJcs2022, "2025-06-01T00:00:00Z").unwrap();
    assert_eq!(verify_credential(&too_early, &f.env, NOW).failed(), ["proof"]);
}

#[test]
fn presentations_bind_challenge_and_domain() {
    let f = fixture();
    let vc = issue(&f, Cryptosuite::EddsaJcs2022, 0);
    let hvm = DidKey::from_verifying_key(&f.holder_key.verifying_key()).key_id();
    let exp = Expected { challenge: "c-123".into(), domain: "bank.example.kr".into() };
    for suite in [Cryptosuite::EddsaJcs2022, Cryptosuite::EddsaRdfc2022] {
        let vp =
            present(&f.holder, std::slice::from_ref(&vc), &f.holder_key, &hvm, "c-123", "bank.example.kr", "2026-09-01T00:00:00Z", suite)
                .unwrap();
        let r = verify_presentation(&vp, &f.env, NOW, &exp);
        assert_only_failed(&r, &[]);
        assert_eq!(r.credentials.len(), 1);
        let r = verify_presentation(&vp, &f.env, NOW, &Expected { challenge: "c-124".into(), ..exp.clone() });
        assert_only_failed(&r, &["challenge"]);
        assert_eq!(r.problems[0].problem_type, "urn:dojang:problem:vp-challenge-mismatch");
        let r = verify_presentation(&vp, &f.env, NOW, &Expected { domain: "evil.example".into(), ..exp.clone() });
        assert_only_failed(&r, &["domain"]);
        // Editing the challenge in the proof breaks the signature.
        let mut t = vp.clone();
        t["proof"]["challenge"] = json!("c-124");
        assert_eq!(verify_presentation(&t, &f.env, NOW, &Expected { challenge: "c-124".into(), ..exp.clone() }).failed(), ["proof"]);
    }
    // A presentation signed with an assertionMethod purpose is refused.
    let vp = json!({"@context": [contexts::CREDENTIALS_V2], "type": ["VerifiablePresentation"], "holder": f.holder, "verifiableCredential": [vc.clone()]});
    let opts = ProofOptions {
        cryptosuite: Cryptosuite::EddsaJcs2022,
        verification_method: hvm.clone(),
        proof_purpose: "assertionMethod".into(),
        created: None,
        challenge: Some("c-123".into()),
        domain: Some("bank.example.kr".into()),
        expires: None,
    };
    let signed = suite::add_proof(&vp, &opts, &f.holder_key).unwrap();
    assert_only_failed(&verify_presentation(&signed, &f.env, NOW, &exp), &["proofPurpose"]);
    // Someone else presenting the holder's credential.
    let thief = SigningKey::from_bytes(&[77; 32]);
    let tk = DidKey::from_verifying_key(&thief.verifying_key());
    let vp = present(&tk.did(), &[vc], &thief, &tk.key_id(), "c-123", "bank.example.kr", "2026-09-01T00:00:00Z", Cryptosuite::EddsaJcs2022)
        .unwrap();
    assert_only_failed(&verify_presentation(&vp, &f.env, NOW, &exp), &["holderBinding"]);
}

#[test]
fn credential_with_extreme_numbers_signs_and_verifies() {
    let f = fixture();
    let mut u = unsigned_vc(&f.issuer, &f.holder, 0);
    u["@context"] = json!([contexts::CREDENTIALS_V2, contexts::EXAMPLES_V2]);
    u["credentialSubject"]["big"] = serde_json::from_str("1e21").unwrap();
    u["credentialSubject"]["small"] = serde_json::from_str("0.000001").unwrap();
    for suite in [Cryptosuite::EddsaJcs2022, Cryptosuite::EddsaRdfc2022] {
        let vc = issue_credential(&u, &f.issuer_key, &f.vm, suite, "2026-06-01T00:00:00Z").unwrap();
        assert_only_failed(&verify_credential(&vc, &f.env, NOW), &[]);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// JCS never panics on arbitrary JSON and is idempotent (canonical text re-parses to
    /// itself).
    #[test]
    fn jcs_is_total_and_idempotent(v in arb_json()) {
        let s = suite::jcs(&v).unwrap();
        let again: Value = serde_json::from_str(&s).unwrap();
        prop_assert_eq!(suite::jcs(&again).unwrap(), s);
    }

    /// JSON-LD to RDF never panics on arbitrary JSON under a known context.
    #[test]
    fn jsonld_never_panics(v in arb_json()) {
        let doc = json!({"@context": [contexts::CREDENTIALS_V2, contexts::EXAMPLES_V2], "id": "urn:x:1", "credentialSubject": v.clone()});
        let _ = jsonld::to_rdf(&doc);
        let _ = jsonld::to_rdf(&v);
    }

    /// Proofs round-trip for any subject value, and changing any subject value breaks them.
    #[test]
    fn proofs_round_trip_and_detect_changes(name in "[a-zA-Z가-힣 ]{1,20}", n in any::<i32>(), rdfc in any::<bool>()) {
        let key = SigningKey::from_bytes(&[5; 32]);
        let dk = DidKey::from_verifying_key(&key.verifying_key());
        let doc = json!({"@context": [contexts::CREDENTIALS_V2, contexts::EXAMPLES_V2], "type": ["VerifiableCredential"], "issuer": dk.did(), "credentialSubject": {"name": name, "n": n}});
        let suite = if rdfc { Cryptosuite::EddsaRdfc2022 } else { Cryptosuite::EddsaJcs2022 };
        let opts = ProofOptions { cryptosuite: suite, verification_method: dk.key_id(), proof_purpose: "assertionMethod".into(), created: Some("2026-01-01T00:00:00Z".into()), challenge: None, domain: None, expires: None };
        let signed = suite::add_proof(&doc, &opts, &key).unwrap();
        prop_assert!(suite::verify_proof(&signed, &key.verifying_key().to_bytes()).is_ok());
        let mut t = signed.clone();
        t["credentialSubject"]["n"] = json!(i64::from(n) + 1);
        prop_assert!(suite::verify_proof(&t, &key.verifying_key().to_bytes()).is_err());
    }

    /// Proof parsing never panics on arbitrary proof objects.
    #[test]
    fn split_proof_never_panics(p in arb_json()) {
        let _ = suite::split_proof(&json!({"proof": p}));
    }
}

fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|i| json!(i)),
        any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(|f| json!(f)),
        "[ -~가]{0,8}".prop_map(Value::String),
        prop_oneof![Just("@id"), Just("@type"), Just("@value"), Just("@list"), Just("@graph"), Just("@context"), Just("id"), Just("type")]
            .prop_map(|s| Value::String(s.into())),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            proptest::collection::btree_map(
                prop_oneof![
                    Just("@id".to_owned()),
                    Just("@type".to_owned()),
                    Just("@value".to_owned()),
                    Just("@list".to_owned()),
                    Just("@context".to_owned()),
                    Just("name".to_owned()),
                    "[a-z@]{1,6}"
                ],
                inner,
                0..5
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}
