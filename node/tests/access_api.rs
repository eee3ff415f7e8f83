//! The access log and citizen audit over HTTP against a real in-process node
//! (`specs/access-log.md`): agencies record sealed events; a citizen authenticates by DID
//! (challenge → token), fetches their history and verifies it complete offline with only
//! the genesis file and their key; omitted, reordered and injected events are detected;
//! non-subjects, replayed challenges, expired tokens and unauthorised events are refused;
//! the wrong key fails cleanly; the auditor reads its sealed copies; the live feed
//! notifies; and no subject identifier reaches any ledger or RocksDB byte.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

mod support;

use std::io::BufRead as _;
use std::sync::Arc;

use base64::Engine as _;
use dojang_core::access::{self, AccessDetails, AgencyWriter, Auditor, Purpose, SubjectKey};
use dojang_core::audit::{self, AuditError, ChainGrant, GRANT_HEADER, HistoryBundle};
use dojang_core::auth;
use dojang_core::did_key::DidKey;
use dojang_core::entry::{Kind, UnsignedEntry};
use dojang_core::genesis::{AuditorEntry, Genesis, Validator};
use dojang_node::clock::ManualClock;
use dojang_node::config::{NodeConfig, StorageKind};
use dojang_node::keyfile::KeyFile;
use dojang_node::node::RunningNode;
use ed25519_dalek::SigningKey;
use rand_core::OsRng;
use serde_json::{Value, json};
use support::{Answer, call_with};

const T0: u64 = 1_780_000_000_000;
const VALIDATOR: u8 = 1;
const W1: u8 = 2;
const W2: u8 = 3;
const AUDITOR: u8 = 9;
const ALICE: u8 = 20;
const BOB: u8 = 21;
const STRANGER: u8 = 66;
const AGENCY_DID: &str = "did:web:mois.example.kr";

