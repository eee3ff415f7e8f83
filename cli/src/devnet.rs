//! `dojang genesis init` and `dojang devnet`: make a chain's keys, genesis and node
//! configs, and run a local node on embedded RocksDB with demo data (optionally with a
//! read replica beside the validators, `specs/consensus.md` §10).
//!
//! Devnet keys are random and live in the devnet folder; they guard nothing of value.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context as _, bail};
use dojang_core::did_key::DidKey;
use dojang_core::entry::{Kind, UnsignedEntry};
use dojang_core::genesis::{Genesis, TrustedIssuer, Validator};
use dojang_node::clock::SystemClock;
use dojang_node::config::{NodeConfig, StorageKind};
use dojang_node::keyfile::KeyFile;
use ed25519_dalek::SigningKey;
use serde_json::json;

use crate::emit;

pub fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

#[derive(Debug, clap::Args)]
pub struct GenesisInitArgs {
    /// Chain id: 1-64 characters of [a-z0-9.-].
    #[arg(long, default_value = "devnet")]
    pub chain_id: String,
    /// How many validator agencies.
    #[arg(long, default_value_t = 1)]
    pub validators: u8,
    /// Output folder (created; existing key files are never overwritten).
    #[arg(long, short, default_value = "genesis-out")]
    pub out: PathBuf,
    /// HTTP port of validator 0; validator i gets base_port + i.
    #[arg(long, default_value_t = 7300)]
    pub base_port: u16,
    /// Consensus p2p port of validator 0 (multi-validator chains); validator i gets
    /// p2p_port + i. Default: base_port + 1000.
    #[arg(long)]
    pub p2p_port: Option<u16>,
}

const AGENCIES: [(&str, &str); 4] = [
    ("mois", "Ministry of the Interior and Safety"),
    ("nts", "National Tax Service"),
    ("mohw", "Ministry of Health and Welfare"),
    ("molit", "Ministry of Land, Infrastructure and Transport"),
];

/// The document and credential types each devnet agency issues.
pub(crate) fn issuer_types(agency: &str) -> (&'static [&'static str], &'static [&'static str]) {
    match agency {
        "mois" => (&["resident-registration-extract", "family-relation-certificate"], &["MobileIdCredential", "ResidentCredential"]),
        "nts" => (&["tax-payment-certificate", "income-certificate"], &["TaxpayerCredential"]),
        "mohw" => (&["health-insurance-certificate"], &["HealthInsuranceCredential"]),
        "molit" => (&["building-register"], &["PropertyCredential"]),
        _ => (&["certificate"], &["VerifiableCredential"]),
    }
}

fn new_key(path: &Path) -> anyhow::Result<(KeyFile, SigningKey)> {
    let key = SigningKey::generate(&mut rand_core::OsRng);
    let kf = KeyFile::from_signing_key(&key);
    kf.write_new(path)?;
    Ok((kf, key))
}

