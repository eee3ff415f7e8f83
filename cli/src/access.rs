//! `dojang access record` (an agency logs a read of a citizen's data) and `dojang audit …`
//! (the citizen reads, decrypts and verifies their whole access history; an auditor reads
//! what is sealed to it) — `specs/access-log.md`.
//!
//! The citizen's side trusts nothing but the genesis file and its own key: tags are
//! derived here, every proof is checked here, and only then is anything printed.

use std::io::BufRead as _;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use base64::Engine as _;
use dojang_core::access::{self, AccessDetails, AccessEvent, AgencyWriter, Auditor, Purpose, SubjectKey};
use dojang_core::audit::{self, ChainGrant, GRANT_HEADER, HistoryBundle};
use dojang_core::auth;
use dojang_core::did_key::DidKey;
use dojang_core::entry::{Kind, UnsignedEntry};
use dojang_core::genesis::Genesis;
use dojang_node::keyfile::KeyFile;
use ed25519_dalek::SigningKey;
use rand_core::OsRng;
use serde_json::{Value, json};

use crate::{client, emit, load_genesis};

#[derive(Debug, clap::Subcommand)]
pub enum AccessCmd {
    /// Record that an official read a citizen's personal data (sealed to the citizen).
    Record(Box<RecordArgs>),
    /// List the data-category and purpose codes (specs/access-log.md §6.3, §6.4).
    Codes,
}

#[derive(Debug, clap::Args)]
pub struct RecordArgs {
    #[arg(long, default_value = "http://127.0.0.1:7300")]
    node: String,
    /// The agency's writer key file (listed in genesis).
    #[arg(long)]
    key: PathBuf,
    /// The citizen whose data was read (did:key or did:dojang).
    #[arg(long)]
    subject: String,
    /// Pseudonymous id of the official (the agency maps it to a person).
    #[arg(long)]
    official: String,
    /// Data category code (`dojang access codes`).
    #[arg(long)]
    category: String,
    /// Legal-basis or purpose code.
    #[arg(long, conflicts_with_all = ["consent", "delegation"])]
    purpose: Option<String>,
    /// Leaf hash of the citizen's consent entry, instead of a purpose code.
    #[arg(long)]
    consent: Option<String>,
    /// Leaf hash of a delegation entry, instead of a purpose code.
    #[arg(long)]
    delegation: Option<String>,
    /// When the data was read (ms since the epoch); default now.
    #[arg(long)]
    time_ms: Option<u64>,
    /// Do not seal a copy to the genesis auditors.
    #[arg(long)]
    no_auditors: bool,
    /// Genesis file; default: fetched from the node.
    #[arg(long)]
    genesis: Option<PathBuf>,
}

#[derive(Debug, clap::Subcommand)]
pub enum AuditCmd {
    /// Your access history: authenticate with your DID, fetch, verify completeness
    /// against the genesis file, decrypt, print.
    History(HistoryArgs),
    /// Re-verify a saved history offline (only the genesis file and your key).
    Verify {
        #[arg(long)]
        genesis: PathBuf,
        /// Your key file (the DID's authentication / key-agreement key).
        #[arg(long)]
        key: PathBuf,
        #[arg(long)]
        did: String,
        #[arg(long)]
        file: PathBuf,
    },
    /// Wait for new access events about you (server-sent events); prints one line each.
    Watch {
        #[command(flatten)]
        who: Who,
        /// Stop after this many notifications (default: run until the token expires).
        #[arg(long)]
        count: Option<usize>,
    },
    /// For a genesis auditor: events sealed to you, decrypted.
    Auditor {
        #[arg(long, default_value = "http://127.0.0.1:7300")]
        node: String,
        #[arg(long)]
        genesis: PathBuf,
        /// The auditor's key file (its did:key is in genesis).
        #[arg(long)]
        key: PathBuf,
        #[arg(long, default_value_t = 0)]
        from: u64,
    },
}