fn key(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

fn dk(seed: u8) -> DidKey {
    DidKey::from_verifying_key(&key(seed).verifying_key())
}

fn genesis() -> Genesis {
    let v = Validator {
        id: "v0".into(),
        name: "Ministry of the Interior and Safety".into(),
        did: AGENCY_DID.into(),
        consensus_key: dk(VALIDATOR).did(),
        voting_power: 1,
        writer_keys: vec![dk(W1).key_id(), dk(W2).key_id()],
        api_address: String::new(),
        p2p_key: String::new(),
        p2p_address: String::new(),
    };
    let auditors = vec![AuditorEntry { name: "PIPC".into(), did: dk(AUDITOR).did() }];
    Genesis { auditors, ..Genesis::new("access-test", T0, vec![v]) }
}

struct Net {
    node: RunningNode,
    genesis: Genesis,
    clock: Arc<ManualClock>,
    _dir: tempfile::TempDir,
}

impl Net {
    async fn start(storage: StorageKind) -> Net {
        let dir = tempfile::tempdir().unwrap();
        let genesis = genesis();
        std::fs::write(dir.path().join("genesis.json"), genesis.to_json_pretty()).unwrap();
        KeyFile::from_signing_key(&key(VALIDATOR)).write_new(&dir.path().join("v.key")).unwrap();
        let cfg = NodeConfig {
            data_dir: dir.path().join("data"),
            genesis: dir.path().join("genesis.json"),
            validator_key: dir.path().join("v.key"),
            validator_id: "v0".into(),
            listen: "127.0.0.1:0".parse().unwrap(),
            max_batch: 1000,
            queue_bytes: 1 << 20,
            max_request_bytes: 1 << 20,
            storage,
            ..NodeConfig::default()
        };
        let clock = Arc::new(ManualClock::new(T0));
        let node = dojang_node::node::start(&cfg, clock.clone()).await.unwrap();
        Net { node, genesis, clock, _dir: dir }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.node.url())
    }

    fn subject(&self, seed: u8) -> SubjectKey {
        SubjectKey::from_ed25519(&key(seed), &dk(seed).did()).unwrap()
    }

    /// A signed access-event entry: writer `w` read `subject`'s data, at `slot`.
    fn event(&self, w: u8, subject: u8, slot: u32, category: &str, nonce: u64, auditors: &[Auditor]) -> Vec<u8> {
        let writer = AgencyWriter::new(&key(w), &dk(w).key_id(), AGENCY_DID).unwrap();
        let details = AccessDetails {
            agency: AGENCY_DID.into(),
            official: format!("officer-{w}{slot}"),
            category: category.into(),
            purpose: Purpose::Code("law.resident-registration-act".into()),
            time_ms: T0 - 1000,
            subject: dk(subject).did(),
            slot,
            writer: dk(w).key_id(),
        };
        let ev = writer
            .seal_event(&self.genesis.hash(), &dk(subject).did(), &dk(subject).x25519_public_key(), slot, &details, auditors, &mut OsRng)
            .unwrap();
        signed(w, Kind::AccessEvent, ev.encode(), nonce, &self.genesis)
    }

    async fn post_events(&self, entries: &[Vec<u8>]) -> Answer {
        let body = json!({"entries": entries.iter().map(|e| base64::engine::general_purpose::STANDARD.encode(e)).collect::<Vec<_>>()});
        call_with(
            "POST",
            self.url("/v1/access-events"),
            vec![("Content-Type".into(), "application/json".into())],
            body.to_string().into_bytes(),
        )
        .await
    }

    async fn record_ok(&self, entries: &[Vec<u8>]) {
        let a = self.post_events(entries).await;
        assert_eq!(a.status, 200, "{}", a.text());
        for r in a.json()["results"].as_array().unwrap() {
            assert!(r.get("index").is_some(), "{r}");
        }
    }

    async fn post_json(&self, path: &str, body: Value) -> Answer {
        call_with("POST", self.url(path), vec![("Content-Type".into(), "application/json".into())], body.to_string().into_bytes()).await
    }

    async fn challenge(&self, did: &str) -> String {
        let a = self.post_json("/v1/auth/challenge", json!({"did": did})).await;
        assert_eq!(a.status, 200, "{}", a.text());
        a.json()["challenge"].as_str().unwrap().to_owned()
    }

    async fn answer(&self, challenge: &str, seed: u8, vm: &str) -> Answer {
        let sig = auth::answer(&self.genesis.hash(), challenge, &key(seed));
        self.post_json("/v1/auth/token", json!({"challenge": challenge, "verificationMethod": vm, "signature": sig})).await
    }

    async fn login(&self, seed: u8) -> String {
        let ch = self.challenge(&dk(seed).did()).await;
        let a = self.answer(&ch, seed, &dk(seed).key_id()).await;
        assert_eq!(a.status, 200, "{}", a.text());
        a.json()["token"].as_str().unwrap().to_owned()
    }

    fn grants(&self, subject: &SubjectKey, start: u64, end: u64) -> String {
        let mut out = Vec::new();
        for w in audit::writer_keys(&self.genesis) {
            for n in subject.pair_key(&w).unwrap().grant(start, end).unwrap() {
                out.push(ChainGrant::new(&w, &n));
            }
        }
        audit::encode_grants(&out)
    }

    async fn history(&self, token: &str, grants: &str, query: &str) -> Answer {
        call_with(
            "GET",
            self.url(&format!("/v1/audit/history{query}")),
            vec![("Authorization".into(), format!("Bearer {token}")), (GRANT_HEADER.into(), grants.into())],
            vec![],
        )
        .await
    }

    async fn alice_bundle(&self) -> HistoryBundle {
        let token = self.login(ALICE).await;
        let a = self.history(&token, &self.grants(&self.subject(ALICE), 0, 256), "").await;
        assert_eq!(a.status, 200, "{}", a.text());
        serde_json::from_slice(&a.body).unwrap()
    }
}

fn signed(seed: u8, kind: Kind, payload: Vec<u8>, nonce: u64, g: &Genesis) -> Vec<u8> {
    UnsignedEntry { kind, author: dk(seed).key_id(), nonce, timestamp_ms: T0, payload }
        .sign(&key(seed), &g.hash())
        .unwrap()
        .encode()
        .unwrap()
}

/// Alice: 3 events by W1 and 2 by W2; Bob: 2 by W1 — interleaved over two batches.
async fn seed_events(net: &Net) {
    let aud = [Auditor::from_did_key(&dk(AUDITOR))];
    net.record_ok(&[
        net.event(W1, ALICE, 0, "tax", 1, &aud),
        net.event(W1, BOB, 0, "health", 2, &aud),
        net.event(W2, ALICE, 0, "welfare", 1, &[]),
        net.event(W1, ALICE, 1, "vehicle", 3, &aud),
    ])
    .await;
    net.record_ok(&[
        net.event(W1, BOB, 1, "tax", 4, &aud),
        net.event(W2, ALICE, 1, "education", 2, &[]),
        net.event(W1, ALICE, 2, "health", 5, &aud),
    ])
    .await;
}

