//! Multi-process tests of the 4-validator BFT network (`specs/consensus.md` §9): real
//! `dojangd` processes on loopback. Every wait polls with a generous deadline; the only
//! fixed waits are observation windows that assert something does *not* happen.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic, clippy::needless_range_loop)]

use std::collections::BTreeMap;
use std::io::{Read as _, Write as _};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use dojang_core::checkpoint::SignedCheckpoint;
use dojang_tests::{Cluster, Daemon, wait_until};

/// One 4-validator cluster at a time: several would share the two cores and turn
/// timeouts into flakiness.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

/// Submits `count` entries by writer `w` to `d`; returns (index, bytes) of each acknowledged.
fn submit(c: &Cluster, d: &Daemon, w: usize, first_nonce: u64, count: u64) -> Vec<(u64, Vec<u8>)> {
    let batch: Vec<Vec<u8>> = (first_nonce..first_nonce + count).map(|n| c.entry(w, n, format!("w{w} n{n}").as_bytes())).collect();
    let results = d.post_batch(&batch).unwrap();
    assert_eq!(results.len(), batch.len());
    results
        .iter()
        .zip(batch)
        .map(|(r, b)| {
            let index = r["index"].as_u64().unwrap_or_else(|| panic!("entry refused: {r}"));
            (index, b)
        })
        .collect()
}

/// Every node has at least `size` entries; their checkpoints at the common size have the
/// same body and each carries a quorum.
fn assert_same_ledger(c: &Cluster, nodes: &[&Daemon], acked: &BTreeMap<u64, Vec<u8>>) {
    let size = nodes.iter().map(|d| d.size()).min().unwrap();
    let mut body = None;
    for d in nodes {
        let text = d.get_text("/v1/checkpoint");
        let cp = SignedCheckpoint::parse(&text).unwrap();
        cp.verify(&c.genesis).unwrap_or_else(|e| panic!("checkpoint from {} has no quorum: {e}", d.url));
        if cp.checkpoint.size == size {
            let b = cp.checkpoint.body();
            if let Some(prev) = &body {
                assert_eq!(prev, &b, "nodes disagree on the checkpoint at size {size}");
            }
            body = Some(b);
        }
    }
    for (i, bytes) in acked {
        for d in nodes {
            assert_eq!(&d.entry_bytes(*i), bytes, "entry {i} differs on {}", d.url);
        }
    }
}

fn all_reach(nodes: &[&Daemon], size: u64, secs: u64) {
    wait_until(secs, &format!("every node to reach size {size}"), || nodes.iter().all(|d| d.size() >= size));
}

#[test]
fn n4_commit() {
    let _serial = serial();
    let c = Cluster::new(4, &[]);
    let nodes: Vec<Daemon> = (0..4).map(|i| c.start(i)).collect();
    let mut acked = BTreeMap::new();
    for round in 0..3u64 {
        // Entries go to different validators, concurrently.
        let got: Vec<Vec<(u64, Vec<u8>)>> = std::thread::scope(|s| {
            let hs: Vec<_> = (0..4)
                .map(|i| {
                    let (c, d) = (&c, &nodes[i]);
                    s.spawn(move || submit(c, d, i, 1 + round * 20, 20))
                })
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        });
        for (i, b) in got.into_iter().flatten() {
            assert!(acked.insert(i, b).is_none(), "two entries acknowledged at index {i}");
        }
    }
    assert_eq!(acked.len(), 240);
    assert_eq!(*acked.keys().last().unwrap(), 239, "indices are dense: each entry committed once");
    let refs: Vec<&Daemon> = nodes.iter().collect();
    all_reach(&refs, 240, 120);
    assert!(refs.iter().all(|d| d.size() == 240), "no node has more entries than were acknowledged");
    assert_same_ledger(&c, &refs, &acked);
}

