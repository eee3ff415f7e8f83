//! `dojang`: the command line for operators, agencies and verifiers.
//!
//! Layout: this file parses arguments and dispatches; [`client`] talks HTTP to a node;
//! [`devnet`] runs a local network with demo data; [`bench`] measures the ledger; the
//! offline checks call `dojang-core` directly, so they need nothing but the genesis file.
//! Human output by default, `--json` on request; any error is one line on stderr and a
//! non-zero exit.

mod access;
mod bench;
mod bench_vc;
mod client;
mod devnet;
mod devnet_vc;
mod did;
mod doc;
mod vc;

use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use base64::Engine as _;
use clap::{Parser, Subcommand};
use dojang_core::bundle::{ConsistencyBundle, InclusionBundle};
use dojang_core::checkpoint::SignedCheckpoint;
use dojang_core::entry::{Kind, UnsignedEntry};
use dojang_core::genesis::Genesis;
use dojang_node::keyfile::KeyFile;
use ed25519_dalek::SigningKey;
use serde_json::json;

#[derive(Debug, Parser)]
#[command(name = "dojang", version, about = "Dojang: a permissioned identity and document ledger")]
struct Cli {
    /// Print machine-readable JSON instead of human text.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Ed25519 keys.
    #[command(subcommand)]
    Key(KeyCmd),
    /// Genesis files.
    #[command(subcommand)]
    Genesis(GenesisCmd),
    /// Run a local devnet with demo data on embedded RocksDB (stop with Ctrl-C).
    Devnet(devnet::DevnetArgs),
    /// DIDs: did:dojang operations, resolution, offline checks of resolution answers.
    #[command(subcommand)]
    Did(did::DidCmd),
    /// Documents: issue, revoke, verify (online with proof, or offline).
    #[command(subcommand)]
    Doc(doc::DocCmd),
    /// The trusted-issuer registry: show (proven), propose, approve, submit changes.
    #[command(subcommand)]
    Registry(doc::RegistryCmd),
    /// Personal-data access events: record a read of a citizen's data (agencies).
    #[command(subcommand)]
    Access(access::AccessCmd),
    /// Your access history, verified complete against genesis (citizens, auditors).
    #[command(subcommand)]
    Audit(access::AuditCmd),
    /// Verifiable credentials: issue, verify (proven, or offline), present; status lists.
    #[command(subcommand)]
    Vc(vc::VcCmd),
    /// Verifiable presentations: verify (with the node's replay protection).
    #[command(subcommand)]
    Vp(vc::VpCmd),
    /// Sign an entry and submit it to a node.
    Submit(SubmitArgs),
    /// Checkpoints.
    #[command(subcommand)]
    Checkpoint(CheckpointCmd),
    /// Proofs.
    #[command(subcommand)]
    Proof(ProofCmd),
    /// Benchmarks that print JSON.
    #[command(subcommand)]
    Bench(BenchCmd),
}

#[derive(Debug, Subcommand)]
enum KeyCmd {
    /// Write a new Ed25519 key file (mode 0600) and print its did:key.
    New {
        /// Where to write the key file.
        #[arg(long, short, default_value = "dojang.key")]
        out: PathBuf,
    },
    /// Print the did:key of an existing key file.
    Show { file: PathBuf },
}

#[derive(Debug, Subcommand)]
enum GenesisCmd {
    /// Create validator keys, a genesis file and one node config per validator.
    Init(devnet::GenesisInitArgs),
    /// Validate a genesis file and print its hash.
    Show { file: PathBuf },
}

