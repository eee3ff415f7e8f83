//! did:dojang over HTTP against a real in-process node (memory storage, fixed clock): DID
//! operations submitted as ordinary entries by keys that are no genesis writers, resolved at
//! `GET /1.0/identifiers/{did}` (W3C DID Resolution HTTP binding) with content negotiation,
//! historic versions and a `dojangProof` that verifies against the genesis alone; every
//! refused operation answered with the right problem, every resolution failure with the
//! right status and resolution-result shape.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

mod support;

use std::sync::Arc;

use base64::Engine as _;
use dojang_core::did_dojang::{
    CreateOp, DeactivateOp, DidOperation, DocumentContent, RotateOp, Service, UpdateOp, VerificationMethod, VersionSelector, derive_did,
    format_rfc3339_ms, next_key_commitment,
};
use dojang_core::did_key::{DidKey, MULTIKEY_TYPE};
use dojang_core::did_proof::DidProof;
use dojang_core::entry::{Kind, UnsignedEntry, leaf_hash};
use dojang_core::genesis::{Genesis, Validator};
use dojang_core::hash::Hash;
use dojang_node::clock::ManualClock;
use dojang_node::node::RunningNode;
use ed25519_dalek::SigningKey;
use serde_json::{Value, json};

/// The node clock; every entry is stamped within the ±10 min admission window around it.
const NOW: u64 = 1_780_000_000_000;
const MINUTE: u64 = 60_000;

struct Env {
    _dir: tempfile::TempDir,
    node: RunningNode,
    genesis: Genesis,
    writer: SigningKey,
}

async fn start() -> Env {
    let dir = tempfile::tempdir().unwrap();
    let vkey = SigningKey::from_bytes(&[1; 32]);
    let writer = SigningKey::from_bytes(&[2; 32]);
    let genesis =
        Genesis::new("didtest", 0, vec![Validator::with_keys("v0", "Validator 0", &vkey.verifying_key(), &[writer.verifying_key()], "")]);
    let node = support::start_node(dir.path(), &genesis, &vkey, 1 << 20, Arc::new(ManualClock::new(NOW))).await;
    Env { _dir: dir, node, genesis, writer }
}

