//! Document anchoring and the trusted-issuer registry over HTTP against a real in-process
//! node (memory storage, a `ManualClock` moved by hand; `specs/documents.md`): issuances,
//! status changes and quorum-approved registry changes submitted as ordinary entries;
//! every verdict answered by `POST /v1/documents/verify` (raw with `?salt=`, multipart with
//! a receipt) and `GET /v1/documents/{commitment}`, each proven answer checked offline with
//! `documents::verify_document` against the genesis alone and found to agree with the node;
//! untrusted issuers, short quorums and governance replays refused with the right problem;
//! removed and suspended issuers as §6.2 says; tampered proof bundles refused; the registry
//! as of earlier checkpoints, proven and replayed; the expiry feed; bad input as 4xx; and
//! answers polled while entries commit, which must agree with their own proofs (record,
//! registry and proof are read at one checkpoint).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use base64::Engine as _;
use dojang_core::bundle::verify_entries;
use dojang_core::checkpoint::{CheckpointError, SignedCheckpoint};
use dojang_core::did_key::DidKey;
use dojang_core::did_proof::EntryProof;
use dojang_core::documents::{
    DocumentProof, DocumentProofError, DocumentRecord, DocumentStatus, Issuance, ReasonCode, Receipt, StatusAction, StatusChange, Verdict,
    VerifiedDocument, commitment, verify_document,
};
use dojang_core::entry::{Kind, UnsignedEntry};
use dojang_core::genesis::{Genesis, TrustedIssuer, Validator};
use dojang_core::hash::Hash;
use dojang_core::registry::{self, Approval, RegistryAction, RegistryChange};
use dojang_node::clock::ManualClock;
use dojang_node::node::RunningNode;
use ed25519_dalek::SigningKey;
use serde_json::{Value, json};

/// The node clock at start; entries are stamped with the clock's current time.
const T0: u64 = 1_780_000_000_000;
const MINUTE: u64 = 60_000;
const HOUR: u64 = 60 * MINUTE;
const DAY: u64 = 24 * HOUR;

const RESIDENT: &str = "resident-registration-extract";
const BUILDING: &str = "building-register";
const FAMILY: &str = "family-relation-certificate";
const B_DID: &str = "did:web:b.example.kr";
const C_DID: &str = "did:web:c.example.kr";
const D_DID: &str = "did:web:d.example.kr";

/// Key seeds: the validator's consensus key; issuer A's key (also the agency's genesis
/// writer key); issuers B, C and D; a key of nobody; a submitter of governance entries
/// that is neither writer nor issuer.
const VALIDATOR: u8 = 1;
const A_KEY: u8 = 2;
const B_KEY: u8 = 3;
const C_KEY: u8 = 4;
const D_KEY: u8 = 5;
const STRANGER: u8 = 66;
const SUBMITTER: u8 = 77;

const BOUNDARY: &str = "dojang-test-boundary-7MA4YWxkTrZu0gW";

fn key(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

fn key_id(seed: u8) -> String {
    DidKey::from_verifying_key(&key(seed).verifying_key()).key_id()
}

/// One validator (it signs checkpoints alone), whose agency is issuer A; issuer B is a
/// `did:web` with its own key.
fn genesis(chain_id: &str, genesis_time_ms: u64) -> Genesis {
    let v = Validator::with_keys("v0", "Validator Agency", &key(VALIDATOR).verifying_key(), &[key(A_KEY).verifying_key()], "");
    let a_did = v.did.clone();
    let mut g = Genesis::new(chain_id, genesis_time_ms, vec![v]);
    g.trusted_issuers = vec![
        TrustedIssuer {
            did: a_did,
            name: "Validator Agency".into(),
            keys: vec![key_id(A_KEY)],
            document_types: vec![RESIDENT.into(), BUILDING.into()],
            credential_types: vec![],
        },
        TrustedIssuer {
            did: B_DID.into(),
            name: "B District Office".into(),
            keys: vec![key_id(B_KEY)],
            document_types: vec![BUILDING.into()],
            credential_types: vec![],
        },
    ];
    g
}

struct Env {
    _dir: tempfile::TempDir,
    node: RunningNode,
    genesis: Genesis,
    clock: Arc<ManualClock>,
    /// One counter for every author: each author's nonces strictly increase.
    nonce: AtomicU64,
}

async fn start() -> Env {
    start_with(genesis("doctest", 0)).await
}

async fn start_with(genesis: Genesis) -> Env {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(T0));
    let node = support::start_node(dir.path(), &genesis, &key(VALIDATOR), 1 << 20, clock.clone()).await;
    Env { _dir: dir, node, genesis, clock, nonce: AtomicU64::new(1) }
}

impl Env {
    fn now(&self) -> u64 {
        dojang_node::clock::Clock::now_ms(&*self.clock)
    }

    /// Moves the node clock; later entries are stamped with the new time.
    fn set_time(&self, ms: u64) {
        self.clock.set(ms);
    }

    fn gh(&self) -> Hash {
        self.genesis.hash()
    }

    /// Issuer A's DID: the validator agency's.
    fn a_did(&self) -> String {
        self.genesis.validators[0].did.clone()
    }

    /// A signed entry by `seed`, stamped now, with a fresh nonce.
    fn entry(&self, seed: u8, kind: Kind, payload: Vec<u8>) -> Vec<u8> {
        let nonce = self.nonce.fetch_add(1, Ordering::SeqCst);
        UnsignedEntry { kind, author: key_id(seed), nonce, timestamp_ms: self.now(), payload }
            .sign(&key(seed), &self.gh())
            .unwrap()
            .encode()
            .unwrap()
    }

    fn issuance(
        &self,
        seed: u8,
        doc: &Doc,
        document_type: &str,
        valid_from: u64,
        valid_until: Option<u64>,
        holder: Option<&str>,
    ) -> Vec<u8> {
        let i = Issuance {
            document_type: document_type.into(),
            commitment: doc.commitment(),
            valid_from,
            valid_until,
            holder: holder.map(str::to_owned),
        };
        self.entry(seed, Kind::DocumentIssuance, i.encode())
    }

    /// An issuer-path status change (no approvals, no sequence).
    fn status(&self, seed: u8, doc: &Doc, action: StatusAction, reason: Option<ReasonCode>) -> Vec<u8> {
        let c = StatusChange { document: doc.commitment(), action, reason, sequence: None, approvals: vec![] };
        self.entry(seed, Kind::DocumentRevocation, c.encode())
    }

    /// A registry change approved by the one validator.
    fn approved(&self, version: u64, action: RegistryAction) -> RegistryChange {
        let mut c = RegistryChange::new(version, action);
        c.approve("v0", &key(VALIDATOR), &self.gh());
        c
    }

    /// A `trust-registry-change/v1` entry carrying `change`, by a key that is neither a
    /// genesis writer nor an issuer: anyone may submit (§2.2).
    fn registry_entry(&self, change: &RegistryChange) -> Vec<u8> {
        self.entry(SUBMITTER, Kind::TrustRegistryChange, change.encode())
    }
}

/// A document file and the salt its issuer drew for it.
struct Doc {
    file: Vec<u8>,
    salt: [u8; 32],
}

impl Doc {
    fn new(name: &str) -> Doc {
        Doc {
            file: format!("%PDF-1.7\n% certificate {name}\n%%EOF\n").into_bytes(),
            salt: *blake3::hash(format!("salt of {name}").as_bytes()).as_bytes(),
        }
    }

    fn commitment(&self) -> Hash {
        commitment(&self.salt, &self.file)
    }

    fn salt_hex(&self) -> String {
        hex::encode(self.salt)
    }

    fn receipt(&self, document_type: &str, issuer: &str) -> Receipt {
        Receipt::new(&self.salt, &self.file, document_type, issuer)
    }
}

use support::Answer;

async fn call(method: &str, url: String, content_type: Option<String>, body: Vec<u8>) -> Answer {
    support::call(method, url, content_type.as_deref(), None, body).await
}

async fn get(env: &Env, path: &str) -> Answer {
    call("GET", format!("{}{path}", env.node.url()), None, vec![]).await
}

async fn post_raw(env: &Env, bytes: Vec<u8>) -> Answer {
    call("POST", format!("{}/v1/entries", env.node.url()), Some("application/octet-stream".into()), bytes).await
}

/// Submits one entry, which must be committed; returns (index, tree_size of the first
/// checkpoint covering it).
async fn submit_ok(env: &Env, bytes: Vec<u8>) -> (u64, u64) {
    let a = post_raw(env, bytes).await;
    assert_eq!(a.status, 201, "{}", a.text());
    let r = a.json();
    (r["index"].as_u64().unwrap(), r["tree_size"].as_u64().unwrap())
}

async fn tree_size(env: &Env) -> u64 {
    get(env, "/healthz").await.json()["tree_size"].as_u64().unwrap()
}

async fn server_errors(env: &Env) -> u64 {
    let m = get(env, "/metrics").await.text();
    let line = m.lines().find(|l| l.starts_with("dojang_http_server_errors_total ")).unwrap();
    line.rsplit(' ').next().unwrap().parse().unwrap()
}

