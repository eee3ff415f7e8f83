//! `dojang bench ledger`: measures the durable write path, proof generation at large tree
//! sizes and storage cost, next to the raw ed25519-dalek verify rates of the same run, and
//! prints one JSON object. Speed targets live here, never in tests.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context as _;
use dojang_core::did_key::DidKey;
use dojang_core::entry::{Kind, UnsignedEntry};
use dojang_core::genesis::{Genesis, Validator};
use dojang_core::merkle::{self, Blake3Hasher, Frontier, TreeHasher as _};
use dojang_node::clock::SystemClock;
use dojang_node::config::{NodeConfig, StorageKind};
use dojang_node::keyfile::KeyFile;
use dojang_node::storage::{LedgerBatch, Store, rocks::RocksBackend};
use dojang_node::tree::CachedTree;
use ed25519_dalek::{Signature, Signer as _, SigningKey};
use serde_json::json;

#[derive(Debug, clap::Args)]
pub struct LedgerBenchArgs {
    /// Signed entries pushed through the durable write path.
    #[arg(long, default_value_t = 200_000)]
    pub entries: u64,
    /// Tree sizes at which proof generation is timed (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "1000000,10000000")]
    pub proof_sizes: Vec<u64>,
    /// Proofs timed per size.
    #[arg(long, default_value_t = 2000)]
    pub proofs: u64,
    /// Entries per submission (what one HTTP batch would carry).
    #[arg(long, default_value_t = 1024)]
    pub chunk: usize,
    /// Write the JSON here as well as to stdout.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// Concurrent client streams in the write-path benchmark.
const STREAMS: usize = 4;

/// A small deterministic PRNG (xorshift64*) so runs are repeatable without a rand dep.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

fn raw_ed25519(n: usize) -> serde_json::Value {
    let key = SigningKey::from_bytes(&[5; 32]);
    let vk = key.verifying_key();
    let pk = vk.to_bytes();
    let msgs: Vec<Vec<u8>> =
        (0..n).map(|i| format!("message {i} of the raw ed25519 benchmark, padded to a typical entry size").into_bytes()).collect();
    let sigs: Vec<Signature> = msgs.iter().map(|m| key.sign(m)).collect();
    let sig_bytes: Vec<[u8; 64]> = sigs.iter().map(Signature::to_bytes).collect();
    let rate = |f: &dyn Fn()| {
        let t = Instant::now();
        f();
        (n as f64 / t.elapsed().as_secs_f64()).round()
    };
    let dalek_strict = rate(&|| {
        for (m, s) in msgs.iter().zip(&sigs) {
            let _ = vk.verify_strict(m, s);
        }
    });
    let keys = vec![vk; 256];
    let dalek_batch = rate(&|| {
        for (mc, sc) in msgs.chunks(256).zip(sigs.chunks(256)) {
            let refs: Vec<&[u8]> = mc.iter().map(Vec::as_slice).collect();
            let _ = ed25519_dalek::verify_batch(&refs, sc, keys.get(..mc.len()).unwrap_or(&keys));
        }
    });
    let zip215_single = rate(&|| {
        for (m, s) in msgs.iter().zip(&sig_bytes) {
            let _ = dojang_core::signature::verify(&pk, m, s);
        }
    });
    let zip215_batch = rate(&|| {
        for (mc, sc) in msgs.chunks(256).zip(sig_bytes.chunks(256)) {
            let _ = dojang_core::signature::verify_batch(mc.iter().zip(sc).map(|(m, s)| (&pk, m.as_slice(), s)), rand_core::OsRng);
        }
    });
    json!({
        "note": "one thread each; the ledger verifies with ed25519-consensus (ZIP 215) so single and batch checks agree",
        "ed25519_dalek_verify_strict_per_sec": dalek_strict,
        "ed25519_dalek_verify_batch256_per_sec": dalek_batch,
        "ed25519_consensus_verify_per_sec": zip215_single,
        "ed25519_consensus_batch256_per_sec": zip215_batch,
        "ledger_ceiling_2_threads_per_sec": 2.0 * zip215_batch,
    })
}

pub fn ledger(args: LedgerBenchArgs) -> anyhow::Result<()> {
    let raw = raw_ed25519(20_000);
    let tmp = tempfile::tempdir().context("cannot create a temporary folder")?;
    let write = write_path(&args, tmp.path())?;
    let proofs = proof_generation(&args, tmp.path())?;
    let report = json!({
        "benchmark": "dojang bench ledger",
        "machine": { "cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1) },
        "raw_ed25519": raw,
        "write_path": write,
        "proofs": proofs,
    });
    let text = serde_json::to_string_pretty(&report)?;
    if let Some(p) = &args.out {
        std::fs::write(p, &text).with_context(|| format!("cannot write {}", p.display()))?;
    }
    crate::emit(true, report, String::new);
    Ok(())
}

/// Writes `genesis` and the validator key into `dir` and returns a RocksDB node config
/// for them, listening on a free loopback port.
pub(crate) fn bench_config(dir: &std::path::Path, genesis: &Genesis, vkey: &SigningKey) -> anyhow::Result<NodeConfig> {
    std::fs::write(dir.join("genesis.json"), genesis.to_json_pretty())?;
    KeyFile::from_signing_key(vkey).write_new(&dir.join("v.key"))?;
    Ok(NodeConfig {
        data_dir: dir.join("data"),
        genesis: dir.join("genesis.json"),
        validator_key: dir.join("v.key"),
        validator_id: "bench".into(),
        listen: "127.0.0.1:0".parse()?,
        max_batch: 16384,
        queue_bytes: 256 << 20,
        max_request_bytes: 16 << 20,
        storage: StorageKind::Rocksdb,
        ..NodeConfig::default()
    })
}

/// Durable appends through the real write path: decode, batch-verify, authorise,
/// sequence, RocksDB group commit with WAL sync, checkpoint signing.
fn write_path(args: &LedgerBenchArgs, dir: &std::path::Path) -> anyhow::Result<serde_json::Value> {
    let vkey = SigningKey::from_bytes(&[1; 32]);
    let writers: Vec<SigningKey> = (0..16u8).map(|i| SigningKey::from_bytes(&[100 + i; 32])).collect();
    let verifying: Vec<_> = writers.iter().map(SigningKey::verifying_key).collect();
    let genesis = Genesis::new("bench", 0, vec![Validator::with_keys("bench", "Bench", &vkey.verifying_key(), &verifying, "")]);
    let cfg = bench_config(dir, &genesis, &vkey)?;
    let gh = genesis.hash();
    let now = crate::devnet::now_ms();
    let authors: Vec<String> = writers.iter().map(|w| DidKey::from_verifying_key(&w.verifying_key()).key_id()).collect();
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    // Independent clients (streams) with disjoint writer keys submit concurrently, each in
    // order; signing is the clients' cost, so it happens before the clock starts.
    let streams = STREAMS.min(writers.len());
    let mut per_stream: Vec<Vec<Vec<u8>>> = vec![Vec::new(); streams];
    for i in 0..args.entries {
        let w = (i % writers.len() as u64) as usize;
        // Access events, the highest-rate kind: a random tag and a padded sealed payload.
        let payload = filler_event(&mut rng);
        let (Some(key), Some(author), Some(stream)) = (writers.get(w), authors.get(w), per_stream.get_mut(w % streams)) else { continue };
        stream.push(
            UnsignedEntry { kind: Kind::AccessEvent, author: author.clone(), nonce: i + 1, timestamp_ms: now, payload }
                .sign(key, &gh)?
                .encode()?,
        );
    }
    let encoded_bytes: usize = per_stream.iter().flatten().map(Vec::len).sum();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let (elapsed, committed, parts) = rt.block_on(async {
        let (parts, committer) = dojang_node::node::assemble(&cfg, Arc::new(SystemClock))?;
        let start = Instant::now();
        let mut tasks = Vec::new();
        for entries in per_stream {
            let write = parts.write.clone();
            let chunk = args.chunk.max(1);
            tasks.push(tokio::spawn(async move {
                let mut ok = 0u64;
                for c in entries.chunks(chunk) {
                    ok += write.submit(c.to_vec()).await?.iter().filter(|o| o.is_ok()).count() as u64;
                }
                anyhow::Ok(ok)
            }));
        }
        let mut committed = 0u64;
        for t in tasks {
            committed += t.await??;
        }
        let elapsed = start.elapsed();
        committer.shutdown().await;
        anyhow::Ok((elapsed, committed, parts))
    })?;
    let backend = parts.ledger.store().backend().clone();
    backend.compact();
    let disk = backend.disk_bytes();
    let n = args.entries.max(1) as f64;
    let avg_entry = encoded_bytes as f64 / n;
    Ok(json!({
        "entries": args.entries,
        "committed": committed,
        "chunk": args.chunk,
        "client_streams": STREAMS,
        "seconds": elapsed.as_secs_f64(),
        "durable_appends_per_sec": (committed as f64 / elapsed.as_secs_f64()).round(),
        "batches": parts.metrics.batches_committed.load(std::sync::atomic::Ordering::Relaxed),
        "avg_encoded_entry_bytes": avg_entry.round(),
        "disk_bytes_per_entry_after_compaction": (disk as f64 / n).round(),
        "disk_to_encoded_ratio": ((disk as f64 / n) / avg_entry * 100.0).round() / 100.0,
    }))
}

/// Builds trees of the requested sizes in RocksDB (nodes only: proofs never read entry
/// bytes) and times inclusion and consistency proof generation at random points.
fn proof_generation(args: &LedgerBenchArgs, dir: &std::path::Path) -> anyhow::Result<serde_json::Value> {
    let mut sizes = args.proof_sizes.clone();
    sizes.sort_unstable();
    let store = Store::new(Arc::new(RocksBackend::open(&dir.join("tree"))?));
    let mut frontier = Frontier::new();
    let mut results = Vec::new();
    let mut rng = Rng(42);
    let build = Instant::now();
    for &target in &sizes {
        while frontier.size() < target {
            let mut b = LedgerBatch { first_index: frontier.size(), ..Default::default() };
            let end = target.min(frontier.size() + 100_000);
            while frontier.size() < end {
                let leaf = Blake3Hasher::hash_leaf(&frontier.size().to_be_bytes());
                frontier.append::<Blake3Hasher>(leaf, &mut b.nodes);
            }
            b.new_size = frontier.size();
            store.commit(b)?;
        }
        let root = frontier.root::<Blake3Hasher>();
        // Measure the steady state a long-running node reaches, not a pile of fresh L0 files.
        store.backend().compact();
        let tree = CachedTree::load(store.clone(), target)?;
        let mut incl = Vec::new();
        let mut cons = Vec::new();
        for _ in 0..args.proofs {
            let index = rng.next() % target;
            let t = Instant::now();
            let p = tree.inclusion_proof(index, target)?;
            incl.push(t.elapsed().as_nanos() as f64 / 1000.0);
            let leaf = Blake3Hasher::hash_leaf(&index.to_be_bytes());
            merkle::verify_inclusion::<Blake3Hasher>(&leaf, index, target, &p, &root).context("benchmark proof failed to verify")?;
            let old = 1 + rng.next() % target;
            let t = Instant::now();
            let _ = tree.consistency_proof(old, target)?;
            cons.push(t.elapsed().as_nanos() as f64 / 1000.0);
        }
        results.push(json!({ "tree_size": target, "inclusion_us": summary(&mut incl), "consistency_us": summary(&mut cons) }));
    }
    Ok(json!({ "build_seconds": build.elapsed().as_secs_f64(), "by_size": results }))
}

pub(crate) fn summary(v: &mut [f64]) -> serde_json::Value {
    v.sort_by(f64::total_cmp);
    let pick = |q: f64| v.get(((v.len() as f64 - 1.0) * q) as usize).copied().unwrap_or(0.0);
    let mean = v.iter().sum::<f64>() / v.len().max(1) as f64;
    json!({ "mean": (mean * 100.0).round() / 100.0, "p50": (pick(0.5) * 100.0).round() / 100.0, "p99": (pick(0.99) * 100.0).round() / 100.0 })
}

#[derive(Debug, clap::Args)]
pub struct DidBenchArgs {
    /// Background entries in the ledger before the DIDs are created.
    #[arg(long, default_value_t = 1_000_000)]
    pub entries: u64,
    /// DIDs created, each with a create and two updates.
    #[arg(long, default_value_t = 200)]
    pub dids: u64,
    /// In-process resolutions timed.
    #[arg(long, default_value_t = 5000)]
    pub resolutions: u64,
    /// Seconds of HTTP load (wrk, if installed; 0 skips).
    #[arg(long, default_value_t = 10)]
    pub http_seconds: u64,
    /// Concurrent HTTP connections.
    #[arg(long, default_value_t = 16)]
    pub connections: u64,
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// `dojang bench did`: did:dojang resolution with proofs, in process and over HTTP.
pub fn did(args: DidBenchArgs) -> anyhow::Result<()> {
    use dojang_core::did_dojang::{CreateOp, DidOperation, DocumentContent, UpdateOp, VerificationMethod, VersionSelector};
    let tmp = tempfile::tempdir().context("cannot create a temporary folder")?;
    let dir = tmp.path();
    let vkey = SigningKey::from_bytes(&[1; 32]);
    let writers: Vec<SigningKey> = (0..8u8).map(|i| SigningKey::from_bytes(&[100 + i; 32])).collect();
    let verifying: Vec<_> = writers.iter().map(SigningKey::verifying_key).collect();
    let genesis = Genesis::new("bench", 0, vec![Validator::with_keys("bench", "Bench", &vkey.verifying_key(), &verifying, "")]);
    let cfg = bench_config(dir, &genesis, &vkey)?;
    let gh = genesis.hash();
    let now = crate::devnet::now_ms();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let node = rt.block_on(dojang_node::node::start(&cfg, Arc::new(SystemClock)))?;
    let write = node.parts.write.clone();
    let ledger = node.parts.ledger.clone();
    // Background load, written in chunks so memory stays flat.
    let fill = Instant::now();
    let mut nonce = 0u64;
    let chunk = 8192u64;
    let mut written = 0u64;
    while written < args.entries {
        let n = chunk.min(args.entries - written);
        let batch: Vec<Vec<u8>> = (0..n)
            .filter_map(|i| {
                let w = (i % writers.len() as u64) as usize;
                let key = writers.get(w)?;
                nonce += 1;
                let author = DidKey::from_verifying_key(&key.verifying_key()).key_id();
                let e = UnsignedEntry { kind: Kind::AccessEvent, author, nonce, timestamp_ms: now, payload: vec![b'x'; 64] }
                    .sign(key, &gh)
                    .ok()?;
                e.encode().ok()
            })
            .collect();
        rt.block_on(write.submit(batch))?;
        written += n;
    }
    let fill_secs = fill.elapsed().as_secs_f64();
    // DIDs: create, then two updates each, interleaved across DIDs.
    let keys: Vec<SigningKey> = (0..args.dids).map(|i| SigningKey::from_bytes(blake3_seed(i).as_bytes())).collect();
    let content = |dk: &DidKey, n: usize| DocumentContent {
        verification_method: vec![
            VerificationMethod { id: "#key-1".into(), method_type: "Multikey".into(), public_key_multibase: dk.multibase() },
            VerificationMethod { id: "#key-2".into(), method_type: "Multikey".into(), public_key_multibase: dk.x25519_multibase() },
        ],
        authentication: vec!["#key-1".into()],
        assertion_method: if n > 0 { vec!["#key-1".into()] } else { vec![] },
        key_agreement: vec!["#key-2".into()],
        ..Default::default()
    };
    let mut dids = Vec::new();
    let mut previous = Vec::new();
    for round in 0..3usize {
        let mut batch = Vec::new();
        for (i, k) in keys.iter().enumerate() {
            let dk = DidKey::from_verifying_key(&k.verifying_key());
            let op = if round == 0 {
                DidOperation::Create(CreateOp {
                    document: content(&dk, 0),
                    controller_keys: vec![dk.did()],
                    next_key_commitment: None,
                    salt: None,
                })
            } else {
                let (Some(did), Some(prev)) = (dids.get(i), previous.get(i)) else { continue };
                DidOperation::Update(UpdateOp { did: String::clone(did), previous: *prev, document: content(&dk, round) })
            };
            if round == 0 {
                dids.push(op.did()?);
            }
            let e = UnsignedEntry {
                kind: Kind::DidOperation,
                author: dk.key_id(),
                nonce: round as u64 + 1,
                timestamp_ms: now,
                payload: op.encode(),
            }
            .sign(k, &gh)?;
            batch.push(e.encode()?);
        }
        let out = rt.block_on(write.submit(batch))?;
        previous = out
            .into_iter()
            .map(|o| o.map(|r| r.leaf_hash))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| anyhow::anyhow!("did op refused: {e}"))?;
    }
    // In-process resolution with proof.
    let mut rng = Rng(7);
    let mut times = Vec::new();
    let mut bundle_bytes = 0usize;
    for _ in 0..args.resolutions {
        let did = dids.get((rng.next() % args.dids.max(1)) as usize).context("no dids")?;
        let t = Instant::now();
        let (_, proof) = ledger.resolve_did(did, VersionSelector::Latest)?;
        times.push(t.elapsed().as_nanos() as f64 / 1000.0);
        bundle_bytes = serde_json::to_vec(&proof)?.len();
    }
    let sample = dids.first().context("no dids")?.clone();
    let url = format!("{}/1.0/identifiers/{sample}", node.url());
    let answer_bytes = ureq::get(&url).call().map_err(Box::new)?.into_string()?.len();
    let http = if args.http_seconds == 0 { json!("skipped") } else { wrk(&url, args.http_seconds, args.connections) };
    rt.block_on(node.stop());
    let report = json!({
        "benchmark": "dojang bench did",
        "ledger_entries": ledger.size(),
        "fill_seconds": fill_secs,
        "dids": args.dids,
        "ops_per_did": 3,
        "in_process_resolution_with_proof_us": summary(&mut times),
        "proof_bundle_bytes_3_ops": bundle_bytes,
        "resolution_result_bytes": answer_bytes,
        "http": http,
    });
    if let Some(p) = &args.out {
        std::fs::write(p, serde_json::to_string_pretty(&report)?).with_context(|| format!("cannot write {}", p.display()))?;
    }
    crate::emit(true, report, String::new);
    Ok(())
}

fn blake3_seed(i: u64) -> dojang_core::hash::Hash {
    dojang_core::entry::leaf_hash(&i.to_be_bytes())
}

/// Runs `wrk` (Debian package `wrk`) against `url` on loopback and parses its summary.
fn wrk(url: &str, seconds: u64, connections: u64) -> serde_json::Value {
    let out =
        std::process::Command::new("wrk").args(["-t2", &format!("-c{connections}"), &format!("-d{seconds}s"), "--latency", url]).output();
    let Ok(out) = out else { return json!("wrk not installed (apt-get install wrk)") };
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let field = |prefix: &str| {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(prefix).map(|r| r.split_whitespace().next().unwrap_or("").to_owned()))
            .unwrap_or_default()
    };
    json!({
        "tool": format!("wrk -t2 -c{connections}, one DID, on the same 2-core machine as the node"),
        "requests_per_sec": field("Requests/sec:"),
        "latency_p50": field("50%"),
        "latency_p99": field("99%"),
        "non_2xx": field("Non-2xx or 3xx responses:"),
    })
}

#[derive(Debug, clap::Args)]
pub struct DocsBenchArgs {
    /// Documents anchored through the write path.
    #[arg(long, default_value_t = 1_000_000)]
    pub documents: u64,
    /// Issuances per submission (an agency issues in batches).
    #[arg(long, default_value_t = 4096)]
    pub chunk: u64,
    /// Verifications timed.
    #[arg(long, default_value_t = 2000)]
    pub verifications: u64,
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// `dojang bench docs`: document issuance through the whole write path, then
/// verification (node lookup + proof, and the verifier's offline check) at that scale.
pub fn docs(args: DocsBenchArgs) -> anyhow::Result<()> {
    use dojang_core::documents::{self, Issuance};
    use dojang_core::genesis::TrustedIssuer;
    let tmp = tempfile::tempdir().context("cannot create a temporary folder")?;
    let dir = tmp.path();
    let vkey = SigningKey::from_bytes(&[1; 32]);
    let keys: Vec<SigningKey> = (0..8u8).map(|i| SigningKey::from_bytes(&[100 + i; 32])).collect();
    let key_ids: Vec<String> = keys.iter().map(|k| DidKey::from_verifying_key(&k.verifying_key()).key_id()).collect();
    let mut genesis = Genesis::new("bench", 0, vec![Validator::with_keys("bench", "Bench", &vkey.verifying_key(), &[], "")]);
    genesis.trusted_issuers = vec![TrustedIssuer {
        did: "did:web:issuer.example.kr".into(),
        name: "Bench issuer".into(),
        keys: key_ids.clone(),
        document_types: vec!["certificate".into()],
        credential_types: vec![],
    }];
    let cfg = bench_config(dir, &genesis, &vkey)?;
    let gh = genesis.hash();
    let now = crate::devnet::now_ms();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let (parts, committer) = rt.block_on(async { dojang_node::node::assemble(&cfg, Arc::new(SystemClock)) })?;
    let salt_of = |i: u64| *blake3::hash(&i.to_le_bytes()).as_bytes();
    let doc_of = |i: u64| format!("certificate number {i} for the documents benchmark").into_bytes();
    let mut submit_time = std::time::Duration::ZERO;
    let mut issued = 0u64;
    let mut nonce = 0u64;
    while issued < args.documents {
        let n = args.chunk.min(args.documents - issued);
        let batch: Vec<Vec<u8>> = (issued..issued + n)
            .filter_map(|i| {
                let w = (i % keys.len() as u64) as usize;
                nonce += 1;
                let issuance = Issuance {
                    document_type: "certificate".into(),
                    commitment: documents::commitment(&salt_of(i), &doc_of(i)),
                    valid_from: now,
                    valid_until: Some(now + 365 * 86_400_000),
                    holder: None,
                };
                let e = UnsignedEntry {
                    kind: Kind::DocumentIssuance,
                    author: key_ids.get(w)?.clone(),
                    nonce,
                    timestamp_ms: now,
                    payload: issuance.encode(),
                };
                e.sign(keys.get(w)?, &gh).ok()?.encode().ok()
            })
            .collect();
        let t = Instant::now();
        let out = rt.block_on(parts.write.submit(batch))?;
        submit_time += t.elapsed();
        if let Some(Err(e)) = out.iter().find(|o| o.is_err()) {
            anyhow::bail!("issuance refused: {e}");
        }
        issued += n;
    }
    let ledger = parts.ledger.clone();
    let mut rng = Rng(11);
    let (mut lookup, mut verify) = (Vec::new(), Vec::new());
    let mut proof_bytes = 0usize;
    for _ in 0..args.verifications {
        let i = rng.next() % args.documents.max(1);
        let (salt, doc) = (salt_of(i), doc_of(i));
        let t = Instant::now();
        let c = documents::commitment(&salt, &doc);
        let record = ledger.document(&c)?.context("an issued document is missing")?;
        let verdict = documents::verdict(Some(&record), &ledger.registry(), now);
        let proof = ledger.document_proof(&record)?;
        lookup.push(t.elapsed().as_nanos() as f64 / 1000.0);
        proof_bytes = serde_json::to_vec(&proof)?.len();
        let t = Instant::now();
        let v = documents::verify_document(&genesis, &doc, &salt, &proof, now)?;
        verify.push(t.elapsed().as_nanos() as f64 / 1000.0);
        if v.verdict != verdict {
            anyhow::bail!("node verdict {verdict:?} differs from the verifier's {:?}", v.verdict);
        }
    }
    rt.block_on(committer.shutdown());
    let report = json!({
        "benchmark": "dojang bench docs",
        "documents": args.documents,
        "chunk": args.chunk,
        "issuance_per_sec_write_path": (args.documents as f64 / submit_time.as_secs_f64()).round(),
        "node_lookup_and_proof_us": summary(&mut lookup),
        "offline_verify_us": summary(&mut verify),
        "proof_bytes": proof_bytes,
        "note": "issuance time covers decode, batch verify, registry authorisation, sequencing and durable commit; signing is the issuer's cost and excluded",
    });
    if let Some(p) = &args.out {
        std::fs::write(p, serde_json::to_string_pretty(&report)?).with_context(|| format!("cannot write {}", p.display()))?;
    }
    crate::emit(true, report, String::new);
    Ok(())
}

#[derive(Debug, clap::Args)]
pub struct AccessBenchArgs {
    /// Access events pushed through the write path for the ingest rate (the first part of
    /// the ledger that the history measurements then grow).
    #[arg(long, default_value_t = 200_000)]
    pub ingest: u64,
    /// Total events at which a history is fetched and verified (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "1000000,10000000")]
    pub totals: Vec<u64>,
    /// Events in the measured citizen's history, spread over the whole ledger.
    #[arg(long, default_value_t = 1000)]
    pub history: u32,
    /// Timed repetitions per total.
    #[arg(long, default_value_t = 10)]
    pub repeats: usize,
    /// Write the JSON here as well as to stdout.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// Writer keys of the benchmark agency; the citizen's events are spread over all of them.
const ACCESS_WRITERS: u8 = 4;

/// A realistic access-event payload about nobody: a random tag and a random "ciphertext"
/// of the padded size a real seal has (the node never decrypts, so it cannot tell).
fn filler_event(rng: &mut Rng) -> Vec<u8> {
    use dojang_core::access::{AccessEvent, Seal};
    let mut bytes = |n: usize| (0..n).map(|_| rng.next() as u8).collect::<Vec<u8>>();
    let tag: [u8; 32] = bytes(32).try_into().unwrap_or([0; 32]);
    let enc: [u8; 32] = bytes(32).try_into().unwrap_or([0; 32]);
    AccessEvent { tag, seal: Seal { enc, ct: bytes(dojang_core::access::PAD_BLOCK + 16) }, auditors: Vec::new() }.encode()
}

/// `dojang bench access`: the access-event ingest rate through the whole write path, then
/// the time to return (HTTP) and verify a citizen's history of `history` events with its
/// completeness proof at each total ledger size.
pub fn access(args: AccessBenchArgs) -> anyhow::Result<()> {
    use dojang_core::access::{AccessDetails, AgencyWriter, Purpose, SubjectKey};
    use dojang_core::audit::{self, ChainGrant, GRANT_HEADER, HistoryBundle};
    let tmp = tempfile::tempdir().context("cannot create a temporary folder")?;
    let vkey = SigningKey::from_bytes(&[1; 32]);
    let writers: Vec<SigningKey> = (0..ACCESS_WRITERS).map(|i| SigningKey::from_bytes(&[100 + i; 32])).collect();
    let verifying: Vec<_> = writers.iter().map(SigningKey::verifying_key).collect();
    let agency = DidKey::from_verifying_key(&vkey.verifying_key()).did();
    let genesis = Genesis::new("bench", 0, vec![Validator::with_keys("bench", "Bench", &vkey.verifying_key(), &verifying, "")]);
    let cfg = bench_config(tmp.path(), &genesis, &vkey)?;
    let gh = genesis.hash();
    let authors: Vec<String> = writers.iter().map(|w| DidKey::from_verifying_key(&w.verifying_key()).key_id()).collect();
    let citizen = SigningKey::from_bytes(&[7; 32]);
    let citizen_did = DidKey::from_verifying_key(&citizen.verifying_key()).did();
    let citizen_x = DidKey::from_verifying_key(&citizen.verifying_key()).x25519_public_key();
    let subject = SubjectKey::from_ed25519(&citizen, &citizen_did)?;
    let mut totals = args.totals.clone();
    totals.sort_unstable();
    let last_total = totals.last().copied().unwrap_or(0).max(args.ingest);
    // The citizen's events sit at evenly spaced positions of the first (smallest) ledger,
    // so every measured total holds the whole history.
    let first_total = totals.first().copied().unwrap_or(last_total).max(args.ingest);
    let every = (first_total / u64::from(args.history.max(1))).max(1);
    let next_slot = std::cell::RefCell::new(vec![0u32; writers.len()]);
    let mut nonces = vec![0u64; writers.len()];
    let mut rng = Rng(0xA11CE);
    // Signs the next `n` events (position `from`..): fillers, and the citizen's at every
    // `every`-th position, sealed for real. Signing is the agencies' cost: two threads.
    let mut make = |from: u64, n: u64, rng: &mut Rng| -> anyhow::Result<Vec<Vec<u8>>> {
        // Stamped when signed: a long fill must stay within the admission clock skew.
        let now = crate::devnet::now_ms();
        let mut unsigned = Vec::with_capacity(n as usize);
        let mut next_slot = next_slot.borrow_mut();
        for pos in from..from + n {
            let w = (pos % writers.len() as u64) as usize;
            let (Some(key), Some(author), Some(slot), Some(nonce)) =
                (writers.get(w), authors.get(w), next_slot.get_mut(w), nonces.get_mut(w))
            else {
                continue;
            };
            let payload = if pos % every == every / 2 && pos / every < u64::from(args.history) {
                let details = AccessDetails {
                    agency: agency.clone(),
                    official: format!("officer-{}", pos % 97),
                    category: "tax".into(),
                    purpose: Purpose::Code("law.tax-basic-act".into()),
                    time_ms: now,
                    subject: citizen_did.clone(),
                    slot: *slot,
                    writer: author.clone(),
                };
                let ev = AgencyWriter::new(key, author, &agency)?.seal_event(
                    &gh,
                    &citizen_did,
                    &citizen_x,
                    *slot,
                    &details,
                    &[],
                    &mut rand_core::OsRng,
                )?;
                *slot += 1;
                ev.encode()
            } else {
                filler_event(rng)
            };
            *nonce += 1;
            unsigned
                .push((w, UnsignedEntry { kind: Kind::AccessEvent, author: author.clone(), nonce: *nonce, timestamp_ms: now, payload }));
        }
        let half = unsigned.len() / 2;
        let (a, b) = unsigned.split_at(half);
        let sign = |part: &[(usize, UnsignedEntry)]| -> anyhow::Result<Vec<Vec<u8>>> {
            part.iter()
                .map(|(w, u)| {
                    let key = writers.get(*w).context("writer")?;
                    Ok(u.clone().sign(key, &gh)?.encode()?)
                })
                .collect()
        };
        let (ra, rb) = std::thread::scope(|s| {
            let ha = s.spawn(|| sign(a));
            let rb = sign(b);
            (ha.join().map_err(|_| anyhow::anyhow!("signing thread panicked")), rb)
        });
        let mut out = ra??;
        out.extend(rb?);
        Ok(out)
    };
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    rt.block_on(async {
        let node = dojang_node::node::start(&cfg, Arc::new(SystemClock)).await?;
        let write = node.parts.write.clone();
        // 1. Ingest rate: pre-signed events, four concurrent streams of 1024-event requests.
        let pre = make(0, args.ingest, &mut rng)?;
        let start = Instant::now();
        let mut tasks = Vec::new();
        for s in 0..STREAMS {
            let mine: Vec<Vec<u8>> = pre.iter().skip(s).step_by(STREAMS).cloned().collect();
            let write = write.clone();
            tasks.push(tokio::spawn(async move {
                let mut ok = 0u64;
                for c in mine.chunks(1024) {
                    ok += write.submit(c.to_vec()).await?.iter().filter(|o| o.is_ok()).count() as u64;
                }
                anyhow::Ok(ok)
            }));
        }
        let mut committed = 0u64;
        for t in tasks {
            committed += t.await??;
        }
        let ingest_secs = start.elapsed().as_secs_f64();
        let ingest = json!({
            "events": args.ingest, "committed": committed, "seconds": ingest_secs,
            "events_per_sec": (committed as f64 / ingest_secs).round(),
            "note": "pre-sealed, pre-signed access events (sealing and signing are the agencies' cost); decode, ZIP 215 batch verify, authorise, tag check, access-map insert, durable group commit, checkpoint",
        });
        // 2. Grow the ledger and measure the history at each total.
        let mut by_total = Vec::new();
        let mut size = args.ingest;
        let client = ureq::AgentBuilder::new().timeout(std::time::Duration::from_secs(120)).build();
        for &total in &totals {
            let fill = Instant::now();
            while size < total {
                let n = (total - size).min(16_384);
                let batch = make(size, n, &mut rng)?;
                // One concurrent stream per writer key, so each key's nonces commit in order.
                let mut pending = Vec::new();
                for w in 0..writers.len() {
                    let mine: Vec<Vec<u8>> = batch.iter().skip(w).step_by(writers.len()).cloned().collect();
                    let write = write.clone();
                    pending.push(tokio::spawn(async move { write.submit(mine).await }));
                }
                for p in pending {
                    for o in p.await?? {
                        o.map_err(|e| anyhow::anyhow!("a benchmark event was refused: {e}"))?;
                    }
                }
                size += n;
                if size % 1_000_000 < n {
                    eprintln!("bench access: {size} events on the ledger ({:.0} s)", fill.elapsed().as_secs_f64());
                }
            }
            let fill_secs = fill.elapsed().as_secs_f64();
            let url = node.url();
            let slots = next_slot.borrow().clone();
            let expected: u32 = slots.iter().sum();
            let mut fetch_ms = Vec::new();
            let mut node_ms = Vec::new();
            let mut verify_ms = Vec::new();
            let mut open_ms = Vec::new();
            let mut bytes = 0usize;
            for _ in 0..args.repeats {
                let token = tokio::task::block_in_place(|| crate::access::login(&url, &genesis, &citizen, &citizen_did))?;
                let mut grants = Vec::new();
                for (w, n) in authors.iter().zip(&slots) {
                    let width = (u64::from(*n) + 1).next_power_of_two();
                    for node in subject.pair_key(w)?.grant(0, width)? {
                        grants.push(ChainGrant::new(w, &node));
                    }
                }
                let header = audit::encode_grants(&grants);
                // The node's share: deriving the slots' tags and building every proof.
                let t = Instant::now();
                let mut chains = Vec::new();
                for g in &grants {
                    let (start, tags) = g.tags(&citizen_did)?;
                    chains.push(dojang_node::ledger::ChainRequest { writer: g.writer.clone(), start, tags });
                }
                let ledger = node.parts.ledger.clone();
                let did = citizen_did.clone();
                tokio::task::spawn_blocking(move || ledger.access_history(&did, &chains)).await??;
                node_ms.push(t.elapsed().as_secs_f64() * 1000.0);
                let t = Instant::now();
                let body = tokio::task::block_in_place(|| {
                    client
                        .get(&format!("{url}/v1/audit/history"))
                        .set("Authorization", &format!("Bearer {token}"))
                        .set(GRANT_HEADER, &header)
                        .call()
                        .map_err(|e| anyhow::anyhow!("history request failed: {e}"))?
                        .into_string()
                        .context("history body")
                })?;
                let bundle: HistoryBundle = serde_json::from_str(&body)?;
                fetch_ms.push(t.elapsed().as_secs_f64() * 1000.0);
                bytes = body.len();
                let t = Instant::now();
                let v = audit::verify_history(&genesis, &bundle, &subject, rand_core::OsRng)?;
                verify_ms.push(t.elapsed().as_secs_f64() * 1000.0);
                if v.events.len() != expected as usize {
                    anyhow::bail!("history has {} events, expected {expected}", v.events.len());
                }
                let t = Instant::now();
                let opened = v.open(&subject, &gh)?;
                open_ms.push(t.elapsed().as_secs_f64() * 1000.0);
                if opened.len() != expected as usize {
                    anyhow::bail!("opened {} events", opened.len());
                }
            }
            let total_ms: Vec<f64> = fetch_ms.iter().zip(&verify_ms).map(|(a, b)| a + b).collect();
            let row = json!({
                "total_events": size,
                "fill_seconds": fill_secs,
                "history_events": expected,
                "history_bytes": bytes,
                "node_proofs_ms": summary(&mut node_ms),
                "fetch_ms": summary(&mut fetch_ms),
                "verify_ms": summary(&mut verify_ms),
                "fetch_plus_verify_ms": summary(&mut total_ms.clone()),
                "decrypt_ms": summary(&mut open_ms),
            });
            // Each total as soon as it is measured: a long run that fails later keeps it.
            eprintln!("bench access: {row}");
            by_total.push(row);
        }
        node.stop().await;
        let report = json!({
            "benchmark": "dojang bench access",
            "machine": { "cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1) },
            "ingest": ingest,
            "history": by_total,
        });
        let text = serde_json::to_string_pretty(&report)?;
        if let Some(p) = &args.out {
            std::fs::write(p, &text).with_context(|| format!("cannot write {}", p.display()))?;
        }
        crate::emit(true, report, String::new);
        anyhow::Ok(())
    })
}

#[derive(Debug, clap::Args)]
pub struct ClusterBenchArgs {
    /// Signed entries submitted to each of the validators.
    #[arg(long, default_value_t = 40_000)]
    pub entries_per_node: usize,
    /// Entries per submission (one request).
    #[arg(long, default_value_t = 4000)]
    pub batch: usize,
    /// Concurrent submitters per validator. Each validator's entries share one writer key,
    /// whose nonces must commit in order: more than one submitter lets later nonces overtake
    /// earlier ones, which are then refused as replays (reported as `entries_refused`).
    #[arg(long, default_value_t = 1)]
    pub clients: usize,
    /// Validators on loopback.
    #[arg(long, default_value_t = 4)]
    pub validators: u8,
    /// Most entries per block.
    #[arg(long, default_value_t = 16_384)]
    pub max_block: usize,
    /// What the entries are: sealed access events (each also inserts into the access map)
    /// or document issuances (an index row each).
    #[arg(long, value_enum, default_value_t = ClusterEntryKind::Access)]
    pub kind: ClusterEntryKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ClusterEntryKind {
    Access,
    Document,
}

/// `dojang bench cluster`: a loopback network of validators in this process, each fed
/// pre-signed access-event entries through its write path (the path HTTP uses); reports
/// committed entries per second, submit-to-commit latency and the raw ed25519 ceiling.
pub fn cluster(args: ClusterBenchArgs) -> anyhow::Result<()> {
    use dojang_core::entry::{Kind, UnsignedEntry};
    let raw = raw_ed25519(20_000);
    let tmp = tempfile::tempdir().context("cannot create a temporary folder")?;
    let dir = tmp.path().to_path_buf();
    let p2p = crate::devnet::free_port_run(args.validators);
    crate::devnet::write_chain(&crate::devnet::GenesisInitArgs {
        chain_id: "bench".into(),
        validators: args.validators,
        out: dir.clone(),
        base_port: 7300,
        p2p_port: Some(p2p),
    })?;
    let genesis = crate::load_genesis(&dir.join("genesis.json"))?;
    let n = genesis.validators.len();
    let gh = genesis.hash();
    let now = crate::devnet::now_ms();
    // Pre-sign every entry so that signing is not measured.
    let mut work: Vec<Vec<Vec<Vec<u8>>>> = Vec::with_capacity(n);
    for i in 0..n {
        let (_, key) = KeyFile::load(&dir.join(format!("writer-{i}.key")))?;
        let author = DidKey::from_verifying_key(&key.verifying_key()).key_id();
        let mut entries = Vec::with_capacity(args.entries_per_node);
        let doc_type =
            genesis.validators.get(i).and_then(|v| crate::devnet::issuer_types(&v.id).0.first()).copied().unwrap_or("certificate");
        for k in 0..args.entries_per_node {
            let (kind, payload) = match args.kind {
                ClusterEntryKind::Access => (
                    Kind::AccessEvent,
                    dojang_core::access::AccessEvent::cover(format!("bench {i} {k} padded to a typical event size").as_bytes()).encode(),
                ),
                ClusterEntryKind::Document => (
                    Kind::DocumentIssuance,
                    dojang_core::documents::Issuance {
                        document_type: doc_type.into(),
                        commitment: dojang_core::documents::commitment(&[i as u8; 32], format!("document {i} {k}").as_bytes()),
                        valid_from: now,
                        valid_until: Some(now + 365 * 86_400_000),
                        holder: None,
                    }
                    .encode(),
                ),
            };
            let e = UnsignedEntry { kind, author: author.clone(), nonce: k as u64 + 1, timestamp_ms: now, payload }.sign(&key, &gh)?;
            entries.push(e.encode()?);
        }
        work.push(entries.chunks(args.batch.max(1)).map(<[Vec<u8>]>::to_vec).collect());
    }
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let report = rt.block_on(async {
        let mut nodes = Vec::new();
        for i in 0..n {
            let mut cfg = NodeConfig::from_toml_file(&dir.join(format!("node-{i}.toml")))?;
            cfg.listen = "127.0.0.1:0".parse()?;
            cfg.max_batch = args.max_block;
            cfg.timeout_propose_ms = 3000;
            cfg.timeout_vote_ms = 1000;
            cfg.block_wait_ms = 20;
            nodes.push(dojang_node::node::start(&cfg, Arc::new(SystemClock)).await?);
        }
        // Let the validators connect and decide a first (empty) block before the clock
        // starts: the first height waits for the connections, which is not throughput.
        let t0 = Instant::now();
        while nodes.iter().any(|x| x.parts.metrics.batches_committed.load(std::sync::atomic::Ordering::Relaxed) == 0) {
            anyhow::ensure!(t0.elapsed() < std::time::Duration::from_secs(120), "the validators did not decide a first block within 120 s");
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        let blocks_of = |nodes: &[dojang_node::node::RunningNode]| nodes.first().map_or(0, |x| x.parts.metrics.batches_committed.load(std::sync::atomic::Ordering::Relaxed));
        let blocks_before = blocks_of(&nodes);
        let refusals = Arc::new(std::sync::Mutex::new(std::collections::BTreeMap::<String, usize>::new()));
        let latencies = Arc::new(std::sync::Mutex::new(Vec::new()));
        let start = Instant::now();
        let mut tasks = Vec::new();
        for (node, batches) in nodes.iter().zip(work) {
            let queue = Arc::new(std::sync::Mutex::new(batches.into_iter()));
            for _ in 0..args.clients.max(1) {
                let (write, queue, lat, refused) = (node.parts.write.clone(), queue.clone(), latencies.clone(), refusals.clone());
                tasks.push(tokio::spawn(async move {
                    let mut ok = 0usize;
                    loop {
                        let next = queue.lock().unwrap_or_else(|p| p.into_inner()).next();
                        let Some(batch) = next else { break };
                        let t = Instant::now();
                        loop {
                            match write.submit(batch.clone()).await {
                                Ok(outs) => {
                                    ok += outs.iter().filter(|o| o.is_ok()).count();
                                    let mut r = refused.lock().unwrap_or_else(|p| p.into_inner());
                                    for e in outs.iter().filter_map(|o| o.as_ref().err()) {
                                        *r.entry(e.slug().to_owned()).or_default() += 1;
                                    }
                                    break;
                                }
                                Err(dojang_node::sequencer::SequencerError::Full { .. }) => {
                                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                                }
                                Err(e) => return Err(anyhow::anyhow!("submit failed: {e}")),
                            }
                        }
                        lat.lock().unwrap_or_else(|p| p.into_inner()).push(t.elapsed().as_secs_f64() * 1000.0);
                    }
                    anyhow::Ok(ok)
                }));
            }
        }
        let mut committed = 0usize;
        for t in tasks {
            committed += t.await??;
        }
        let secs = start.elapsed().as_secs_f64();
        let mut lat = latencies.lock().unwrap_or_else(|p| p.into_inner()).clone();
        lat.sort_by(f64::total_cmp);
        let pct = |p: f64| lat.get(((lat.len() as f64 - 1.0) * p).round() as usize).copied().unwrap_or(0.0);
        let sizes: Vec<u64> = nodes.iter().map(|x| x.parts.ledger.size()).collect();
        let blocks = blocks_of(&nodes) - blocks_before;
        let refusals = refusals.lock().unwrap_or_else(|p| p.into_inner()).clone();
        for x in nodes {
            x.stop().await;
        }
        anyhow::Ok(json!({
            "benchmark": "dojang bench cluster",
            "machine": { "cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1) },
            "validators": n,
            "entries_committed": committed,
            "entries_refused": n * args.entries_per_node - committed,
            "refusals": refusals,
            "blocks": blocks,
            "mean_entries_per_block": (committed as f64 / blocks.max(1) as f64).round(),
            "seconds": (secs * 1000.0).round() / 1000.0,
            "committed_entries_per_sec": (committed as f64 / secs).round(),
            "commit_latency_ms": { "unit": "one submission of `batch` entries, submit to durable commit", "p50": pct(0.5).round(), "p99": pct(0.99).round() },
            "batch": args.batch,
            "max_block": args.max_block,
            "entry_kind": format!("{:?}", args.kind).to_lowercase(),
            "tree_sizes": sizes,
            "raw_ed25519": raw,
        }))
    })?;
    crate::emit(true, report, String::new);
    Ok(())
}
