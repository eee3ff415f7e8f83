//! Shared helpers for the cross-crate tests in `tests/tests/`: locating the built
//! binaries, writing a small chain (genesis, keys, config), and driving `dojangd`
//! processes over HTTP.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use dojang_core::did_key::DidKey;
use dojang_core::entry::{Kind, UnsignedEntry};
use dojang_core::genesis::{Genesis, Validator};
use dojang_node::keyfile::KeyFile;
use ed25519_dalek::SigningKey;

/// A workspace binary (`dojangd`, `dojang`), built by `cargo build --bins` beforehand
/// (`scripts/test.sh` does this). Fails loudly when it is missing.
pub fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    // target/<profile>/deps/<test> -> target/<profile>/<name>
    let dir = exe.parent().and_then(Path::parent).expect("target dir");
    let p = dir.join(name);
    assert!(p.exists(), "{} is missing: run `cargo build --bins` first (scripts/test.sh does)", p.display());
    p
}

#[derive(Debug)]
/// A one-validator chain in a temporary folder, with writer keys derived from seeds.
pub struct Chain {
    pub dir: tempfile::TempDir,
    pub genesis: Genesis,
    pub writers: Vec<SigningKey>,
}

impl Chain {
    pub fn new(writers: u8) -> Chain {
        let dir = tempfile::tempdir().unwrap();
        let vkey = SigningKey::from_bytes(&[1; 32]);
        let writers: Vec<SigningKey> = (0..writers).map(|i| SigningKey::from_bytes(&[10 + i; 32])).collect();
        let verifying: Vec<_> = writers.iter().map(SigningKey::verifying_key).collect();
        let mut genesis =
            Genesis::new("crashtest", 0, vec![Validator::with_keys("v0", "Validator 0", &vkey.verifying_key(), &verifying, "")]);
        // The validator's agency issues "certificate" documents with its writer keys.
        genesis.trusted_issuers = genesis
            .validators
            .iter()
            .map(|v| dojang_core::genesis::TrustedIssuer {
                did: v.did.clone(),
                name: v.name.clone(),
                keys: v.writer_keys.clone(),
                document_types: vec!["certificate".into()],
                credential_types: vec![],
            })
            .collect();
        std::fs::write(dir.path().join("genesis.json"), genesis.to_json_pretty()).unwrap();
        KeyFile::from_signing_key(&vkey).write_new(&dir.path().join("v.key")).unwrap();
        let cfg = format!(
            "data_dir = {:?}\ngenesis = {:?}\nvalidator_key = {:?}\nvalidator_id = \"v0\"\nlisten = \"127.0.0.1:0\"\nmax_batch = 512\n",
            dir.path().join("data"),
            dir.path().join("genesis.json"),
            dir.path().join("v.key")
        );
        std::fs::write(dir.path().join("node.toml"), cfg).unwrap();
        Chain { dir, genesis, writers }
    }

    /// The validator's key file (its consensus key), for approving registry changes.
    pub fn validator_key_path(&self) -> PathBuf {
        self.dir.path().join("v.key")
    }

    /// Writes writer `w`'s key file and returns its path.
    pub fn writer_key_file(&self, w: usize) -> PathBuf {
        let p = self.dir.path().join(format!("writer-{w}.key"));
        if !p.exists() {
            KeyFile::from_signing_key(&self.writers[w]).write_new(&p).unwrap();
        }
        p
    }

    pub fn genesis_path(&self) -> PathBuf {
        self.dir.path().join("genesis.json")
    }

    /// A signed access event by writer `w`.
    pub fn entry(&self, w: usize, nonce: u64, payload: &[u8]) -> Vec<u8> {
        // A cover event seeded by writer, nonce and payload: each has its own tag.
        let seed = [payload, &nonce.to_be_bytes(), &(w as u64).to_be_bytes()].concat();
        self.signed(w, Kind::AccessEvent, nonce, &dojang_core::access::AccessEvent::cover(&seed).encode())
    }

    /// An entry of `kind` by writer `w` (writers are also the agency's document issuer keys).
    pub fn signed(&self, w: usize, kind: Kind, nonce: u64, payload: &[u8]) -> Vec<u8> {
        let key = &self.writers[w];
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64;
        UnsignedEntry {
            kind,
            author: DidKey::from_verifying_key(&key.verifying_key()).key_id(),
            nonce,
            timestamp_ms: now,
            payload: payload.to_vec(),
        }
        .sign(key, &self.genesis.hash())
        .unwrap()
        .encode()
        .unwrap()
    }

