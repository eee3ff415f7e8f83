//! The `dojang` command end to end: the devnet starts on embedded RocksDB with demo data
//! and resumes; keys and genesis files are written and read back; proofs fetched from a
//! node verify offline and tampered ones fail; bad input is one line on stderr and a
//! non-zero exit.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

use std::process::{Command, Output};

use dojang_core::genesis::Genesis;
use dojang_tests::{Chain, bin};

fn dojang(args: &[&str]) -> Output {
    Command::new(bin("dojang")).args(args).output().unwrap()
}

fn ok_json(args: &[&str]) -> serde_json::Value {
    let out = dojang(args);
    assert!(out.status.success(), "dojang {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("dojang {args:?} printed non-json ({e}): {}", String::from_utf8_lossy(&out.stdout)))
}

/// Asserts a failure with exactly one line on stderr that mentions `needle`.
fn fails_with(args: &[&str], needle: &str) {
    let out = dojang(args);
    assert!(!out.status.success(), "dojang {args:?} succeeded");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim_end().lines().count(), 1, "dojang {args:?}: stderr is not one line: {err:?}");
    assert!(err.contains(needle), "dojang {args:?}: {err:?} does not mention {needle:?}");
}

#[test]
fn devnet_starts_with_demo_data_and_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().join("devnet");
    let ds = d.to_str().unwrap();
    let first = ok_json(&["--json", "devnet", "--dir", ds, "--port", "0", "--exit-after-start"]);
    assert_eq!(first["tree_size"], first["demo_entries_loaded"]);
    assert!(first["demo_entries_loaded"].as_u64().unwrap() >= 10);
    assert!(first["nodes"][0].as_str().unwrap().starts_with("http://127.0.0.1:"));
    assert!(first["replica"].is_null());
    // The second run adds a read replica beside the validators (specs/consensus.md §10).
    let again = ok_json(&["--json", "devnet", "--dir", ds, "--port", "0", "--exit-after-start", "--replica"]);
    assert_eq!(again["tree_size"], first["tree_size"], "a restarted devnet must resume, not reload");
    assert_eq!(again["demo_entries_loaded"], 0);
    assert!(again["replica"].as_str().unwrap().starts_with("http://127.0.0.1:"), "{again}");
    let replica = dojang_node::config::NodeConfig::from_toml_file(&d.join("replica.toml")).unwrap();
    assert_eq!(replica.replica.unwrap().follow.len(), first["nodes"].as_array().unwrap().len());
    Genesis::from_json(&std::fs::read(d.join("genesis.json")).unwrap()).unwrap();
}

#[test]
fn keys_and_genesis() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("a.key");
    let k = ok_json(&["--json", "key", "new", "--out", key.to_str().unwrap()]);
    assert!(k["did"].as_str().unwrap().starts_with("did:key:z6Mk"));
    assert_eq!(ok_json(&["--json", "key", "show", key.to_str().unwrap()])["did"], k["did"]);
    fails_with(&["key", "new", "--out", key.to_str().unwrap()], "cannot write key file");
    let out = dir.path().join("chain");
    let g = ok_json(&["--json", "genesis", "init", "--validators", "4", "--chain-id", "t", "--out", out.to_str().unwrap()]);
    assert_eq!(g["validators"], 4);
    let shown = ok_json(&["--json", "genesis", "show", out.join("genesis.json").to_str().unwrap()]);
    assert_eq!(shown["hash"], g["hash"]);
    fails_with(&["genesis", "init", "--out", out.to_str().unwrap()], "already exists");
    fails_with(&["genesis", "init", "--chain-id", "Bad Id", "--out", dir.path().join("x").to_str().unwrap()], "chain_id");
}