#[derive(Debug, clap::Args)]
pub struct Who {
    #[arg(long, default_value = "http://127.0.0.1:7300")]
    node: String,
    /// The genesis file: the only thing trusted.
    #[arg(long)]
    genesis: PathBuf,
    /// Your key file.
    #[arg(long)]
    key: PathBuf,
    /// Your DID (default: the did:key of the key file).
    #[arg(long)]
    did: Option<String>,
}

#[derive(Debug, clap::Args)]
pub struct HistoryArgs {
    #[command(flatten)]
    who: Who,
    /// Also write the node's proven answer here, for `dojang audit verify` and `--since`.
    #[arg(long)]
    save: Option<PathBuf>,
    /// A history saved earlier: prove the new one extends it (its checkpoint is extended,
    /// every earlier event still in its slot) and report what is new.
    #[arg(long)]
    since: Option<PathBuf>,
}

/// A member of a JSON object, or null.
fn field(v: &Value, k: &str) -> Value {
    v.get(k).cloned().unwrap_or(Value::Null)
}

fn node_genesis(node: &str, path: Option<&Path>) -> anyhow::Result<Genesis> {
    match path {
        Some(p) => load_genesis(p),
        None => Genesis::from_json(client::get_text(node, "/v1/genesis")?.as_bytes()).context("the node's genesis is invalid"),
    }
}

pub fn run_access(cmd: AccessCmd, json: bool) -> anyhow::Result<()> {
    match cmd {
        AccessCmd::Codes => {
            let v = json!({
                "categories": access::CATEGORIES.iter().map(|(c, d)| json!({"code": c, "description": d})).collect::<Vec<_>>(),
                "purposes": access::PURPOSES.iter().map(|(c, d)| json!({"code": c, "description": d})).collect::<Vec<_>>(),
            });
            emit(json, v, || {
                let mut s = String::from("data categories:\n");
                for (c, d) in access::CATEGORIES {
                    s.push_str(&format!("  {c:<28} {d}\n"));
                }
                s.push_str("purposes (legal bases):\n");
                for (c, d) in access::PURPOSES {
                    s.push_str(&format!("  {c:<36} {d}\n"));
                }
                s.trim_end().to_owned()
            });
            Ok(())
        }
        AccessCmd::Record(a) => {
            let genesis = node_genesis(&a.node, a.genesis.as_deref())?;
            let (_, key) = KeyFile::load(&a.key)?;
            let purpose = match (a.purpose, a.consent, a.delegation) {
                (Some(p), None, None) => Purpose::Code(p),
                (None, Some(c), None) => Purpose::Consent(c),
                (None, None, Some(d)) => Purpose::Delegation(d),
                _ => bail!("give one of --purpose, --consent or --delegation"),
            };
            let r = record(&a.node, &genesis, &key, &a.subject, &a.official, &a.category, purpose, a.time_ms, !a.no_auditors)?;
            emit(json, r.clone(), || {
                format!(
                    "recorded access event for {}: slot {}, ledger index {}, tree size {}",
                    a.subject,
                    field(&r, "slot"),
                    field(&r, "index"),
                    field(&r, "tree_size")
                )
            });
            Ok(())
        }
    }
}