/// Writes keys, `genesis.json` and `node-<i>.toml` into `args.out`; returns the genesis.
pub fn write_chain(args: &GenesisInitArgs) -> anyhow::Result<Genesis> {
    if args.validators == 0 || args.validators > 64 {
        bail!("--validators {} must be 1..=64", args.validators);
    }
    // Check what can be checked before any key file is written.
    let probe = Genesis::new(&args.chain_id, 0, vec![]);
    if let Err(e @ dojang_core::genesis::GenesisError::ChainId(_)) = probe.validate() {
        bail!("{e}");
    }
    std::fs::create_dir_all(&args.out).with_context(|| format!("cannot create {}", args.out.display()))?;
    let gpath = args.out.join("genesis.json");
    if gpath.exists() {
        bail!("{} already exists; choose another --out", gpath.display());
    }
    let mut validators = Vec::new();
    for i in 0..args.validators {
        let (vk, _) = new_key(&args.out.join(format!("validator-{i}.key")))?;
        let (wk, _) = new_key(&args.out.join(format!("writer-{i}.key")))?;
        // Multi-validator chains: a libp2p identity key per validator, whose PeerId the
        // other validators accept (specs/genesis.md §2, specs/consensus.md §3).
        let (p2p_key, p2p_address) = if args.validators > 1 {
            let (pk, _) = new_key(&args.out.join(format!("p2p-{i}.key")))?;
            let port = args.p2p_port.unwrap_or(args.base_port.saturating_add(1000)).saturating_add(u16::from(i));
            (pk.did, format!("127.0.0.1:{port}"))
        } else {
            (String::new(), String::new())
        };
        let (short, name) = AGENCIES.get(usize::from(i)).copied().unwrap_or(("agency", "Agency"));
        let id = if usize::from(i) < AGENCIES.len() { short.to_owned() } else { format!("{short}-{i}") };
        validators.push(Validator {
            id,
            name: name.to_owned(),
            did: vk.did.clone(),
            consensus_key: vk.did,
            voting_power: 1,
            writer_keys: vec![wk.key_id],
            api_address: format!("127.0.0.1:{}", args.base_port.saturating_add(u16::from(i))),
            p2p_key,
            p2p_address,
        });
    }
    // Each agency starts as a trusted issuer of its own document and credential types.
    let trusted_issuers = validators
        .iter()
        .map(|v| {
            let (docs, creds) = issuer_types(&v.id);
            TrustedIssuer {
                did: v.did.clone(),
                name: v.name.clone(),
                keys: v.writer_keys.clone(),
                document_types: docs.iter().map(|s| (*s).to_owned()).collect(),
                credential_types: creds.iter().map(|s| (*s).to_owned()).collect(),
            }
        })
        .collect();
    // A data-protection authority as auditor: agencies also seal each access event to it
    // (specs/access-log.md §7.3).
    let (auditor, _) = new_key(&args.out.join("auditor.key"))?;
    let auditors =
        vec![dojang_core::genesis::AuditorEntry { name: "Personal Information Protection Commission (demo)".into(), did: auditor.did }];
    let g = Genesis { trusted_issuers, auditors, ..Genesis::new(&args.chain_id, now_ms(), validators) };
    g.validate().context("generated genesis is invalid")?;
    std::fs::write(&gpath, g.to_json_pretty() + "\n").with_context(|| format!("cannot write {}", gpath.display()))?;
    for (i, v) in g.validators.iter().enumerate() {
        let cfg = NodeConfig {
            data_dir: PathBuf::from(format!("data-{i}")),
            genesis: PathBuf::from("genesis.json"),
            validator_key: PathBuf::from(format!("validator-{i}.key")),
            validator_id: v.id.clone(),
            listen: v.api_address.parse().context("bad api address")?,
            max_batch: 8192,
            queue_bytes: 256 << 20,
            max_request_bytes: 16 << 20,
            storage: StorageKind::Rocksdb,
            p2p_key: (g.validators.len() > 1).then(|| PathBuf::from(format!("p2p-{i}.key"))),
            ..NodeConfig::default()
        };
        let p = args.out.join(format!("node-{i}.toml"));
        let text =
            format!("# dojangd config for validator {} ({}). Paths are relative to this file's folder.\n{}", v.id, v.name, cfg.to_toml());
        std::fs::write(&p, text).with_context(|| format!("cannot write {}", p.display()))?;
    }
    Ok(g)
}

pub fn genesis_init(args: &GenesisInitArgs, json: bool) -> anyhow::Result<()> {
    let g = write_chain(args)?;
    emit(json, json!({ "genesis": args.out.join("genesis.json"), "hash": g.hash(), "validators": g.validators.len() }), || {
        format!(
            "wrote {} (hash {}) with {} validators, their keys and node-<i>.toml configs\nrun a validator: (cd {} && dojangd --config node-0.toml)",
            args.out.join("genesis.json").display(),
            g.hash(),
            g.validators.len(),
            args.out.display()
        )
    });
    Ok(())
}

#[derive(Debug, clap::Args)]
pub struct DevnetArgs {
    /// Data folder: keys, genesis, configs and each node's RocksDB.
    #[arg(long, default_value = "devnet")]
    pub dir: PathBuf,
    /// HTTP port of the first node.
    #[arg(long, default_value_t = 7300)]
    pub port: u16,
    /// Do not load demo data.
    #[arg(long)]
    pub no_demo: bool,
    /// Exit after start-up and demo data instead of waiting for Ctrl-C (for scripts).
    #[arg(long)]
    pub exit_after_start: bool,
    /// Validators of a new devnet (an existing one keeps its genesis).
    #[arg(long, default_value_t = 4)]
    pub validators: u8,
    /// Also run a non-voting read replica that follows the validators over HTTP
    /// (`specs/consensus.md` §10); its config is written to `<dir>/replica.toml`.
    #[arg(long)]
    pub replica: bool,
}

