//! `dojang doc …` and `dojang registry …`: issue, revoke and verify documents
//! (`specs/documents.md`), and read or change the trusted-issuer registry with
//! validator approvals (§2).
//!
//! Document bytes never leave this machine for issuance: only the salted commitment is
//! anchored, and the salt travels in a receipt beside the file.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use dojang_core::documents::{self, DocumentProof, Issuance, Receipt, StatusAction, StatusChange};
use dojang_core::entry::Kind;
use dojang_core::genesis::Genesis;
use dojang_core::registry::{RegistryAction, RegistryChange};
use dojang_node::keyfile::KeyFile;
use ed25519_dalek::SigningKey;
use rand_core::RngCore as _;
use serde_json::{Value, json};

use crate::{client, emit, load_genesis};

#[derive(Debug, clap::Subcommand)]
pub enum DocCmd {
    /// Anchor a document: commit to FILE with a fresh salt, submit, write the receipt.
    Issue {
        #[arg(long, default_value = "http://127.0.0.1:7300")]
        node: String,
        /// A signing key of a trusted issuer.
        #[arg(long)]
        key: PathBuf,
        /// Document type, e.g. resident-registration-extract.
        #[arg(long = "type")]
        doc_type: String,
        #[arg(long)]
        file: PathBuf,
        /// Days of validity from now (default: no expiry).
        #[arg(long)]
        valid_days: Option<u64>,
        /// Holder pseudonym, 64 hex characters (never a name or resident number).
        #[arg(long)]
        holder: Option<String>,
        /// Receipt output (default: FILE.receipt.json).
        #[arg(long)]
        receipt: Option<PathBuf>,
    },
    /// Revoke, suspend or reinstate a document you issued.
    Revoke {
        #[arg(long, default_value = "http://127.0.0.1:7300")]
        node: String,
        #[arg(long)]
        key: PathBuf,
        #[arg(long)]
        receipt: PathBuf,
        /// revoke (final), suspend or reinstate.
        #[arg(long, default_value = "revoke")]
        action: String,
    },
    /// Verify a document: through a node (with its proof checked here), or --offline from a
    /// saved proof with only the genesis file.
    Verify {
        #[arg(long)]
        file: PathBuf,
        #[arg(long)]
        receipt: PathBuf,
        #[arg(long, default_value = "http://127.0.0.1:7300")]
        node: String,
        /// Genesis file (required with --offline; default: fetched from the node).
        #[arg(long)]
        genesis: Option<PathBuf>,
        /// Check a saved proof instead of asking a node.
        #[arg(long, requires = "proof")]
        offline: bool,
        /// The proof file (from --save).
        #[arg(long)]
        proof: Option<PathBuf>,
        /// Save the node's proof here.
        #[arg(long)]
        save: Option<PathBuf>,
    },
}

#[derive(Debug, clap::Subcommand)]
pub enum RegistryCmd {
    /// The trusted-issuer registry as of a checkpoint, replayed and checked here.
    Show {
        #[arg(long, default_value = "http://127.0.0.1:7300")]
        node: String,
        #[arg(long)]
        size: Option<u64>,
        #[arg(long)]
        genesis: Option<PathBuf>,
    },
    /// Write an unsigned change: the next version and an action given as JSON, e.g.
    /// '{"type":"suspend-issuer","did":"did:key:…"}'.
    Propose {
        #[arg(long, default_value = "http://127.0.0.1:7300")]
        node: String,
        #[arg(long)]
        action: String,
        #[arg(long)]
        out: PathBuf,
    },
    /// Add a validator's approval to a change file.
    Approve {
        #[arg(long)]
        change: PathBuf,
        /// The validator's consensus key file.
        #[arg(long)]
        key: PathBuf,
        /// The validator id in genesis.
        #[arg(long)]
        id: String,
        #[arg(long)]
        genesis: PathBuf,
    },
    /// Submit an approved change (any key may carry it).
    Submit {
        #[arg(long, default_value = "http://127.0.0.1:7300")]
        node: String,
        #[arg(long)]
        change: PathBuf,
        #[arg(long)]
        key: PathBuf,
    },
}

fn node_genesis(node: &str, genesis: Option<&Path>) -> anyhow::Result<Genesis> {
    match genesis {
        Some(p) => load_genesis(p),
        None => Genesis::from_json(client::get_text(node, "/v1/genesis")?.as_bytes()).context("the node's genesis is invalid"),
    }
}