#[test]
fn n4f1_crash() {
    let _serial = serial();
    let c = Cluster::new(4, &[]);
    let mut nodes: Vec<Option<Daemon>> = (0..4).map(|i| Some(c.start(i))).collect();
    let mut acked = BTreeMap::new();
    acked.extend(submit(&c, nodes[0].as_ref().unwrap(), 0, 1, 30));
    nodes[3].take().unwrap().kill9();
    // One of four down: the other three still make progress.
    for (k, w) in [1usize, 2, 0].into_iter().enumerate() {
        acked.extend(submit(&c, nodes[w].as_ref().unwrap(), w, 100 + k as u64 * 100, 30));
    }
    let total = acked.len() as u64;
    nodes[3] = Some(c.start(3));
    let refs: Vec<&Daemon> = nodes.iter().flatten().collect();
    // The restarted node recovers from its own store and catches up through value sync.
    all_reach(&refs, total, 180);
    assert_same_ledger(&c, &refs, &acked);
    // And it takes part again: entries submitted to it commit.
    let more = submit(&c, nodes[3].as_ref().unwrap(), 3, 1, 10);
    acked.extend(more);
    all_reach(&refs, acked.len() as u64, 120);
    assert_same_ledger(&c, &refs, &acked);
}

#[test]
fn n4f1_byzantine() {
    let _serial = serial();
    let extra = ["".to_owned(), "".into(), "".into(), "test_misbehaviour = \"forge-entry\"".into()];
    let c = Cluster::new(4, &extra);
    let nodes: Vec<Daemon> = (0..4).map(|i| c.start(i)).collect();
    // Keep the byzantine proposer's mempool non-empty so that every block it proposes
    // carries a forged entry. What it receives is valid and gossiped, so honest proposers
    // commit it: those acknowledgements are collected too.
    let stop = Arc::new(AtomicBool::new(false));
    let byz_acked = Arc::new(Mutex::new(BTreeMap::new()));
    let byz = {
        let (stop, url, acked) = (stop.clone(), nodes[3].url.clone(), byz_acked.clone());
        let entries: Vec<Vec<u8>> = (1..=400u64).map(|n| c.entry(3, n, format!("byz {n}").as_bytes())).collect();
        std::thread::spawn(move || {
            use base64::Engine as _;
            for e in entries {
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                let body = serde_json::json!({ "entries": [base64::engine::general_purpose::STANDARD.encode(&e)] });
                let Ok(r) = ureq::post(&format!("{url}/v1/entries")).timeout(Duration::from_secs(30)).send_json(body) else { continue };
                let v: serde_json::Value = r.into_json().unwrap();
                if let Some(i) = v["results"][0]["index"].as_u64() {
                    acked.lock().unwrap().insert(i, e);
                }
            }
        })
    };
    let mut acked = BTreeMap::new();
    for round in 0..3u64 {
        for w in 0..3 {
            acked.extend(submit(&c, &nodes[w], w, 1 + round * 10, 10));
        }
    }
    stop.store(true, Ordering::SeqCst);
    byz.join().unwrap();
    acked.extend(byz_acked.lock().unwrap().clone());
    let total = acked.len() as u64;
    let refs: Vec<&Daemon> = nodes.iter().collect();
    all_reach(&refs, total, 120);
    // No fork, and nothing but acknowledged entries: the forged one never committed.
    assert!(refs.iter().all(|d| d.size() == total), "a node holds an entry nobody acknowledged");
    assert_same_ledger(&c, &refs, &acked);
}

/// Entries reach every validator's mempool by gossip: what a validator that never puts
/// an entry in its own blocks receives is still committed, by the other proposers, and
/// its submitters are answered.
#[test]
fn gossip_commits_what_a_censoring_proposer_receives() {
    let _serial = serial();
    let extra = ["test_misbehaviour = \"censor\"".to_owned()];
    let c = Cluster::new(4, &extra);
    let nodes: Vec<Daemon> = (0..4).map(|i| c.start(i)).collect();
    let mut acked = BTreeMap::new();
    for round in 0..3u64 {
        acked.extend(submit(&c, &nodes[0], 0, 1 + round * 50, 50));
    }
    // Resubmitting an entry that is already committed is refused as a replay, not
    // committed twice.
    let again = nodes[0].post_batch(&[c.entry(0, 1, b"w0 n1")]).unwrap();
    assert_eq!(again[0]["error"]["type"].as_str().map(|t| t.ends_with("replayed-nonce")), Some(true), "{again:?}");
    let refs: Vec<&Daemon> = nodes.iter().collect();
    all_reach(&refs, 150, 120);
    assert!(refs.iter().all(|d| d.size() == 150));
    assert_same_ledger(&c, &refs, &acked);
}