#[test]
fn proofs_verify_offline_and_tampering_fails() {
    let chain = Chain::new(1);
    let d = chain.start();
    let entries: Vec<Vec<u8>> = (1..=9).map(|n| chain.entry(0, n, format!("e{n}").as_bytes())).collect();
    d.post_batch(&entries[..4]).unwrap();
    d.post_batch(&entries[4..]).unwrap();
    let g = chain.genesis_path();
    let g = g.to_str().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let bundle = tmp.path().join("b.json");
    let b = bundle.to_str().unwrap();
    let v = ok_json(&["--json", "proof", "verify", "--genesis", g, "--node", &d.url, "--index", "6", "--save", b]);
    assert_eq!((v["index"].as_u64(), v["tree_size"].as_u64()), (Some(6), Some(9)));
    // Offline, from the saved file alone.
    assert_eq!(ok_json(&["--json", "proof", "verify", "--genesis", g, "--bundle", b])["valid"], true);
    let cons = ok_json(&["--json", "proof", "verify", "--genesis", g, "--node", &d.url, "--from", "4"]);
    assert_eq!((cons["old_size"].as_u64(), cons["new_size"].as_u64()), (Some(4), Some(9)));
    let cp = ok_json(&["--json", "checkpoint", "verify", "--genesis", g, "--node", &d.url]);
    assert_eq!(cp["size"], 9);
    // A checkpoint saved at size 4 is extended by the node's current tree.
    let saved = tmp.path().join("cp4.txt");
    std::fs::write(&saved, d.get_text("/v1/checkpoint?size=4")).unwrap();
    let ext = ok_json(&["--json", "proof", "verify", "--genesis", g, "--node", &d.url, "--trusted", saved.to_str().unwrap()]);
    assert_eq!((ext["old_size"].as_u64(), ext["new_size"].as_u64()), (Some(4), Some(9)));
    d.stop();
    // Tamper: another index, another entry, a foreign genesis.
    let text = std::fs::read_to_string(&bundle).unwrap();
    let mut v: serde_json::Value = serde_json::from_str(&text).unwrap();
    v["index"] = 5.into();
    std::fs::write(&bundle, v.to_string()).unwrap();
    fails_with(&["proof", "verify", "--genesis", g, "--bundle", b], "inclusion proof");
    let other = Chain::new(2);
    std::fs::write(&bundle, &text).unwrap();
    fails_with(&["proof", "verify", "--genesis", other.genesis_path().to_str().unwrap(), "--bundle", b], "genesis");
    fails_with(&["proof", "verify", "--genesis", "/nonexistent/genesis.json", "--bundle", b], "/nonexistent/genesis.json");
    std::fs::write(&bundle, "{").unwrap();
    fails_with(&["proof", "verify", "--genesis", g, "--bundle", b], "not json");
}

#[test]
fn submit_reports_node_refusals_in_one_line() {
    let chain = Chain::new(1);
    let d = chain.start();
    let tmp = tempfile::tempdir().unwrap();
    let stranger = tmp.path().join("s.key");
    ok_json(&["--json", "key", "new", "--out", stranger.to_str().unwrap()]);
    fails_with(
        &["submit", "--node", &d.url, "--key", stranger.to_str().unwrap(), "--kind", "access-event/v1", "--payload", "x"],
        "not authorised",
    );
    fails_with(
        &["submit", "--node", &d.url, "--key", stranger.to_str().unwrap(), "--kind", "bogus", "--payload", "x"],
        "unknown kind \"bogus\"",
    );
    fails_with(
        &["submit", "--node", &d.url, "--key", stranger.to_str().unwrap(), "--kind", "did-operation/v1", "--payload", "x"],
        "malformed did operation",
    );
    fails_with(
        &["submit", "--node", "http://127.0.0.1:9", "--key", stranger.to_str().unwrap(), "--kind", "did-operation/v1", "--payload", "x"],
        "cannot reach node",
    );
}

#[test]
fn committed_genesis_files_are_valid() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../genesis");
    let mut n = 0;
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "json") {
            Genesis::from_json(&std::fs::read(&p).unwrap()).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            n += 1;
        }
    }
    assert!(n > 0, "no genesis files found");
}