#[derive(Debug, clap::Args)]
struct SubmitArgs {
    /// Node API URL.
    #[arg(long, default_value = "http://127.0.0.1:7300")]
    node: String,
    /// Key file of the author.
    #[arg(long)]
    key: PathBuf,
    /// Entry kind, e.g. access-event/v1 (see specs/ledger.md §2.3).
    #[arg(long)]
    kind: String,
    /// Payload text, or @FILE to read bytes from a file.
    #[arg(long)]
    payload: String,
    /// Nonce; default: the current time in microseconds (ask the node with
    /// GET /v1/nonce when one key submits faster than that).
    #[arg(long)]
    nonce: Option<u64>,
    /// Genesis file to sign for; default: fetched from the node.
    #[arg(long)]
    genesis: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
enum CheckpointCmd {
    /// Verify a checkpoint's quorum signatures against a genesis file.
    Verify {
        #[arg(long)]
        genesis: PathBuf,
        /// A saved checkpoint text file.
        #[arg(long, conflicts_with = "node")]
        file: Option<PathBuf>,
        /// Fetch the latest checkpoint from this node.
        #[arg(long)]
        node: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
enum ProofCmd {
    /// Verify an inclusion or consistency bundle offline against a genesis file.
    Verify {
        #[arg(long)]
        genesis: PathBuf,
        /// A saved bundle (JSON from /v1/proofs/...).
        #[arg(long, conflicts_with = "node")]
        bundle: Option<PathBuf>,
        /// Fetch the bundle from this node instead.
        #[arg(long)]
        node: Option<String>,
        /// With --node: prove inclusion of this leaf index.
        #[arg(long)]
        index: Option<u64>,
        /// With --node: prove consistency from this size.
        #[arg(long)]
        from: Option<u64>,
        /// With --node: the checkpoint size to prove against (default: latest).
        #[arg(long)]
        size: Option<u64>,
        /// With --node: also save the fetched bundle here.
        #[arg(long)]
        save: Option<PathBuf>,
        /// A checkpoint you saved earlier: prove the node's latest tree extends it (fetched
        /// with --node, from its size), and fail if the node's history differs.
        #[arg(long, conflicts_with_all = ["index", "from"])]
        trusted: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
enum BenchCmd {
    /// Ledger write path, proof generation and storage figures.
    Ledger(bench::LedgerBenchArgs),
    /// A 4-validator BFT network on loopback: committed entries/s, commit latency.
    Cluster(bench::ClusterBenchArgs),
    /// did:dojang resolution with proofs: in process, bundle size, HTTP under wrk.
    Did(bench::DidBenchArgs),
    /// Document issuance throughput and verification latency at scale.
    Docs(bench::DocsBenchArgs),
    /// Access-event ingest, and a citizen's verified history at 10^6 and 10^7 events.
    Access(bench::AccessBenchArgs),
    /// Credentials: eddsa-jcs-2022 and eddsa-rdfc-2022 verify rates beside raw Ed25519, and
    /// the status-check cost at 10^6 credentials per list.
    Vc(bench_vc::VcBenchArgs),
}

fn main() {
    let cli = Cli::parse();
    // The devnet runs a node in-process: show its warnings and errors (RUST_LOG overrides).
    // Malachite's network logs every failed dial at ERROR; while the devnet's validators
    // start one after another those are expected and retried, so they are hidden by default.
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,arc_malachitebft_network=off"));
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();
    let json = cli.json;
    if let Err(e) = run(cli) {
        let msg = format!("{e:#}").replace('\n', " ");
        if json {
            eprintln!("{}", json!({ "error": msg }));
        } else {
            eprintln!("dojang: {msg}");
        }
        std::process::exit(1);
    }
}

/// Prints either the JSON value or the human text.
#[allow(clippy::print_stdout)]
pub(crate) fn emit(json: bool, value: serde_json::Value, human: impl FnOnce() -> String) {
    if json {
        println!("{value}");
    } else {
        println!("{}", human());
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let json = cli.json;
    match cli.cmd {
        Cmd::Key(KeyCmd::New { out }) => {
            let key = SigningKey::generate(&mut rand_core::OsRng);
            let kf = KeyFile::from_signing_key(&key);
            kf.write_new(&out)?;
            emit(json, json!({ "did": kf.did, "key_id": kf.key_id, "file": out }), || {
                format!("{}\nkey written to {}", kf.did, out.display())
            });
        }
        Cmd::Key(KeyCmd::Show { file }) => {
            let (kf, _) = KeyFile::load(&file)?;
            emit(json, json!({ "did": kf.did, "key_id": kf.key_id }), || format!("{}\nkey id: {}", kf.did, kf.key_id));
        }
        Cmd::Genesis(GenesisCmd::Init(args)) => devnet::genesis_init(&args, json)?,
        Cmd::Genesis(GenesisCmd::Show { file }) => {
            let g = load_genesis(&file)?;
            emit(json, json!({ "chain_id": g.chain_id, "hash": g.hash(), "validators": g.validators.len() }), || {
                format!("chain {} with {} validators\ngenesis hash {}", g.chain_id, g.validators.len(), g.hash())
            });
        }
        Cmd::Devnet(args) => devnet::run(args, json)?,
        Cmd::Submit(args) => submit(args, json)?,
        Cmd::Did(cmd) => did::run(cmd, json)?,
        Cmd::Doc(cmd) => doc::run_doc(cmd, json)?,
        Cmd::Registry(cmd) => doc::run_registry(cmd, json)?,
        Cmd::Access(cmd) => access::run_access(cmd, json)?,
        Cmd::Audit(cmd) => access::run_audit(cmd, json)?,
        Cmd::Vc(cmd) => vc::run_vc(cmd, json)?,
        Cmd::Vp(cmd) => vc::run_vp(cmd, json)?,
        Cmd::Checkpoint(CheckpointCmd::Verify { genesis, file, node }) => {
            let g = load_genesis(&genesis)?;
            let text = match (file, node) {
                (Some(f), _) => std::fs::read_to_string(&f).with_context(|| format!("cannot read checkpoint file {}", f.display()))?,
                (None, Some(n)) => client::get_text(&n, "/v1/checkpoint")?,
                (None, None) => bail!("give --file or --node"),
            };
            let v = SignedCheckpoint::parse(&text)?.verify(&g)?;
            let c = &v.checkpoint;
            emit(
                json,
                json!({ "valid": true, "origin": c.origin, "size": c.size, "root": c.root, "timestamp_ms": c.timestamp_ms,
                        "signers": v.signers, "signed_power": v.signed_power, "total_power": v.total_power }),
                || {
                    format!(
                        "checkpoint valid: {} size {} root {}\nsigned by {} ({} of {} voting power)",
                        c.origin,
                        c.size,
                        c.root,
                        v.signers.join(", "),
                        v.signed_power,
                        v.total_power
                    )
                },
            );
        }
        Cmd::Proof(ProofCmd::Verify { genesis, bundle, node, index, from, size, save, trusted }) => {
            let g = load_genesis(&genesis)?;
            let trusted = match trusted {
                Some(p) => {
                    let text = std::fs::read_to_string(&p).with_context(|| format!("cannot read trusted checkpoint {}", p.display()))?;
                    Some(
                        SignedCheckpoint::parse(&text)
                            .with_context(|| format!("trusted checkpoint {}", p.display()))?
                            .verify(&g)?
                            .checkpoint,
                    )
                }
                None => None,
            };
            let from = from.or(trusted.as_ref().map(|t| t.size));
            if let (Some(t), Some(n)) = (&trusted, &node)
                && t.size == 0
            {
                // Every tree extends the empty one: all there is to check is the latest checkpoint.
                let latest = SignedCheckpoint::parse(&client::get_text(n, "/v1/checkpoint")?)?.verify(&g)?;
                emit(json, json!({ "valid": true, "type": "consistency", "old_size": 0, "new_size": latest.checkpoint.size }), || {
                    format!("consistency proof valid: the tree of size {} extends the empty tree", latest.checkpoint.size)
                });
                return Ok(());
            }
            let text = match (bundle, node) {
                (Some(f), _) => std::fs::read_to_string(&f).with_context(|| format!("cannot read bundle {}", f.display()))?,
                (None, Some(n)) => {
                    let size_q = size.map(|s| format!("&size={s}")).unwrap_or_default();
                    let path = match (index, from) {
                        (Some(i), None) => format!("/v1/proofs/inclusion?index={i}{size_q}"),
                        (None, Some(f)) => {
                            format!("/v1/proofs/consistency?from={f}{}", size.map(|s| format!("&to={s}")).unwrap_or_default())
                        }
                        _ => bail!("with --node give exactly one of --index or --from"),
                    };
                    client::get_text(&n, &path)?
                }
                (None, None) => bail!("give --bundle or --node"),
            };
            if let Some(p) = save {
                std::fs::write(&p, &text).with_context(|| format!("cannot write {}", p.display()))?;
            }
            verify_bundle(&g, &text, trusted.as_ref(), json)?;
        }
        Cmd::Bench(BenchCmd::Ledger(args)) => bench::ledger(args)?,
        Cmd::Bench(BenchCmd::Cluster(args)) => bench::cluster(args)?,
        Cmd::Bench(BenchCmd::Did(args)) => bench::did(args)?,
        Cmd::Bench(BenchCmd::Docs(args)) => bench::docs(args)?,
        Cmd::Bench(BenchCmd::Access(args)) => bench::access(args)?,
        Cmd::Bench(BenchCmd::Vc(args)) => bench_vc::vc(args)?,
    }
    Ok(())
}

pub(crate) fn load_genesis(path: &Path) -> anyhow::Result<Genesis> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read genesis file {}", path.display()))?;
    Genesis::from_json(&bytes).with_context(|| format!("genesis file {} is invalid", path.display()))
}

fn verify_bundle(g: &Genesis, text: &str, trusted: Option<&dojang_core::checkpoint::Checkpoint>, json: bool) -> anyhow::Result<()> {
    let value: serde_json::Value = serde_json::from_str(text).context("bundle is not json")?;
    if value.get("entry").is_some() {
        if trusted.is_some() {
            bail!("--trusted applies to consistency proofs; this bundle is an inclusion proof");
        }
        let b: InclusionBundle = serde_json::from_value(value).context("not an inclusion bundle")?;
        let v = b.verify(g)?;
        emit(
            json,
            json!({ "valid": true, "type": "inclusion", "index": v.index, "tree_size": v.checkpoint.checkpoint.size,
                    "kind": v.entry.kind.name(), "author": v.entry.author, "nonce": v.entry.nonce, "signers": v.checkpoint.signers }),
            || {
                format!(
                    "inclusion proof valid: entry {} ({}, by {}, nonce {}) is in the tree of size {}\ncheckpoint signed by {}",
                    v.index,
                    v.entry.kind.name(),
                    v.entry.author,
                    v.entry.nonce,
                    v.checkpoint.checkpoint.size,
                    v.checkpoint.signers.join(", ")
                )
            },
        );
    } else {
        let b: ConsistencyBundle = serde_json::from_value(value).context("not an inclusion or consistency bundle")?;
        let (old, new) = match trusted {
            Some(t) => b.verify_extends(g, t)?,
            None => b.verify(g)?,
        };
        emit(
            json,
            json!({ "valid": true, "type": "consistency", "old_size": old.checkpoint.size, "new_size": new.checkpoint.size }),
            || {
                format!(
                    "consistency proof valid: the tree of size {} extends the tree of size {}",
                    new.checkpoint.size, old.checkpoint.size
                )
            },
        );
    }
    Ok(())
}

fn submit(args: SubmitArgs, json: bool) -> anyhow::Result<()> {
    let (kf, key) = KeyFile::load(&args.key)?;
    let kind = Kind::from_name(&args.kind).with_context(|| {
        format!("unknown kind {:?}; known: {}", args.kind, Kind::ALL.iter().map(|k| k.name()).collect::<Vec<_>>().join(", "))
    })?;
    let payload = match args.payload.strip_prefix('@') {
        Some(path) => std::fs::read(path).with_context(|| format!("cannot read payload file {path}"))?,
        None => args.payload.into_bytes(),
    };
    let genesis = match &args.genesis {
        Some(p) => load_genesis(p)?,
        None => Genesis::from_json(client::get_text(&args.node, "/v1/genesis")?.as_bytes()).context("the node's genesis is invalid")?,
    };
    let now = devnet::now_ms();
    let entry =
        UnsignedEntry { kind, author: kf.key_id.clone(), nonce: args.nonce.unwrap_or_else(client::micros_now), timestamp_ms: now, payload }
            .sign(&key, &genesis.hash())?;
    let bytes = entry.encode()?;
    let receipt = client::post_entry(&args.node, &bytes)?;
    emit(json, receipt.clone(), || {
        format!(
            "committed entry {} (leaf {}) in checkpoint of size {}\nbytes: {}",
            receipt.get("index").cloned().unwrap_or_default(),
            receipt.get("leaf_hash").and_then(|v| v.as_str()).unwrap_or_default(),
            receipt.get("tree_size").cloned().unwrap_or_default(),
            base64::engine::general_purpose::STANDARD.encode(&bytes).chars().take(40).collect::<String>() + "…"
        )
    });
    Ok(())
}
