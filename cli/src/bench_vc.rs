//! `dojang bench vc` (`specs/credentials.md` §12): eddsa-jcs-2022 verifications per second
//! in one process beside the raw ed25519-dalek verify rate of the same run, the
//! eddsa-rdfc-2022 rate, and the status-check cost at 10^6 credentials per list (a list of
//! 2^20 bits on a node on RocksDB, 1% of the bits set through the write path, then the
//! node's bit-with-proof answer and the offline proof check). Prints one JSON object.

use std::sync::Arc;
use std::time::Instant;

use anyhow::Context as _;
use dojang_core::did_key::DidKey;
use dojang_core::entry::{Kind, UnsignedEntry};
use dojang_core::genesis::{Genesis, TrustedIssuer, Validator};
use dojang_core::vc::status_list::{self, ListCreation, StatusListUpdate, StatusPurpose, verify_status};
use dojang_core::vc::suite::{self, Cryptosuite};
use dojang_core::vc::verify::issue_credential;
use dojang_node::clock::SystemClock;
use ed25519_dalek::{Signer as _, SigningKey};
use serde_json::json;

#[derive(Debug, clap::Args)]
pub struct VcBenchArgs {
    /// Verifications timed per cryptosuite (rdfc runs a tenth of them).
    #[arg(long, default_value_t = 20_000)]
    pub verifications: usize,
    /// Bits of the status list (credentials per list).
    #[arg(long, default_value_t = 1 << 20)]
    pub list_bits: u64,
    /// Status checks timed.
    #[arg(long, default_value_t = 2000)]
    pub status_checks: u64,
    /// Write the JSON here as well as to stdout.
    #[arg(long)]
    pub out: Option<std::path::PathBuf>,
}

fn per_sec(n: usize, f: impl Fn()) -> f64 {
    let t = Instant::now();
    f();
    (n as f64 / t.elapsed().as_secs_f64()).round()
}

fn credential(issuer: &str) -> serde_json::Value {
    json!({
        "@context": [dojang_core::vc::contexts::CREDENTIALS_V2, dojang_core::vc::contexts::DOJANG_V1],
        "id": "urn:uuid:3e4f5a6b-0000-4000-8000-000000000001",
        "type": ["VerifiableCredential", "MobileIdCredential"],
        "issuer": issuer,
        "validFrom": "2026-01-01T00:00:00Z",
        "validUntil": "2031-01-01T00:00:00Z",
        "credentialSubject": {"id": "did:dojang:XHibty5ABdxWdYhQvHkaCT", "givenName": "Gil-dong", "familyName": "Hong", "birthDate": "1990-03-01", "nationality": "KR"},
        "credentialStatus": {"id": "urn:dojang:status-list:bench#4242", "type": "BitstringStatusListEntry", "statusPurpose": "revocation", "statusListIndex": "4242", "statusListCredential": "urn:dojang:status-list:bench"}
    })
}