#[test]
fn non_genesis_peer_is_refused() {
    let _serial = serial();
    let extra = ["".to_owned(), "".into(), "".into(), "test_misbehaviour = \"rogue-p2p-key\"".into()];
    let c = Cluster::new(4, &extra);
    let nodes: Vec<Daemon> = (0..4).map(|i| c.start(i)).collect();
    let mut acked = BTreeMap::new();
    acked.extend(submit(&c, &nodes[0], 0, 1, 20));
    acked.extend(submit(&c, &nodes[1], 1, 1, 20));
    let honest: Vec<&Daemon> = nodes[..3].iter().collect();
    all_reach(&honest, 40, 120);
    assert_same_ledger(&c, &honest, &acked);
    // Observation window: value sync would have served the rogue node by now had any
    // validator accepted its connection.
    std::thread::sleep(Duration::from_secs(5));
    assert_eq!(nodes[3].size(), 0, "a peer with a non-genesis libp2p identity received blocks");
}

/// A loopback TCP proxy for one direction of one validator pair; `blocked` cuts it.
struct Proxy {
    port: u16,
    blocked: Arc<AtomicBool>,
    conns: Arc<Mutex<Vec<TcpStream>>>,
}

impl Proxy {
    fn start(target: u16) -> Proxy {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let blocked = Arc::new(AtomicBool::new(false));
        let conns = Arc::new(Mutex::new(Vec::new()));
        let (b, cs) = (blocked.clone(), conns.clone());
        std::thread::spawn(move || {
            for inbound in l.incoming() {
                let Ok(inbound) = inbound else { continue };
                if b.load(Ordering::SeqCst) {
                    let _ = inbound.shutdown(Shutdown::Both);
                    continue;
                }
                let Ok(outbound) = TcpStream::connect(("127.0.0.1", target)) else { continue };
                cs.lock().unwrap().extend([inbound.try_clone().unwrap(), outbound.try_clone().unwrap()]);
                for (mut from, mut to) in [(inbound.try_clone().unwrap(), outbound.try_clone().unwrap()), (outbound, inbound)] {
                    std::thread::spawn(move || {
                        let mut buf = vec![0u8; 64 << 10];
                        while let Ok(n) = from.read(&mut buf) {
                            if n == 0 || to.write_all(&buf[..n]).is_err() {
                                break;
                            }
                        }
                        let _ = to.shutdown(Shutdown::Both);
                    });
                }
            }
        });
        Proxy { port, blocked, conns }
    }

    fn set_blocked(&self, on: bool) {
        self.blocked.store(on, Ordering::SeqCst);
        if on {
            for c in self.conns.lock().unwrap().drain(..) {
                let _ = c.shutdown(Shutdown::Both);
            }
        }
    }
}