    /// Starts `dojangd` on this chain and waits until it listens.
    pub fn start(&self) -> Daemon {
        Daemon::spawn(&self.dir.path().join("node.toml"))
    }
}

/// A running `dojangd` process.
#[derive(Debug)]
pub struct Daemon {
    pub child: Child,
    pub url: String,
}

impl Daemon {
    pub fn spawn(config: &Path) -> Daemon {
        let mut child = Command::new(bin("dojangd"))
            .arg("--config")
            .arg(config)
            // DOJANG_TEST_LOG overrides the filter when debugging a failing test.
            .env(
                "RUST_LOG",
                std::env::var("DOJANG_TEST_LOG").unwrap_or_else(|_| {
                    "warn,arc_malachitebft_network=off,arc_malachitebft_discovery=off,arc_malachitebft_sync=error".into()
                }),
            )
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn dojangd");
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        // The daemon prints its URL once it listens; bounded by the read itself (the
        // process exits, closing stdout, if start-up fails).
        BufReader::new(stdout).read_line(&mut line).expect("read dojangd stdout");
        let url = line.trim().strip_prefix("dojangd listening on ").unwrap_or_else(|| panic!("dojangd did not start: {line:?}")).to_owned();
        Daemon { child, url }
    }

    /// SIGKILL: no shutdown path runs.
    pub fn kill9(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then wait for a clean exit (bounded).
    pub fn stop(mut self) -> std::process::ExitStatus {
        let _ = Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(Some(s)) = self.child.try_wait() {
                return s;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("dojangd did not stop within 30 s of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn get(&self, path: &str) -> Result<ureq::Response, Box<ureq::Error>> {
        ureq::get(&format!("{}{path}", self.url)).timeout(Duration::from_secs(10)).call().map_err(Box::new)
    }

    pub fn get_text(&self, path: &str) -> String {
        self.get(path).unwrap().into_string().unwrap()
    }

    /// Posts a JSON batch; returns per-entry results or the transport/status error.
    pub fn post_batch(&self, entries: &[Vec<u8>]) -> Result<Vec<serde_json::Value>, Box<ureq::Error>> {
        use base64::Engine as _;
        let body = serde_json::json!({ "entries": entries.iter().map(|e| base64::engine::general_purpose::STANDARD.encode(e)).collect::<Vec<_>>() });
        // Generous: under consensus an answer waits for this validator's turn to propose,
        // and the tests share two cores with three other validators.
        let v: serde_json::Value = ureq::post(&format!("{}/v1/entries", self.url))
            .timeout(Duration::from_secs(60))
            .send_json(body)
            .map_err(Box::new)?
            .into_json()
            .map_err(|e| Box::new(ureq::Error::from(e)))?;
        Ok(v["results"].as_array().cloned().unwrap_or_default())
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A free loopback TCP port below the kernel's ephemeral range (32768+), so that no
/// outgoing connection takes it before the node under test binds it.
pub fn free_port() -> u16 {
    static NEXT: std::sync::atomic::AtomicU16 = std::sync::atomic::AtomicU16::new(0);
    let seed = (std::process::id() % 600) as u16 * 20;
    loop {
        let k = NEXT.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let port = 20_000 + (seed + k) % 12_000;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// A multi-validator chain in a temporary folder: genesis with consensus and p2p keys,
/// one config per validator (`specs/consensus.md`).
#[derive(Debug)]
pub struct Cluster {
    pub dir: tempfile::TempDir,
    pub genesis: Genesis,
    /// Writer key `i` belongs to validator `i`'s agency.
    pub writers: Vec<SigningKey>,
    pub p2p_ports: Vec<u16>,
}

impl Cluster {
    /// `extra[i]` is appended to validator i's config (TOML lines).
    pub fn new(n: usize, extra: &[String]) -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        let writers: Vec<SigningKey> = (0..n).map(|i| SigningKey::from_bytes(&[50 + i as u8; 32])).collect();
        let p2p_ports: Vec<u16> = (0..n).map(|_| free_port()).collect();
        let mut validators = Vec::new();
        for i in 0..n {
            let vkey = SigningKey::from_bytes(&[20 + i as u8; 32]);
            let pkey = SigningKey::from_bytes(&[80 + i as u8; 32]);
            validators.push(
                Validator::with_keys(&format!("v{i}"), &format!("Validator {i}"), &vkey.verifying_key(), &[writers[i].verifying_key()], "")
                    .with_p2p(&pkey.verifying_key(), &format!("127.0.0.1:{}", p2p_ports[i])),
            );
            KeyFile::from_signing_key(&vkey).write_new(&dir.path().join(format!("v{i}.key"))).unwrap();
            KeyFile::from_signing_key(&pkey).write_new(&dir.path().join(format!("p2p{i}.key"))).unwrap();
        }
        let genesis = Genesis::new("bfttest", 0, validators);
        std::fs::write(dir.path().join("genesis.json"), genesis.to_json_pretty()).unwrap();
        for i in 0..n {
            let cfg = format!(
                "data_dir = \"data-{i}\"\ngenesis = \"genesis.json\"\nvalidator_key = \"v{i}.key\"\nvalidator_id = \"v{i}\"\np2p_key = \"p2p{i}.key\"\nlisten = \"127.0.0.1:0\"\nmax_batch = 4096\ntimeout_propose_ms = 1500\ntimeout_vote_ms = 500\nblock_wait_ms = 20\n{}\n",
                extra.get(i).map(String::as_str).unwrap_or("")
            );
            std::fs::write(dir.path().join(format!("node-{i}.toml")), cfg).unwrap();
        }
        Cluster { dir, genesis, writers, p2p_ports }
    }

    pub fn config(&self, i: usize) -> PathBuf {
        self.dir.path().join(format!("node-{i}.toml"))
    }

    pub fn start(&self, i: usize) -> Daemon {
        Daemon::spawn(&self.config(i))
    }

    /// Writes the config of a read replica named `name` (`specs/consensus.md` §10) that
    /// follows the API URLs `follow`, with a key of its own; returns the config's path.
    pub fn replica_config(&self, name: &str, follow: &[String]) -> PathBuf {
        let key = SigningKey::from_bytes(blake3::hash(name.as_bytes()).as_bytes());
        let key_path = self.dir.path().join(format!("{name}.key"));
        if !key_path.exists() {
            KeyFile::from_signing_key(&key).write_new(&key_path).unwrap();
        }
        let follow = follow.iter().map(|u| format!("{u:?}")).collect::<Vec<_>>().join(", ");
        let cfg = format!(
            "data_dir = \"data-{name}\"\ngenesis = \"genesis.json\"\nvalidator_key = \"{name}.key\"\nvalidator_id = \"{name}\"\nlisten = \"127.0.0.1:0\"\n[replica]\nfollow = [{follow}]\npoll_ms = 100\n"
        );
        let p = self.dir.path().join(format!("replica-{name}.toml"));
        std::fs::write(&p, cfg).unwrap();
        p
    }

    /// A signed access-event cover entry by writer `w`.
    pub fn entry(&self, w: usize, nonce: u64, payload: &[u8]) -> Vec<u8> {
        let key = &self.writers[w];
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64;
        UnsignedEntry {
            kind: Kind::AccessEvent,
            author: DidKey::from_verifying_key(&key.verifying_key()).key_id(),
            nonce,
            timestamp_ms: now,
            payload: dojang_core::access::AccessEvent::cover(payload).encode(),
        }
        .sign(key, &self.genesis.hash())
        .unwrap()
        .encode()
        .unwrap()
    }
}

impl Daemon {
    /// The latest checkpoint's tree size.
    pub fn size(&self) -> u64 {
        let text = self.get_text("/v1/checkpoint");
        text.lines().nth(1).and_then(|l| l.parse().ok()).unwrap_or(0)
    }

    /// The raw bytes of entry `index`.
    pub fn entry_bytes(&self, index: u64) -> Vec<u8> {
        let mut got = Vec::new();
        std::io::Read::read_to_end(&mut self.get(&format!("/v1/entries/{index}")).unwrap().into_reader(), &mut got).unwrap();
        got
    }

    /// The checkpoint at `size` (its text).
    pub fn checkpoint_at(&self, size: u64) -> String {
        self.get_text(&format!("/v1/checkpoint?size={size}"))
    }
}

/// Polls `f` every 50 ms until it holds, failing after `secs` seconds with `what`.
pub fn wait_until(secs: u64, what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !f() {
        assert!(Instant::now() < deadline, "timed out after {secs} s waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}