#[tokio::test]
async fn a_citizen_gets_a_complete_history_that_verifies_offline() {
    let net = Net::start(StorageKind::Memory).await;
    seed_events(&net).await;
    let alice = net.subject(ALICE);
    let bundle = net.alice_bundle().await;
    let v = audit::verify_history(&net.genesis, &bundle, &alice, OsRng).unwrap();
    assert_eq!(v.events.len(), 5);
    assert_eq!(v.counts.get(&dk(W1).key_id()), Some(&3));
    assert_eq!(v.counts.get(&dk(W2).key_id()), Some(&2));
    let opened = v.open(&alice, &net.genesis.hash()).unwrap();
    let mut cats: Vec<&str> = opened.iter().map(|e| e.details.category.as_str()).collect();
    cats.sort();
    assert_eq!(cats, ["education", "health", "tax", "vehicle", "welfare"]);
    assert!(opened.iter().all(|e| e.details.subject == dk(ALICE).did()));
    // Bob's history is his two events only.
    let bob = net.subject(BOB);
    let token = net.login(BOB).await;
    let a = net.history(&token, &net.grants(&bob, 0, 256), "").await;
    let b: HistoryBundle = serde_json::from_slice(&a.body).unwrap();
    let vb = audit::verify_history(&net.genesis, &b, &bob, OsRng).unwrap();
    assert_eq!(vb.events.len(), 2);
    // Alice's key cannot verify Bob's history as hers.
    assert!(audit::verify_history(&net.genesis, &b, &alice, OsRng).is_err());
    // A new event shows up in the next history, still complete.
    net.record_ok(&[net.event(W2, ALICE, 2, "tax", 9, &[])]).await;
    let v2 = audit::verify_history(&net.genesis, &net.alice_bundle().await, &alice, OsRng).unwrap();
    assert_eq!(v2.events.len(), 6);
    assert!(v2.checkpoint.checkpoint.size > v.checkpoint.checkpoint.size);
    // A grant too small for a chain is answered 409, not with a truncated history.
    let token = net.login(ALICE).await;
    net.history(&token, &net.grants(&alice, 0, 2), "").await.problem(409, "grant-exhausted");
    net.node.stop().await;
}

#[tokio::test]
async fn omitted_reordered_and_injected_events_are_detected() {
    let net = Net::start(StorageKind::Memory).await;
    seed_events(&net).await;
    let alice = net.subject(ALICE);
    let good = net.alice_bundle().await;
    let verify = |b: &HistoryBundle| audit::verify_history(&net.genesis, b, &alice, OsRng);
    verify(&good).unwrap();
    let w1 = good.chains.iter().position(|c| c.writer == dk(W1).key_id()).unwrap();

    // Omitted from the middle: the later events sit in the wrong slots.
    let mut b = good.clone();
    b.chains[w1].events.remove(1);
    assert!(matches!(verify(&b), Err(AuditError::Event { .. })), "{:?}", verify(&b));
    // Omitted from the end: the next slot is not proven empty.
    let mut b = good.clone();
    b.chains[w1].events.pop();
    assert!(matches!(verify(&b), Err(AuditError::NotComplete { .. })), "{:?}", verify(&b));
    // A whole chain left out.
    let mut b = good.clone();
    b.chains.remove(w1);
    assert!(matches!(verify(&b), Err(AuditError::MissingChain(_))));
    // Reordered.
    let mut b = good.clone();
    b.chains[w1].events.swap(0, 1);
    assert!(matches!(verify(&b), Err(AuditError::Event { .. })));
    // Injected: Bob's genuine event placed into Alice's chain.
    let bob_token = net.login(BOB).await;
    let bob: HistoryBundle =
        serde_json::from_slice(&net.history(&bob_token, &net.grants(&net.subject(BOB), 0, 256), "").await.body).unwrap();
    let bob_w1 = bob.chains.iter().find(|c| c.writer == dk(W1).key_id()).unwrap();
    let mut b = good.clone();
    b.chains[w1].events.insert(1, bob_w1.events[0].clone());
    assert!(verify(&b).is_err());
    // Tampered entry bytes, inclusion path, map proof, checkpoint.
    let mut b = good.clone();
    let mut raw = base64::engine::general_purpose::STANDARD.decode(&b.chains[w1].events[0].entry).unwrap();
    let n = raw.len();
    raw[n - 70] ^= 1;
    b.chains[w1].events[0].entry = base64::engine::general_purpose::STANDARD.encode(raw);
    assert!(verify(&b).is_err());
    let mut b = good.clone();
    b.chains[w1].events[0].inclusion.pop();
    assert!(verify(&b).is_err());
    let mut b = good.clone();
    b.chains[w1].events[0].map = b.chains[w1].events[1].map.clone();
    assert!(verify(&b).is_err());
    let mut b = good.clone();
    b.checkpoint = b.checkpoint.replacen("\n", "x\n", 1);
    assert!(matches!(verify(&b), Err(AuditError::Checkpoint(_))));
    // A history for someone else's DID.
    let mut b = good.clone();
    b.subject = dk(BOB).did();
    assert!(matches!(verify(&b), Err(AuditError::WrongSubject { .. })));
    net.node.stop().await;
}