/// The registry as of the node's checkpoint at `size` (latest when None), proven: the
/// change entries are checked against a quorum checkpoint and replayed from genesis here.
fn proven_registry(node: &str, genesis: &Genesis, size: Option<u64>) -> anyhow::Result<dojang_core::registry::Registry> {
    let path = size.map(|s| format!("/v1/registry?size={s}")).unwrap_or_else(|| "/v1/registry".into());
    let answer: Value = serde_json::from_str(&client::get_text(node, &path)?).context("the node's registry is not json")?;
    let proofs: Vec<dojang_core::did_proof::EntryProof> =
        serde_json::from_value(answer.get("changes").cloned().unwrap_or_default()).context("the registry answer has no change proofs")?;
    let cp_text = answer.get("checkpoint").and_then(Value::as_str).context("the registry answer has no checkpoint")?;
    let (_, entries) = dojang_core::bundle::verify_entries(genesis, cp_text, &proofs)?;
    let changes = entries.iter().map(|(i, e)| Ok((*i, RegistryChange::from_entry(e)?))).collect::<anyhow::Result<Vec<_>>>()?;
    Ok(dojang_core::registry::replay(genesis, &changes)?)
}

fn submit(node: &str, genesis: &Genesis, key: &SigningKey, kind: Kind, payload: Vec<u8>) -> anyhow::Result<Value> {
    client::sign_and_post(node, genesis, key, kind, payload, 0)
}

fn read(path: &Path) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))
}

fn read_receipt(path: &Path) -> anyhow::Result<Receipt> {
    Receipt::decode(&String::from_utf8_lossy(&read(path)?)).with_context(|| format!("receipt {}", path.display()))
}

pub fn run_doc(cmd: DocCmd, json: bool) -> anyhow::Result<()> {
    match cmd {
        DocCmd::Issue { node, key, doc_type, file, valid_days, holder, receipt } => {
            let g = node_genesis(&node, None)?;
            let (kf, sk) = KeyFile::load(&key)?;
            let bytes = read(&file)?;
            let mut salt = [0u8; 32];
            rand_core::OsRng.fill_bytes(&mut salt);
            let now = crate::devnet::now_ms();
            let issuance = Issuance {
                document_type: doc_type.clone(),
                commitment: documents::commitment(&salt, &bytes),
                valid_from: now,
                valid_until: valid_days.map(|d| now.saturating_add(d.saturating_mul(86_400_000))),
                holder,
            };
            issuance.validate()?;
            // The issuer DID for the receipt: the registry record that holds this key.
            let issuer = proven_registry(&node, &g, None)?
                .issuer_by_key(&kf.key_id)
                .map(|r| r.issuer.did.clone())
                .with_context(|| format!("key {} belongs to no trusted issuer", kf.key_id))?;
            let r = submit(&node, &g, &sk, Kind::DocumentIssuance, issuance.encode())?;
            let rec = Receipt::new(&salt, &bytes, &doc_type, &issuer);
            let out = receipt.unwrap_or_else(|| PathBuf::from(format!("{}.receipt.json", file.display())));
            std::fs::write(&out, rec.encode()).with_context(|| format!("cannot write {}", out.display()))?;
            emit(json, json!({ "commitment": rec.commitment, "receipt": out, "entry": r }), || {
                format!(
                    "issued {doc_type} by {issuer}\ncommitment {}\nreceipt written to {} (keep it with the file)",
                    rec.commitment,
                    out.display()
                )
            });
        }
        DocCmd::Revoke { node, key, receipt, action } => {
            let g = node_genesis(&node, None)?;
            let (_, sk) = KeyFile::load(&key)?;
            let rec = read_receipt(&receipt)?;
            let action = match action.as_str() {
                "revoke" => StatusAction::Revoke,
                "suspend" => StatusAction::Suspend,
                "reinstate" => StatusAction::Reinstate,
                other => bail!("action {other:?} is not revoke, suspend or reinstate"),
            };
            let change = StatusChange { document: rec.commitment, action, reason: None, sequence: None, approvals: Vec::new() };
            change.validate()?;
            let r = submit(&node, &g, &sk, Kind::DocumentRevocation, change.encode())?;
            emit(json, json!({ "commitment": rec.commitment, "action": action.as_str(), "entry": r }), || {
                format!("{} {}", action.as_str(), rec.commitment)
            });
        }
        DocCmd::Verify { file, receipt, node, genesis, offline, proof, save } => {
            let bytes = read(&file)?;
            let rec = read_receipt(&receipt)?;
            let salt = rec.salt_bytes()?;
            let (g, proof) = if offline {
                let g = load_genesis(genesis.as_deref().context("--offline needs --genesis")?)?;
                let p: DocumentProof = serde_json::from_slice(&read(proof.as_deref().context("--offline needs --proof")?)?)
                    .context("the proof is not valid json")?;
                (g, Some(p))
            } else {
                let g = node_genesis(&node, genesis.as_deref())?;
                // Ask by commitment: the file and its salt never leave this machine.
                let c = documents::commitment(&salt, &bytes);
                let answer: Value = serde_json::from_str(&client::get_text(&node, &format!("/v1/documents/{c}"))?)
                    .context("the node's answer is not json")?;
                let p = match answer.get("proof") {
                    Some(p) => Some(serde_json::from_value::<DocumentProof>(p.clone()).context("the node's proof is malformed")?),
                    None => None,
                };
                if let (Some(path), Some(p)) = (&save, &p) {
                    std::fs::write(path, serde_json::to_vec_pretty(p)?).with_context(|| format!("cannot write {}", path.display()))?;
                }
                (g, p)
            };
            let Some(proof) = proof else {
                emit(json, json!({ "verdict": "unknown", "commitment": rec.commitment, "proven": false }), || {
                    "unknown: the ledger holds no document with this file and salt (a node cannot prove absence)".to_owned()
                });
                return Ok(());
            };
            let now = crate::devnet::now_ms();
            match documents::verify_document(&g, &bytes, &salt, &proof, now) {
                Ok(v) => {
                    // The receipt's claims (type, issuer) must be what the ledger proves.
                    rec.matches(&v.record).context("the receipt does not match the proven record")?;
                    let name = v.issuer.as_ref().map(|i| i.name.clone()).unwrap_or_default();
                    emit(
                        json,
                        json!({ "verdict": v.verdict, "proven": true, "issuer": v.record.issuer, "issuerName": name,
                                "documentType": v.record.document_type, "issuedAt": dojang_core::did_dojang::format_rfc3339_ms(v.record.issued_at),
                                "checkpointSize": v.checkpoint.checkpoint.size, "signers": v.checkpoint.signers }),
                        || {
                            format!(
                                "{}: {} issued by {} ({}) at {}\nproven against the checkpoint of size {} signed by {}",
                                v.verdict.as_str(),
                                v.record.document_type,
                                name,
                                v.record.issuer,
                                dojang_core::did_dojang::format_rfc3339_ms(v.record.issued_at),
                                v.checkpoint.checkpoint.size,
                                v.checkpoint.signers.join(", ")
                            )
                        },
                    );
                }
                Err(e) if e.verdict().is_some() => {
                    emit(json, json!({ "verdict": "unknown", "proven": false, "reason": e.to_string() }), || format!("unknown: {e}"));
                }
                Err(e) => return Err(e.into()),
            }
        }
    }
    Ok(())
}