#[test]
fn did_lifecycle_and_offline_verification() {
    let chain = Chain::new(1);
    let d = chain.start();
    let tmp = tempfile::tempdir().unwrap();
    let key = |n: &str| {
        let p = tmp.path().join(n);
        ok_json(&["--json", "key", "new", "--out", p.to_str().unwrap()]);
        p.to_str().unwrap().to_owned()
    };
    let (ctl, next, new) = (key("ctl.key"), key("next.key"), key("new.key"));
    let g = chain.genesis_path();
    let g = g.to_str().unwrap();
    let created = ok_json(&[
        "--json",
        "did",
        "create",
        "--node",
        &d.url,
        "--key",
        &ctl,
        "--next-key",
        &next,
        "--service",
        "hub,DojangHub,https://hub.example.kr/",
    ]);
    let did = created["did"].as_str().unwrap().to_owned();
    assert!(did.starts_with("did:dojang:"));
    ok_json(&[
        "--json",
        "did",
        "update",
        "--node",
        &d.url,
        "--key",
        &ctl,
        "--did",
        &did,
        "--add-service",
        "mail,Email,mailto:a@example.kr",
    ]);
    // The current key may not rotate while a next key is committed; the next key may.
    fails_with(&["did", "rotate", "--node", &d.url, "--key", &ctl, "--did", &did, "--new-key", &new], "next-key commitment");
    ok_json(&["--json", "did", "rotate", "--node", &d.url, "--key", &next, "--did", &did, "--new-key", &new]);
    fails_with(&["did", "update", "--node", &d.url, "--key", &ctl, "--did", &did, "--remove-service", "hub"], "not a current controller");
    let answer = tmp.path().join("answer.json");
    let a = answer.to_str().unwrap();
    let doc = ok_json(&["--json", "did", "resolve", "--node", &d.url, &did, "--save", a]);
    assert_eq!(doc["didDocument"]["service"].as_array().unwrap().len(), 2);
    d.stop();
    // Offline, with only the genesis file.
    let v = ok_json(&["--json", "did", "verify-resolution", "--genesis", g, "--file", a, "--did", &did]);
    assert_eq!((v["valid"].as_bool(), v["operations"].as_u64()), (Some(true), Some(3)));
    fails_with(
        &["did", "verify-resolution", "--genesis", g, "--file", a, "--did", "did:dojang:11111111111111111111"],
        "not did:dojang:1111",
    );
    let mut t: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&answer).unwrap()).unwrap();
    t["didDocument"]["service"][0]["serviceEndpoint"] = "https://evil.example/".into();
    std::fs::write(&answer, t.to_string()).unwrap();
    fails_with(&["did", "verify-resolution", "--genesis", g, "--file", a], "didDocument differs");
}

#[test]
fn documents_and_registry_through_the_cli() {
    let chain = Chain::new(1);
    let d = chain.start();
    let tmp = tempfile::tempdir().unwrap();
    let g = chain.genesis_path();
    let g = g.to_str().unwrap();
    let writer = chain.writer_key_file(0);
    let w = writer.to_str().unwrap();
    let file = tmp.path().join("cert.txt");
    std::fs::write(&file, b"certificate of residence (test)").unwrap();
    let f = file.to_str().unwrap();
    let receipt = tmp.path().join("cert.receipt.json");
    let r = receipt.to_str().unwrap();
    ok_json(&[
        "--json",
        "doc",
        "issue",
        "--node",
        &d.url,
        "--key",
        w,
        "--type",
        "certificate",
        "--file",
        f,
        "--receipt",
        r,
        "--valid-days",
        "30",
    ]);
    // A type the issuer is not listed for is refused by the node.
    fails_with(&["doc", "issue", "--node", &d.url, "--key", w, "--type", "passport", "--file", f], "not");
    let proof = tmp.path().join("proof.json");
    let p = proof.to_str().unwrap();
    let v = ok_json(&["--json", "doc", "verify", "--node", &d.url, "--file", f, "--receipt", r, "--save", p]);
    assert_eq!((v["verdict"].as_str(), v["proven"].as_bool()), (Some("genuine"), Some(true)));
    // Offline, with only the genesis file and the saved proof.
    let v = ok_json(&["--json", "doc", "verify", "--offline", "--genesis", g, "--proof", p, "--file", f, "--receipt", r]);
    assert_eq!(v["verdict"], "genuine");
    // One flipped byte: unknown.
    let forged = tmp.path().join("forged.txt");
    std::fs::write(&forged, b"certificate of residence (tesT)").unwrap();
    let v = ok_json(&["--json", "doc", "verify", "--node", &d.url, "--file", forged.to_str().unwrap(), "--receipt", r]);
    assert_eq!(v["verdict"], "unknown");
    ok_json(&["--json", "doc", "revoke", "--node", &d.url, "--key", w, "--receipt", r]);
    let v = ok_json(&["--json", "doc", "verify", "--node", &d.url, "--file", f, "--receipt", r]);
    assert_eq!(v["verdict"], "revoked");
    // Registry: propose, approve with the validator's key, submit; then show, proven.
    let change = tmp.path().join("change.json");
    let c = change.to_str().unwrap();
    let stranger = tmp.path().join("s.key");
    ok_json(&["--json", "key", "new", "--out", stranger.to_str().unwrap()]);
    let sdid = serde_json::from_slice::<serde_json::Value>(&dojang(&["--json", "key", "show", stranger.to_str().unwrap()]).stdout).unwrap();
    let action = serde_json::json!({"type": "add-issuer", "issuer": {"did": "did:web:new.example.kr", "name": "New Office", "keys": [sdid["key_id"]], "documentTypes": ["permit"]}});
    ok_json(&["--json", "registry", "propose", "--node", &d.url, "--action", &action.to_string(), "--out", c]);
    // Without approvals the node refuses it.
    fails_with(&["registry", "submit", "--node", &d.url, "--change", c, "--key", stranger.to_str().unwrap()], "quorum");
    ok_json(&[
        "--json",
        "registry",
        "approve",
        "--change",
        c,
        "--key",
        chain.validator_key_path().to_str().unwrap(),
        "--id",
        "v0",
        "--genesis",
        g,
    ]);
    ok_json(&["--json", "registry", "submit", "--node", &d.url, "--change", c, "--key", stranger.to_str().unwrap()]);
    // Replaying the approved change is refused.
    fails_with(&["registry", "submit", "--node", &d.url, "--change", c, "--key", stranger.to_str().unwrap()], "version");
    let reg = ok_json(&["--json", "registry", "show", "--node", &d.url]);
    assert_eq!((reg["version"].as_u64(), reg["proven"].as_bool()), (Some(1), Some(true)));
    assert!(reg["issuers"].as_array().unwrap().iter().any(|i| i["did"] == "did:web:new.example.kr"));
}