#[tokio::test]
async fn a_non_subject_is_refused_and_learns_nothing() {
    let net = Net::start(StorageKind::Memory).await;
    seed_events(&net).await;
    let alice = net.subject(ALICE);
    let alice_grants = net.grants(&alice, 0, 256);
    // No token, or a malformed one.
    net.history("", &alice_grants, "").await.problem(401, "missing-token");
    let a = call_with("GET", net.url("/v1/audit/history"), vec![(GRANT_HEADER.into(), alice_grants.clone())], vec![]).await;
    a.problem(401, "missing-token");
    // Bob, authenticated, asks for Alice's history by name: refused.
    let bob_token = net.login(BOB).await;
    net.history(&bob_token, &alice_grants, &format!("?subject={}", dk(ALICE).did())).await.problem(403, "not-your-history");
    // Bob with Alice's slot seeds (as if stolen): tags are bound to the token's DID, so
    // he gets Bob-tags only — no event of Alice's.
    let a = net.history(&bob_token, &alice_grants, "").await;
    assert_eq!(a.status, 200);
    let b: HistoryBundle = serde_json::from_slice(&a.body).unwrap();
    assert_eq!(b.subject, dk(BOB).did());
    assert!(b.chains.iter().all(|c| c.events.is_empty()), "{}", a.text());
    // The auditor's token is not a subject token.
    let aud = net.login(AUDITOR).await;
    net.history(&aud, &net.grants(&net.subject(AUDITOR), 0, 256), "").await.problem(403, "wrong-role");
    // A subject's token is not an auditor's.
    let a = call_with("GET", net.url("/v1/audit/auditor"), vec![("Authorization".into(), format!("Bearer {bob_token}"))], vec![]).await;
    a.problem(403, "not-an-auditor");
    // Grants naming a key that is not a genesis writer.
    let bad = audit::encode_grants(&[ChainGrant::new(
        &dk(STRANGER).key_id(),
        &alice.pair_key(&dk(W1).key_id()).unwrap().grant(0, 256).unwrap()[0],
    )]);
    net.history(&bob_token, &bad, "").await.problem(400, "bad-grant");
    net.history(&bob_token, "!!", "").await.problem(400, "bad-grant");
    // Grants opening more slots than one request may derive.
    let wide: Vec<ChainGrant> =
        alice.pair_key(&dk(W1).key_id()).unwrap().grant(0, 5 << 16).unwrap().iter().map(|n| ChainGrant::new(&dk(W1).key_id(), n)).collect();
    let detail = net.history(&bob_token, &audit::encode_grants(&wide), "").await.problem(400, "bad-grant");
    assert!(detail.contains("over the limit"), "{detail}");
    net.node.stop().await;
}

