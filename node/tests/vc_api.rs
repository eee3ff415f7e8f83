//! HTTP tests of the VC-API endpoints (`specs/credentials.md` §8, `specs/api.md`
//! §4.16-§4.21) on an in-process node: operator authentication, issuing, status lists
//! created, set and cleared through the write path, every verification outcome over HTTP,
//! status proofs checked offline against the genesis file, presentations with challenges,
//! domains and replays, refusals of foreign status updates, and HTTPS with rustls.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

mod support;

use std::sync::Arc;

use dojang_core::did_key::DidKey;
use dojang_core::entry::{Kind, UnsignedEntry};
use dojang_core::genesis::{Genesis, TrustedIssuer, Validator};
use dojang_core::vc::presentation::present;
use dojang_core::vc::status_list::{self, ListCreation, StatusListUpdate, StatusProof, StatusPurpose, verify_status};
use dojang_core::vc::suite::Cryptosuite;
use dojang_node::clock::ManualClock;
use dojang_node::config::{NodeConfig, TlsConfig};
use dojang_node::credentials::CredentialsConfig;
use dojang_node::keyfile::KeyFile;
use dojang_node::node::RunningNode;
use ed25519_dalek::SigningKey;
use serde_json::{Value, json};
use support::Answer;

const T0: u64 = 1_800_000_000_000;
const TOKEN: &str = "test-operator-token-0123456789abcdef";
const REV: &str = "urn:dojang:status-list:rev-1";
const SUS: &str = "urn:dojang:status-list:sus-1";

