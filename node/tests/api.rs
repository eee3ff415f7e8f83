//! HTTP API tests against a real in-process node (memory storage, fixed clock): every
//! endpoint's happy path, and every kind of bad input answered with the right RFC 9457
//! problem and status — never a 5xx, never a panic.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

mod support;

use std::sync::Arc;

use base64::Engine as _;
use dojang_core::bundle::{ConsistencyBundle, InclusionBundle};
use dojang_core::checkpoint::SignedCheckpoint;
use dojang_core::did_key::DidKey;
use dojang_core::entry::{Kind, UnsignedEntry};
use dojang_core::genesis::{Genesis, Validator};
use dojang_node::clock::ManualClock;
use dojang_node::node::RunningNode;
use ed25519_dalek::SigningKey;

const NOW: u64 = 1_780_000_000_000;

struct Env {
    _dir: tempfile::TempDir,
    node: RunningNode,
    genesis: Genesis,
    writer: SigningKey,
}

async fn start(max_request_bytes: usize) -> Env {
    let dir = tempfile::tempdir().unwrap();
    let vkey = SigningKey::from_bytes(&[1; 32]);
    let writer = SigningKey::from_bytes(&[2; 32]);
    let genesis =
        Genesis::new("apitest", 0, vec![Validator::with_keys("v0", "Validator 0", &vkey.verifying_key(), &[writer.verifying_key()], "")]);
    let node = support::start_node(dir.path(), &genesis, &vkey, max_request_bytes, Arc::new(ManualClock::new(NOW))).await;
    Env { _dir: dir, node, genesis, writer }
}

fn entry(g: &Genesis, key: &SigningKey, kind: Kind, nonce: u64, payload: &[u8]) -> Vec<u8> {
    UnsignedEntry {
        kind,
        author: DidKey::from_verifying_key(&key.verifying_key()).key_id(),
        nonce,
        timestamp_ms: NOW,
        // Access events must carry a well-formed sealed event: one about nobody, seeded.
        payload: if kind == Kind::AccessEvent {
            dojang_core::access::AccessEvent::cover(&[payload, &nonce.to_be_bytes(), key.verifying_key().as_bytes()].concat()).encode()
        } else {
            payload.to_vec()
        },
    }
    .sign(key, &g.hash())
    .unwrap()
    .encode()
    .unwrap()
}

use support::{Answer, call};

async fn get(env: &Env, path: &str) -> Answer {
    call("GET", format!("{}{path}", env.node.url()), None, None, vec![]).await
}