/// A devnet running in the background (killed on drop): the first stdout line is its JSON.
struct Devnet {
    child: std::process::Child,
    info: serde_json::Value,
    _dir: tempfile::TempDir,
}

impl Devnet {
    fn start() -> Devnet {
        use std::io::BufRead as _;
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("devnet");
        let mut child = Command::new(bin("dojang"))
            .args(["--json", "devnet", "--dir", d.to_str().unwrap(), "--port", "0"])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let info = serde_json::from_str(&line).unwrap_or_else(|e| panic!("devnet printed {line:?}: {e}"));
        Devnet { child, info, _dir: dir }
    }

    fn path(&self, name: &str) -> String {
        self._dir.path().join("devnet").join(name).to_str().unwrap().to_owned()
    }
}

impl Drop for Devnet {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn access_log_and_citizen_audit_through_the_cli() {
    let dn = Devnet::start();
    let url = dn.info["nodes"][0].as_str().unwrap().to_owned();
    let citizen = dn.info["citizen_did"].as_str().unwrap().to_owned();
    let (g, ck, wk, ak) = (dn.path("genesis.json"), dn.path("citizen.key"), dn.path("writer-0.key"), dn.path("auditor.key"));
    let saved = dn.path("history.json");
    let who = ["--node", &url, "--genesis", &g, "--key", &ck, "--did", &citizen];
    // The demo reads: all there, verified complete and decrypted.
    let h = ok_json(&[&["--json", "audit", "history", "--save", &saved][..], &who[..]].concat());
    assert_eq!(h["complete"], true);
    assert_eq!(h["events"].as_array().unwrap().len(), 5, "{h}");
    assert!(h["events"].as_array().unwrap().iter().all(|e| e["agency_name"] == "Ministry of the Interior and Safety"), "{h}");
    // An agency records one more read; the citizen sees it.
    let r = ok_json(&[
        "--json",
        "access",
        "record",
        "--node",
        &url,
        "--key",
        &wk,
        "--subject",
        &citizen,
        "--official",
        "officer-0031",
        "--category",
        "tax",
        "--purpose",
        "law.tax-basic-act",
    ]);
    assert_eq!(r["slot"], 5, "{r}");
    let h2 = ok_json(&[&["--json", "audit", "history", "--since", &saved][..], &who[..]].concat());
    assert_eq!(h2["since"]["new_events"], 1, "{h2}");
    assert_eq!(h2["since"]["extends_saved"], true);
    let events = h2["events"].as_array().unwrap();
    assert_eq!(events.len(), 6);
    assert!(events.iter().any(|e| e["official"] == "officer-0031" && e["purpose"] == "law.tax-basic-act"));
    // The saved answer re-verifies offline; a doctored one does not.
    let v = ok_json(&["--json", "audit", "verify", "--genesis", &g, "--key", &ck, "--did", &citizen, "--file", &saved]);
    assert_eq!(v["events"].as_array().unwrap().len(), 5);
    let mut doc: serde_json::Value = serde_json::from_slice(&std::fs::read(&saved).unwrap()).unwrap();
    doc["chains"][0]["events"].as_array_mut().unwrap().remove(2);
    std::fs::write(&saved, serde_json::to_vec(&doc).unwrap()).unwrap();
    fails_with(&["audit", "verify", "--genesis", &g, "--key", &ck, "--did", &citizen, "--file", &saved], "does not verify");
    // The auditor reads its sealed copies of all six.
    let a = ok_json(&["--json", "audit", "auditor", "--node", &url, "--genesis", &g, "--key", &ak]);
    assert_eq!(a["events"].as_array().unwrap().len(), 6, "{a}");
    assert!(a["events"].as_array().unwrap().iter().all(|e| e["subject"] == citizen.as_str()));
    // Refusals are one line.
    fails_with(&["audit", "history", "--node", &url, "--genesis", &g, "--key", &wk, "--did", &citizen], "not an authentication key");
    fails_with(&["audit", "auditor", "--node", &url, "--genesis", &g, "--key", &ck], "not a genesis auditor");
    fails_with(
        &[
            "access",
            "record",
            "--node",
            &url,
            "--key",
            &wk,
            "--subject",
            &citizen,
            "--official",
            "o-1",
            "--category",
            "gossip",
            "--purpose",
            "audit.internal",
        ],
        "gossip",
    );
    fails_with(
        &[
            "access",
            "record",
            "--node",
            &url,
            "--key",
            &ck,
            "--subject",
            &citizen,
            "--official",
            "o-1",
            "--category",
            "tax",
            "--purpose",
            "audit.internal",
        ],
        "not a writer key",
    );
}

/// Credentials through the CLI on a real `dojangd` with an issuer configured: status lists,
/// issuing by the node, verification against the genesis file with proofs and again
/// offline from the saved bundle, a presentation verified once and refused as a replay,
/// suspension, and one-line errors.
#[test]
fn credentials_and_presentations_through_the_cli() {
    use dojang_core::did_key::DidKey;
    use dojang_core::genesis::{TrustedIssuer, Validator};
    use dojang_node::keyfile::KeyFile;
    use ed25519_dalek::SigningKey;
    let dir = tempfile::tempdir().unwrap();
    let p = |n: &str| dir.path().join(n).to_str().unwrap().to_owned();
    let vkey = SigningKey::from_bytes(&[1; 32]);
    let ikey = SigningKey::from_bytes(&[2; 32]);
    let ik = DidKey::from_verifying_key(&ikey.verifying_key());
    let mut g = Genesis::new("vccli", 0, vec![Validator::with_keys("v0", "Validator", &vkey.verifying_key(), &[], "")]);
    g.trusted_issuers = vec![TrustedIssuer {
        did: ik.did(),
        name: "Gov-Pass (cli test)".into(),
        keys: vec![ik.key_id()],
        document_types: vec![],
        credential_types: vec!["MobileIdCredential".into()],
    }];
    std::fs::write(p("genesis.json"), g.to_json_pretty()).unwrap();
    KeyFile::from_signing_key(&vkey).write_new(&dir.path().join("v.key")).unwrap();
    KeyFile::from_signing_key(&ikey).write_new(&dir.path().join("issuer.key")).unwrap();
    KeyFile::from_signing_key(&SigningKey::from_bytes(&[9; 32])).write_new(&dir.path().join("holder.key")).unwrap();
    std::fs::write(p("token"), "cli-test-operator-token-0123456789abcdef\n").unwrap();
    let cfg = String::from(
        "data_dir = \"data\"\ngenesis = \"genesis.json\"\nvalidator_key = \"v.key\"\nvalidator_id = \"v0\"\nlisten = \"127.0.0.1:0\"\n\n[credentials]\nissuer_key = \"issuer.key\"\napi_token_file = \"token\"\n",
    );
    std::fs::write(p("node.toml"), cfg).unwrap();
    let d = dojang_tests::Daemon::spawn(&dir.path().join("node.toml"));
    let (url, gp, tok) = (d.url.clone(), p("genesis.json"), p("token"));
    for (id, purpose) in [("urn:dojang:status-list:r1", "revocation"), ("urn:dojang:status-list:s1", "suspension")] {
        ok_json(&[
            "--json",
            "vc",
            "list-create",
            "--node",
            &url,
            "--token-file",
            &tok,
            "--id",
            id,
            "--purpose",
            purpose,
            "--credential-type",
            "MobileIdCredential",
        ]);
    }
    let holder = DidKey::from_verifying_key(&SigningKey::from_bytes(&[9; 32]).verifying_key()).did();
    let unsigned = serde_json::json!({
        "@context": ["https://www.w3.org/ns/credentials/v2", "https://w3id.org/dojang/credentials/v1"],
        "type": ["VerifiableCredential", "MobileIdCredential"],
        "validFrom": "2020-01-01T00:00:00Z",
        "credentialSubject": {"id": holder, "givenName": "Gil-dong"},
        "credentialStatus": [
            {"id": "urn:dojang:status-list:r1#3", "type": "BitstringStatusListEntry", "statusPurpose": "revocation", "statusListIndex": "3", "statusListCredential": "urn:dojang:status-list:r1"},
            {"id": "urn:dojang:status-list:s1#3", "type": "BitstringStatusListEntry", "statusPurpose": "suspension", "statusListIndex": "3", "statusListCredential": "urn:dojang:status-list:s1"}
        ]
    });
    std::fs::write(p("unsigned.json"), unsigned.to_string()).unwrap();
    std::fs::write(p("badtoken"), "not-the-operator-token-not-the-operator-token\n").unwrap();
    fails_with(&["vc", "issue", "--node", &url, "--token-file", &p("badtoken"), "--credential", &p("unsigned.json")], "401");
    let out = dojang(&["vc", "issue", "--node", &url, "--token-file", &tok, "--credential", &p("unsigned.json"), "--out", &p("vc.json")]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let r = ok_json(&["--json", "vc", "verify", "--node", &url, "--genesis", &gp, "--file", &p("vc.json"), "--save", &p("bundle.json")]);
    assert_eq!(r["verified"], true, "{r}");
    let r = ok_json(&["--json", "vc", "verify", "--offline", "--genesis", &gp, "--bundle", &p("bundle.json"), "--file", &p("vc.json")]);
    assert_eq!(r["verified"], true, "{r}");
    assert_eq!(ok_json(&["--json", "vc", "verify", "--remote", "--node", &url, "--file", &p("vc.json")])["verified"], true);
    let mut tampered: serde_json::Value = serde_json::from_slice(&std::fs::read(p("vc.json")).unwrap()).unwrap();
    tampered["credentialSubject"]["givenName"] = "Mallory".into();
    std::fs::write(p("tampered.json"), tampered.to_string()).unwrap();
    fails_with(&["vc", "verify", "--node", &url, "--genesis", &gp, "--file", &p("tampered.json")], "verification failed: proof");
    // Present with a node-issued challenge; verified once, then refused as a replay.
    let out = dojang(&[
        "vc",
        "present",
        "--node",
        &url,
        "--key",
        &p("holder.key"),
        "--credential",
        &p("vc.json"),
        "--domain",
        "bank.example",
        "--out",
        &p("vp.json"),
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let vp: serde_json::Value = serde_json::from_slice(&std::fs::read(p("vp.json")).unwrap()).unwrap();
    let c = vp["proof"]["challenge"].as_str().unwrap().to_owned();
    assert_eq!(
        ok_json(&["--json", "vp", "verify", "--node", &url, "--file", &p("vp.json"), "--challenge", &c, "--domain", "bank.example"])["verified"],
        true
    );
    fails_with(&["vp", "verify", "--node", &url, "--file", &p("vp.json"), "--challenge", &c, "--domain", "bank.example"], "replay");
    fails_with(
        &["vp", "verify", "--local", "--node", &url, "--file", &p("vp.json"), "--challenge", "other", "--domain", "bank.example"],
        "challenge",
    );
    // Suspend: the credential is still cryptographically valid but fails on status.
    ok_json(&["--json", "vc", "status", "--node", &url, "--token-file", &tok, "--list", "urn:dojang:status-list:s1", "--index", "3"]);
    fails_with(&["vc", "verify", "--node", &url, "--genesis", &gp, "--file", &p("vc.json")], "verification failed: status");
    fails_with(&["vc", "verify", "--file", &p("missing.json")], "cannot read");
    drop(d);
}