fn key(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

fn genesis() -> Genesis {
    let v = key(1);
    let mut g = Genesis::new("vctest", 0, vec![Validator::with_keys("v0", "Validator", &v.verifying_key(), &[v.verifying_key()], "")]);
    let ik = DidKey::from_verifying_key(&key(2).verifying_key());
    g.trusted_issuers = vec![TrustedIssuer {
        did: ik.did(),
        name: "Gov-Pass (test)".into(),
        keys: vec![ik.key_id()],
        document_types: vec![],
        credential_types: vec!["MobileIdCredential".into()],
    }];
    g
}

async fn start(dir: &std::path::Path, tls: Option<TlsConfig>) -> (RunningNode, Arc<ManualClock>) {
    KeyFile::from_signing_key(&key(2)).write_new(&dir.join("issuer.key")).unwrap();
    std::fs::write(dir.join("token"), format!("{TOKEN}\n")).unwrap();
    let clock = Arc::new(ManualClock::new(T0));
    let cfg = NodeConfig {
        tls,
        credentials: Some(CredentialsConfig {
            issuer_key: dir.join("issuer.key"),
            issuer_did: None,
            verification_method: None,
            api_token_file: dir.join("token"),
        }),
        ..support::node_config(dir, &genesis(), &key(1), 1 << 20)
    };
    (dojang_node::node::start(&cfg, clock.clone()).await.unwrap(), clock)
}

async fn post(url: String, token: Option<&str>, body: Value) -> Answer {
    let mut headers = vec![("Content-Type".to_owned(), "application/json".to_owned())];
    if let Some(t) = token {
        headers.push(("Authorization".to_owned(), format!("Bearer {t}")));
    }
    support::call_with("POST", url, headers, body.to_string().into_bytes()).await
}

async fn get(url: String) -> Answer {
    support::call_with("GET", url, Vec::new(), Vec::new()).await
}

fn unsigned(subject: &str, index: u64) -> Value {
    json!({
        "@context": ["https://www.w3.org/ns/credentials/v2", "https://w3id.org/dojang/credentials/v1"],
        "type": ["VerifiableCredential", "MobileIdCredential"],
        "validFrom": "2026-01-01T00:00:00Z",
        "validUntil": "2031-01-01T00:00:00Z",
        "credentialSubject": {"id": subject, "givenName": "Gil-dong", "familyName": "Hong"},
        "credentialStatus": [
            {"id": format!("{REV}#{index}"), "type": "BitstringStatusListEntry", "statusPurpose": "revocation", "statusListIndex": index.to_string(), "statusListCredential": REV},
            {"id": format!("{SUS}#{index}"), "type": "BitstringStatusListEntry", "statusPurpose": "suspension", "statusListIndex": index.to_string(), "statusListCredential": SUS}
        ]
    })
}

fn failed(result: &Value) -> Vec<String> {
    result["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["status"] == "failed")
        .map(|c| c["check"].as_str().unwrap().to_owned())
        .collect()
}

fn first_problem(result: &Value) -> String {
    result["problems"][0]["type"].as_str().unwrap_or_default().to_owned()
}

async fn verify(url: &str, vc: &Value) -> Value {
    let a = post(format!("{url}/credentials/verify"), None, json!({"verifiableCredential": vc})).await;
    assert_eq!(a.status, 200, "{}", a.text());
    a.json()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_verify_status_and_presentations_over_http() {
    let dir = tempfile::tempdir().unwrap();
    let (node, clock) = start(dir.path(), None).await;
    let url = node.url();
    let holder = key(9);
    let hk = DidKey::from_verifying_key(&holder.verifying_key());

    // Operator authentication.
    let body = json!({"credential": unsigned(&hk.did(), 5)});
    post(format!("{url}/credentials/issue"), None, body.clone()).await.problem(401, "unauthenticated");
    post(format!("{url}/credentials/issue"), Some("wrong-token-wrong-token-wrong-token"), body.clone())
        .await
        .problem(401, "unauthenticated");
    post(format!("{url}/v1/status-lists"), None, json!({"id": REV, "purpose": "revocation", "credentialType": "MobileIdCredential"}))
        .await
        .problem(401, "unauthenticated");

    // Status lists, created through the write path by the issuer key.
    for (id, purpose) in [(REV, "revocation"), (SUS, "suspension")] {
        let a = post(
            format!("{url}/v1/status-lists"),
            Some(TOKEN),
            json!({"id": id, "purpose": purpose, "credentialType": "MobileIdCredential"}),
        )
        .await;
        assert_eq!(a.status, 201, "{}", a.text());
    }
    post(
        format!("{url}/v1/status-lists"),
        Some(TOKEN),
        json!({"id": REV, "purpose": "revocation", "credentialType": "MobileIdCredential"}),
    )
    .await
    .problem(409, "status-list-already-exists");
    post(
        format!("{url}/v1/status-lists"),
        Some(TOKEN),
        json!({"id": "urn:dojang:status-list:x", "purpose": "revocation", "credentialType": "PassportCredential"}),
    )
    .await
    .problem(403, "status-list-unauthorized");

    // Issue under both suites; verify.
    let a = post(format!("{url}/credentials/issue"), Some(TOKEN), body.clone()).await;
    assert_eq!(a.status, 201, "{}", a.text());
    let vc = a.json()["verifiableCredential"].clone();
    assert_eq!(vc["issuer"], DidKey::from_verifying_key(&key(2).verifying_key()).did());
    let a = post(
        format!("{url}/credentials/issue"),
        Some(TOKEN),
        json!({"credential": unsigned(&hk.did(), 6), "options": {"cryptosuite": "eddsa-rdfc-2022"}}),
    )
    .await;
    assert_eq!(a.status, 201, "{}", a.text());
    let vc_rdfc = a.json()["verifiableCredential"].clone();
    for v in [&vc, &vc_rdfc] {
        let r = verify(&url, v).await;
        assert_eq!(r["verified"], true, "{r}");
        assert_eq!(r["checks"].as_array().unwrap().len(), 6);
    }

    // Tampering, expiry, and a bad request.
    let mut t = vc.clone();
    t["credentialSubject"]["givenName"] = json!("Mallory");
    let r = verify(&url, &t).await;
    assert_eq!(failed(&r), ["proof"]);
    assert_eq!(first_problem(&r), "urn:dojang:problem:vc-bad-signature");
    let a = post(format!("{url}/credentials/verify"), None, json!({"verifiableCredential": vc, "options": {"at": "2031-06-01T00:00:00Z"}}))
        .await;
    assert_eq!(failed(&a.json()), ["validity"]);
    post(format!("{url}/credentials/verify"), None, json!({"credential": vc})).await.problem(400, "bad-request");
    post(format!("{url}/credentials/issue"), Some(TOKEN), json!({"credential": {"@context": ["https://evil.example/x"]}}))
        .await
        .problem(400, "vc-malformed");

    // Status: a proof of the bit verifies offline against the genesis file.
    let a = get(format!("{url}/v1/status-lists/{SUS}/5")).await;
    assert_eq!(a.status, 200, "{}", a.text());
    let proof: StatusProof = serde_json::from_value(a.json()["proof"].clone()).unwrap();
    let v = verify_status(&genesis(), &proof).unwrap();
    assert!(!v.bit);
    assert_eq!(v.purpose, StatusPurpose::Suspension);
    get(format!("{url}/v1/status-lists/{SUS}/999999999")).await.problem(404, "not-found");
    get(format!("{url}/v1/status-lists/urn:dojang:status-list:nope/1")).await.problem(404, "not-found");

    // Suspend, reinstate, revoke (final).
    let set = |list: &str, status: bool| json!({"statusListCredential": list, "statusListIndex": "5", "status": status});
    assert_eq!(post(format!("{url}/credentials/status"), Some(TOKEN), set(SUS, true)).await.status, 200);
    let r = verify(&url, &vc).await;
    assert_eq!(failed(&r), ["status"]);
    assert_eq!(first_problem(&r), "urn:dojang:problem:vc-suspended");
    let a = get(format!("{url}/v1/status-lists/{SUS}/5")).await;
    let proof: StatusProof = serde_json::from_value(a.json()["proof"].clone()).unwrap();
    assert!(verify_status(&genesis(), &proof).unwrap().bit);
    // A tampered chunk no longer proves.
    let mut bad = proof.clone();
    let mut chunk = base64::Engine::decode(&base64::engine::general_purpose::STANDARD, &bad.chunk).unwrap();
    chunk[0] ^= 0x04;
    bad.chunk = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &chunk);
    assert_eq!(verify_status(&genesis(), &bad).unwrap_err().slug(), "status-list-proof-invalid");
    assert_eq!(post(format!("{url}/credentials/status"), Some(TOKEN), set(SUS, false)).await.status, 200);
    assert_eq!(verify(&url, &vc).await["verified"], true);
    assert_eq!(post(format!("{url}/credentials/status"), Some(TOKEN), set(REV, true)).await.status, 200);
    let r = verify(&url, &vc).await;
    assert_eq!(first_problem(&r), "urn:dojang:problem:vc-revoked");
    assert_eq!(r["checks"][1]["status"], "passed", "cryptographically valid: {r}");
    post(format!("{url}/credentials/status"), Some(TOKEN), set(REV, false)).await.problem(400, "status-list-revocation-final");
    // The interoperable view: the encoded list has bit 5 set.
    let a = get(format!("{url}/v1/status-lists/{REV}")).await;
    let enc = a.json()["credential"]["credentialSubject"]["encodedList"].as_str().unwrap().to_owned();
    let bits = status_list::decode_list(&enc, status_list::MAX_LIST_BITS).unwrap();
    assert!(status_list::get_bit(&bits, 5) && !status_list::get_bit(&bits, 6));

    // A stranger's status-list update is refused when applied.
    let stranger = key(77);
    let sk = DidKey::from_verifying_key(&stranger.verifying_key());
    let upd = StatusListUpdate {
        list: "urn:dojang:status-list:evil".into(),
        sequence: 0,
        create: Some(ListCreation {
            purpose: StatusPurpose::Revocation,
            size: status_list::MIN_LIST_BITS,
            credential_type: "MobileIdCredential".into(),
        }),
        set: vec![],
        clear: vec![],
        root: status_list::root(&vec![0u8; 16384]),
    };
    let e = UnsignedEntry { kind: Kind::StatusListUpdate, author: sk.key_id(), nonce: 1, timestamp_ms: T0, payload: upd.encode() }
        .sign(&stranger, &genesis().hash())
        .unwrap()
        .encode()
        .unwrap();
    support::call("POST", format!("{url}/v1/entries"), Some("application/octet-stream"), None, e)
        .await
        .problem(403, "status-list-unauthorized");

    // Presentations: node-issued challenge, verified once; replay, wrong domain, wrong challenge.
    let vc2 = verify_ok_vc(&url, &hk.did()).await;
    let a = post(format!("{url}/presentations/challenge"), None, json!({"domain": "bank.example.kr"})).await;
    assert_eq!(a.status, 201);
    let challenge = a.json()["challenge"].as_str().unwrap().to_owned();
    let created = dojang_core::vc::created_at(T0);
    let vp = present(
        &hk.did(),
        std::slice::from_ref(&vc2),
        &holder,
        &hk.key_id(),
        &challenge,
        "bank.example.kr",
        &created,
        Cryptosuite::EddsaJcs2022,
    )
    .unwrap();
    let req = |c: &str, d: &str| json!({"verifiablePresentation": vp, "options": {"challenge": c, "domain": d}});
    let a = post(format!("{url}/presentations/verify"), None, req(&challenge, "bank.example.kr")).await;
    assert_eq!(a.json()["verified"], true, "{}", a.text());
    let a = post(format!("{url}/presentations/verify"), None, req(&challenge, "bank.example.kr")).await;
    assert_eq!(failed(&a.json()), ["replay"]);
    assert_eq!(first_problem(&a.json()), "urn:dojang:problem:vp-replayed");
    let a = post(format!("{url}/presentations/verify"), None, req("another-challenge", "bank.example.kr")).await;
    assert!(failed(&a.json()).contains(&"challenge".to_owned()), "{}", a.text());
    let a = post(format!("{url}/presentations/verify"), None, req(&challenge, "evil.example")).await;
    assert!(failed(&a.json()).contains(&"domain".to_owned()), "{}", a.text());
    // A verifier-supplied challenge: accepted once near the clock, then a replay.
    let vp2 = present(
        &hk.did(),
        std::slice::from_ref(&vc2),
        &holder,
        &hk.key_id(),
        "verifier-nonce-1",
        "shop.example",
        &created,
        Cryptosuite::EddsaRdfc2022,
    )
    .unwrap();
    let req2 = json!({"verifiablePresentation": vp2, "options": {"challenge": "verifier-nonce-1", "domain": "shop.example"}});
    assert_eq!(post(format!("{url}/presentations/verify"), None, req2.clone()).await.json()["verified"], true);
    assert_eq!(failed(&post(format!("{url}/presentations/verify"), None, req2).await.json()), ["replay"]);
    // Far from the clock, a verifier-supplied challenge is refused as stale.
    clock.set(T0 + 3_600_000);
    let vp3 =
        present(&hk.did(), &[vc2], &holder, &hk.key_id(), "verifier-nonce-2", "shop.example", &created, Cryptosuite::EddsaJcs2022).unwrap();
    let a = post(
        format!("{url}/presentations/verify"),
        None,
        json!({"verifiablePresentation": vp3, "options": {"challenge": "verifier-nonce-2", "domain": "shop.example"}}),
    )
    .await;
    assert_eq!(first_problem(&a.json()), "urn:dojang:problem:vp-stale");
    node.stop().await;
}

/// Issues a fresh credential (index 7, never revoked) and checks it verifies.
async fn verify_ok_vc(url: &str, subject: &str) -> Value {
    let a = post(format!("{url}/credentials/issue"), Some(TOKEN), json!({"credential": unsigned(subject, 7)})).await;
    let vc = a.json()["verifiableCredential"].clone();
    assert_eq!(verify(url, &vc).await["verified"], true);
    vc
}

/// dojangd serves HTTPS with rustls when given a certificate and key: a client that trusts
/// the (self-signed, generated here) certificate talks to it; plain HTTP does not work.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_https_with_rustls() {
    let dir = tempfile::tempdir().unwrap();
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    std::fs::write(dir.path().join("cert.pem"), cert.cert.pem()).unwrap();
    std::fs::write(dir.path().join("key.pem"), cert.key_pair.serialize_pem()).unwrap();
    let tls = TlsConfig { cert: dir.path().join("cert.pem"), key: dir.path().join("key.pem") };
    let (node, _) = start(dir.path(), Some(tls)).await;
    assert!(node.url().starts_with("https://"));
    let port = node.addr.port();
    let der = cert.cert.der().clone();
    let body = tokio::task::spawn_blocking(move || {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(der).unwrap();
        #[allow(deprecated)]
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let cfg = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let agent = ureq::AgentBuilder::new().tls_config(Arc::new(cfg)).build();
        let healthz = agent.get(&format!("https://localhost:{port}/healthz")).call().unwrap().into_string().unwrap();
        let verify = match agent
            .post(&format!("https://localhost:{port}/credentials/verify"))
            .send_json(json!({"verifiableCredential": {"@context": ["https://www.w3.org/ns/credentials/v2"]}}))
        {
            Ok(r) | Err(ureq::Error::Status(_, r)) => r.into_string().unwrap(),
            Err(e) => panic!("{e}"),
        };
        // Plain HTTP to the TLS port fails; so does a client that does not trust the cert.
        let plain = ureq::get(&format!("http://127.0.0.1:{port}/healthz")).timeout(std::time::Duration::from_secs(5)).call();
        let untrusted = ureq::get(&format!("https://localhost:{port}/healthz")).call();
        (healthz, verify, plain.is_err(), untrusted.is_err())
    })
    .await
    .unwrap();
    assert!(body.0.contains("\"status\":\"ok\""), "{}", body.0);
    assert!(body.1.contains("\"verified\":false"), "{}", body.1);
    assert!(body.2 && body.3);
    node.stop().await;
}
