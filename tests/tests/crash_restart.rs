//! Crash safety of the single-node write path (`specs/ledger.md` §8.2): `kill -9` the
//! daemon while several clients are mid-submission (access events, and document issuances
//! whose state lives in its own tables), restart it, and check that every acknowledged
//! entry is there with the same bytes, that every acknowledged document verifies, that
//! the new checkpoint is consistent with every checkpoint observed before the crash, and
//! that writing resumes.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dojang_core::bundle::ConsistencyBundle;
use dojang_core::checkpoint::SignedCheckpoint;
use dojang_core::documents;
use dojang_core::entry::Kind;
use dojang_tests::Chain;

fn blake3_salt(n: u64) -> blake3::Hash {
    blake3::hash(&n.to_le_bytes())
}

fn doc_bytes(n: u64) -> Vec<u8> {
    format!("crash-test certificate {n}").into_bytes()
}

const CLIENTS: usize = 4;
const BATCH: u64 = 50;

#[test]
fn kill_9_mid_batch_loses_no_acknowledged_entry() {
    // One more writer: it issues documents while the others write access events.
    let chain = Arc::new(Chain::new(CLIENTS as u8 + 1));
    let docs: Arc<Mutex<Vec<u64>>> = Arc::new(Mutex::new(Vec::new()));
    let doc_nonce = Arc::new(AtomicU64::new(1));
    // Acknowledged entries: leaf index -> exact bytes. Per-client next nonce survives rounds.
    let acked: Arc<Mutex<BTreeMap<u64, Vec<u8>>>> = Arc::new(Mutex::new(BTreeMap::new()));
    let nonces: Arc<Vec<AtomicU64>> = Arc::new((0..CLIENTS).map(|_| AtomicU64::new(1)).collect());
    let mut checkpoints: Vec<String> = Vec::new();

    for round in 0..3 {
        let daemon = Arc::new(chain.start());
        let before = acked.lock().unwrap().len() as u64;
        let stop = Arc::new(AtomicBool::new(false));
        let mut handles = Vec::new();
        for c in 0..CLIENTS {
            let (chain, daemon, acked, nonces, stop) = (chain.clone(), daemon.clone(), acked.clone(), nonces.clone(), stop.clone());
            handles.push(std::thread::spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    let first = nonces[c].load(Ordering::SeqCst);
                    let batch: Vec<Vec<u8>> =
                        (first..first + BATCH).map(|n| chain.entry(c, n, format!("client {c} nonce {n}").as_bytes())).collect();
                    // Nonces are consumed whether or not the batch lands: a resubmission
                    // after a crash must not collide with an entry that did commit.
                    nonces[c].store(first + BATCH, Ordering::SeqCst);
                    match daemon.post_batch(&batch) {
                        Ok(results) => {
                            let mut a = acked.lock().unwrap();
                            for (r, bytes) in results.iter().zip(&batch) {
                                let index = r["index"].as_u64().unwrap_or_else(|| panic!("entry refused: {r}"));
                                a.insert(index, bytes.clone());
                            }
                        }
                        Err(_) => return, // the daemon is gone
                    }
                }
            }));
        }
        {
            let (chain, daemon, docs, doc_nonce, stop) = (chain.clone(), daemon.clone(), docs.clone(), doc_nonce.clone(), stop.clone());
            handles.push(std::thread::spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    let first = doc_nonce.fetch_add(20, Ordering::SeqCst);
                    let salts: Vec<[u8; 32]> = (first..first + 20).map(|n| *blake3_salt(n).as_bytes()).collect();
                    let batch: Vec<Vec<u8>> = salts
                        .iter()
                        .zip(first..)
                        .map(|(salt, n)| {
                            let issuance = documents::Issuance {
                                document_type: "certificate".into(),
                                commitment: documents::commitment(salt, &doc_bytes(n)),
                                valid_from: 0,
                                valid_until: None,
                                holder: None,
                            };
                            chain.signed(CLIENTS, Kind::DocumentIssuance, n, &issuance.encode())
                        })
                        .collect();
                    match daemon.post_batch(&batch) {
                        Ok(results) => {
                            for (r, n) in results.iter().zip(first..) {
                                assert!(r["index"].is_u64(), "issuance refused: {r}");
                                docs.lock().unwrap().push(n);
                            }
                        }
                        Err(_) => return,
                    }
                }
            }));
        }
        // Let load build up, sampling checkpoints, then kill without warning.
        let deadline = Instant::now() + Duration::from_secs(20);
        while acked.lock().unwrap().len() as u64 <= before + 1500 && Instant::now() < deadline {
            checkpoints.push(daemon.get_text("/v1/checkpoint"));
            std::thread::sleep(Duration::from_millis(25));
        }
        assert!(acked.lock().unwrap().len() as u64 > before, "round {round}: no progress before the kill");
        let pid = daemon.child.id();
        std::process::Command::new("kill").arg("-9").arg(pid.to_string()).status().unwrap();
        stop.store(true, Ordering::SeqCst);
        for h in handles {
            h.join().unwrap();
        }
        drop(daemon);

        // Restart and check everything acknowledged so far.
        let daemon = chain.start();
        let latest = daemon.get_text("/v1/checkpoint");
        let v = SignedCheckpoint::parse(&latest).unwrap().verify(&chain.genesis).unwrap();
        let acked_now = acked.lock().unwrap().clone();
        let max_index = *acked_now.keys().last().unwrap();
        assert!(v.checkpoint.size > max_index, "round {round}: tree size {} lost acknowledged index {max_index}", v.checkpoint.size);
        for (index, bytes) in &acked_now {
            let mut got = Vec::new();
            std::io::Read::read_to_end(&mut daemon.get(&format!("/v1/entries/{index}")).unwrap().into_reader(), &mut got).unwrap();
            assert_eq!(&got, bytes, "round {round}: entry {index} differs after restart");
        }
        // Every checkpoint seen before the crash is a prefix of the recovered tree.
        for old in checkpoints.iter().filter_map(|t| SignedCheckpoint::parse(t).ok()) {
            let from = old.checkpoint.size;
            if from == 0 || from == v.checkpoint.size {
                continue;
            }
            let b: ConsistencyBundle =
                serde_json::from_str(&daemon.get_text(&format!("/v1/proofs/consistency?from={from}&to={}", v.checkpoint.size))).unwrap();
            assert_eq!(b.old_checkpoint, old.to_text(), "round {round}: checkpoint at size {from} changed");
            b.verify(&chain.genesis).unwrap_or_else(|e| panic!("round {round}: size {from} -> {}: {e}", v.checkpoint.size));
        }
        // Every acknowledged document verifies, with its proof, as genuine.
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64;
        let acked_docs = docs.lock().unwrap().clone();
        assert!(!acked_docs.is_empty(), "round {round}: no document was acknowledged");
        for &n in &acked_docs {
            let salt = *blake3_salt(n).as_bytes();
            let c = documents::commitment(&salt, &doc_bytes(n));
            let answer: serde_json::Value = serde_json::from_str(&daemon.get_text(&format!("/v1/documents/{c}"))).unwrap();
            assert_eq!(answer["verdict"], "genuine", "round {round}: document {n} after restart: {answer}");
            let proof: documents::DocumentProof = serde_json::from_value(answer["proof"].clone()).unwrap();
            let v = documents::verify_document(&chain.genesis, &doc_bytes(n), &salt, &proof, now).unwrap();
            assert_eq!(v.verdict, documents::Verdict::Genuine);
        }
        // Writing resumes with fresh nonces.
        let n = nonces[0].fetch_add(1, Ordering::SeqCst);
        let e = chain.entry(0, n, format!("after restart {round}").as_bytes());
        let r = daemon.post_batch(std::slice::from_ref(&e)).unwrap();
        let index = r[0]["index"].as_u64().unwrap_or_else(|| panic!("round {round}: write after restart refused: {}", r[0]));
        acked.lock().unwrap().insert(index, e);
        checkpoints.push(daemon.get_text("/v1/checkpoint"));
        daemon.kill9();
    }
}

#[test]
fn clean_shutdown_and_restart_keep_everything() {
    let chain = Chain::new(1);
    let d = chain.start();
    let entries: Vec<Vec<u8>> = (1..=20).map(|n| chain.entry(0, n, format!("x{n}").as_bytes())).collect();
    assert!(d.post_batch(&entries).unwrap().iter().all(|r| r["index"].is_u64()));
    let cp = d.get_text("/v1/checkpoint");
    assert!(d.stop().success(), "dojangd did not exit cleanly on SIGTERM");
    let d = chain.start();
    assert_eq!(d.get_text("/v1/checkpoint"), cp);
    // A replay after restart is still refused: nonces are durable too.
    let r = d.post_batch(&entries[..1]).unwrap();
    assert_eq!(r[0]["error"]["type"], "urn:dojang:problem:replayed-nonce");
}