/// The first slot of the (writer, subject) chain whose tag is not on the ledger:
/// exponential probing, then bisection (O(log n) lookups).
fn next_free_slot(node: &str, pair: &access::PairKey, subject: &str) -> anyhow::Result<u32> {
    let taken = |j: u32| -> anyhow::Result<bool> {
        let tag = hex::encode(pair.tag(j, subject));
        match client::get_json(node, &format!("/v1/access/tags/{tag}"), &[]) {
            Ok(_) => Ok(true),
            Err((404, _, _)) => Ok(false),
            Err((_, _, e)) => Err(e),
        }
    };
    if !taken(0)? {
        return Ok(0);
    }
    let (mut lo, mut hi) = (0u32, 1u32);
    while taken(hi)? {
        lo = hi;
        hi = hi.checked_mul(2).context("the chain is full")?;
    }
    // Invariant: lo is taken, hi is free.
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if taken(mid)? {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    Ok(hi)
}

/// Seals, signs and submits one access event; returns slot, index and tree size.
#[allow(clippy::too_many_arguments)]
pub fn record(
    node: &str,
    genesis: &Genesis,
    key: &SigningKey,
    subject: &str,
    official: &str,
    category: &str,
    purpose: Purpose,
    time_ms: Option<u64>,
    seal_to_auditors: bool,
) -> anyhow::Result<Value> {
    let writer_id = DidKey::from_verifying_key(&key.verifying_key()).key_id();
    let agency = genesis.agency_of_writer(&writer_id).with_context(|| format!("{writer_id} is not a writer key of any genesis agency"))?;
    let writer = AgencyWriter::new(key, &writer_id, &agency.did)?;
    let document = crate::did::proven_document(node, genesis, subject)?;
    let subject_x = auth::key_agreement_key(&document).with_context(|| format!("{subject} has no usable key-agreement key"))?;
    let pair = writer.pair_key(&subject_x)?;
    let slot = next_free_slot(node, &pair, subject)?;
    let details = AccessDetails {
        agency: agency.did.clone(),
        official: official.to_owned(),
        category: category.to_owned(),
        purpose,
        time_ms: time_ms.unwrap_or_else(crate::devnet::now_ms),
        subject: subject.to_owned(),
        slot,
        writer: writer_id.clone(),
    };
    let auditors: Vec<Auditor> = if seal_to_auditors {
        genesis.auditors.iter().map(|a| DidKey::parse(&a.did).map(|k| Auditor::from_did_key(&k))).collect::<Result<_, _>>()?
    } else {
        Vec::new()
    };
    let event = writer.seal_event(&genesis.hash(), subject, &subject_x, slot, &details, &auditors, &mut OsRng)?;
    let e = UnsignedEntry {
        kind: Kind::AccessEvent,
        author: writer_id,
        nonce: client::micros_now(),
        timestamp_ms: crate::devnet::now_ms(),
        payload: event.encode(),
    }
    .sign(key, &genesis.hash())?;
    let body = json!({ "entries": [base64::engine::general_purpose::STANDARD.encode(e.encode()?)] });
    let answer = client::post_json(node, "/v1/access-events", &body, &[])?;
    let first = answer.pointer("/results/0").cloned().unwrap_or(Value::Null);
    if let Some(err) = first.get("error") {
        bail!("node {node} refused the event: {}", err.get("detail").and_then(Value::as_str).unwrap_or("no detail"));
    }
    Ok(
        json!({ "slot": slot, "index": field(&first, "index"), "tree_size": field(&first, "tree_size"), "leaf_hash": field(&first, "leaf_hash") }),
    )
}

/// Challenge, sign with the DID's authentication key, exchange for a token.
pub fn login(node: &str, genesis: &Genesis, key: &SigningKey, did: &str) -> anyhow::Result<String> {
    let ch = client::post_json(node, "/v1/auth/challenge", &json!({ "did": did }), &[])?;
    let challenge = ch.get("challenge").and_then(Value::as_str).context("the node sent no challenge")?;
    let vm = authentication_method(node, genesis, did, key)?;
    let signature = auth::answer(&genesis.hash(), challenge, key);
    let t = client::post_json(
        node,
        "/v1/auth/token",
        &json!({ "challenge": challenge, "verificationMethod": vm, "signature": signature }),
        &[],
    )?;
    Ok(t.get("token").and_then(Value::as_str).context("the node sent no token")?.to_owned())
}

/// The id of the DID's authentication method that holds `key`.
fn authentication_method(node: &str, genesis: &Genesis, did: &str, key: &SigningKey) -> anyhow::Result<String> {
    let doc = crate::did::proven_document(node, genesis, did)?;
    let mine = key.verifying_key().to_bytes();
    for item in doc.get("authentication").and_then(Value::as_array).into_iter().flatten() {
        let id = match item {
            Value::String(s) => s.clone(),
            other => other.get("id").and_then(Value::as_str).unwrap_or_default().to_owned(),
        };
        if auth::relationship_key(&doc, "authentication", Some(&id), dojang_core::did_key::ED25519_PUB_CODEC).is_ok_and(|k| k == mine) {
            return Ok(id);
        }
    }
    bail!("the key file's key is not an authentication key of {did}")
}

fn subject_key(who: &Who) -> anyhow::Result<(SigningKey, String, SubjectKey)> {
    let (kf, key) = KeyFile::load(&who.key)?;
    let did = who.did.clone().unwrap_or(kf.did);
    let subject = SubjectKey::from_ed25519(&key, &did)?;
    Ok((key, did, subject))
}

/// Grants covering slots [0, 2^bits) of every genesis writer chain.
fn history_grants(genesis: &Genesis, subject: &SubjectKey, bits: u32) -> anyhow::Result<Vec<ChainGrant>> {
    let mut out = Vec::new();
    for w in audit::writer_keys(genesis) {
        for node in subject.pair_key(&w)?.grant(0, 1u64 << bits)? {
            out.push(ChainGrant::new(&w, &node));
        }
    }
    Ok(out)
}

/// Fetches the history, widening the grant while a chain fills it.
pub fn fetch_history(node: &str, genesis: &Genesis, key: &SigningKey, did: &str, subject: &SubjectKey) -> anyhow::Result<HistoryBundle> {
    let token = login(node, genesis, key, did)?;
    let bearer = format!("Bearer {token}");
    let mut bits = 8;
    loop {
        let grants = audit::encode_grants(&history_grants(genesis, subject, bits)?);
        match client::get_json(node, "/v1/audit/history", &[("Authorization", &bearer), (GRANT_HEADER, &grants)]) {
            Ok(v) => return serde_json::from_value(v).context("the node's history is malformed"),
            Err((409, slug, _)) if slug == "grant-exhausted" && bits < 16 => bits += 4,
            Err((_, _, e)) => return Err(e),
        }
    }
}

fn purpose_text(p: &Purpose) -> String {
    match p {
        Purpose::Code(c) => c.clone(),
        Purpose::Consent(h) => format!("consent {}", h.get(..12).unwrap_or(h)),
        Purpose::Delegation(h) => format!("delegation {}", h.get(..12).unwrap_or(h)),
    }
}

fn agency_name(genesis: &Genesis, did: &str) -> String {
    genesis.validators.iter().find(|v| v.did == did).map(|v| v.name.clone()).unwrap_or_else(|| did.to_owned())
}

fn read_history(path: &Path) -> anyhow::Result<HistoryBundle> {
    let text = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    serde_json::from_slice(&text).with_context(|| format!("{} is not a history", path.display()))
}

/// Verifies and opens a history, then prints it; `since` is (earlier size, new size, new
/// events) when it was checked against a saved history.
fn show_history(
    genesis: &Genesis,
    bundle: &HistoryBundle,
    subject: &SubjectKey,
    json: bool,
    since: Option<(u64, u64, usize)>,
) -> anyhow::Result<()> {
    let verified = audit::verify_history(genesis, bundle, subject, OsRng).context("the history does not verify")?;
    let events = verified.open(subject, &genesis.hash()).context("an event does not open")?;
    let cp = &verified.checkpoint;
    let rows: Vec<Value> = events
        .iter()
        .map(|e| {
            json!({
                "time": dojang_core::did_dojang::format_rfc3339_ms(e.details.time_ms),
                "agency": e.details.agency,
                "agency_name": agency_name(genesis, &e.details.agency),
                "official": e.details.official,
                "category": e.details.category,
                "purpose": purpose_text(&e.details.purpose),
                "ledger_index": e.index,
                "writer": e.writer,
                "slot": e.slot,
            })
        })
        .collect();
    let v = json!({
        "subject": subject.did(),
        "complete": true,
        "events": rows,
        "checkpoint": { "size": cp.checkpoint.size, "signers": cp.signers, "signed_power": cp.signed_power, "total_power": cp.total_power },
        "map_root": verified.map_root.to_hex(),
        "since": since.map(|(from, to, new)| json!({ "saved_size": from, "size": to, "new_events": new, "extends_saved": true })),
    });
    emit(json, v, || {
        let mut s = format!("{:<24}  {:<28}  {:<14}  {:<22}  {}\n", "WHEN", "AGENCY", "OFFICIAL", "CATEGORY", "PURPOSE");
        for e in &events {
            s.push_str(&format!(
                "{:<24}  {:<28}  {:<14}  {:<22}  {}\n",
                dojang_core::did_dojang::format_rfc3339_ms(e.details.time_ms),
                agency_name(genesis, &e.details.agency).chars().take(28).collect::<String>(),
                e.details.official,
                e.details.category,
                purpose_text(&e.details.purpose)
            ));
        }
        s.push_str(&format!(
            "\n{} event(s) for {}: complete — every chain of the {} genesis writer key(s) proven up to its first empty slot,\nagainst checkpoint size {} signed by {} ({} of {} voting power).",
            events.len(),
            subject.did(),
            verified.counts.len(),
            cp.checkpoint.size,
            cp.signers.join(", "),
            cp.signed_power,
            cp.total_power
        ));
        if let Some((from, to, new)) = since {
            s.push_str(&format!(
                "\nExtends your saved history (tree size {from} → {to}, consistency proven): {new} new event(s), none removed or rewritten."
            ));
        }
        s
    });
    Ok(())
}

pub fn run_audit(cmd: AuditCmd, json: bool) -> anyhow::Result<()> {
    match cmd {
        AuditCmd::History(a) => {
            let genesis = load_genesis(&a.who.genesis)?;
            let (key, did, subject) = subject_key(&a.who)?;
            // The saved history is checked before anything is fetched.
            let earlier = match &a.since {
                Some(p) => {
                    Some(audit::verify_history(&genesis, &read_history(p)?, &subject, OsRng).context("the saved history does not verify")?)
                }
                None => None,
            };
            let bundle = fetch_history(&a.who.node, &genesis, &key, &did, &subject)?;
            let since = match &earlier {
                Some(e) => {
                    let later = audit::verify_history(&genesis, &bundle, &subject, OsRng).context("the history does not verify")?;
                    let (from, to) = (e.checkpoint.checkpoint.size, later.checkpoint.checkpoint.size);
                    let consistency: Option<dojang_core::bundle::ConsistencyBundle> = if to > from && from > 0 {
                        let v = client::get_json(&a.who.node, &format!("/v1/proofs/consistency?from={from}&to={to}"), &[])
                            .map_err(|(_, _, e)| e)?;
                        Some(serde_json::from_value(v).context("the consistency proof is malformed")?)
                    } else {
                        None
                    };
                    let earlier_at_zero = from == 0;
                    let new = if earlier_at_zero {
                        // An empty tree is extended by every tree; the saved history had no events.
                        later.events.len()
                    } else {
                        audit::verify_extension(&genesis, e, &later, consistency.as_ref())
                            .context("the node's history does not extend the saved one")?
                    };
                    Some((from, to, new))
                }
                None => None,
            };
            if let Some(p) = &a.save {
                std::fs::write(p, serde_json::to_vec_pretty(&bundle)?).with_context(|| format!("cannot write {}", p.display()))?;
            }
            show_history(&genesis, &bundle, &subject, json, since)
        }
        AuditCmd::Verify { genesis, key, did, file } => {
            let genesis = load_genesis(&genesis)?;
            let (_, key) = KeyFile::load(&key)?;
            let subject = SubjectKey::from_ed25519(&key, &did)?;
            show_history(&genesis, &read_history(&file)?, &subject, json, None)
        }
        AuditCmd::Watch { who, count } => watch(&who, count, json),
        AuditCmd::Auditor { node, genesis, key, from } => {
            let genesis = load_genesis(&genesis)?;
            let (kf, key) = KeyFile::load(&key)?;
            if genesis.auditor(&kf.did).is_none() {
                bail!("{} is not a genesis auditor", kf.did);
            }
            let token = login(&node, &genesis, &key, &kf.did)?;
            let v = client::get_json(&node, &format!("/v1/audit/auditor?from={from}"), &[("Authorization", &format!("Bearer {token}"))])
                .map_err(|(_, _, e)| e)?;
            let cp =
                dojang_core::checkpoint::SignedCheckpoint::parse(field(&v, "checkpoint").as_str().unwrap_or_default())?.verify(&genesis)?;
            let proofs: Vec<dojang_core::did_proof::EntryProof> = serde_json::from_value(field(&v, "entries").clone())?;
            let x = access::x25519_secret_from_ed25519(&key);
            let kid = DidKey::parse(&kf.did)?.x25519_key_id();
            let mut rows = Vec::new();
            for p in &proofs {
                let (e, _) = p.open(&cp).map_err(|e| anyhow::anyhow!("entry {} does not verify: {e:?}", p.index))?;
                let event = AccessEvent::decode(&e.payload)?;
                let d = access::open_as_auditor(&x, &kid, &genesis.hash(), &event)?;
                rows.push(json!({"index": p.index, "time": dojang_core::did_dojang::format_rfc3339_ms(d.time_ms), "agency": d.agency,
                    "official": d.official, "category": d.category, "purpose": purpose_text(&d.purpose), "subject": d.subject}));
            }
            emit(json, json!({ "events": rows, "checkpoint_size": cp.checkpoint.size }), || {
                let text = |r: &Value, k: &str| field(r, k).as_str().map(str::to_owned).unwrap_or_else(|| field(r, k).to_string());
                let mut s =
                    format!("{:<8}  {:<24}  {:<14}  {:<22}  {:<34}  {}\n", "INDEX", "WHEN", "OFFICIAL", "CATEGORY", "PURPOSE", "SUBJECT");
                for r in &rows {
                    s.push_str(&format!(
                        "{:<8}  {:<24}  {:<14}  {:<22}  {:<34}  {}\n",
                        text(r, "index"),
                        text(r, "time"),
                        text(r, "official"),
                        text(r, "category"),
                        text(r, "purpose"),
                        text(r, "subject")
                    ));
                }
                s.push_str(&format!("{} event(s) sealed to {}, proven against checkpoint size {}", rows.len(), kf.did, cp.checkpoint.size));
                s
            });
            Ok(())
        }
    }
}

/// Verifies the current history (to learn each chain's next slot), then subscribes to
/// the feed with grants for the next 64 slots of every chain.
#[allow(clippy::print_stdout)]
fn watch(who: &Who, count: Option<usize>, json: bool) -> anyhow::Result<()> {
    let genesis = load_genesis(&who.genesis)?;
    let (key, did, subject) = subject_key(who)?;
    let bundle = fetch_history(&who.node, &genesis, &key, &did, &subject)?;
    let verified = audit::verify_history(&genesis, &bundle, &subject, OsRng).context("the history does not verify")?;
    let mut grants = Vec::new();
    for (w, n) in &verified.counts {
        for node in subject.pair_key(w)?.grant(u64::from(*n), u64::from(*n) + 64)? {
            grants.push(ChainGrant::new(w, &node));
        }
    }
    let token = login(&who.node, &genesis, &key, &did)?;
    let reader = client::get_stream(
        &who.node,
        "/v1/audit/feed",
        &[("Authorization", &format!("Bearer {token}")), (GRANT_HEADER, &audit::encode_grants(&grants)), ("Accept", "text/event-stream")],
    )?;
    if !json {
        println!("watching {} chain(s) for new access events about {did} (Ctrl-C stops)", verified.counts.len());
    }
    let mut seen = 0usize;
    let mut event = String::new();
    for line in std::io::BufReader::new(reader).lines() {
        let line = line.context("the feed broke off")?;
        if let Some(e) = line.strip_prefix("event:") {
            event = e.trim().to_owned();
        } else if let Some(d) = line.strip_prefix("data:") {
            let v: Value = serde_json::from_str(d.trim()).unwrap_or(Value::Null);
            match event.as_str() {
                "access" => {
                    seen += 1;
                    emit(json, v.clone(), || {
                        format!(
                            "new access event: writer {} slot {} at ledger index {} — run `dojang audit history` to read it",
                            field(&v, "writer").as_str().unwrap_or_default(),
                            field(&v, "slot"),
                            field(&v, "index")
                        )
                    });
                    if count.is_some_and(|c| seen >= c) {
                        return Ok(());
                    }
                }
                "expired" => bail!("the feed's token expired; run watch again"),
                _ => {}
            }
        }
    }
    Ok(())
}