pub fn run_registry(cmd: RegistryCmd, json: bool) -> anyhow::Result<()> {
    match cmd {
        RegistryCmd::Show { node, size, genesis } => {
            let g = node_genesis(&node, genesis.as_deref())?;
            let registry = proven_registry(&node, &g, size)?;
            let issuers: Vec<Value> = registry
                .issuers()
                .map(|i| {
                    json!({ "did": i.issuer.did, "name": i.issuer.name, "status": i.status.name(),
                "documentTypes": i.issuer.document_types, "credentialTypes": i.issuer.credential_types })
                })
                .collect();
            emit(json, json!({ "version": registry.version(), "issuers": issuers, "proven": true }), || {
                let mut s = format!("registry version {} (proven against the node's checkpoint)\n", registry.version());
                for i in registry.issuers() {
                    s.push_str(&format!(
                        "  {:<10} {} ({}) — {}\n",
                        i.status.name(),
                        i.issuer.name,
                        i.issuer.did,
                        i.issuer.document_types.join(", ")
                    ));
                }
                s
            });
        }
        RegistryCmd::Propose { node, action, out } => {
            let action: RegistryAction = serde_json::from_str(&action).context("--action is not a registry action")?;
            let version = proven_registry(&node, &node_genesis(&node, None)?, None)?.version() + 1;
            let change = RegistryChange::new(version, action);
            change.validate()?;
            std::fs::write(&out, change.encode()).with_context(|| format!("cannot write {}", out.display()))?;
            emit(json, json!({ "version": version, "file": out }), || {
                format!("wrote change version {version} to {}: collect approvals with `dojang registry approve`", out.display())
            });
        }
        RegistryCmd::Approve { change, key, id, genesis } => {
            let g = load_genesis(&genesis)?;
            let (_, sk) = KeyFile::load(&key)?;
            let mut c = RegistryChange::decode(&read(&change)?)?;
            c.approve(&id, &sk, &g.hash());
            std::fs::write(&change, c.encode()).with_context(|| format!("cannot write {}", change.display()))?;
            emit(json, json!({ "approvals": c.approvals.len() }), || format!("{id} approved; {} approvals so far", c.approvals.len()));
        }
        RegistryCmd::Submit { node, change, key } => {
            let g = node_genesis(&node, None)?;
            let (_, sk) = KeyFile::load(&key)?;
            let c = RegistryChange::decode(&read(&change)?)?;
            c.check(&g)?;
            let r = submit(&node, &g, &sk, Kind::TrustRegistryChange, c.encode())?;
            emit(json, json!({ "version": c.version, "entry": r }), || format!("registry change version {} committed", c.version));
        }
    }
    Ok(())
}