#[tokio::test]
async fn challenges_and_tokens_cannot_be_replayed_or_outlive_their_time() {
    let net = Net::start(StorageKind::Memory).await;
    let alice = dk(ALICE);
    // A challenge answered twice: the second is a replay.
    let ch = net.challenge(&alice.did()).await;
    assert_eq!(net.answer(&ch, ALICE, &alice.key_id()).await.status, 200);
    net.answer(&ch, ALICE, &alice.key_id()).await.problem(401, "replayed-challenge");
    // Signed by another key, or naming the key-agreement method: refused, and the
    // challenge is not spent by the failure.
    let ch = net.challenge(&alice.did()).await;
    net.answer(&ch, BOB, &alice.key_id()).await.problem(401, "authentication-failed");
    net.answer(&ch, ALICE, &alice.x25519_key_id()).await.problem(401, "authentication-failed");
    assert_eq!(net.answer(&ch, ALICE, &alice.key_id()).await.status, 200);
    // A challenge answered after it expired.
    let ch = net.challenge(&alice.did()).await;
    net.clock.set(T0 + auth::CHALLENGE_TTL_MS);
    net.answer(&ch, ALICE, &alice.key_id()).await.problem(401, "expired-token");
    // A token used after it expired.
    let token = net.login(ALICE).await;
    let grants = net.grants(&net.subject(ALICE), 0, 16);
    assert_eq!(net.history(&token, &grants, "").await.status, 200);
    net.clock.set(T0 + auth::CHALLENGE_TTL_MS + auth::TOKEN_TTL_MS);
    net.history(&token, &grants, "").await.problem(401, "expired-token");
    // A token minted by another node's key, and a challenge passed off as a token.
    let forged = auth::issue(
        &auth::Claims {
            typ: "token".into(),
            aud: "v0".into(),
            chain: net.genesis.hash().to_hex(),
            did: alice.did(),
            role: auth::Role::Subject,
            iat: 0,
            exp: u64::MAX / 2,
            nonce: "00".into(),
        },
        &key(STRANGER),
    );
    net.history(&forged, &grants, "").await.problem(401, "invalid-token");
    let ch = net.challenge(&alice.did()).await;
    net.history(&ch, &grants, "").await.problem(401, "invalid-token");
    // Unknown DIDs get no challenge.
    net.post_json("/v1/auth/challenge", json!({"did": "did:dojang:zzzz"})).await.problem(401, "unknown-did");
    net.post_json("/v1/auth/challenge", json!({"did": "did:web:example.com"})).await.problem(401, "unknown-did");
    net.post_json("/v1/auth/token", json!({"challenge": "x", "verificationMethod": "y", "signature": "z"}))
        .await
        .problem(400, "malformed-auth");
    net.node.stop().await;
}