pub fn vc(args: VcBenchArgs) -> anyhow::Result<()> {
    let key = SigningKey::from_bytes(&[7; 32]);
    let dk = DidKey::from_verifying_key(&key.verifying_key());
    let pk = key.verifying_key().to_bytes();
    let n = args.verifications.max(1);

    // Raw Ed25519 over the same 64-byte message a proof signs.
    let msg = [0x5au8; 64];
    let sig = key.sign(&msg);
    let vk = key.verifying_key();
    let raw_dalek = per_sec(n, || {
        for _ in 0..n {
            let _ = vk.verify_strict(&msg, &sig);
        }
    });
    let sb = sig.to_bytes();
    let raw_zip215 = per_sec(n, || {
        for _ in 0..n {
            let _ = dojang_core::signature::verify(&pk, &msg, &sb);
        }
    });
    let raw_zip215_dalek4 = per_sec(n, || {
        for _ in 0..n {
            let _ = dojang_core::vc::zip215::verify(&pk, &msg, &sb);
        }
    });

    let jcs = issue_credential(&credential(&dk.did()), &key, &dk.key_id(), Cryptosuite::EddsaJcs2022, "2026-06-01T00:00:00Z")?;
    let jcs_rate = per_sec(n, || {
        for _ in 0..n {
            let _ = suite::verify_proof(&jcs, &pk);
        }
    });
    if suite::verify_proof(&jcs, &pk).is_err() {
        anyhow::bail!("the benchmark credential does not verify");
    }
    let rn = (n / 10).max(1);
    let rdfc = issue_credential(&credential(&dk.did()), &key, &dk.key_id(), Cryptosuite::EddsaRdfc2022, "2026-06-01T00:00:00Z")?;
    suite::verify_proof(&rdfc, &pk).context("the rdfc benchmark credential does not verify")?;
    let rdfc_rate = per_sec(rn, || {
        for _ in 0..rn {
            let _ = suite::verify_proof(&rdfc, &pk);
        }
    });

    let status = status_cost(&args, &key)?;
    let report = json!({
        "benchmark": "dojang bench vc",
        "threads": 1,
        "raw_ed25519_dalek_verify_strict_per_sec": raw_dalek,
        "raw_ed25519_consensus_zip215_verify_per_sec": raw_zip215,
        "raw_zip215_on_curve25519_dalek4_per_sec": raw_zip215_dalek4,
        "eddsa_jcs_2022_verify_per_sec": jcs_rate,
        "eddsa_jcs_2022_vs_raw_dalek": (jcs_rate / raw_dalek * 1000.0).round() / 1000.0,
        "eddsa_rdfc_2022_verify_per_sec": rdfc_rate,
        "credential_bytes": serde_json::to_vec(&jcs)?.len(),
        "status": status,
        "note": "proof verification only (canonicalise, hash, ZIP 215 signature check) on one thread; DID resolution, registry and status checks come on top (status below)",
    });
    if let Some(p) = &args.out {
        std::fs::write(p, serde_json::to_string_pretty(&report)?).with_context(|| format!("cannot write {}", p.display()))?;
    }
    crate::emit(true, report, String::new);
    Ok(())
}