#[test]
fn n4_partition() {
    let _serial = serial();
    // Every validator reaches every other through its own proxy, so the test can cut the
    // links between {0,1} and {2,3} and restore them.
    let ports: Vec<u16> = (0..4).map(|_| dojang_tests::free_port()).collect();
    let mut proxies = BTreeMap::new();
    let mut extra = Vec::new();
    for i in 0..4 {
        let mut lines = format!("p2p_listen = \"127.0.0.1:{}\"\n[peer_addresses]\n", ports[i]);
        for j in 0..4 {
            if i != j {
                let p = Proxy::start(ports[j]);
                lines.push_str(&format!("v{j} = \"127.0.0.1:{}\"\n", p.port));
                proxies.insert((i, j), p);
            }
        }
        extra.push(lines);
    }
    let c = Cluster::new(4, &extra);
    let nodes: Vec<Daemon> = (0..4).map(|i| c.start(i)).collect();
    let refs: Vec<&Daemon> = nodes.iter().collect();
    let mut acked = BTreeMap::new();
    acked.extend(submit(&c, &nodes[0], 0, 1, 20));
    all_reach(&refs, 20, 120);
    let cross = |i: usize, j: usize| (i < 2) != (j < 2);
    for ((i, j), p) in &proxies {
        if cross(*i, *j) {
            p.set_blocked(true);
        }
    }
    // 2|2: no side has > 2/3 of the power, so nothing may commit.
    let pending = Arc::new(AtomicU64::new(0));
    let t = {
        let (url, batch, pending) = (nodes[2].url.clone(), vec![c.entry(2, 1, b"during partition")], pending.clone());
        std::thread::spawn(move || {
            use base64::Engine as _;
            let body = serde_json::json!({ "entries": batch.iter().map(|e| base64::engine::general_purpose::STANDARD.encode(e)).collect::<Vec<_>>() });
            let r = ureq::post(&format!("{url}/v1/entries")).timeout(Duration::from_secs(120)).send_json(body);
            pending.store(if r.is_ok() { 1 } else { 2 }, Ordering::SeqCst);
        })
    };
    let before: Vec<u64> = refs.iter().map(|d| d.size()).collect();
    std::thread::sleep(Duration::from_secs(6));
    let during: Vec<u64> = refs.iter().map(|d| d.size()).collect();
    assert_eq!(before, during, "a side of a 2|2 partition committed without quorum");
    assert_eq!(pending.load(Ordering::SeqCst), 0, "an entry was acknowledged during the partition");
    for p in proxies.values() {
        p.set_blocked(false);
    }
    // Healed: the entry submitted during the partition commits, everyone converges.
    t.join().unwrap();
    assert_eq!(pending.load(Ordering::SeqCst), 1, "the entry submitted during the partition was not committed after healing");
    acked.extend(submit(&c, &nodes[3], 3, 1, 10));
    all_reach(&refs, 31, 120);
    assert_same_ledger(&c, &refs, &acked);
}