fn key(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

fn dk(seed: u8) -> DidKey {
    DidKey::from_verifying_key(&key(seed).verifying_key())
}

/// A signed entry of any kind and payload, by `signer`.
fn signed(g: &Genesis, signer: &SigningKey, kind: Kind, nonce: u64, timestamp_ms: u64, payload: Vec<u8>) -> Vec<u8> {
    UnsignedEntry { kind, author: DidKey::from_verifying_key(&signer.verifying_key()).key_id(), nonce, timestamp_ms, payload }
        .sign(signer, &g.hash())
        .unwrap()
        .encode()
        .unwrap()
}

/// A did-operation/v1 entry carrying `op`, authored by the key of `seed`.
fn op_entry(g: &Genesis, seed: u8, nonce: u64, timestamp_ms: u64, op: &DidOperation) -> Vec<u8> {
    signed(g, &key(seed), Kind::DidOperation, nonce, timestamp_ms, op.encode())
}

fn service(endpoint: &str) -> Service {
    Service { id: "#hub".into(), service_type: "DojangHub".into(), service_endpoint: endpoint.into() }
}

/// An Ed25519 key (seed 50) in authentication and assertionMethod, and one service.
fn document(endpoint: &str) -> DocumentContent {
    DocumentContent {
        verification_method: vec![VerificationMethod {
            id: "#key-1".into(),
            method_type: MULTIKEY_TYPE.into(),
            public_key_multibase: dk(50).multibase(),
        }],
        authentication: vec!["#key-1".into()],
        assertion_method: vec!["#key-1".into()],
        service: vec![service(endpoint)],
        ..DocumentContent::default()
    }
}

/// Controller key seed 10, next key seed 11 committed to.
fn create_op(salt: &str) -> CreateOp {
    CreateOp {
        document: document("https://hub.example.kr/"),
        controller_keys: vec![dk(10).did()],
        next_key_commitment: Some(next_key_commitment(&dk(11))),
        salt: Some(salt.into()),
    }
}

use support::{Answer, call};

async fn get(env: &Env, path: &str) -> Answer {
    call("GET", format!("{}{path}", env.node.url()), None, None, vec![]).await
}

async fn resolve(env: &Env, did_and_query: &str, accept: Option<&str>) -> Answer {
    call("GET", format!("{}/1.0/identifiers/{did_and_query}", env.node.url()), None, accept, vec![]).await
}

async fn post_raw(env: &Env, bytes: Vec<u8>) -> Answer {
    call("POST", format!("{}/v1/entries", env.node.url()), Some("application/octet-stream"), None, bytes).await
}

/// Submits one entry and asserts it was committed; returns its versionId (leaf hash).
async fn submit_ok(env: &Env, bytes: Vec<u8>) -> Hash {
    let a = post_raw(env, bytes.clone()).await;
    assert_eq!(a.status, 201, "{}", a.text());
    let leaf = leaf_hash(&bytes);
    assert_eq!(a.json()["leaf_hash"], leaf.to_hex());
    leaf
}

/// Checks the proof in a resolution result against the genesis alone, that it answers the
/// question asked (`verify` is not told the DID or the selector: the caller compares), and
/// that its checkpoint is one the node published.
async fn verify_proof(env: &Env, did: &str, selector: VersionSelector, doc: &Value, meta: &Value, rm: &Value) -> DidProof {
    let proof: DidProof = serde_json::from_value(rm["dojangProof"].clone()).unwrap();
    assert_eq!(proof.did, did);
    assert_eq!(proof.selector(), selector);
    let (proven, cp) = proof.verify(&env.genesis, doc, meta).unwrap();
    assert_eq!(&proven.document, doc);
    assert_eq!(&proven.metadata, meta);
    let published = get(env, &format!("/v1/checkpoint?size={}", cp.checkpoint.size)).await;
    assert_eq!(published.status, 200, "{}", published.text());
    assert_eq!(published.text(), proof.checkpoint);
    proof
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn did_lifecycle_over_http() {
    let env = start().await;
    let g = &env.genesis;
    let t_create = NOW - 5 * MINUTE;
    let t_update = NOW - 3 * MINUTE;

    // Create, by a key that is no genesis writer.
    let create = create_op("life");
    let did = derive_did(&create);
    let v1 = submit_ok(&env, op_entry(g, 10, 1, t_create, &DidOperation::Create(create))).await;

    // Resolve with no Accept: the full resolution result.
    let (doc, meta, rm) = resolve(&env, &did, None).await.result(200);
    assert_eq!(doc["id"], json!(did));
    assert_eq!(doc["controller"], json!(did));
    assert_eq!(doc["@context"], json!(["https://www.w3.org/ns/did/v1.1"]));
    assert_eq!(doc["verificationMethod"][0]["id"], format!("{did}#key-1"));
    assert_eq!(doc["verificationMethod"][0]["publicKeyMultibase"], dk(50).multibase());
    assert_eq!(doc["authentication"], json!([format!("{did}#key-1")]));
    assert_eq!(doc["service"][0]["serviceEndpoint"], "https://hub.example.kr/");
    assert_eq!(meta, json!({"created": format_rfc3339_ms(t_create), "versionId": v1.to_hex()}));
    let proof = verify_proof(&env, &did, VersionSelector::Latest, &doc, &meta, &rm).await;
    assert_eq!(proof.entries.len(), 1);
    assert_eq!(proof.entries[0].index, 0);
    let first_doc = doc.clone();

    // A bare document on request, under the type asked for; the same bytes as didDocument.
    for media_type in ["application/did+ld+json", "application/did", "application/did+json"] {
        let a = resolve(&env, &did, Some(media_type)).await;
        assert_eq!((a.status, a.content_type.as_str()), (200, media_type), "{}", a.text());
        assert_eq!(a.json(), first_doc);
    }
    // Nothing acceptable.
    resolve(&env, &did, Some("text/html")).await.resolution_error(406, "REPRESENTATION_NOT_SUPPORTED");

    // Update, building on the versionId the resolution gave.
    let previous = Hash::from_hex(meta["versionId"].as_str().unwrap()).unwrap();
    assert_eq!(previous, v1);
    let update = DidOperation::Update(UpdateOp { did: did.clone(), previous, document: document("https://hub2.example.kr/") });
    let update_entry = op_entry(g, 10, 2, t_update, &update);
    let v2 = submit_ok(&env, update_entry.clone()).await;

    // Latest is the update.
    let (doc, meta, rm) = resolve(&env, &did, None).await.result(200);
    assert_eq!(doc["service"][0]["serviceEndpoint"], "https://hub2.example.kr/");
    assert_eq!(meta, json!({"created": format_rfc3339_ms(t_create), "updated": format_rfc3339_ms(t_update), "versionId": v2.to_hex()}));
    let proof = verify_proof(&env, &did, VersionSelector::Latest, &doc, &meta, &rm).await;
    assert_eq!(proof.entries.iter().map(|e| e.index).collect::<Vec<_>>(), [0, 1]);

    // The first version by versionId: its document, and its successor.
    let historic = json!({
        "created": format_rfc3339_ms(t_create),
        "nextUpdate": format_rfc3339_ms(t_update),
        "nextVersionId": v2.to_hex(),
        "versionId": v1.to_hex(),
    });
    let (doc, meta, rm) = resolve(&env, &format!("{did}?versionId={}", v1.to_hex()), None).await.result(200);
    assert_eq!((&doc, &meta), (&first_doc, &historic));
    verify_proof(&env, &did, VersionSelector::VersionId(v1), &doc, &meta, &rm).await;
    // The same by versionTime: at the create time, and between the two versions.
    for t in [t_create, t_create + MINUTE] {
        let (doc, meta, rm) = resolve(&env, &format!("{did}?versionTime={}", format_rfc3339_ms(t)), None).await.result(200);
        assert_eq!((&doc, &meta), (&first_doc, &historic));
        verify_proof(&env, &did, VersionSelector::VersionTime(t), &doc, &meta, &rm).await;
    }
    let (_, meta, _) = resolve(&env, &format!("{did}?versionTime={}", format_rfc3339_ms(t_update)), None).await.result(200);
    assert_eq!(meta["versionId"], v2.to_hex());
    // The URL-encoded form of the binding, with an option.
    let encoded = did.replace(':', "%3A");
    let (_, meta, _) = resolve(&env, &format!("{encoded}?versionId={}", v1.to_hex()), None).await.result(200);
    assert_eq!(meta, historic);
    // No such version, before the create, malformed options.
    resolve(&env, &format!("{did}?versionId={}", Hash([7; 32]).to_hex()), None).await.resolution_error(404, "NOT_FOUND");
    resolve(&env, &format!("{did}?versionId=zz"), None).await.resolution_error(404, "NOT_FOUND");
    resolve(&env, &format!("{did}?versionTime={}", format_rfc3339_ms(t_create - MINUTE)), None).await.resolution_error(404, "NOT_FOUND");
    resolve(&env, &format!("{did}?versionTime=yesterday"), None).await.resolution_error(400, "INVALID_OPTIONS");
    resolve(&env, &format!("{did}?colour=blue"), None).await.resolution_error(501, "FEATURE_NOT_SUPPORTED");

    // Refusals, each leaving the DID as it was.
    let doc3 = document("https://evil.example/");
    let by_stranger = DidOperation::Update(UpdateOp { did: did.clone(), previous: v2, document: doc3.clone() });
    let detail = post_raw(&env, op_entry(g, 66, 1, NOW, &by_stranger)).await.problem(400, "invalid-did-operation");
    assert!(detail.contains("not a current controller key"), "{detail}");
    // The committed next key is no controller key: it may not update either.
    post_raw(&env, op_entry(g, 11, 1, NOW, &by_stranger)).await.problem(400, "invalid-did-operation");
    let stale = DidOperation::Update(UpdateOp { did: did.clone(), previous: v1, document: doc3.clone() });
    let detail = post_raw(&env, op_entry(g, 10, 3, NOW, &stale)).await.problem(400, "invalid-did-operation");
    assert!(detail.contains(&v1.to_hex()), "{detail}");
    // A current controller key cannot rotate while a next key is committed.
    let rotate =
        DidOperation::Rotate(RotateOp { did: did.clone(), previous: v2, controller_keys: vec![dk(12).did()], next_key_commitment: None });
    post_raw(&env, op_entry(g, 10, 4, NOW, &rotate)).await.problem(400, "invalid-did-operation");
    // The update entry again: the same nonce.
    post_raw(&env, update_entry).await.problem(409, "replayed-nonce");
    // A time before the latest version's.
    let backdated = DidOperation::Update(UpdateOp { did: did.clone(), previous: v2, document: doc3.clone() });
    let detail = post_raw(&env, op_entry(g, 10, 5, t_update - 1000, &backdated)).await.problem(400, "invalid-did-operation");
    assert!(detail.contains("earlier than"), "{detail}");
    // Payloads that are not the canonical JSON of an operation.
    let canonical = String::from_utf8(backdated.encode()).unwrap();
    let spaced = canonical.replacen(':', ": ", 1);
    let pretty = serde_json::to_vec_pretty(&serde_json::from_str::<Value>(&canonical).unwrap()).unwrap();
    for payload in [spaced.into_bytes(), pretty, b"not json".to_vec(), b"{}".to_vec(), Vec::new()] {
        let e = signed(g, &key(10), Kind::DidOperation, 6, NOW, payload.clone());
        let detail = post_raw(&env, e).await.problem(400, "invalid-did-operation");
        assert!(detail.contains("canonical") || detail.contains("malformed"), "{}: {detail}", String::from_utf8_lossy(&payload));
    }
    let (_, meta, _) = resolve(&env, &did, None).await.result(200);
    assert_eq!(meta["versionId"], v2.to_hex());
    // Refused entries consumed no nonce: the controller's last is still the update's.
    let author = dk(10).key_id().replace('#', "%23");
    assert_eq!(get(&env, &format!("/v1/nonce?author={author}")).await.json()["last_nonce"], 2);

    // Deactivate, by the committed next key (any version of the key window may be named).
    let deactivate = DidOperation::Deactivate(DeactivateOp { did: did.clone(), previous: v2 });
    let v3 = submit_ok(&env, op_entry(g, 11, 1, NOW, &deactivate)).await;
    let a = resolve(&env, &did, None).await;
    let (doc, meta, rm) = a.result(410);
    assert_eq!(doc, json!({"@context": ["https://www.w3.org/ns/did/v1.1"], "id": did}));
    assert_eq!(
        meta,
        json!({"created": format_rfc3339_ms(t_create), "updated": format_rfc3339_ms(NOW), "deactivated": true, "versionId": v3.to_hex()})
    );
    let proof = verify_proof(&env, &did, VersionSelector::Latest, &doc, &meta, &rm).await;
    assert!(proof.verify(g, &doc, &meta).unwrap().0.deactivated);
    // The bare document is also a 410.
    let a = resolve(&env, &did, Some("application/did")).await;
    assert_eq!((a.status, a.content_type.as_str()), (410, "application/did"), "{}", a.text());
    assert_eq!(a.json(), doc);
    // History stays resolvable.
    let (doc, meta, rm) = resolve(&env, &format!("{did}?versionId={}", v1.to_hex()), None).await.result(200);
    assert_eq!(doc, first_doc);
    verify_proof(&env, &did, VersionSelector::VersionId(v1), &doc, &meta, &rm).await;
    // Nothing applies after deactivation, whoever signs it.
    let after = DidOperation::Update(UpdateOp { did: did.clone(), previous: v3, document: doc3 });
    let detail = post_raw(&env, op_entry(g, 10, 7, NOW, &after)).await.problem(400, "invalid-did-operation");
    assert!(detail.contains("deactivated"), "{detail}");
    let again = DidOperation::Deactivate(DeactivateOp { did: did.clone(), previous: v3 });
    post_raw(&env, op_entry(g, 11, 2, NOW, &again)).await.problem(400, "invalid-did-operation");
    // Nor can the DID be created again.
    post_raw(&env, op_entry(g, 10, 8, NOW, &DidOperation::Create(create_op("life")))).await.problem(400, "invalid-did-operation");
    assert_eq!(resolve(&env, &did, None).await.json()["didDocumentMetadata"]["versionId"], v3.to_hex());

    assert_eq!(get(&env, "/healthz").await.json()["tree_size"], 3);
    // No 5xx but the one 501 (FEATURE_NOT_SUPPORTED) asked for above.
    assert!(get(&env, "/metrics").await.text().contains("dojang_http_server_errors_total 1"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operations_in_one_batch_see_each_other() {
    let env = start().await;
    let g = &env.genesis;
    let create = create_op("batch");
    let did = derive_did(&create);
    let e1 = op_entry(g, 10, 1, NOW, &DidOperation::Create(create));
    let v1 = leaf_hash(&e1);
    let update = DidOperation::Update(UpdateOp { did: did.clone(), previous: v1, document: document("https://b.example.kr/") });
    let e2 = op_entry(g, 10, 2, NOW, &update);
    // A stale update in the same batch: refused, and the batch goes on.
    let stale = DidOperation::Update(UpdateOp { did: did.clone(), previous: v1, document: DocumentContent::default() });
    let e3 = op_entry(g, 10, 3, NOW, &stale);
    let e4 = signed(g, &env.writer, Kind::AccessEvent, 1, NOW, dojang_core::access::AccessEvent::cover(b"unrelated").encode());
    let b64 = |e: &Vec<u8>| base64::engine::general_purpose::STANDARD.encode(e);
    let body = json!({ "entries": [b64(&e1), b64(&e2), b64(&e3), b64(&e4)] });
    let a = call("POST", format!("{}/v1/entries", env.node.url()), Some("application/json"), None, body.to_string().into_bytes()).await;
    assert_eq!(a.status, 200, "{}", a.text());
    let r = a.json();
    let res = r["results"].as_array().unwrap();
    assert_eq!(res[0]["index"], 0);
    assert_eq!(res[1]["index"], 1);
    assert_eq!(res[2]["error"]["type"], "urn:dojang:problem:invalid-did-operation");
    assert_eq!(res[3]["index"], 2);
    let (doc, meta, rm) = resolve(&env, &did, None).await.result(200);
    assert_eq!(meta["versionId"], leaf_hash(&e2).to_hex());
    assert_eq!(doc["service"][0]["serviceEndpoint"], "https://b.example.kr/");
    let proof = verify_proof(&env, &did, VersionSelector::Latest, &doc, &meta, &rm).await;
    assert_eq!(proof.entries.iter().map(|e| e.index).collect::<Vec<_>>(), [0, 1]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resolution_errors_and_other_methods() {
    let env = start().await;
    // Some state on the ledger, so that "not found" is not just an empty ledger.
    let create = create_op("present");
    submit_ok(&env, op_entry(&env.genesis, 10, 1, NOW, &DidOperation::Create(create))).await;
    // A well-formed did:dojang that was never created.
    let unknown = derive_did(&create_op("absent"));
    resolve(&env, &unknown, None).await.resolution_error(404, "NOT_FOUND");
    resolve(&env, &format!("{unknown}?versionId={}", Hash([1; 32]).to_hex()), None).await.resolution_error(404, "NOT_FOUND");
    // An error is a resolution result even when a bare document was asked for.
    resolve(&env, &unknown, Some("application/did")).await.resolution_error(404, "NOT_FOUND");
    // Not DIDs.
    for bad in ["did:dojang:!!", "not-a-did", "did:dojang:", "DID:dojang:abc", "did:dojang:abc%zz"] {
        resolve(&env, bad, None).await.resolution_error(400, "INVALID_DID");
    }
    // A DID URL is not a DID.
    resolve(&env, &format!("{}%23key-1", unknown.replace(':', "%3A")), None).await.resolution_error(400, "INVALID_DID");
    // Other methods.
    resolve(&env, "did:web:example.com", None).await.resolution_error(501, "METHOD_NOT_SUPPORTED");
    resolve(&env, "did:example:123", None).await.resolution_error(501, "METHOD_NOT_SUPPORTED");
    // did:key resolves locally: the writer's key, with empty metadata and no proof.
    let writer = DidKey::from_verifying_key(&env.writer.verifying_key());
    let (doc, meta, rm) = resolve(&env, &writer.did(), None).await.result(200);
    assert_eq!(doc, writer.document());
    assert_eq!(meta, json!({}));
    assert!(rm.get("dojangProof").is_none(), "{rm}");
    let a = resolve(&env, &writer.did(), Some("application/did+ld+json")).await;
    assert_eq!((a.status, a.content_type.as_str(), a.json()), (200, "application/did+ld+json", writer.document()));
    // Nothing above reached the ledger, and no 5xx but the two 501s (METHOD_NOT_SUPPORTED).
    assert_eq!(get(&env, "/healthz").await.json()["tree_size"], 1);
    assert!(get(&env, "/metrics").await.text().contains("dojang_http_server_errors_total 2"));
}

/// `did:dojang:` ids that are valid DID Core syntax but no valid did:dojang id (not base58,
/// not 16 bytes, a non-canonical spelling) are `invalidDid` by `specs/did-method-dojang.md`
/// §3.3 and §7 (400), not "not found".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_dojang_ids_are_invalid_dids() {
    let env = start().await;
    let valid = derive_did(&create_op("x"));
    let id = valid.strip_prefix("did:dojang:").unwrap();
    for bad in
        ["did:dojang:abc".to_owned(), "did:dojang:0OIl0OIl0OIl0OIl".to_owned(), format!("did:dojang:1{id}"), format!("did:dojang:{id}{id}")]
    {
        resolve(&env, &bad, None).await.resolution_error(400, "INVALID_DID");
    }
}