/// Writes `<dir>/replica.toml` (and the replica's own key on first use): a read replica
/// named `replica` following `follow`, listening on `port` (0: any free port).
fn write_replica_config(dir: &Path, follow: Vec<String>, port: u16) -> anyhow::Result<NodeConfig> {
    let key = dir.join("replica.key");
    if !key.exists() {
        new_key(&key)?;
    }
    let cfg = NodeConfig {
        data_dir: PathBuf::from("data-replica"),
        genesis: PathBuf::from("genesis.json"),
        validator_key: PathBuf::from("replica.key"),
        validator_id: "replica".into(),
        listen: std::net::SocketAddr::from(([127, 0, 0, 1], port)),
        replica: Some(dojang_node::config::ReplicaConfig { follow, poll_ms: 200 }),
        ..NodeConfig::default()
    };
    let p = dir.join("replica.toml");
    let text = format!(
        "# dojangd config for a read replica (specs/consensus.md §10): follows the validators, refuses writes.\n# Paths are relative to this file's folder.\n{}",
        cfg.to_toml()
    );
    std::fs::write(&p, text).with_context(|| format!("cannot write {}", p.display()))?;
    Ok(NodeConfig::from_toml_file(&p)?)
}

/// The demo entries: a citizen DID, documents issued (one revoked) with their files and
/// receipts written to `<dir>/docs/` for `dojang doc verify`, a trusted-issuer registry
/// change approved by the validator, access events about the citizen sealed to the citizen
/// and the genesis auditor (`specs/access-log.md`), and the Gov-Pass credential issuer with
/// its status lists (`devnet_vc`).
fn demo_entries(
    genesis: &Genesis,
    dir: &Path,
    validators: &[SigningKey],
    writer: &SigningKey,
    citizen: &SigningKey,
    issuer_key: &SigningKey,
) -> anyhow::Result<Vec<Vec<u8>>> {
    use dojang_core::documents::{self, Issuance, Receipt, StatusAction, StatusChange};
    use dojang_core::registry::{RegistryAction, RegistryChange};
    use rand_core::RngCore as _;
    let gh = genesis.hash();
    let now = now_ms();
    let w = DidKey::from_verifying_key(&writer.verifying_key()).key_id();
    let base = now * 1000;
    let sign = |kind: Kind, author: &str, key: &SigningKey, n: u64, payload: Vec<u8>| -> anyhow::Result<Vec<u8>> {
        let e = UnsignedEntry { kind, author: author.to_owned(), nonce: base + n, timestamp_ms: now, payload }.sign(key, &gh)?;
        Ok(e.encode()?)
    };
    let mut out = vec![citizen_did_create(citizen, &gh, now, base + 1)?];
    let issuer = genesis.validators.first().map(|v| v.did.clone()).unwrap_or_default();
    let docs = dir.join("docs");
    std::fs::create_dir_all(&docs).with_context(|| format!("cannot create {}", docs.display()))?;
    let holder = dojang_core::hash::Hash(*blake3::hash(b"demo holder pseudonym").as_bytes()).to_hex();
    for (n, (doc_type, text, days)) in [
        ("resident-registration-extract", "RESIDENT REGISTRATION EXTRACT (demo)\nName: [demo citizen]\nAddress: [demo address]\n", 90u64),
        ("family-relation-certificate", "FAMILY RELATION CERTIFICATE (demo)\nHolder: [demo citizen]\n", 20),
    ]
    .iter()
    .enumerate()
    {
        let mut salt = [0u8; 32];
        rand_core::OsRng.fill_bytes(&mut salt);
        let bytes = text.as_bytes();
        let issuance = Issuance {
            document_type: (*doc_type).to_owned(),
            commitment: documents::commitment(&salt, bytes),
            valid_from: now,
            valid_until: Some(now + days * 86_400_000),
            holder: Some(holder.clone()),
        };
        out.push(sign(Kind::DocumentIssuance, &w, writer, 10 + n as u64, issuance.encode())?);
        std::fs::write(docs.join(format!("{doc_type}.txt")), bytes)?;
        std::fs::write(docs.join(format!("{doc_type}.receipt.json")), Receipt::new(&salt, bytes, doc_type, &issuer).encode())?;
        if n == 1 {
            let revoke = StatusChange {
                document: issuance.commitment,
                action: StatusAction::Revoke,
                reason: None,
                sequence: None,
                approvals: vec![],
            };
            out.push(sign(Kind::DocumentRevocation, &w, writer, 20, revoke.encode())?);
        }
    }
    // Reads of the citizen's data by the agency's officials: slots 0, 1, 2… of the chain
    // (this writer key, the citizen) on a fresh ledger.
    let citizen_did = citizen_create_op(citizen).did()?;
    let agency = genesis.validators.first().map(|v| v.did.clone()).unwrap_or_default();
    let access_writer = dojang_core::access::AgencyWriter::new(writer, &w, &agency)?;
    let citizen_x = DidKey::from_verifying_key(&citizen.verifying_key()).x25519_public_key();
    let auditors: Vec<dojang_core::access::Auditor> = genesis
        .auditors
        .iter()
        .map(|a| DidKey::parse(&a.did).map(|k| dojang_core::access::Auditor::from_did_key(&k)))
        .collect::<Result<_, _>>()?;
    let reads = [
        ("officer-0412", "resident-registration", "law.resident-registration-act", 26 * 3_600_000u64),
        ("officer-0977", "tax", "law.local-tax-act", 7 * 3_600_000),
        ("officer-0412", "family-relations", "service.citizen-request", 3_600_000),
        ("clerk-1180", "health", "law.national-health-insurance-act", 50 * 60_000),
        ("officer-0977", "real-estate", "law.local-tax-act", 20 * 60_000),
    ];
    for (slot, (official, category, purpose, ago)) in reads.iter().enumerate() {
        let details = dojang_core::access::AccessDetails {
            agency: agency.clone(),
            official: (*official).to_owned(),
            category: (*category).to_owned(),
            purpose: dojang_core::access::Purpose::Code((*purpose).to_owned()),
            time_ms: now.saturating_sub(*ago),
            subject: citizen_did.clone(),
            slot: slot as u32,
            writer: w.clone(),
        };
        let event = access_writer.seal_event(&gh, &citizen_did, &citizen_x, slot as u32, &details, &auditors, &mut rand_core::OsRng)?;
        out.push(sign(Kind::AccessEvent, &w, writer, 30 + slot as u64, event.encode())?);
    }
    // A new trusted issuer, approved by the validator agency (not about itself).
    let passport_key =
        DidKey::from_verifying_key(&SigningKey::from_bytes(blake3::hash(b"demo passport office key").as_bytes()).verifying_key());
    let mut change = RegistryChange::new(
        1,
        RegistryAction::AddIssuer {
            issuer: dojang_core::genesis::TrustedIssuer {
                did: "did:web:passport.example.kr".into(),
                name: "Passport Office (demo)".into(),
                keys: vec![passport_key.key_id()],
                document_types: vec!["passport".into()],
                credential_types: vec![],
            },
        },
    );
    // Approved by every validator agency (the registry needs > 2/3 of the voting power).
    for (v, key) in genesis.validators.iter().zip(validators) {
        change.approve(&v.id, key, &gh);
    }
    out.push(sign(Kind::TrustRegistryChange, &w, writer, 50, change.encode())?);
    out.extend(crate::devnet_vc::demo_entries(genesis, validators, issuer_key, &sign)?);
    Ok(out)
}