#[test]
fn kill_9_all_under_load_loses_no_acknowledged_entry() {
    let _serial = serial();
    let c = Arc::new(Cluster::new(4, &[]));
    let nodes: Vec<Arc<Daemon>> = (0..4).map(|i| Arc::new(c.start(i))).collect();
    let acked = Arc::new(Mutex::new(BTreeMap::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let mut hs = Vec::new();
    for w in 0..4 {
        let (c, d, acked, stop) = (c.clone(), nodes[w].clone(), acked.clone(), stop.clone());
        hs.push(std::thread::spawn(move || {
            let mut nonce = 1u64;
            while !stop.load(Ordering::SeqCst) {
                let batch: Vec<Vec<u8>> = (nonce..nonce + 25).map(|n| c.entry(w, n, format!("w{w} n{n}").as_bytes())).collect();
                nonce += 25;
                if let Ok(results) = d.post_batch(&batch) {
                    let mut a = acked.lock().unwrap();
                    for (r, b) in results.iter().zip(batch) {
                        if let Some(i) = r["index"].as_u64() {
                            a.insert(i, b);
                        }
                    }
                }
            }
        }));
    }
    wait_until(120, "300 acknowledged entries", || acked.lock().unwrap().len() >= 300);
    // kill -9 every node while clients are mid-request.
    for d in &nodes {
        let _ = std::process::Command::new("kill").arg("-KILL").arg(d.child.id().to_string()).status();
    }
    stop.store(true, Ordering::SeqCst);
    for h in hs {
        h.join().unwrap();
    }
    drop(nodes);
    let acked = acked.lock().unwrap().clone();
    let restarted: Vec<Daemon> = (0..4).map(|i| c.start(i)).collect();
    let refs: Vec<&Daemon> = restarted.iter().collect();
    let max = *acked.keys().last().unwrap() + 1;
    all_reach(&refs, max, 180);
    assert_same_ledger(&c, &refs, &acked);
    // Writing resumes.
    let more = submit(&c, &restarted[1], 1, 1_000_000, 5);
    assert_eq!(more.len(), 5);
}

/// A read replica (`specs/consensus.md` §10) follows the validators over HTTP, ends up with
/// the same entries and a quorum checkpoint with the same body, refuses writes with
/// `421 read-replica`, and catches up after being killed.
#[test]
fn read_replica_follows_and_refuses_writes() {
    let _serial = serial();
    let c = Cluster::new(4, &[]);
    let nodes: Vec<Daemon> = (0..4).map(|i| c.start(i)).collect();
    let urls: Vec<String> = nodes.iter().map(|d| d.url.clone()).collect();
    let cfg = c.replica_config("r1", &urls);
    let replica = Daemon::spawn(&cfg);
    let mut acked = BTreeMap::new();
    for w in 0..4 {
        acked.extend(submit(&c, &nodes[w], w, 1, 20));
    }
    let total = acked.len() as u64;
    let validators: Vec<&Daemon> = nodes.iter().collect();
    all_reach(&validators, total, 120);
    wait_until(120, &format!("the replica to reach size {total}"), || replica.size() >= total);
    let mut all = validators.clone();
    all.push(&replica);
    assert!(all.iter().all(|d| d.size() == total), "a node holds an entry nobody acknowledged");
    assert_same_ledger(&c, &all, &acked);
    // The replica's checkpoint is the validators' body with validators' signatures only.
    let cp = SignedCheckpoint::parse(&replica.get_text("/v1/checkpoint")).unwrap();
    let at_v0 = SignedCheckpoint::parse(&nodes[0].checkpoint_at(total)).unwrap();
    assert_eq!(cp.checkpoint.body(), at_v0.checkpoint.body());
    assert!(cp.signatures.iter().all(|s| s.name != "r1"), "the replica signed a checkpoint");
    // Each block it stores is one a validator stores, byte for byte.
    let top: serde_json::Value = replica.get("/v1/blocks").unwrap().into_json().unwrap();
    let top = top["height"].as_u64().unwrap();
    assert!(top >= 1);
    for h in 1..=top {
        let mine = read_all(replica.get(&format!("/v1/blocks/{h}")).unwrap());
        let theirs: Vec<Vec<u8>> = nodes.iter().filter_map(|d| d.get(&format!("/v1/blocks/{h}")).ok()).map(read_all).collect();
        assert!(theirs.contains(&mine), "the replica's block {h} is not one a validator stores");
    }
    // Writes are refused with the documented problem, naming the validators.
    let err = ureq::post(&format!("{}/v1/entries", replica.url))
        .set("Content-Type", "application/octet-stream")
        .timeout(Duration::from_secs(10))
        .send_bytes(&c.entry(0, 1000, b"to a replica"))
        .unwrap_err();
    let ureq::Error::Status(status, resp) = err else { panic!("transport error: {err}") };
    assert_eq!(status, 421);
    assert_eq!(resp.header("content-type"), Some("application/problem+json"));
    let problem: serde_json::Value = resp.into_json().unwrap();
    assert_eq!(problem["type"], "urn:dojang:problem:read-replica");
    assert!(problem["detail"].as_str().unwrap().contains(&urls[0]), "{problem}");
    match replica.post_batch(&[c.entry(0, 1001, b"batch to a replica")]).unwrap_err().as_ref() {
        ureq::Error::Status(421, _) => {}
        e => panic!("a batch to the replica was not refused with 421: {e}"),
    }
    assert_eq!(replica.size(), total, "a write reached the replica's ledger");
    // Killed, it misses blocks; restarted, it catches up from its own store.
    replica.kill9();
    for w in 0..2 {
        acked.extend(submit(&c, &nodes[w], w, 100, 15));
    }
    let total = acked.len() as u64;
    all_reach(&validators, total, 120);
    let replica = Daemon::spawn(&cfg);
    wait_until(120, &format!("the restarted replica to catch up to size {total}"), || replica.size() >= total);
    let mut all = validators.clone();
    all.push(&replica);
    assert_same_ledger(&c, &all, &acked);
}

fn read_all(r: ureq::Response) -> Vec<u8> {
    let mut got = Vec::new();
    r.into_reader().read_to_end(&mut got).unwrap();
    got
}