/// A list of `list_bits` bits on a node (RocksDB in a temporary folder), 1% of the bits set
/// in updates of 4096; then the node's answer (state read, chunk, audit paths, registry)
/// and the verifier's offline check are timed for random bits.
fn status_cost(args: &VcBenchArgs, issuer: &SigningKey) -> anyhow::Result<serde_json::Value> {
    let tmp = tempfile::tempdir().context("cannot create a temporary folder")?;
    let vkey = SigningKey::from_bytes(&[1; 32]);
    let ik = DidKey::from_verifying_key(&issuer.verifying_key());
    let mut genesis = Genesis::new("bench", 0, vec![Validator::with_keys("bench", "Bench", &vkey.verifying_key(), &[], "")]);
    genesis.trusted_issuers = vec![TrustedIssuer {
        did: ik.did(),
        name: "Bench issuer".into(),
        keys: vec![ik.key_id()],
        document_types: vec![],
        credential_types: vec!["MobileIdCredential".into()],
    }];
    let cfg = crate::bench::bench_config(tmp.path(), &genesis, &vkey)?;
    let gh = genesis.hash();
    let now = crate::devnet::now_ms();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let (parts, committer) = rt.block_on(async { dojang_node::node::assemble(&cfg, Arc::new(SystemClock)) })?;
    let list = "urn:dojang:status-list:bench";
    let size = args.list_bits;
    let mut bits = vec![0u8; usize::try_from(size / 8)?];
    let mut nonce = 0u64;
    let mut submit = |u: &StatusListUpdate| -> anyhow::Result<()> {
        nonce += 1;
        let e = UnsignedEntry { kind: Kind::StatusListUpdate, author: ik.key_id(), nonce, timestamp_ms: now, payload: u.encode() }
            .sign(issuer, &gh)?;
        let out = rt.block_on(parts.write.submit(vec![e.encode()?]))?;
        match out.into_iter().next() {
            Some(Ok(_)) => Ok(()),
            Some(Err(e)) => anyhow::bail!("status update refused: {e}"),
            None => anyhow::bail!("no result"),
        }
    };
    submit(&StatusListUpdate {
        list: list.into(),
        sequence: 0,
        create: Some(ListCreation { purpose: StatusPurpose::Revocation, size, credential_type: "MobileIdCredential".into() }),
        set: vec![],
        clear: vec![],
        root: status_list::root(&bits),
    })?;
    let mut rng = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let revoked = size / 100;
    let mut seq = 0;
    let mut update_us = Vec::new();
    let mut update_bytes = 0;
    let mut done = 0;
    while done < revoked {
        let mut set: Vec<u64> = (0..4096.min(revoked - done)).map(|_| next() % size).collect();
        set.sort_unstable();
        set.dedup();
        set.retain(|i| !status_list::get_bit(&bits, *i));
        for &i in &set {
            if let Some(b) = usize::try_from(i / 8).ok().and_then(|x| bits.get_mut(x)) {
                *b |= 0x80 >> (i % 8);
            }
        }
        done += set.len() as u64;
        seq += 1;
        let t = Instant::now();
        let u = StatusListUpdate { list: list.into(), sequence: seq, create: None, set, clear: vec![], root: status_list::root(&bits) };
        update_bytes = update_bytes.max(u.encode().len());
        submit(&u)?;
        update_us.push(t.elapsed().as_micros() as f64);
    }
    // One single-bit revocation, the common case.
    let t = Instant::now();
    let i = (0..).map(|_| next() % size).find(|i| !status_list::get_bit(&bits, *i)).unwrap_or(0);
    if let Some(b) = usize::try_from(i / 8).ok().and_then(|x| bits.get_mut(x)) {
        *b |= 0x80 >> (i % 8);
    }
    seq += 1;
    let single =
        StatusListUpdate { list: list.into(), sequence: seq, create: None, set: vec![i], clear: vec![], root: status_list::root(&bits) };
    let single_bytes = single.encode().len();
    submit(&single)?;
    let single_update_ms = t.elapsed().as_secs_f64() * 1000.0;

    let (mut node_us, mut verify_us) = (Vec::new(), Vec::new());
    let mut proof_bytes = 0;
    for _ in 0..args.status_checks {
        let i = next() % size;
        let t = Instant::now();
        let (_, _, proof) = dojang_node::status_lists::status_at_checkpoint(&parts.ledger, list, i)?.context("the list is missing")?;
        node_us.push(t.elapsed().as_nanos() as f64 / 1000.0);
        proof_bytes = serde_json::to_vec(&proof)?.len();
        let t = Instant::now();
        let v = verify_status(&genesis, &proof)?;
        verify_us.push(t.elapsed().as_nanos() as f64 / 1000.0);
        if v.bit != status_list::get_bit(&bits, i) {
            anyhow::bail!("bit {i}: the proof says {}, the list says otherwise", v.bit);
        }
    }
    rt.block_on(committer.shutdown());
    Ok(json!({
        "list_bits": size,
        "bits_set": done + 1,
        "updates": seq,
        "largest_bulk_update_payload_bytes": update_bytes,
        "bulk_update_commit_us": crate::bench::summary(&mut update_us),
        "single_revocation_payload_bytes": single_bytes,
        "single_revocation_sign_and_commit_ms": (single_update_ms * 1000.0).round() / 1000.0,
        "node_bit_with_proof_us": crate::bench::summary(&mut node_us),
        "offline_status_proof_verify_us": crate::bench::summary(&mut verify_us),
        "status_proof_bytes": proof_bytes,
        "encoded_list_bytes": status_list::encode_list(&bits).len(),
        "note": "node cost: read the list's bits (list_bits/8 bytes), hash its 256-byte chunks, build the chunk path and two entry proofs; verifier cost: checkpoint quorum, two entry signatures and paths, registry replay, one chunk path",
    }))
}