/// The citizen's did:dojang: an Ed25519 authentication key and its X25519 twin for
/// key agreement (what access-log events will be sealed to), plus a wallet service.
fn citizen_did_create(citizen: &SigningKey, gh: &dojang_core::hash::Hash, now: u64, nonce: u64) -> anyhow::Result<Vec<u8>> {
    let dk = DidKey::from_verifying_key(&citizen.verifying_key());
    let op = citizen_create_op(citizen);
    let e = UnsignedEntry { kind: Kind::DidOperation, author: dk.key_id(), nonce, timestamp_ms: now, payload: op.encode() }
        .sign(citizen, gh)?;
    Ok(e.encode()?)
}

pub(crate) fn citizen_create_op(citizen: &SigningKey) -> dojang_core::did_dojang::DidOperation {
    use dojang_core::did_dojang::{CreateOp, DidOperation, DocumentContent, Service, VerificationMethod};
    let dk = DidKey::from_verifying_key(&citizen.verifying_key());
    DidOperation::Create(CreateOp {
        document: DocumentContent {
            verification_method: vec![
                VerificationMethod { id: "#key-1".into(), method_type: "Multikey".into(), public_key_multibase: dk.multibase() },
                VerificationMethod { id: "#key-2".into(), method_type: "Multikey".into(), public_key_multibase: dk.x25519_multibase() },
            ],
            authentication: vec!["#key-1".into()],
            key_agreement: vec!["#key-2".into()],
            service: vec![Service {
                id: "#wallet".into(),
                service_type: "DojangWallet".into(),
                service_endpoint: "https://wallet.example.kr/".into(),
            }],
            ..Default::default()
        },
        controller_keys: vec![dk.did()],
        next_key_commitment: None,
        salt: None,
    })
}