async fn post_raw(env: &Env, bytes: Vec<u8>) -> Answer {
    call("POST", format!("{}/v1/entries", env.node.url()), Some("application/octet-stream"), None, bytes).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn submit_read_and_prove() {
    let env = start(1 << 20).await;
    let g = &env.genesis;
    let mut bytes = Vec::new();
    for n in 1..=5u64 {
        let e = entry(g, &env.writer, Kind::AccessEvent, n, format!("event {n}").as_bytes());
        let a = post_raw(&env, e.clone()).await;
        assert_eq!(a.status, 201, "{}", a.text());
        let r = a.json();
        assert_eq!(r["index"], n - 1);
        assert_eq!(r["tree_size"], n);
        assert_eq!(r["leaf_hash"], dojang_core::entry::leaf_hash(&e).to_hex());
        bytes.push(e);
    }
    // Exact bytes, and the JSON view on request.
    let a = get(&env, "/v1/entries/3").await;
    assert_eq!((a.status, a.content_type.as_str()), (200, "application/octet-stream"));
    assert_eq!(a.body, bytes[3]);
    let a = call("GET", format!("{}/v1/entries/3", env.node.url()), None, Some("application/json"), vec![]).await;
    let v = a.json();
    assert_eq!((v["kind"].as_str(), v["nonce"].as_u64()), (Some("access-event/v1"), Some(4)));
    // The checkpoint verifies against genesis alone.
    let cp = get(&env, "/v1/checkpoint").await.text();
    let verified = SignedCheckpoint::parse(&cp).unwrap().verify(g).unwrap();
    assert_eq!(verified.checkpoint.size, 5);
    // Inclusion by index and by leaf hash, against the latest and an earlier checkpoint.
    let b: InclusionBundle = serde_json::from_slice(&get(&env, "/v1/proofs/inclusion?index=2").await.body).unwrap();
    assert_eq!(b.verify(g).unwrap().index, 2);
    let leaf = dojang_core::entry::leaf_hash(&bytes[1]).to_hex();
    let b: InclusionBundle =
        serde_json::from_slice(&get(&env, &format!("/v1/proofs/inclusion?leaf_hash={leaf}&size=3")).await.body).unwrap();
    assert_eq!((b.verify(g).unwrap().index, b.tree_size), (1, 3));
    let c: ConsistencyBundle = serde_json::from_slice(&get(&env, "/v1/proofs/consistency?from=2&to=5").await.body).unwrap();
    c.verify(g).unwrap();
    assert_eq!(get(&env, "/v1/nonce?author=".to_owned().as_str()).await.json()["last_nonce"], serde_json::Value::Null);
    let author = DidKey::from_verifying_key(&env.writer.verifying_key()).key_id().replace('#', "%23");
    assert_eq!(get(&env, &format!("/v1/nonce?author={author}")).await.json()["last_nonce"], 5);
    assert_eq!(get(&env, "/healthz").await.json()["tree_size"], 5);
    let m = get(&env, "/metrics").await.text();
    assert!(m.contains("dojang_entries_committed_total 5"), "{m}");
    assert_eq!(Genesis::from_json(&get(&env, "/v1/genesis").await.body).unwrap(), *g);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_entries_get_clear_problems() {
    let env = start(64 * 1024).await;
    let g = &env.genesis;
    let good = entry(g, &env.writer, Kind::AccessEvent, 10, b"x");
    assert_eq!(post_raw(&env, good.clone()).await.status, 201);
    // Replayed nonce: the same entry again, and a lower nonce.
    post_raw(&env, good).await.problem(409, "replayed-nonce");
    post_raw(&env, entry(g, &env.writer, Kind::AccessEvent, 9, b"y")).await.problem(409, "replayed-nonce");
    // Bad signature.
    let mut bad = entry(g, &env.writer, Kind::AccessEvent, 11, b"z");
    let last = bad.len() - 1;
    bad[last] ^= 0x01;
    post_raw(&env, bad).await.problem(400, "bad-signature");
    // Unknown kind.
    let mut unknown = entry(g, &env.writer, Kind::AccessEvent, 12, b"z");
    unknown[1] = 0x7e;
    post_raw(&env, unknown).await.problem(400, "unknown-kind");
    // Garbage and truncation.
    post_raw(&env, b"hello".to_vec()).await.problem(400, "malformed-entry");
    // Oversize: over the request limit, and over the entry limit inside it.
    post_raw(&env, vec![1u8; 70 * 1024]).await.problem(413, "request-too-large");
    // Not a genesis writer.
    let stranger = SigningKey::from_bytes(&[66; 32]);
    post_raw(&env, entry(g, &stranger, Kind::AccessEvent, 1, b"z")).await.problem(403, "unauthorized");
    // Document entries must carry a document payload, whoever signs them.
    post_raw(&env, entry(g, &stranger, Kind::DocumentIssuance, 1, b"z")).await.problem(400, "document-payload-malformed");
    // Signed for another chain.
    let other = Genesis { chain_id: "other".into(), ..g.clone() };
    post_raw(&env, entry(&other, &env.writer, Kind::AccessEvent, 13, b"z")).await.problem(400, "bad-signature");
    // Content type, JSON batch shape, base64.
    let url = format!("{}/v1/entries", env.node.url());
    call("POST", url.clone(), Some("text/plain"), None, b"x".to_vec()).await.problem(415, "unsupported-media-type");
    call("POST", url.clone(), Some("application/json"), None, b"{\"nope\":1}".to_vec()).await.problem(400, "bad-json");
    call("POST", url.clone(), Some("application/json"), None, b"{\"entries\":[\"***\"]}".to_vec()).await.problem(400, "bad-base64");
    // Reads.
    get(&env, "/v1/entries/abc").await.problem(400, "bad-path");
    get(&env, "/v1/entries/99").await.problem(404, "not-found");
    get(&env, "/v1/entries/18446744073709551615").await.problem(404, "not-found");
    get(&env, "/v1/proofs/inclusion").await.problem(400, "bad-query");
    get(&env, "/v1/proofs/inclusion?index=0&size=999").await.problem(400, "bad-range");
    get(&env, "/v1/proofs/inclusion?leaf_hash=zz").await.problem(400, "bad-query");
    get(&env, "/v1/proofs/inclusion?index=-1").await.problem(400, "bad-query");
    get(&env, "/v1/proofs/consistency?from=0").await.problem(400, "bad-range");
    get(&env, "/v1/checkpoint?size=7").await.problem(400, "bad-range");
    get(&env, "/nope").await.problem(404, "not-found");
    call("DELETE", url, None, None, vec![]).await.problem(405, "method-not-allowed");
    // Nothing above reached the ledger, and nothing was a server error.
    assert_eq!(get(&env, "/healthz").await.json()["tree_size"], 1);
    assert!(get(&env, "/metrics").await.text().contains("dojang_http_server_errors_total 0"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_batch_reports_each_entry() {
    let env = start(1 << 20).await;
    let g = &env.genesis;
    let stranger = SigningKey::from_bytes(&[66; 32]);
    let entries = [
        entry(g, &env.writer, Kind::AccessEvent, 1, b"a"),
        entry(g, &stranger, Kind::AccessEvent, 1, b"b"),
        entry(g, &env.writer, Kind::AccessEvent, 1, b"c"),
        entry(g, &env.writer, Kind::AccessEvent, 2, b"d"),
        entry(g, &stranger, Kind::DidOperation, 1, b"e"),
        entry(g, &env.writer, Kind::AccessEvent, 3, b"f"),
    ];
    let body =
        serde_json::json!({ "entries": entries.iter().map(|e| base64::engine::general_purpose::STANDARD.encode(e)).collect::<Vec<_>>() });
    let a = call("POST", format!("{}/v1/entries", env.node.url()), Some("application/json"), None, body.to_string().into_bytes()).await;
    assert_eq!(a.status, 200, "{}", a.text());
    let r = a.json();
    let res = r["results"].as_array().unwrap();
    assert_eq!(res.len(), 6);
    assert_eq!(res[0]["index"], 0);
    assert_eq!(res[1]["error"]["type"], "urn:dojang:problem:unauthorized");
    assert_eq!(res[2]["error"]["type"], "urn:dojang:problem:replayed-nonce");
    assert_eq!(res[3]["index"], 1);
    // Anyone may submit DID operations, but "e" is not one.
    assert_eq!(res[4]["error"]["type"], "urn:dojang:problem:invalid-did-operation");
    assert_eq!(res[5]["index"], 2);
}

/// Bad input never gets a 5xx (and never takes the node down): a deterministic stream of
/// random and mutated bodies, paths and queries against every endpoint.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_input_never_gets_a_server_error() {
    let env = start(64 * 1024).await;
    let g = &env.genesis;
    let good = entry(g, &env.writer, Kind::AccessEvent, 1, b"seed");
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let alphabet: Vec<char> = "abcdefz0189:%#?&=/.-_~+ \u{7f}한".chars().collect();
    for round in 0..300u64 {
        let r = next();
        // A mutated valid entry, or random bytes.
        let mut body = if r % 2 == 0 { good.clone() } else { (0..(r % 300)).map(|_| next() as u8).collect() };
        if !body.is_empty() {
            let i = (next() as usize) % body.len();
            body[i] ^= 1 << (next() % 8);
        }
        let ct = ["application/octet-stream", "application/json", "multipart/form-data; boundary=x", "text/plain"][(r % 4) as usize];
        let a = call("POST", format!("{}/v1/entries", env.node.url()), Some(ct), None, body.clone()).await;
        assert!(a.status < 500, "round {round}: POST /v1/entries answered {}: {}", a.status, a.text());
        let a =
            call("POST", format!("{}/v1/documents/verify?salt={}", env.node.url(), hex::encode(&body)), Some(ct), None, body.clone()).await;
        assert!(a.status < 500, "round {round}: documents/verify answered {}: {}", a.status, a.text());
        let junk: String = (0..(next() % 40)).map(|_| alphabet[(next() as usize) % alphabet.len()]).collect();
        let enc: String = junk.bytes().map(|b| format!("%{b:02X}")).collect();
        // Header values must be visible ASCII on the client side already.
        let accept: String = junk.chars().filter(|c| c.is_ascii_graphic() || *c == ' ').collect();
        // The JSON endpoints: the mutated body, and JSON whose members hold junk.
        let b64 = base64::engine::general_purpose::STANDARD.encode(&body);
        let json_bodies = [
            body.clone(),
            serde_json::json!({"entries": [b64]}).to_string().into_bytes(),
            serde_json::json!({"did": junk, "challenge": accept, "verificationMethod": junk, "signature": b64}).to_string().into_bytes(),
            serde_json::json!({"verifiableCredential": {"@context": [junk], "proof": {"proofValue": accept}}, "verifiablePresentation": {"type": junk}}).to_string().into_bytes(),
        ];
        for path in [
            "/v1/access-events",
            "/v1/auth/challenge",
            "/v1/auth/token",
            "/credentials/verify",
            "/presentations/verify",
            "/presentations/challenge",
        ] {
            let b = json_bodies[(next() % 4) as usize].clone();
            let a = call("POST", format!("{}{path}", env.node.url()), Some("application/json"), None, b).await;
            assert!(a.status < 500, "round {round}: POST {path} answered {}: {}", a.status, a.text());
        }
        for (path, auth, grant) in [
            (format!("/v1/audit/history?subject={enc}"), format!("Bearer {accept}"), accept.clone()),
            ("/v1/audit/history".to_owned(), format!("Bearer {b64}.{b64}"), b64.clone()),
            (format!("/v1/audit/auditor?from={enc}"), format!("Bearer {accept}"), String::new()),
            (format!("/v1/access/tags/{enc}"), String::new(), String::new()),
        ] {
            let headers = vec![("Authorization".to_owned(), auth), (dojang_core::audit::GRANT_HEADER.to_owned(), grant)];
            let a = support::call_with("GET", format!("{}{path}", env.node.url()), headers, vec![]).await;
            assert!(a.status < 500, "round {round}: GET {path} answered {}: {}", a.status, a.text());
        }
        for path in [
            format!("/v1/entries/{enc}"),
            format!("/v1/proofs/inclusion?index={enc}&size={}", next() % 5),
            format!("/v1/proofs/inclusion?leaf_hash={enc}"),
            format!("/v1/proofs/consistency?from={}&to={enc}", next() % 4),
            format!("/v1/checkpoint?size={enc}"),
            format!("/v1/nonce?author={enc}"),
            format!("/v1/documents/{enc}"),
            format!("/v1/documents/expiring?holder={enc}&days={}", next() % 100),
            format!("/v1/registry?size={enc}"),
            format!("/1.0/identifiers/did:dojang:{enc}"),
            format!("/1.0/identifiers/{enc}?versionTime={enc}"),
            format!("/{enc}"),
        ] {
            let a = call("GET", format!("{}{path}", env.node.url()), None, Some(&accept), vec![]).await;
            // 501 is the DID resolution binding's answer for unsupported methods/options.
            assert!(a.status < 500 || a.status == 501, "round {round}: GET {path} answered {}: {}", a.status, a.text());
        }
    }
    // Still serving, and nothing above was a server error in the node's own count either.
    assert_eq!(get(&env, "/healthz").await.status, 200);
}