/// `POST /v1/documents/verify` with the raw file; `query` is appended as is.
async fn verify_raw(env: &Env, file: &[u8], query: &str) -> Answer {
    let url = format!("{}/v1/documents/verify{query}", env.node.url());
    call("POST", url, Some("application/octet-stream".into()), file.to_vec()).await
}

/// One part of a multipart/form-data body: name, optional filename, bytes.
type Part<'a> = (&'a str, Option<&'a str>, &'a [u8]);

/// A multipart/form-data body, built by hand (RFC 7578).
fn multipart(parts: &[Part<'_>]) -> Vec<u8> {
    let mut body = Vec::new();
    for (name, filename, data) in parts {
        body.extend_from_slice(format!("--{BOUNDARY}\r\n").as_bytes());
        match filename {
            Some(f) => body.extend_from_slice(
                format!("Content-Disposition: form-data; name=\"{name}\"; filename=\"{f}\"\r\nContent-Type: application/pdf\r\n\r\n")
                    .as_bytes(),
            ),
            None => body.extend_from_slice(format!("Content-Disposition: form-data; name=\"{name}\"\r\n\r\n").as_bytes()),
        }
        body.extend_from_slice(data);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
    body
}

async fn verify_multipart(env: &Env, parts: &[Part<'_>]) -> Answer {
    let url = format!("{}/v1/documents/verify", env.node.url());
    call("POST", url, Some(format!("multipart/form-data; boundary={BOUNDARY}")), multipart(parts)).await
}

async fn by_commitment(env: &Env, c: &Hash) -> Answer {
    get(env, &format!("/v1/documents/{}", c.to_hex())).await
}

/// Asks the node about `doc` three ways — the raw file with `?salt=`, multipart with the
/// file and its receipt, and by commitment — and expects the same answer with verdict
/// `expected` each time. Then checks the answer's proof offline at the node's clock: it
/// must verify to the same verdict and record. Returns the answer and the offline result.
async fn expect_verdict(env: &Env, doc: &Doc, expected: Verdict) -> (Value, DocumentProof, VerifiedDocument) {
    let raw = verify_raw(env, &doc.file, &format!("?salt={}", doc.salt_hex())).await;
    assert_eq!(raw.status, 200, "{}", raw.text());
    assert_eq!(raw.content_type, "application/json");
    let ans = raw.json();
    assert_eq!(ans["verdict"], expected.as_str(), "{ans}");
    assert_eq!(ans["commitment"], doc.commitment().to_hex());
    let record: DocumentRecord = serde_json::from_value(ans["record"].clone()).unwrap();

    let receipt = doc.receipt(&record.document_type, &record.issuer).encode();
    let multi = verify_multipart(env, &[("file", Some("certificate.pdf"), &doc.file), ("receipt", None, receipt.as_bytes())]).await;
    assert_eq!(multi.status, 200, "{}", multi.text());
    assert_eq!(multi.json(), ans);
    let by_c = by_commitment(env, &doc.commitment()).await;
    assert_eq!(by_c.status, 200, "{}", by_c.text());
    assert_eq!(by_c.json(), ans);

    // The displayed type and issuer are the proven record's.
    assert_eq!(ans["documentType"], record.document_type);
    assert_eq!(ans["issuer"], record.issuer);
    let proof: DocumentProof = serde_json::from_value(ans["proof"].clone()).unwrap();
    let verified = verify_document(&env.genesis, &doc.file, &doc.salt, &proof, env.now())
        .unwrap_or_else(|e| panic!("the node's proof for a {expected:?} document does not verify: {e}"));
    assert_eq!(verified.verdict, expected, "offline verdict differs from the node's");
    assert_eq!(verified.record, record, "offline record differs from the node's");
    assert_eq!(ans["issuerName"], json!(verified.issuer.as_ref().map(|i| i.name.clone())));
    assert_eq!(verified.checkpoint.checkpoint.size, tree_size(env).await, "the proof is against the latest checkpoint");
    doc.receipt(&record.document_type, &record.issuer).matches(&verified.record).unwrap();
    (ans, proof, verified)
}

/// The node has no issuance for this file and salt: `unknown`, with no proof (§6.3).
async fn expect_unknown(env: &Env, file: &[u8], salt: &[u8; 32]) {
    let a = verify_raw(env, file, &format!("?salt={}", hex::encode(salt))).await;
    assert_eq!(a.status, 200, "{}", a.text());
    let c = commitment(salt, file);
    assert_eq!(a.json(), json!({"verdict": "unknown", "commitment": c.to_hex()}));
    assert_eq!(by_commitment(env, &c).await.json(), a.json());
}

fn issuer_status(registry: &Value, did: &str) -> String {
    let issuers = registry["issuers"].as_array().unwrap();
    let r = issuers.iter().find(|i| i["issuer"]["did"] == did).unwrap_or_else(|| panic!("{did} not in {registry}"));
    r["status"].as_str().unwrap().to_owned()
}

// ---------------------------------------------------------------------------------------
// Verdicts
// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_verdict_end_to_end() {
    let env = start().await;
    let a_did = env.a_did();

    // genuine
    let genuine = Doc::new("genuine");
    let until = T0 + 365 * DAY;
    let (index, _) = submit_ok(&env, env.issuance(A_KEY, &genuine, RESIDENT, T0 - HOUR, Some(until), None)).await;
    let (ans, genuine_proof, v) = expect_verdict(&env, &genuine, Verdict::Genuine).await;
    assert_eq!(ans["issuerName"], "Validator Agency");
    assert_eq!(ans["issuedAt"], dojang_core::did_dojang::format_rfc3339_ms(T0));
    let r = &v.record;
    assert_eq!((r.issuer.as_str(), r.issuing_key.as_str(), r.document_type.as_str()), (a_did.as_str(), key_id(A_KEY).as_str(), RESIDENT));
    assert_eq!((r.index, r.issued_at, r.registry_version, r.valid_from, r.valid_until), (index, T0, 0, T0 - HOUR, Some(until)));
    assert_eq!((r.status, r.status_changes.len()), (DocumentStatus::Active, 0));
    assert!(genuine_proof.status_changes.is_empty() && genuine_proof.registry_changes.is_empty());
    // A multipart form may also carry the salt as a field, or take it from the query.
    let salt = genuine.salt_hex();
    let a = verify_multipart(&env, &[("salt", None, salt.as_bytes()), ("file", Some("x.pdf"), &genuine.file)]).await;
    assert_eq!(a.json()["verdict"], "genuine", "{}", a.text());
    let url = format!("{}/v1/documents/verify?salt={salt}", env.node.url());
    let body = multipart(&[("file", Some("x.pdf"), &genuine.file)]);
    let a = call("POST", url, Some(format!("multipart/form-data; boundary={BOUNDARY}")), body).await;
    assert_eq!(a.json()["verdict"], "genuine", "{}", a.text());

    // revoked
    let revoked = Doc::new("revoked");
    submit_ok(&env, env.issuance(A_KEY, &revoked, RESIDENT, T0 - HOUR, Some(T0 + 2 * HOUR), None)).await;
    expect_verdict(&env, &revoked, Verdict::Genuine).await;
    let (revoke_index, _) = submit_ok(&env, env.status(A_KEY, &revoked, StatusAction::Revoke, Some(ReasonCode::Superseded))).await;
    let (_, proof, v) = expect_verdict(&env, &revoked, Verdict::Revoked).await;
    assert_eq!(proof.status_changes.iter().map(|p| p.index).collect::<Vec<_>>(), [revoke_index]);
    assert_eq!(v.record.status_changes[0].reason, Some(ReasonCode::Superseded));
    assert_eq!(v.record.status_changes[0].author, key_id(A_KEY));
    // Revocation is final.
    post_raw(&env, env.status(A_KEY, &revoked, StatusAction::Reinstate, None)).await.problem(400, "document-revoked");
    post_raw(&env, env.status(A_KEY, &revoked, StatusAction::Suspend, None)).await.problem(400, "document-revoked");

    // suspended, then reinstated: genuine again
    let suspended = Doc::new("suspended");
    submit_ok(&env, env.issuance(A_KEY, &suspended, BUILDING, T0 - HOUR, None, None)).await;
    submit_ok(&env, env.status(A_KEY, &suspended, StatusAction::Suspend, Some(ReasonCode::FraudSuspected))).await;
    expect_verdict(&env, &suspended, Verdict::Suspended).await;
    post_raw(&env, env.status(A_KEY, &suspended, StatusAction::Suspend, None)).await.problem(400, "document-invalid-transition");
    submit_ok(&env, env.status(A_KEY, &suspended, StatusAction::Reinstate, None)).await;
    let (_, proof, v) = expect_verdict(&env, &suspended, Verdict::Genuine).await;
    assert_eq!(proof.status_changes.len(), 2);
    assert_eq!(v.record.status_changes.iter().map(|e| e.action).collect::<Vec<_>>(), [StatusAction::Suspend, StatusAction::Reinstate]);
    post_raw(&env, env.status(A_KEY, &suspended, StatusAction::Reinstate, None)).await.problem(400, "document-invalid-transition");

    // Valid for one more hour; valid only from tomorrow.
    let expiring = Doc::new("expiring");
    submit_ok(&env, env.issuance(A_KEY, &expiring, RESIDENT, T0 - DAY, Some(T0 + HOUR), None)).await;
    let future = Doc::new("future");
    submit_ok(&env, env.issuance(A_KEY, &future, RESIDENT, T0 + DAY, Some(T0 + 30 * DAY), None)).await;
    expect_verdict(&env, &expiring, Verdict::Genuine).await;
    expect_verdict(&env, &future, Verdict::NotYetValid).await;

    // unknown: never issued; one flipped byte; the right file with another salt
    let never = Doc::new("never issued");
    expect_unknown(&env, &never.file, &never.salt).await;
    let mut flipped = genuine.file.clone();
    flipped[12] ^= 0x01;
    expect_unknown(&env, &flipped, &genuine.salt).await;
    let appended = [genuine.file.as_slice(), b"\n"].concat();
    expect_unknown(&env, &appended, &genuine.salt).await;
    expect_unknown(&env, &genuine.file, &never.salt).await;
    // Offline, the genuine document's proof does not open on the altered file: `unknown`.
    for (file, salt) in [(&flipped, &genuine.salt), (&genuine.file, &never.salt)] {
        let err = verify_document(&env.genesis, file, salt, &genuine_proof, env.now()).unwrap_err();
        assert!(matches!(err, DocumentProofError::CommitmentMismatch { .. }), "{err}");
        assert_eq!((err.verdict(), err.slug()), (Some(Verdict::Unknown), "document-commitment-mismatch"));
    }
    // Another document's proof for this file: also only `unknown`.
    let err = verify_document(&env.genesis, &revoked.file, &revoked.salt, &genuine_proof, env.now()).unwrap_err();
    assert_eq!(err.verdict(), Some(Verdict::Unknown));

    // issuer-not-trusted: B issues, then a registry change suspends B.
    let by_b = Doc::new("issued by b");
    submit_ok(&env, env.issuance(B_KEY, &by_b, BUILDING, T0 - HOUR, Some(T0 + 90 * DAY), None)).await;
    let (ans, _, _) = expect_verdict(&env, &by_b, Verdict::Genuine).await;
    assert_eq!((ans["issuer"].as_str(), ans["issuerName"].as_str()), (Some(B_DID), Some("B District Office")));
    submit_ok(&env, env.registry_entry(&env.approved(1, RegistryAction::SuspendIssuer { did: B_DID.into() }))).await;
    let (_, proof, v) = expect_verdict(&env, &by_b, Verdict::IssuerNotTrusted).await;
    assert_eq!(proof.registry_changes.len(), 1);
    assert_eq!(v.issuer.unwrap().did, B_DID);
    // A's documents are untouched by B's suspension.
    expect_verdict(&env, &genuine, Verdict::Genuine).await;
    // Reinstated: its documents are judged on their own again.
    submit_ok(&env, env.registry_entry(&env.approved(2, RegistryAction::ReinstateIssuer { did: B_DID.into() }))).await;
    let (_, proof, _) = expect_verdict(&env, &by_b, Verdict::Genuine).await;
    assert_eq!(proof.registry_changes.len(), 2);

    // The clock moves; statuses on the ledger outrank it.
    env.set_time(T0 + HOUR - 1);
    expect_verdict(&env, &expiring, Verdict::Genuine).await;
    env.set_time(T0 + HOUR);
    expect_verdict(&env, &expiring, Verdict::Expired).await;
    expect_verdict(&env, &future, Verdict::NotYetValid).await;
    expect_verdict(&env, &revoked, Verdict::Revoked).await;
    env.set_time(T0 + DAY - 1);
    expect_verdict(&env, &future, Verdict::NotYetValid).await;
    env.set_time(T0 + DAY);
    expect_verdict(&env, &future, Verdict::Genuine).await;
    expect_verdict(&env, &expiring, Verdict::Expired).await;
    // Past its validity a revoked document is still `revoked`, not `expired`.
    expect_verdict(&env, &revoked, Verdict::Revoked).await;
    expect_verdict(&env, &suspended, Verdict::Genuine).await;
    // A verifier's clock is its own: the same proof read at other times.
    let (_, proof, _) = expect_verdict(&env, &future, Verdict::Genuine).await;
    for (now, verdict) in [(T0, Verdict::NotYetValid), (T0 + 30 * DAY - 1, Verdict::Genuine), (T0 + 30 * DAY, Verdict::Expired)] {
        assert_eq!(verify_document(&env.genesis, &future.file, &future.salt, &proof, now).unwrap().verdict, verdict);
    }
    // Entries keep being admitted at the moved clock.
    let later = Doc::new("later");
    submit_ok(&env, env.issuance(A_KEY, &later, RESIDENT, env.now(), Some(env.now() + DAY), None)).await;
    expect_verdict(&env, &later, Verdict::Genuine).await;
    // An issuance that is already over at its own timestamp is refused.
    let stale = Doc::new("stale");
    let detail = post_raw(&env, env.issuance(A_KEY, &stale, RESIDENT, T0 - DAY, Some(env.now()), None))
        .await
        .problem(400, "document-invalid-validity");
    assert!(detail.contains("expired when issued"), "{detail}");

    assert_eq!(server_errors(&env).await, 0);
}

// ---------------------------------------------------------------------------------------
// Issuance authority
// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn untrusted_issuers_are_refused() {
    let env = start().await;
    let a_did = env.a_did();
    let doc = Doc::new("contested");

    // A key in no registry record.
    let detail =
        post_raw(&env, env.issuance(STRANGER, &doc, RESIDENT, T0, None, None)).await.problem(403, "document-issuer-not-authorized");
    assert!(detail.contains(&key_id(STRANGER)) && detail.contains("no trusted issuer"), "{detail}");
    assert!(detail.contains("not a signing key of any trusted issuer"), "{detail}");
    // The validator's consensus key is no issuer key either.
    post_raw(&env, env.issuance(VALIDATOR, &doc, RESIDENT, T0, None, None)).await.problem(403, "document-issuer-not-authorized");
    // A trusted key issuing a type its issuer is not listed for.
    let detail = post_raw(&env, env.issuance(A_KEY, &doc, FAMILY, T0, None, None)).await.problem(403, "document-issuer-not-authorized");
    assert!(detail.contains(FAMILY) && detail.contains(&a_did) && detail.contains("not authorised"), "{detail}");
    let detail = post_raw(&env, env.issuance(B_KEY, &doc, RESIDENT, T0, None, None)).await.problem(403, "document-issuer-not-authorized");
    assert!(detail.contains(RESIDENT) && detail.contains(B_DID), "{detail}");
    // Types match byte for byte.
    post_raw(&env, env.issuance(A_KEY, &doc, "Resident-Registration-Extract", T0, None, None))
        .await
        .problem(403, "document-issuer-not-authorized");
    // A suspended issuer issues nothing.
    submit_ok(&env, env.registry_entry(&env.approved(1, RegistryAction::SuspendIssuer { did: B_DID.into() }))).await;
    let detail = post_raw(&env, env.issuance(B_KEY, &doc, BUILDING, T0, None, None)).await.problem(403, "document-issuer-not-authorized");
    assert!(detail.contains("suspended"), "{detail}");
    // Refused issuances took no index and consumed no nonce; the commitment is unknown.
    assert_eq!(tree_size(&env).await, 1);
    let stranger = key_id(STRANGER).replace('#', "%23");
    assert_eq!(get(&env, &format!("/v1/nonce?author={stranger}")).await.json()["last_nonce"], Value::Null);
    expect_unknown(&env, &doc.file, &doc.salt).await;

    // The rightful issuer is accepted; the commitment is then taken, whoever asks.
    submit_ok(&env, env.issuance(A_KEY, &doc, RESIDENT, T0, None, None)).await;
    let detail = post_raw(&env, env.issuance(A_KEY, &doc, BUILDING, T0, None, None)).await.problem(409, "document-already-issued");
    assert!(detail.contains(&doc.commitment().to_hex()), "{detail}");
    post_raw(&env, env.issuance(STRANGER, &doc, RESIDENT, T0, None, None)).await.problem(409, "document-already-issued");
    expect_verdict(&env, &doc, Verdict::Genuine).await;

    // Status changes by keys that are not the document's issuer's.
    for seed in [STRANGER, B_KEY, VALIDATOR] {
        let detail = post_raw(&env, env.status(seed, &doc, StatusAction::Revoke, None)).await.problem_4xx("document-status-unauthorized");
        assert!(detail.contains("not a current key of the issuer"), "{detail}");
    }
    // A status change of a commitment never issued.
    post_raw(&env, env.status(A_KEY, &Doc::new("nothing"), StatusAction::Revoke, None)).await.problem(400, "document-not-found");
    // Payloads that are not the canonical form, or not valid.
    let canonical = Issuance {
        document_type: RESIDENT.into(),
        commitment: Doc::new("x").commitment(),
        valid_from: T0,
        valid_until: None,
        holder: None,
    }
    .encode();
    let spaced = String::from_utf8(canonical).unwrap().replacen(':', ": ", 1).into_bytes();
    post_raw(&env, env.entry(A_KEY, Kind::DocumentIssuance, spaced)).await.problem(400, "document-payload-not-canonical");
    let bad_holder = Issuance {
        document_type: RESIDENT.into(),
        commitment: Doc::new("y").commitment(),
        valid_from: T0,
        valid_until: None,
        holder: Some("9001011234567".into()),
    };
    post_raw(&env, env.entry(A_KEY, Kind::DocumentIssuance, bad_holder.encode())).await.problem(400, "document-invalid-holder");
    let backwards = Issuance {
        document_type: RESIDENT.into(),
        commitment: Doc::new("z").commitment(),
        valid_from: T0,
        valid_until: Some(T0),
        holder: None,
    };
    post_raw(&env, env.entry(A_KEY, Kind::DocumentIssuance, backwards.encode())).await.problem(400, "document-invalid-validity");
    post_raw(&env, env.entry(A_KEY, Kind::DocumentRevocation, b"{}".to_vec())).await.problem(400, "document-payload-malformed");

    assert_eq!(tree_size(&env).await, 2);
    assert_eq!(server_errors(&env).await, 0);
}

// ---------------------------------------------------------------------------------------
// Registry governance
// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registry_changes_need_a_quorum_and_cannot_be_replayed() {
    let env = start().await;
    let gh = env.gh();
    let suspend_b = || RegistryAction::SuspendIssuer { did: B_DID.into() };
    let kind = Kind::TrustRegistryChange;

    // No approvals.
    let detail = post_raw(&env, env.registry_entry(&RegistryChange::new(1, suspend_b()))).await.problem(403, "registry-no-quorum");
    assert!(detail.contains("power 0 of 1"), "{detail}");
    // An approval under an id that is no genesis validator (signed by the validator's key).
    let mut c = RegistryChange::new(1, suspend_b());
    c.approve("v9", &key(VALIDATOR), &gh);
    post_raw(&env, env.registry_entry(&c)).await.problem(403, "registry-unknown-validator");
    // The validator's id, but a key that is not its consensus key (a writer, a stranger).
    for seed in [A_KEY, STRANGER] {
        let mut c = RegistryChange::new(1, suspend_b());
        c.approve("v0", &key(seed), &gh);
        let detail = post_raw(&env, env.registry_entry(&c)).await.problem(403, "registry-bad-signature");
        assert!(detail.contains("\"v0\""), "{detail}");
    }
    // The validator's approval, but for another chain.
    let mut c = RegistryChange::new(1, suspend_b());
    c.approve("v0", &key(VALIDATOR), &genesis("otherchain", 0).hash());
    post_raw(&env, env.registry_entry(&c)).await.problem(403, "registry-bad-signature");
    // The validator's approval of another change: the action or the version swapped after signing.
    let mut c = env.approved(1, suspend_b());
    c.action = RegistryAction::RemoveIssuer { did: B_DID.into() };
    post_raw(&env, env.registry_entry(&c)).await.problem(403, "registry-bad-signature");
    let mut c = env.approved(2, suspend_b());
    c.version = 1;
    post_raw(&env, env.registry_entry(&c)).await.problem(403, "registry-bad-signature");
    // A valid approval next to an unknown validator's: the whole change is refused.
    let mut c = env.approved(1, suspend_b());
    c.approve("zz", &key(STRANGER), &gh);
    post_raw(&env, env.registry_entry(&c)).await.problem(403, "registry-unknown-validator");
    // A signature that is not 64 bytes of base64: refused at admission.
    let mut c = RegistryChange::new(1, suspend_b());
    c.approvals = vec![Approval { validator: "v0".into(), signature: "AAAA".into() }];
    post_raw(&env, env.registry_entry(&c)).await.problem(403, "registry-bad-signature");
    // One agency cannot change its own entry: the validator's approval of a change about
    // its own agency (issuer A) counts for nothing, and it is the only validator.
    let own = RegistryAction::AddTypes { did: env.a_did(), document_types: vec![FAMILY.into()], credential_types: vec![] };
    let detail = post_raw(&env, env.registry_entry(&env.approved(1, own))).await.problem(403, "registry-self-approval");
    assert!(detail.contains(&env.a_did()), "{detail}");
    // A well-approved change that skips a version.
    post_raw(&env, env.registry_entry(&env.approved(2, suspend_b()))).await.problem(400, "registry-version-gap");
    // A payload that is not the canonical form.
    let spaced = String::from_utf8(env.approved(1, suspend_b()).encode()).unwrap().replacen(':', ": ", 1).into_bytes();
    post_raw(&env, env.entry(SUBMITTER, kind, spaced)).await.problem(400, "registry-change-not-canonical");
    // Nothing above reached the ledger.
    assert_eq!(tree_size(&env).await, 0);
    let r = get(&env, "/v1/registry").await.json();
    assert_eq!((r["version"].as_u64(), issuer_status(&r, B_DID).as_str()), (Some(0), "active"));

    // The approved change, submitted by a key that is neither a writer nor an issuer.
    let suspend = env.approved(1, suspend_b());
    let suspend_entry = env.registry_entry(&suspend);
    let (i1, _) = submit_ok(&env, suspend_entry.clone()).await;
    let r = get(&env, "/v1/registry").await.json();
    assert_eq!((r["version"].as_u64(), issuer_status(&r, B_DID).as_str()), (Some(1), "suspended"));
    // Replays: the same entry (its nonce is spent); the same approved change in a new entry,
    // by the same or by another submitter (its version is spent).
    post_raw(&env, suspend_entry).await.problem(409, "replayed-nonce");
    post_raw(&env, env.registry_entry(&suspend)).await.problem(409, "registry-stale-version");
    post_raw(&env, env.entry(STRANGER, kind, suspend.encode())).await.problem(409, "registry-stale-version");
    // Reinstate (version 2), then try the old suspension again: it would suspend B anew
    // if versions did not pin every approval to one position.
    let (i2, _) = submit_ok(&env, env.registry_entry(&env.approved(2, RegistryAction::ReinstateIssuer { did: B_DID.into() }))).await;
    let detail = post_raw(&env, env.entry(STRANGER, kind, suspend.encode())).await.problem(409, "registry-stale-version");
    assert!(detail.contains("version 1") && detail.contains("version 2"), "{detail}");
    // A fresh suspension approved for version 2 is stale too.
    post_raw(&env, env.registry_entry(&env.approved(2, suspend_b()))).await.problem(409, "registry-stale-version");
    // State rules: reinstating an active issuer; an unknown issuer.
    post_raw(&env, env.registry_entry(&env.approved(3, RegistryAction::ReinstateIssuer { did: B_DID.into() })))
        .await
        .problem(400, "registry-wrong-status");
    post_raw(&env, env.registry_entry(&env.approved(3, RegistryAction::SuspendIssuer { did: C_DID.into() })))
        .await
        .problem(400, "registry-unknown-issuer");

    let r = get(&env, "/v1/registry").await.json();
    assert_eq!((r["version"].as_u64(), r["treeSize"].as_u64()), (Some(2), Some(2)));
    assert_eq!(issuer_status(&r, B_DID), "active");
    let b = r["issuers"].as_array().unwrap().iter().find(|i| i["issuer"]["did"] == B_DID).unwrap().clone();
    assert_eq!(b["changes"], json!([i1, i2]));
    assert_eq!(tree_size(&env).await, 2);
    assert_eq!(server_errors(&env).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn documents_of_a_removed_issuer_stay_genuine() {
    let env = start().await;
    let before = Doc::new("issued before removal");
    submit_ok(&env, env.issuance(B_KEY, &before, BUILDING, T0 - HOUR, Some(T0 + 30 * DAY), None)).await;
    expect_verdict(&env, &before, Verdict::Genuine).await;

    let (removal, _) = submit_ok(&env, env.registry_entry(&env.approved(1, RegistryAction::RemoveIssuer { did: B_DID.into() }))).await;
    let r = get(&env, "/v1/registry").await.json();
    assert_eq!(issuer_status(&r, B_DID), "removed");
    // §6.2: what B vouched for while trusted stays genuine, proven offline too.
    let (ans, proof, v) = expect_verdict(&env, &before, Verdict::Genuine).await;
    assert_eq!(proof.registry_changes.iter().map(|p| p.index).collect::<Vec<_>>(), [removal]);
    assert_eq!(ans["issuerName"], "B District Office");
    assert_eq!(v.issuer.unwrap().keys, [key_id(B_KEY)]);

    // Removal stops future issuance, by name.
    let after = Doc::new("issued after removal");
    let detail = post_raw(&env, env.issuance(B_KEY, &after, BUILDING, T0, None, None)).await.problem(403, "document-issuer-not-authorized");
    assert!(detail.contains("removed") && detail.contains(B_DID), "{detail}");
    expect_unknown(&env, &after.file, &after.salt).await;
    // Removal is for good: B can be neither reinstated nor listed again, and its key stays
    // attached to it.
    post_raw(&env, env.registry_entry(&env.approved(2, RegistryAction::ReinstateIssuer { did: B_DID.into() })))
        .await
        .problem(400, "registry-issuer-removed");
    let again = TrustedIssuer {
        did: B_DID.into(),
        name: "B again".into(),
        keys: vec![key_id(C_KEY)],
        document_types: vec![BUILDING.into()],
        credential_types: vec![],
    };
    post_raw(&env, env.registry_entry(&env.approved(2, RegistryAction::AddIssuer { issuer: again })))
        .await
        .problem(400, "registry-issuer-removed");
    let c_with_b_key = TrustedIssuer {
        did: C_DID.into(),
        name: "C".into(),
        keys: vec![key_id(B_KEY)],
        document_types: vec![BUILDING.into()],
        credential_types: vec![],
    };
    post_raw(&env, env.registry_entry(&env.approved(2, RegistryAction::AddIssuer { issuer: c_with_b_key })))
        .await
        .problem(400, "registry-key-in-use");

    // The removed issuer's key may still suspend its documents, but not reinstate them (§5.2).
    submit_ok(&env, env.status(B_KEY, &before, StatusAction::Suspend, Some(ReasonCode::KeyCompromise))).await;
    expect_verdict(&env, &before, Verdict::Suspended).await;
    let detail =
        post_raw(&env, env.status(B_KEY, &before, StatusAction::Reinstate, None)).await.problem_4xx("document-status-unauthorized");
    assert!(detail.contains("removed"), "{detail}");
    // Governance may: the one validator (not B's agency) approves at sequence 1.
    let mut reinstate = StatusChange {
        document: before.commitment(),
        action: StatusAction::Reinstate,
        reason: Some(ReasonCode::IssuedInError),
        sequence: Some(1),
        approvals: vec![],
    };
    reinstate.approve("v0", &key(VALIDATOR), &env.gh());
    submit_ok(&env, env.entry(SUBMITTER, Kind::DocumentRevocation, reinstate.encode())).await;
    let (_, _, v) = expect_verdict(&env, &before, Verdict::Genuine).await;
    assert_eq!(v.record.status_changes[1].approvers, ["v0"]);
    // Governance replay: the same approved change in a new entry no longer fits the sequence.
    post_raw(&env, env.entry(STRANGER, Kind::DocumentRevocation, reinstate.encode())).await.problem(400, "document-wrong-sequence");
    // And the removed issuer's key may revoke.
    submit_ok(&env, env.status(B_KEY, &before, StatusAction::Revoke, Some(ReasonCode::KeyCompromise))).await;
    let (_, proof, _) = expect_verdict(&env, &before, Verdict::Revoked).await;
    assert_eq!(proof.status_changes.len(), 3);
    assert_eq!(server_errors(&env).await, 0);
}

// ---------------------------------------------------------------------------------------
// Proof bundles
// ---------------------------------------------------------------------------------------

fn flip_hash(h: &mut Hash) {
    h.0[0] ^= 0x01;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tampered_proof_bundles_are_refused() {
    let env = start().await;
    let c_issuer = TrustedIssuer {
        did: C_DID.into(),
        name: "C Registry Office".into(),
        keys: vec![key_id(C_KEY)],
        document_types: vec![FAMILY.into()],
        credential_types: vec![],
    };
    // 0: C is added. 1: B may issue family-relation certificates from here on.
    submit_ok(&env, env.registry_entry(&env.approved(1, RegistryAction::AddIssuer { issuer: c_issuer }))).await;
    let add_types = RegistryAction::AddTypes { did: B_DID.into(), document_types: vec![FAMILY.into()], credential_types: vec![] };
    submit_ok(&env, env.registry_entry(&env.approved(2, add_types))).await;
    // 2: C issues another document. 3: B issues ours. 4, 5: B suspends and reinstates it.
    // 6: C suspends its own. 7: C gets another type. 8: B is suspended.
    let other = Doc::new("other");
    submit_ok(&env, env.issuance(C_KEY, &other, FAMILY, T0, None, None)).await;
    let doc = Doc::new("family relations");
    submit_ok(&env, env.issuance(B_KEY, &doc, FAMILY, T0 - HOUR, None, None)).await;
    submit_ok(&env, env.status(B_KEY, &doc, StatusAction::Suspend, Some(ReasonCode::DataChanged))).await;
    submit_ok(&env, env.status(B_KEY, &doc, StatusAction::Reinstate, None)).await;
    submit_ok(&env, env.status(C_KEY, &other, StatusAction::Suspend, None)).await;
    let c_types = RegistryAction::AddTypes { did: C_DID.into(), document_types: vec![BUILDING.into()], credential_types: vec![] };
    submit_ok(&env, env.registry_entry(&env.approved(3, c_types))).await;
    submit_ok(&env, env.registry_entry(&env.approved(4, RegistryAction::SuspendIssuer { did: B_DID.into() }))).await;
    let (_, proof, _) = expect_verdict(&env, &doc, Verdict::IssuerNotTrusted).await;
    // Every registry change of the tree is served, not only those before the issuance.
    assert_eq!(proof.registry_changes.iter().map(|p| p.index).collect::<Vec<_>>(), [0, 1, 7, 8]);
    assert_eq!(proof.status_changes.iter().map(|p| p.index).collect::<Vec<_>>(), [4, 5]);
    assert_eq!(proof.issuance.index, 3);
    let (_, other_proof, _) = expect_verdict(&env, &other, Verdict::Suspended).await;
    let now = env.now();
    let check = |p: &DocumentProof| verify_document(&env.genesis, &doc.file, &doc.salt, p, now);
    let refused = |p: &DocumentProof, slug: &str| {
        let err = check(p).unwrap_err();
        assert_eq!(err.slug(), slug, "{err}");
        assert_eq!(err.verdict(), None, "a bad proof gives no verdict: {err}");
        err
    };
    assert_eq!(check(&proof).unwrap().verdict, Verdict::IssuerNotTrusted);

    // A flipped hash in an audit path: of the issuance, a status change, a registry change.
    let mut p = proof.clone();
    flip_hash(&mut p.issuance.proof[0]);
    assert!(matches!(refused(&p, "document-proof-inclusion"), DocumentProofError::Inclusion { index: 3, .. }));
    let mut p = proof.clone();
    flip_hash(p.status_changes[1].proof.last_mut().unwrap());
    assert!(matches!(refused(&p, "document-proof-inclusion"), DocumentProofError::Inclusion { index: 5, .. }));
    let mut p = proof.clone();
    flip_hash(&mut p.registry_changes[1].proof[0]);
    assert!(matches!(refused(&p, "document-proof-inclusion"), DocumentProofError::Inclusion { index: 1, .. }));
    // A leaf index that does not match its audit path.
    let mut p = proof.clone();
    p.issuance.index = 2;
    assert!(matches!(refused(&p, "document-proof-inclusion"), DocumentProofError::Inclusion { index: 2, .. }));

    // Another chain's checkpoint: a node of a chain with the same id and validator but
    // another genesis file, and one of another chain id. Each verifies on its own chain.
    for other_genesis in [genesis("doctest", 1), genesis("otherchain", 0)] {
        let foreign = start_with(other_genesis.clone()).await;
        submit_ok(&foreign, foreign.issuance(A_KEY, &doc, RESIDENT, T0, None, None)).await;
        let foreign_cp = get(&foreign, "/v1/checkpoint").await.text();
        SignedCheckpoint::parse(&foreign_cp).unwrap().verify(&other_genesis).unwrap();
        let mut p = proof.clone();
        p.checkpoint = foreign_cp;
        let err = refused(&p, "document-proof-checkpoint");
        assert!(
            matches!(err, DocumentProofError::Checkpoint(CheckpointError::WrongGenesis { .. } | CheckpointError::WrongOrigin { .. })),
            "{err}"
        );
        // Nor does this chain's proof verify against the other genesis.
        let err = verify_document(&other_genesis, &doc.file, &doc.salt, &proof, now).unwrap_err();
        assert!(matches!(err, DocumentProofError::Checkpoint(_)), "{err}");
        foreign.node.stop().await;
    }
    // This chain's earlier checkpoint: the audit paths lead to another root.
    let mut p = proof.clone();
    p.checkpoint = get(&env, "/v1/checkpoint?size=8").await.text();
    refused(&p, "document-proof-inclusion");
    // The checkpoint's signature, or its root, altered.
    let mut cp = SignedCheckpoint::parse(&proof.checkpoint).unwrap();
    cp.signatures[0].signature[63] ^= 0x01;
    let mut p = proof.clone();
    p.checkpoint = cp.to_text();
    assert!(matches!(refused(&p, "document-proof-checkpoint"), DocumentProofError::Checkpoint(CheckpointError::BadSignature(_))));
    let mut cp = SignedCheckpoint::parse(&proof.checkpoint).unwrap();
    flip_hash(&mut cp.checkpoint.root);
    let mut p = proof.clone();
    p.checkpoint = cp.to_text();
    refused(&p, "document-proof-checkpoint");

    // A registry change dropped from the middle: the next version no longer fits.
    let mut p = proof.clone();
    p.registry_changes.remove(2);
    assert!(matches!(refused(&p, "document-proof-registry"), DocumentProofError::Registry { index: 8, .. }));
    // The first one dropped: the second no longer fits either.
    let mut p = proof.clone();
    p.registry_changes.remove(0);
    assert!(matches!(refused(&p, "document-proof-registry"), DocumentProofError::Registry { index: 1, .. }));
    // The change that authorised B for the type dropped: the issuer's authority is
    // re-checked, and the issuance no longer applies.
    let mut p = proof.clone();
    p.registry_changes.truncate(1);
    assert!(matches!(refused(&p, "document-proof-replay"), DocumentProofError::Document { index: 3, .. }));
    // Known limit (§7.3): dropping the *last* change is not detected, and hides B's suspension.
    let mut p = proof.clone();
    p.registry_changes.pop();
    assert_eq!(check(&p).unwrap().verdict, Verdict::Genuine);

    // A status change dropped from the middle: the reinstatement no longer applies.
    let mut p = proof.clone();
    p.status_changes.remove(0);
    assert!(matches!(refused(&p, "document-proof-replay"), DocumentProofError::Document { index: 5, .. }));
    // Status changes, or registry changes, out of order.
    let mut p = proof.clone();
    p.status_changes.swap(0, 1);
    refused(&p, "document-proof-order");
    let mut p = proof.clone();
    p.registry_changes.swap(0, 2);
    refused(&p, "document-proof-order");
    // A status change before the issuance.
    let mut p = proof.clone();
    p.status_changes.insert(0, proof.registry_changes[1].clone());
    refused(&p, "document-proof-order");
    // Another document's status change slipped in.
    let mut p = proof.clone();
    p.status_changes.push(other_proof.status_changes[0].clone());
    assert!(matches!(refused(&p, "document-proof-other-document"), DocumentProofError::OtherDocument { index: 6, .. }));
    // An entry of the wrong kind in a list.
    let mut p = proof.clone();
    p.registry_changes.insert(2, proof.issuance.clone());
    assert!(matches!(refused(&p, "document-proof-wrong-kind"), DocumentProofError::WrongKind { index: 3, .. }));
    let mut p = proof.clone();
    p.issuance = proof.registry_changes[1].clone();
    p.status_changes.clear();
    assert!(matches!(refused(&p, "document-proof-wrong-kind"), DocumentProofError::WrongKind { index: 1, .. }));
    // A byte of a proven entry flipped: its signature no longer verifies.
    let mut p = proof.clone();
    let mut bytes = base64::engine::general_purpose::STANDARD.decode(&p.issuance.entry).unwrap();
    let payload_end = bytes.len() - 65;
    bytes[payload_end] ^= 0x01;
    p.issuance.entry = base64::engine::general_purpose::STANDARD.encode(bytes);
    refused(&p, "document-proof-entry");
    let mut p = proof.clone();
    p.status_changes[0].entry = "not base64!".into();
    refused(&p, "document-proof-entry");
    // The issuance swapped for another document's: the statuses are about someone else.
    let mut p = proof.clone();
    p.issuance = other_proof.issuance.clone();
    assert!(matches!(refused(&p, "document-proof-other-document"), DocumentProofError::OtherDocument { index: 4, .. }));
    // Another document's whole (sound) proof for this file: `unknown`.
    let err = check(&other_proof).unwrap_err();
    assert!(matches!(err, DocumentProofError::CommitmentMismatch { .. }), "{err}");
    assert_eq!(err.verdict(), Some(Verdict::Unknown));
    // Too many entries.
    let mut p = proof.clone();
    p.status_changes = vec![proof.status_changes[0].clone(); 257];
    refused(&p, "document-proof-too-large");
}

// ---------------------------------------------------------------------------------------
// The registry at earlier sizes
// ---------------------------------------------------------------------------------------

/// `GET /v1/registry[?size=N]`, checked offline: every change entry verifies against the
/// answer's checkpoint, and replaying them from genesis gives the answer's version and
/// issuers.
async fn proven_registry(env: &Env, size: Option<u64>) -> Value {
    let path = size.map_or_else(|| "/v1/registry".to_owned(), |s| format!("/v1/registry?size={s}"));
    let a = get(env, &path).await;
    assert_eq!(a.status, 200, "{}", a.text());
    let r = a.json();
    let proofs: Vec<EntryProof> = serde_json::from_value(r["changes"].clone()).unwrap();
    let (cp, entries) = verify_entries(&env.genesis, r["checkpoint"].as_str().unwrap(), &proofs).unwrap();
    assert_eq!(Some(cp.checkpoint.size), r["treeSize"].as_u64());
    if let Some(s) = size {
        assert_eq!(cp.checkpoint.size, s);
    }
    let changes: Vec<(u64, RegistryChange)> = entries.iter().map(|(i, e)| (*i, RegistryChange::from_entry(e).unwrap())).collect();
    let replayed = registry::replay(&env.genesis, &changes).unwrap();
    assert_eq!(Some(replayed.version()), r["version"].as_u64());
    assert_eq!(serde_json::to_value(replayed.issuers().collect::<Vec<_>>()).unwrap(), r["issuers"]);
    r
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registry_as_of_earlier_checkpoints() {
    let env = start().await;
    let c_issuer = TrustedIssuer {
        did: C_DID.into(),
        name: "C Registry Office".into(),
        keys: vec![key_id(C_KEY)],
        document_types: vec![FAMILY.into()],
        credential_types: vec![],
    };
    let (_, s_before) = submit_ok(&env, env.issuance(A_KEY, &Doc::new("one"), RESIDENT, T0, None, None)).await;
    let (_, s_add) = submit_ok(&env, env.registry_entry(&env.approved(1, RegistryAction::AddIssuer { issuer: c_issuer }))).await;
    submit_ok(&env, env.issuance(C_KEY, &Doc::new("two"), FAMILY, T0, None, None)).await;
    let (_, s_suspend) = submit_ok(&env, env.registry_entry(&env.approved(2, RegistryAction::SuspendIssuer { did: B_DID.into() }))).await;
    let new_keys = RegistryAction::SetKeys { did: C_DID.into(), keys: vec![key_id(D_KEY)] };
    let (_, s_keys) = submit_ok(&env, env.registry_entry(&env.approved(3, new_keys))).await;
    // C's old key lost its power, its new one issues.
    post_raw(&env, env.issuance(C_KEY, &Doc::new("three"), FAMILY, T0, None, None)).await.problem(403, "document-issuer-not-authorized");
    let (_, s_last) = submit_ok(&env, env.issuance(D_KEY, &Doc::new("three"), FAMILY, T0, None, None)).await;

    // The genesis checkpoint (size 0) and the one before any change: the genesis registry.
    for size in [0, s_before] {
        let r = proven_registry(&env, Some(size)).await;
        assert_eq!((r["version"].as_u64(), r["changes"].as_array().unwrap().len()), (Some(0), 0));
        assert_eq!(r["issuers"].as_array().unwrap().len(), 2);
        assert_eq!(issuer_status(&r, B_DID), "active");
    }
    let r = proven_registry(&env, Some(s_add)).await;
    assert_eq!(
        (r["version"].as_u64(), issuer_status(&r, C_DID).as_str(), issuer_status(&r, B_DID).as_str()),
        (Some(1), "active", "active")
    );
    // Between two changes: the state of the earlier one.
    let r = proven_registry(&env, Some(s_add + 1)).await;
    assert_eq!(r["version"], 1);
    let r = proven_registry(&env, Some(s_suspend)).await;
    assert_eq!((r["version"].as_u64(), issuer_status(&r, B_DID).as_str()), (Some(2), "suspended"));
    let c_keys =
        |r: &Value| r["issuers"].as_array().unwrap().iter().find(|i| i["issuer"]["did"] == C_DID).unwrap()["issuer"]["keys"].clone();
    assert_eq!(c_keys(&r), json!([key_id(C_KEY)]));
    let r = proven_registry(&env, Some(s_keys)).await;
    assert_eq!((r["version"].as_u64(), c_keys(&r)), (Some(3), json!([key_id(D_KEY)])));
    let latest = proven_registry(&env, None).await;
    assert_eq!(latest["treeSize"].as_u64(), Some(s_last));
    assert_eq!(proven_registry(&env, Some(s_last)).await, latest);

    // A change entry dropped from the middle of a served list fails the replay.
    let proofs: Vec<EntryProof> = serde_json::from_value(latest["changes"].clone()).unwrap();
    let (_, entries) = verify_entries(&env.genesis, latest["checkpoint"].as_str().unwrap(), &proofs).unwrap();
    let mut changes: Vec<(u64, RegistryChange)> = entries.iter().map(|(i, e)| (*i, RegistryChange::from_entry(e).unwrap())).collect();
    changes.remove(1);
    assert_eq!(registry::replay(&env.genesis, &changes).unwrap_err().slug(), "registry-version-gap");
    // A tampered audit path fails the entry check.
    let mut bad = proofs.clone();
    flip_hash(&mut bad[0].proof[0]);
    assert!(verify_entries(&env.genesis, latest["checkpoint"].as_str().unwrap(), &bad).is_err());

    // A batch: a change and an issuance that relies on it, committed together. The
    // issuance sees the change (§2.1); no checkpoint is published between them.
    let d_issuer = TrustedIssuer {
        did: D_DID.into(),
        name: "D Land Office".into(),
        keys: vec![key_id(STRANGER)],
        document_types: vec![BUILDING.into()],
        credential_types: vec![],
    };
    let batch = [
        env.registry_entry(&env.approved(4, RegistryAction::AddIssuer { issuer: d_issuer })),
        env.issuance(STRANGER, &Doc::new("four"), BUILDING, T0, None, None),
        env.registry_entry(&env.approved(5, RegistryAction::SuspendIssuer { did: D_DID.into() })),
        env.issuance(STRANGER, &Doc::new("five"), BUILDING, T0, None, None),
    ];
    let body = json!({"entries": batch.iter().map(|e| base64::engine::general_purpose::STANDARD.encode(e)).collect::<Vec<_>>()});
    let a = call("POST", format!("{}/v1/entries", env.node.url()), Some("application/json".into()), body.to_string().into_bytes()).await;
    assert_eq!(a.status, 200, "{}", a.text());
    let res = a.json()["results"].clone();
    assert_eq!(
        (res[0]["index"].as_u64(), res[1]["index"].as_u64(), res[2]["index"].as_u64()),
        (Some(s_last), Some(s_last + 1), Some(s_last + 2))
    );
    assert_eq!(res[3]["error"]["type"], "urn:dojang:problem:document-issuer-not-authorized");
    assert_eq!(res[3]["error"]["status"], 403);
    let r = proven_registry(&env, None).await;
    assert_eq!(
        (r["version"].as_u64(), r["treeSize"].as_u64(), issuer_status(&r, D_DID).as_str()),
        (Some(5), Some(s_last + 3), "suspended")
    );
    expect_verdict(&env, &Doc::new("four"), Verdict::IssuerNotTrusted).await;
    get(&env, &format!("/v1/registry?size={}", s_last + 1)).await.problem(404, "not-found");

    // Bad sizes and queries.
    get(&env, "/v1/registry?size=999").await.problem(400, "bad-range");
    get(&env, "/v1/registry?size=abc").await.problem(400, "bad-query");
    get(&env, "/v1/registry?size=-1").await.problem(400, "bad-query");
    get(&env, "/v1/registry?colour=blue").await.problem(400, "bad-query");
    assert_eq!(server_errors(&env).await, 0);
}

// ---------------------------------------------------------------------------------------
// Expiry feed
// ---------------------------------------------------------------------------------------

async fn expiring(env: &Env, query: &str) -> (u64, Vec<String>) {
    let a = get(env, &format!("/v1/documents/expiring?{query}")).await;
    assert_eq!(a.status, 200, "{}", a.text());
    let v = a.json();
    let docs = v["documents"].as_array().unwrap().iter().map(|d| d["commitment"].as_str().unwrap().to_owned()).collect();
    (v["days"].as_u64().unwrap(), docs)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expiry_feed_lists_a_holders_documents_that_lapse_soon() {
    let env = start().await;
    let h1 = hex::encode([0x11; 32]);
    let h2 = hex::encode([0x22; 32]);
    let mut issued = std::collections::HashMap::new();
    // (name, issuer key, type, holder, days of validity left)
    type Plan<'a> = (&'a str, u8, &'a str, Option<&'a str>, Option<u64>);
    let plan: [Plan<'_>; 9] = [
        ("in-20-days", A_KEY, RESIDENT, Some(&h1), Some(20)),
        ("in-5-days", A_KEY, RESIDENT, Some(&h1), Some(5)),
        ("in-40-days", A_KEY, RESIDENT, Some(&h1), Some(40)),
        ("no-expiry", A_KEY, RESIDENT, Some(&h1), None),
        ("revoked-in-3-days", A_KEY, RESIDENT, Some(&h1), Some(3)),
        ("suspended-in-10-days", A_KEY, BUILDING, Some(&h1), Some(10)),
        ("b-in-25-days", B_KEY, BUILDING, Some(&h1), Some(25)),
        ("other-holder-in-2-days", A_KEY, RESIDENT, Some(&h2), Some(2)),
        ("no-holder-in-1-day", A_KEY, RESIDENT, None, Some(1)),
    ];
    for (name, seed, doc_type, holder, days) in plan {
        let doc = Doc::new(name);
        submit_ok(&env, env.issuance(seed, &doc, doc_type, T0 - DAY, days.map(|d| T0 + d * DAY), holder)).await;
        issued.insert(name, doc.commitment().to_hex());
    }
    submit_ok(&env, env.status(A_KEY, &Doc::new("revoked-in-3-days"), StatusAction::Revoke, None)).await;
    submit_ok(&env, env.status(A_KEY, &Doc::new("suspended-in-10-days"), StatusAction::Suspend, None)).await;
    let names = |v: &[&str]| v.iter().map(|n| issued[n].clone()).collect::<Vec<_>>();

    // Soonest first; not revoked ones, not those without expiry, not other holders'; suspended
    // ones (they may be reinstated) and other issuers' are listed.
    let within_30 = names(&["in-5-days", "suspended-in-10-days", "in-20-days", "b-in-25-days"]);
    assert_eq!(expiring(&env, &format!("holder={h1}&days=30")).await, (30, within_30.clone()));
    assert_eq!(expiring(&env, &format!("holder={h1}")).await, (30, within_30), "30 days by default");
    assert_eq!(expiring(&env, &format!("holder={h1}&days=7")).await, (7, names(&["in-5-days"])));
    assert_eq!(expiring(&env, &format!("holder={h1}&days=0")).await, (0, vec![]));
    let all = names(&["in-5-days", "suspended-in-10-days", "in-20-days", "b-in-25-days", "in-40-days"]);
    assert_eq!(expiring(&env, &format!("holder={h1}&days=100000")).await, (3650, all), "at most ten years");
    assert_eq!(expiring(&env, &format!("holder={h2}&days=30")).await, (30, names(&["other-holder-in-2-days"])));
    assert_eq!(expiring(&env, &format!("holder={}&days=30", hex::encode([0x33; 32]))).await, (30, vec![]));
    assert_eq!(expiring(&env, "holder=alice&days=30").await, (30, vec![]));
    // The records are the ledger's.
    let a = get(&env, &format!("/v1/documents/expiring?holder={h1}&days=12")).await.json();
    assert_eq!(a["holder"], h1);
    let records: Vec<DocumentRecord> = serde_json::from_value(a["documents"].clone()).unwrap();
    assert_eq!(records.len(), 2);
    assert_eq!(
        (records[1].status, records[1].holder.as_deref(), records[1].valid_until),
        (DocumentStatus::Suspended, Some(h1.as_str()), Some(T0 + 10 * DAY))
    );

    // Listed while `now < validUntil <= now + days`: until the instant a document expires.
    env.set_time(T0 + 5 * DAY - 1);
    assert_eq!(expiring(&env, &format!("holder={h1}&days=6")).await.1, names(&["in-5-days", "suspended-in-10-days"]));
    env.set_time(T0 + 5 * DAY);
    assert_eq!(expiring(&env, &format!("holder={h1}&days=6")).await.1, names(&["suspended-in-10-days"]));
    assert_eq!(expiring(&env, &format!("holder={h1}&days=5")).await.1, names(&["suspended-in-10-days"]), "validUntil = now + days");
    // Reinstated, the suspended one stays listed; revoked, it leaves the feed.
    submit_ok(&env, env.status(A_KEY, &Doc::new("suspended-in-10-days"), StatusAction::Reinstate, None)).await;
    assert_eq!(expiring(&env, &format!("holder={h1}&days=6")).await.1, names(&["suspended-in-10-days"]));
    submit_ok(&env, env.status(A_KEY, &Doc::new("suspended-in-10-days"), StatusAction::Revoke, None)).await;
    assert_eq!(expiring(&env, &format!("holder={h1}&days=6")).await.1, Vec::<String>::new());

    // Bad queries.
    get(&env, "/v1/documents/expiring").await.problem(400, "bad-query");
    get(&env, "/v1/documents/expiring?days=3").await.problem(400, "bad-query");
    get(&env, &format!("/v1/documents/expiring?holder={h1}&days=-1")).await.problem(400, "bad-query");
    get(&env, &format!("/v1/documents/expiring?holder={h1}&days=soon")).await.problem(400, "bad-query");
    get(&env, &format!("/v1/documents/expiring?holder={h1}&colour=blue")).await.problem(400, "bad-query");
    assert_eq!(server_errors(&env).await, 0);
}

// ---------------------------------------------------------------------------------------
// Bad input
// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_verification_requests_get_clear_problems() {
    let env = start().await;
    let doc = Doc::new("input checks");
    submit_ok(&env, env.issuance(A_KEY, &doc, RESIDENT, T0, None, None)).await;
    let salt = doc.salt_hex();

    // Salts: not hex, too short, too long, missing, given twice.
    let detail = verify_raw(&env, &doc.file, &format!("?salt={}", "zz".repeat(32))).await.problem(400, "bad-salt");
    assert!(detail.contains("zzzz"), "{detail}");
    verify_raw(&env, &doc.file, "?salt=abcd").await.problem(400, "bad-salt");
    verify_raw(&env, &doc.file, &format!("?salt={salt}00")).await.problem(400, "bad-salt");
    verify_raw(&env, &doc.file, "?salt=").await.problem(400, "bad-salt");
    let detail = verify_raw(&env, &doc.file, "").await.problem(400, "bad-salt");
    assert!(detail.contains("salt"), "{detail}");
    verify_raw(&env, &doc.file, &format!("?salt={salt}&salt={salt}")).await.problem(400, "bad-query");
    verify_raw(&env, &doc.file, &format!("?salt={salt}&colour=blue")).await.problem(400, "bad-query");
    // The good request, for contrast.
    assert_eq!(verify_raw(&env, &doc.file, &format!("?salt={salt}")).await.json()["verdict"], "genuine");

    // Hex of either case, in the salt and in the path.
    let upper = verify_raw(&env, &doc.file, &format!("?salt={}", salt.to_uppercase())).await.json();
    assert_eq!(upper["verdict"], "genuine");
    assert_eq!(get(&env, &format!("/v1/documents/{}", doc.commitment().to_hex().to_uppercase())).await.json(), upper);
    // A later salt source replaces an earlier one: a receipt field over a wrong `?salt=`.
    let receipt = doc.receipt(RESIDENT, &env.a_did()).encode();
    let url = format!("{}/v1/documents/verify?salt={}", env.node.url(), "00".repeat(32));
    let body = multipart(&[("file", Some("x.pdf"), &doc.file), ("receipt", None, receipt.as_bytes())]);
    let a = call("POST", url, Some(format!("multipart/form-data; boundary={BOUNDARY}")), body).await;
    assert_eq!(a.json(), upper);

    // Commitments in the path: not hex, too short, too long.
    for bad in ["zz".repeat(32), "abcd".into(), format!("{}00", doc.commitment().to_hex()), "not-a-commitment".into()] {
        get(&env, &format!("/v1/documents/{bad}")).await.problem(400, "bad-path");
    }
    // A well-formed commitment nobody issued.
    let a = by_commitment(&env, &Hash([7; 32])).await;
    assert_eq!((a.status, a.json()), (200, json!({"verdict": "unknown", "commitment": Hash([7; 32]).to_hex()})));

    // Multipart: no file; a file but no salt; a bad receipt; a bad salt field; no boundary;
    // a body cut short.
    let detail = verify_multipart(&env, &[("receipt", None, receipt.as_bytes())]).await.problem(400, "bad-multipart");
    assert!(detail.contains("file"), "{detail}");
    verify_multipart(&env, &[("salt", None, salt.as_bytes())]).await.problem(400, "bad-multipart");
    verify_multipart(&env, &[]).await.problem(400, "bad-multipart");
    verify_multipart(&env, &[("document", Some("x.pdf"), &doc.file), ("receipt", None, receipt.as_bytes())])
        .await
        .problem(400, "bad-multipart");
    verify_multipart(&env, &[("file", Some("x.pdf"), &doc.file)]).await.problem(400, "bad-salt");
    let upper_salt = receipt.replace(&salt, &salt.to_uppercase());
    verify_multipart(&env, &[("file", Some("x.pdf"), &doc.file), ("receipt", None, upper_salt.as_bytes())])
        .await
        .problem(400, "bad-receipt");
    let extra_member = receipt.replacen('{', "{\"holder\":\"x\",", 1);
    verify_multipart(&env, &[("file", Some("x.pdf"), &doc.file), ("receipt", None, extra_member.as_bytes())])
        .await
        .problem(400, "bad-receipt");
    verify_multipart(&env, &[("file", Some("x.pdf"), &doc.file), ("receipt", None, b"not json")]).await.problem(400, "bad-receipt");
    verify_multipart(&env, &[("file", Some("x.pdf"), &doc.file), ("salt", None, b"xyz")]).await.problem(400, "bad-salt");
    let url = format!("{}/v1/documents/verify", env.node.url());
    let body = multipart(&[("file", Some("x.pdf"), &doc.file), ("salt", None, salt.as_bytes())]);
    call("POST", url.clone(), Some("multipart/form-data".into()), body.clone()).await.problem(400, "bad-multipart");
    let cut = body[..body.len() - 30].to_vec();
    call("POST", url.clone(), Some(format!("multipart/form-data; boundary={BOUNDARY}")), cut).await.problem(400, "bad-multipart");

    // A receipt whose claims are wrong: the node answers for the proven record, and the
    // claims are caught against it.
    let lying = doc.receipt(BUILDING, B_DID);
    let a = verify_multipart(&env, &[("file", Some("x.pdf"), &doc.file), ("receipt", None, lying.encode().as_bytes())]).await;
    let ans = a.json();
    assert_eq!((ans["verdict"].as_str(), ans["documentType"].as_str()), (Some("genuine"), Some(RESIDENT)));
    let record: DocumentRecord = serde_json::from_value(ans["record"].clone()).unwrap();
    assert_eq!(lying.matches(&record).unwrap_err().slug(), "document-receipt-mismatch");

    // Oversized bodies; wrong methods.
    verify_raw(&env, &vec![0u8; (1 << 20) + 1], &format!("?salt={salt}")).await.problem(413, "request-too-large");
    call("POST", format!("{}/v1/documents/{}", env.node.url(), doc.commitment().to_hex()), None, b"x".to_vec())
        .await
        .problem(405, "method-not-allowed");
    call("DELETE", format!("{}/v1/registry", env.node.url()), None, vec![]).await.problem(405, "method-not-allowed");
    // `verify` and `expiring` are never taken for a commitment.
    get(&env, "/v1/documents/verify").await.problem(405, "method-not-allowed");
    call("POST", format!("{}/v1/documents/expiring", env.node.url()), None, b"x".to_vec()).await.problem(405, "method-not-allowed");

    assert_eq!(tree_size(&env).await, 1);
    assert_eq!(server_errors(&env).await, 0);
}

// ---------------------------------------------------------------------------------------
// Answers while entries commit
// ---------------------------------------------------------------------------------------

/// Polls `GET /v1/documents/{commitment}` of the document whose entry is being committed
/// (`target`), from a plain thread, until `stop`. Every answer must be a 200 whose proof
/// verifies offline to the node's own verdict; returns how many answers were checked and
/// what was wrong with the others.
fn poll_answers(
    url: String,
    genesis: Genesis,
    docs: Arc<Vec<Doc>>,
    target: Arc<std::sync::atomic::AtomicUsize>,
    stop: Arc<std::sync::atomic::AtomicBool>,
) -> std::thread::JoinHandle<(u64, Vec<String>)> {
    std::thread::spawn(move || {
        let agent = ureq::agent();
        let (mut checked, mut wrong) = (0u64, Vec::new());
        while !stop.load(Ordering::Relaxed) {
            let doc = &docs[target.load(Ordering::Relaxed)];
            let resp = match agent.get(&format!("{url}/v1/documents/{}", doc.commitment().to_hex())).call() {
                Ok(r) => r,
                Err(ureq::Error::Status(status, r)) => {
                    wrong.push(format!("{status}: {}", r.into_string().unwrap_or_default()));
                    continue;
                }
                Err(e) => panic!("transport error: {e}"),
            };
            let v: Value = resp.into_json().unwrap();
            checked += 1;
            if v["verdict"] == "unknown" {
                continue;
            }
            let proof: DocumentProof = serde_json::from_value(v["proof"].clone()).unwrap();
            match verify_document(&genesis, &doc.file, &doc.salt, &proof, T0) {
                Ok(off) if v["verdict"] == off.verdict.as_str() => {}
                Ok(off) => wrong.push(format!("the node says {} but its proof shows {}", v["verdict"], off.verdict.as_str())),
                Err(e) => wrong.push(format!("the node's proof does not verify: {e}")),
            }
        }
        (checked, wrong)
    })
}

/// An answer is read from one published checkpoint: a document committed after it is not
/// yet in the answer (no 500 while the batch that issues it is being published), and the
/// verdict is the one its proof gives (not a newer status or registry state the
/// checkpoint does not cover). Timing-dependent, so it polls a few thousand commits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_during_commits_agree_with_their_proofs() {
    let env = start().await;
    let docs: Arc<Vec<Doc>> = Arc::new((0..1500).map(|i| Doc::new(&format!("concurrent {i}"))).collect());
    let (mut checked, mut wrong) = (0u64, Vec::new());
    for phase in [StatusAction::Suspend, StatusAction::Revoke] {
        let target = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let poller = poll_answers(env.node.url(), env.genesis.clone(), docs.clone(), target.clone(), stop.clone());
        for (i, doc) in docs.iter().enumerate() {
            target.store(i, Ordering::Relaxed);
            if phase == StatusAction::Suspend {
                submit_ok(&env, env.issuance(A_KEY, doc, RESIDENT, T0 - HOUR, None, None)).await;
            }
            submit_ok(&env, env.status(A_KEY, doc, phase, None)).await;
        }
        stop.store(true, Ordering::Relaxed);
        let (n, w) = poller.join().unwrap();
        checked += n;
        wrong.extend(w);
    }
    assert!(checked > 0);
    let server_errors = wrong.iter().filter(|w| w.starts_with('5')).count();
    let first_disagreement = wrong.iter().find(|w| !w.starts_with('5'));
    assert!(
        wrong.is_empty(),
        "{} of {checked} answers were wrong: {server_errors} server errors (e.g. {:?}), {} disagreements (e.g. {first_disagreement:?})",
        wrong.len(),
        wrong.iter().find(|w| w.starts_with('5')),
        wrong.len() - server_errors,
    );
}