#[tokio::test]
async fn unsigned_unauthorised_and_malformed_events_are_refused() {
    let net = Net::start(StorageKind::Memory).await;
    let g = net.genesis.clone();
    let error_slug = |a: &Answer| a.json()["results"][0]["error"]["type"].as_str().unwrap_or_default().to_owned();
    // Signed by a key that is no agency's writer.
    let mut e = net.event(W1, ALICE, 0, "tax", 1, &[]);
    let payload = dojang_core::entry::Entry::decode(&e).unwrap().payload;
    let stranger = signed(STRANGER, Kind::AccessEvent, payload.clone(), 1, &g);
    assert_eq!(error_slug(&net.post_events(&[stranger]).await), "urn:dojang:problem:unauthorized");
    // A broken signature.
    let n = e.len();
    e[n - 1] ^= 1;
    assert_eq!(error_slug(&net.post_events(&[e]).await), "urn:dojang:problem:bad-signature");
    // Not an access event at all.
    let other = signed(W1, Kind::DocumentIssuance, b"{}".to_vec(), 2, &g);
    net.post_events(&[other]).await.problem(400, "wrong-kind");
    // A payload that is not a sealed event.
    let junk = signed(W1, Kind::AccessEvent, br#"{"v":1,"subject":"did:key:z6Mk"}"#.to_vec(), 3, &g);
    assert!(!net.post_events(&[junk]).await.json()["results"][0]["error"].is_null());
    // Sealed to an auditor genesis does not list.
    let rogue = net.event(W1, ALICE, 0, "tax", 4, &[Auditor::from_did_key(&dk(STRANGER))]);
    assert_eq!(error_slug(&net.post_events(&[rogue]).await), "urn:dojang:problem:unknown-auditor");
    // The same slot twice: once in a batch, once against the ledger.
    let a = net.post_events(&[net.event(W1, ALICE, 0, "tax", 5, &[]), net.event(W1, ALICE, 0, "health", 6, &[])]).await;
    assert!(a.json()["results"][0].get("index").is_some());
    assert_eq!(a.json()["results"][1]["error"]["type"], "urn:dojang:problem:duplicate-access-tag");
    let a = net.post_events(&[net.event(W1, ALICE, 0, "welfare", 7, &[])]).await;
    assert_eq!(error_slug(&a), "urn:dojang:problem:duplicate-access-tag");
    // Slot lookups.
    let tag = hex::encode(net.subject(ALICE).pair_key(&dk(W1).key_id()).unwrap().tag(0, &dk(ALICE).did()));
    assert_eq!(call_with("GET", net.url(&format!("/v1/access/tags/{tag}")), vec![], vec![]).await.status, 200);
    let free = hex::encode(net.subject(ALICE).pair_key(&dk(W1).key_id()).unwrap().tag(1, &dk(ALICE).did()));
    call_with("GET", net.url(&format!("/v1/access/tags/{free}")), vec![], vec![]).await.problem(404, "unknown-tag");
    call_with("GET", net.url("/v1/access/tags/xyz"), vec![], vec![]).await.problem(400, "bad-tag");
    net.node.stop().await;
}

#[tokio::test]
async fn the_wrong_key_fails_cleanly_and_the_auditor_reads_its_copies() {
    let net = Net::start(StorageKind::Memory).await;
    seed_events(&net).await;
    let bundle = net.alice_bundle().await;
    let alice = net.subject(ALICE);
    let v = audit::verify_history(&net.genesis, &bundle, &alice, OsRng).unwrap();
    // Bob's key (claiming Alice's DID) opens nothing.
    let impostor = SubjectKey::from_ed25519(&key(BOB), &dk(ALICE).did()).unwrap();
    for e in &v.events {
        assert!(
            matches!(impostor.open(&net.genesis.hash(), &e.event), Err(access::AccessError::Decrypt)),
            "{:?}",
            impostor.open(&net.genesis.hash(), &e.event)
        );
    }
    // The auditor: its four copies (W1's events), opened with its key.
    let token = net.login(AUDITOR).await;
    let a = call_with("GET", net.url("/v1/audit/auditor"), vec![("Authorization".into(), format!("Bearer {token}"))], vec![]).await;
    assert_eq!(a.status, 200, "{}", a.text());
    let j = a.json();
    let cp = dojang_core::checkpoint::SignedCheckpoint::parse(j["checkpoint"].as_str().unwrap()).unwrap().verify(&net.genesis).unwrap();
    let proofs: Vec<dojang_core::did_proof::EntryProof> = serde_json::from_value(j["entries"].clone()).unwrap();
    assert_eq!(proofs.len(), 5);
    let x = access::x25519_secret_from_ed25519(&key(AUDITOR));
    let kid = dk(AUDITOR).x25519_key_id();
    let mut subjects = Vec::new();
    for p in &proofs {
        let (e, _) = p.open(&cp).unwrap();
        let ev = access::AccessEvent::decode(&e.payload).unwrap();
        subjects.push(access::open_as_auditor(&x, &kid, &net.genesis.hash(), &ev).unwrap().subject);
        // Not with another key.
        assert!(access::open_as_auditor(&access::x25519_secret_from_ed25519(&key(BOB)), &kid, &net.genesis.hash(), &ev).is_err());
    }
    assert_eq!(subjects.iter().filter(|s| **s == dk(ALICE).did()).count(), 3);
    // Paging from an index past the first events.
    let from = proofs[2].index;
    let a = call_with(
        "GET",
        net.url(&format!("/v1/audit/auditor?from={from}&limit=2")),
        vec![("Authorization".into(), format!("Bearer {token}"))],
        vec![],
    )
    .await;
    let page: Vec<dojang_core::did_proof::EntryProof> = serde_json::from_value(a.json()["entries"].clone()).unwrap();
    assert_eq!(page.iter().map(|p| p.index).collect::<Vec<_>>(), vec![proofs[2].index, proofs[3].index]);
    net.node.stop().await;
}

// Multi-threaded: the test thread blocks on the feed while the node serves it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_live_feed_notifies_the_subject_of_a_new_event() {
    let net = Net::start(StorageKind::Memory).await;
    seed_events(&net).await;
    let alice = net.subject(ALICE);
    let token = net.login(ALICE).await;
    // Next slots: W1 has 3 events, W2 has 2.
    let mut grants = Vec::new();
    for (w, next) in [(dk(W1).key_id(), 3u64), (dk(W2).key_id(), 2)] {
        for n in alice.pair_key(&w).unwrap().grant(next, next + 4).unwrap() {
            grants.push(ChainGrant::new(&w, &n));
        }
    }
    let url = net.url("/v1/audit/feed");
    let headers = vec![("Authorization".to_owned(), format!("Bearer {token}")), (GRANT_HEADER.to_owned(), audit::encode_grants(&grants))];
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        let mut req = ureq::get(&url).timeout(std::time::Duration::from_secs(60));
        for (k, v) in &headers {
            req = req.set(k, v);
        }
        let resp = req.call().unwrap();
        let _ = tx.send("open".into());
        for line in std::io::BufReader::new(resp.into_reader()).lines() {
            let line = line.unwrap();
            if line.starts_with("data:") && tx.send(line).is_err() {
                return;
            }
        }
    });
    let recv = move || rx.recv_timeout(std::time::Duration::from_secs(30)).expect("feed delivered nothing within 30 s");
    assert_eq!(recv(), "open");
    // Another subject's event does not notify Alice; hers does.
    net.record_ok(&[net.event(W1, BOB, 2, "tax", 10, &[])]).await;
    net.record_ok(&[net.event(W2, ALICE, 2, "health", 11, &[])]).await;
    let line = recv();
    let v: Value = serde_json::from_str(line.trim_start_matches("data:").trim()).unwrap();
    assert_eq!(v["writer"], dk(W2).key_id());
    assert_eq!(v["slot"], 2);
    net.node.stop().await;
}