/// The first of `n` consecutive free loopback ports below the kernel's ephemeral range
/// (32768+), so that outgoing connections of other processes cannot take them between
/// this check and the nodes binding them.
pub fn free_port_run(n: u8) -> u16 {
    use rand_core::RngCore as _;
    for _ in 0..1000 {
        let base = 20_000 + (rand_core::OsRng.next_u32() % 12_000) as u16;
        let ok = (0..u16::from(n)).all(|i| std::net::TcpListener::bind(("127.0.0.1", base + i)).is_ok());
        if ok {
            return base;
        }
    }
    0
}

#[allow(clippy::print_stdout)]
pub fn run(args: DevnetArgs, json: bool) -> anyhow::Result<()> {
    let dir = &args.dir;
    if !dir.join("genesis.json").exists() {
        write_chain(&GenesisInitArgs {
            chain_id: "devnet".into(),
            validators: args.validators,
            out: dir.clone(),
            base_port: args.port,
            // `--port 0` (tests): API ports are picked by the OS; the p2p ports, which must
            // be known before the nodes start, are a free run below the ephemeral range, so
            // no outgoing connection of a concurrent process takes one meanwhile.
            p2p_port: (args.port == 0).then(|| free_port_run(args.validators)),
        })?;
    }
    let citizen_path = dir.join("citizen.key");
    if !citizen_path.exists() {
        new_key(&citizen_path)?;
    }
    let genesis = crate::load_genesis(&dir.join("genesis.json"))?;
    let n = genesis.validators.len();
    if args.replica && n < 2 {
        bail!(
            "--replica needs a devnet with several validators (this one has {n}): a replica follows decided blocks, which a lone validator does not produce"
        );
    }
    let mut cfgs = Vec::with_capacity(n);
    for i in 0..n {
        let mut cfg = NodeConfig::from_toml_file(&dir.join(format!("node-{i}.toml")))?;
        cfg.listen.set_port(if args.port == 0 { 0 } else { args.port.saturating_add(i as u16) });
        // Devnet heights are short: a lost proposer costs one second, not three.
        cfg.timeout_propose_ms = 1000;
        cfg.timeout_vote_ms = 500;
        cfgs.push(cfg);
    }
    // The first validator's node issues the demo credential with the agency's issuer key.
    if let Some(first) = cfgs.first_mut() {
        first.credentials = Some(crate::devnet_vc::prepare(dir)?);
    }
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().context("cannot start the async runtime")?;
    rt.block_on(async {
        // Every validator in this process, each with its own data directory and ports.
        let mut nodes = Vec::with_capacity(n);
        for cfg in &cfgs {
            nodes.push(dojang_node::node::start(cfg, Arc::new(SystemClock)).await?);
        }
        let Some(node) = nodes.first() else { bail!("the devnet genesis has no validators") };
        let parts = node.parts.clone();
        let mut loaded = 0usize;
        if !args.no_demo && parts.ledger.size() == 0 {
            let (_, writer) = KeyFile::load(&dir.join("writer-0.key"))?;
            let validators = (0..n).map(|i| KeyFile::load(&dir.join(format!("validator-{i}.key"))).map(|k| k.1)).collect::<Result<Vec<_>, _>>()?;
            let (_, citizen) = KeyFile::load(&citizen_path)?;
            let (_, issuer_key) = KeyFile::load(&dir.join("issuer.key"))?;
            let entries = demo_entries(&parts.genesis, dir, &validators, &writer, &citizen, &issuer_key)?;
            // Bounded: a network that cannot reach consensus must not hang the command.
            let outcomes = tokio::time::timeout(std::time::Duration::from_secs(120), parts.write.submit(entries))
                .await
                .context("the validators did not commit the demo data within 120 s (are their p2p ports free?)")??;
            for o in outcomes {
                o.context("a demo entry was refused")?;
                loaded += 1;
            }
            // Commands printed below ask any node: wait until every one has the demo data.
            let want = parts.ledger.size();
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
            while nodes.iter().any(|x| x.parts.ledger.size() < want) && std::time::Instant::now() < deadline {
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
            let citizen_did = citizen_create_op(&citizen).did()?;
            crate::devnet_vc::issue_demo_credential(dir, &parts, cfgs.first().and_then(|c| c.credentials.as_ref()), &citizen_did)?;
        }
        let urls: Vec<String> = nodes.iter().map(|x| x.url()).collect();
        let replica = if args.replica {
            let port = if args.port == 0 { 0 } else { args.port.saturating_add(n as u16) };
            let cfg = write_replica_config(dir, urls.clone(), port)?;
            let r = dojang_node::node::start(&cfg, Arc::new(SystemClock)).await?;
            // Commands printed below may ask the replica too: let it catch up (bounded).
            let want = parts.ledger.size();
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
            while r.parts.ledger.size() < want && std::time::Instant::now() < deadline {
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
            Some(r)
        } else {
            None
        };
        let replica_url = replica.as_ref().map(|r| r.url());
        let url = node.url();
        let (_, citizen) = KeyFile::load(&citizen_path)?;
        let citizen_did = citizen_create_op(&citizen).did()?;
        let exe = std::env::current_exe().map(|p| p.display().to_string()).unwrap_or_else(|_| "dojang".into());
        let g = dir.join("genesis.json");
        let mut node_lines: String = urls.iter().enumerate().map(|(i, u)| format!("  node {i} API: {u}\n")).collect();
        if let Some(u) = &replica_url {
            node_lines.push_str(&format!("  read replica API: {u} (follows the validators, refuses writes; {}/replica.toml)\n", dir.display()));
        }
        emit(
            json,
            json!({ "chain_id": parts.genesis.chain_id, "nodes": urls, "replica": replica_url, "genesis": g, "tree_size": parts.ledger.size(), "demo_entries_loaded": loaded, "citizen_did": citizen_did }),
            || {
                format!(
                    "Dojang devnet is running: chain {chain}, {n} validators, {size} entries ({loaded} demo entries loaded now).\n{node_lines}\nTry next (any node answers; checkpoints carry the validators' quorum signatures):\n  curl -s {url}/v1/checkpoint\n  curl -s -H 'Accept: application/json' {url}/v1/entries/0\n  {exe} checkpoint verify --genesis {g} --node {url}\n  {exe} proof verify --genesis {g} --node {url} --index 3\n  {exe} doc verify --node {url} --file {d}/docs/resident-registration-extract.txt --receipt {d}/docs/resident-registration-extract.receipt.json\n  {exe} doc verify --node {url} --file {d}/docs/family-relation-certificate.txt --receipt {d}/docs/family-relation-certificate.receipt.json\n  {exe} registry show --node {url}\n  curl -s {url}/1.0/identifiers/{citizen_did}\n  {exe} did resolve --node {url} {citizen_did} --save answer.json\n  {exe} did verify-resolution --genesis {g} --file answer.json\n\nWho read the citizen's data (verified complete, decrypted with the citizen's key):\n  {exe} audit history --node {url} --genesis {g} --key {d}/citizen.key --did {citizen_did}\n  {exe} audit watch --node {url} --genesis {g} --key {d}/citizen.key --did {citizen_did}\n  {exe} access record --node {url} --key {w} --subject {citizen_did} --official officer-0031 --category tax --purpose law.tax-basic-act\n  {exe} audit auditor --node {url} --genesis {g} --key {d}/auditor.key\n{vc}\nThe ledger lives in {d}; Ctrl-C stops every node and the next run resumes them.",
                    chain = parts.genesis.chain_id,
                    size = parts.ledger.size(),
                    g = g.display(),
                    w = dir.join("writer-0.key").display(),
                    d = dir.display(),
                    vc = crate::devnet_vc::instructions(&exe, &url, dir, &g, &citizen_did),
                )
            },
        );
        if !args.exit_after_start {
            let _ = tokio::signal::ctrl_c().await;
            println!("stopping devnet");
        }
        if let Some(r) = replica {
            r.stop().await;
        }
        for node in nodes {
            node.stop().await;
        }
        anyhow::Ok(())
    })
}