/// Seeds identifiers of two citizens through real events on RocksDB, stops the node, and
/// scans every stored key and value (and every byte of every file of the data directory)
/// for them in any form a replica reader could match: the DID text, the key bytes, and
/// unkeyed hashes of each (raw and hex). Also the sealed details' official ids.
#[tokio::test]
async fn no_subject_identifier_reaches_the_ledger_or_rocksdb() {
    let net = Net::start(StorageKind::Rocksdb).await;
    seed_events(&net).await;
    let data = net._dir.path().join("data");
    let backend = net.node.parts.ledger.store().backend().clone();
    let mut needles: Vec<(String, Vec<u8>)> = Vec::new();
    for seed in [ALICE, BOB] {
        let d = dk(seed);
        let did = d.did();
        let suffix = did.trim_start_matches("did:key:").to_owned();
        let vk = key(seed).verifying_key().to_bytes().to_vec();
        let xk = d.x25519_public_key().to_vec();
        for (what, bytes) in
            [("did", did.as_bytes().to_vec()), ("did suffix", suffix.as_bytes().to_vec()), ("ed25519 key", vk), ("x25519 key", xk)]
        {
            let b3 = blake3::hash(&bytes).as_bytes().to_vec();
            let sha = <sha2::Sha256 as sha2::Digest>::digest(&bytes).to_vec();
            needles.push((format!("{what} of {seed}"), bytes.clone()));
            needles.push((format!("hex {what} of {seed}"), hex::encode(&bytes).into_bytes()));
            needles.push((format!("blake3({what}) of {seed}"), b3.clone()));
            needles.push((format!("hex blake3({what}) of {seed}"), hex::encode(&b3).into_bytes()));
            needles.push((format!("sha256({what}) of {seed}"), sha.clone()));
            needles.push((format!("hex sha256({what}) of {seed}"), hex::encode(&sha).into_bytes()));
        }
    }
    for official in ["officer-20", "officer-21", "officer-30"] {
        needles.push((format!("official {official}"), official.as_bytes().to_vec()));
    }
    for (_, n) in &needles {
        assert!(n.len() >= 10, "needle too short to be meaningful");
    }
    let find = |hay: &[u8], needle: &[u8]| hay.windows(needle.len()).any(|w| w == needle);
    // The logical contents: every key and value of every table.
    let mut stored = 0usize;
    for t in dojang_node::storage::Table::ALL {
        for (k, v) in backend.scan_prefix(t, &[], usize::MAX).unwrap() {
            stored += k.len() + v.len();
            for (what, n) in &needles {
                assert!(!find(&k, n) && !find(&v, n), "{what} found in table {}", t.name());
            }
        }
    }
    assert!(stored > 5_000, "the scan saw only {stored} bytes: it would not catch anything");
    // A control: the same scan does find what *is* public (the writer key id of an event).
    let writer = dk(W1).key_id();
    let mut seen_writer = false;
    for (_, v) in backend.scan_prefix(dojang_node::storage::Table::Entries, &[], usize::MAX).unwrap() {
        seen_writer |= find(&v, writer.as_bytes());
    }
    assert!(seen_writer, "the scan cannot find even the writer key id: it is broken");
    net.node.stop().await;
    // The raw files: SSTs, WAL, manifest, logs.
    let mut files = vec![data.clone()];
    let mut scanned = 0usize;
    while let Some(p) = files.pop() {
        if p.is_dir() {
            files.extend(std::fs::read_dir(&p).unwrap().map(|e| e.unwrap().path()));
        } else {
            let bytes = std::fs::read(&p).unwrap();
            scanned += bytes.len();
            for (what, n) in &needles {
                assert!(!find(&bytes, n), "{what} found in {}", p.display());
            }
        }
    }
    assert!(scanned > 5_000, "only {scanned} bytes on disk");
}

#[tokio::test]
async fn a_later_history_must_extend_the_saved_one() {
    let net = Net::start(StorageKind::Memory).await;
    seed_events(&net).await;
    let alice = net.subject(ALICE);
    let earlier = audit::verify_history(&net.genesis, &net.alice_bundle().await, &alice, OsRng).unwrap();
    net.record_ok(&[net.event(W1, ALICE, 3, "tax", 20, &[]), net.event(W2, ALICE, 2, "tax", 21, &[])]).await;
    let later = audit::verify_history(&net.genesis, &net.alice_bundle().await, &alice, OsRng).unwrap();
    let (from, to) = (earlier.checkpoint.checkpoint.size, later.checkpoint.checkpoint.size);
    let c: dojang_core::bundle::ConsistencyBundle = serde_json::from_slice(
        &call_with("GET", net.url(&format!("/v1/proofs/consistency?from={from}&to={to}")), vec![], vec![]).await.body,
    )
    .unwrap();
    assert_eq!(audit::verify_extension(&net.genesis, &earlier, &later, Some(&c)).unwrap(), 2);
    // Without the proof, or backwards: refused.
    assert!(matches!(audit::verify_extension(&net.genesis, &earlier, &later, None), Err(AuditError::Fork(_))));
    assert!(matches!(audit::verify_extension(&net.genesis, &later, &earlier, Some(&c)), Err(AuditError::Older { .. })));
    // A forked ledger under the same genesis (same validator key, other events): its
    // history cannot pass as an extension of this one's.
    let other = Net::start(StorageKind::Memory).await;
    // Batches of 4, 3 and 2 events: it publishes a checkpoint at the same size 7 as `net`.
    let bob = |j: u32| other.event(W2, BOB, j, "tax", 10 + u64::from(j), &[]);
    other.record_ok(&[other.event(W1, ALICE, 0, "criminal-record", 1, &[]), bob(0), bob(1), bob(2)]).await;
    other.record_ok(&[bob(3), bob(4), bob(5)]).await;
    other.record_ok(&[bob(6), bob(7)]).await;
    let forked = audit::verify_history(&other.genesis, &other.alice_bundle().await, &alice, OsRng).unwrap();
    let (f_from, f_to) = (earlier.checkpoint.checkpoint.size, forked.checkpoint.checkpoint.size);
    assert!(f_to > f_from);
    let a = call_with("GET", other.url(&format!("/v1/proofs/consistency?from={f_from}&to={f_to}")), vec![], vec![]).await;
    assert_eq!(a.status, 200, "{}", a.text());
    let fc: dojang_core::bundle::ConsistencyBundle = serde_json::from_slice(&a.body).unwrap();
    let r = audit::verify_extension(&net.genesis, &earlier, &forked, Some(&fc));
    assert!(matches!(r, Err(AuditError::Fork(_))), "{r:?}");
    net.node.stop().await;
    other.node.stop().await;
}
