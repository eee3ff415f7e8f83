//! The devnet's Gov-Pass demo (`specs/credentials.md` §11): the agency's credential issuer
//! as a did:dojang with its own key (`issuer.key`), added to the trusted-issuer registry
//! for `MobileIdCredential`, a revocation and a suspension status list, the operator token
//! (`api-token`), and a mobile-ID credential issued to the demo citizen, written to
//! `<dir>/vc/mobile-id.json` with the commands to verify and present it.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use dojang_core::did_dojang::{CreateOp, DidOperation, DocumentContent, VerificationMethod};
use dojang_core::did_key::DidKey;
use dojang_core::entry::Kind;
use dojang_core::genesis::{Genesis, TrustedIssuer};
use dojang_core::registry::{RegistryAction, RegistryChange};
use dojang_core::vc::status_list::{self, ListCreation, StatusListUpdate, StatusPurpose};
use dojang_node::credentials::{CredentialService, CredentialsConfig};
use dojang_node::keyfile::KeyFile;
use dojang_node::node::NodeParts;
use ed25519_dalek::SigningKey;
use serde_json::json;

pub const REVOCATION_LIST: &str = "urn:dojang:status-list:mois-revocation-1";
pub const SUSPENSION_LIST: &str = "urn:dojang:status-list:mois-suspension-1";
/// The demo credential's bit in both lists.
pub const DEMO_INDEX: u64 = 4242;

fn issuer_create_op(issuer: &SigningKey) -> DidOperation {
    let dk = DidKey::from_verifying_key(&issuer.verifying_key());
    DidOperation::Create(CreateOp {
        document: DocumentContent {
            verification_method: vec![VerificationMethod {
                id: "#key-1".into(),
                method_type: "Multikey".into(),
                public_key_multibase: dk.multibase(),
            }],
            authentication: vec!["#key-1".into()],
            assertion_method: vec!["#key-1".into()],
            ..Default::default()
        },
        controller_keys: vec![dk.did()],
        next_key_commitment: None,
        salt: Some("mois-gov-pass".into()),
    })
}

/// Creates the issuer key and operator token on first use; returns the node's
/// `[credentials]` section for the issuer's did:dojang.
pub fn prepare(dir: &Path) -> anyhow::Result<CredentialsConfig> {
    let key_path = dir.join("issuer.key");
    if !key_path.exists() {
        KeyFile::from_signing_key(&SigningKey::generate(&mut rand_core::OsRng)).write_new(&key_path)?;
    }
    let token_path = dir.join("api-token");
    if !token_path.exists() {
        let mut t = [0u8; 32];
        rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut t);
        write_private(&token_path, &format!("{}\n", hex_of(&t)))?;
    }
    let (_, key) = KeyFile::load(&key_path)?;
    let did = issuer_create_op(&key).did()?;
    Ok(CredentialsConfig {
        issuer_key: key_path,
        issuer_did: Some(did.clone()),
        verification_method: Some(format!("{did}#key-1")),
        api_token_file: token_path,
    })
}

fn hex_of(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    use std::io::Write as _;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        opts.mode(0o600);
    }
    let mut f = opts.open(path).with_context(|| format!("cannot write {}", path.display()))?;
    f.write_all(text.as_bytes()).with_context(|| format!("cannot write {}", path.display()))
}

type Sign<'a> = dyn Fn(Kind, &str, &SigningKey, u64, Vec<u8>) -> anyhow::Result<Vec<u8>> + 'a;

/// The demo entries after the documents demo: the issuer's did:dojang, its registry
/// entry (approved by the validator), and its two status lists.
pub fn demo_entries(genesis: &Genesis, validators: &[SigningKey], issuer: &SigningKey, sign: &Sign<'_>) -> anyhow::Result<Vec<Vec<u8>>> {
    let gh = genesis.hash();
    let ik = DidKey::from_verifying_key(&issuer.verifying_key());
    let op = issuer_create_op(issuer);
    let did = op.did()?;
    let mut out = vec![sign(Kind::DidOperation, &ik.key_id(), issuer, 70, op.encode())?];
    let mut change = RegistryChange::new(
        2,
        RegistryAction::AddIssuer {
            issuer: TrustedIssuer {
                did: did.clone(),
                name: "MOIS Gov-Pass (demo)".into(),
                keys: vec![ik.key_id()],
                document_types: vec![],
                credential_types: vec!["MobileIdCredential".into()],
            },
        },
    );
    // Every validator approves: with several, one approval is short of the quorum.
    for (v, key) in genesis.validators.iter().zip(validators) {
        change.approve(&v.id, key, &gh);
    }
    out.push(sign(Kind::TrustRegistryChange, &ik.key_id(), issuer, 71, change.encode())?);
    for (n, (list, purpose)) in
        [(REVOCATION_LIST, StatusPurpose::Revocation), (SUSPENSION_LIST, StatusPurpose::Suspension)].into_iter().enumerate()
    {
        let bits = vec![0u8; (status_list::MIN_LIST_BITS / 8) as usize];
        let update = StatusListUpdate {
            list: list.into(),
            sequence: 0,
            create: Some(ListCreation { purpose, size: status_list::MIN_LIST_BITS, credential_type: "MobileIdCredential".into() }),
            set: vec![],
            clear: vec![],
            root: status_list::root(&bits),
        };
        out.push(sign(Kind::StatusListUpdate, &ik.key_id(), issuer, 72 + n as u64, update.encode())?);
    }
    Ok(out)
}

/// Issues the demo mobile ID to the citizen through the node's credential service and
/// writes it to `<dir>/vc/mobile-id.json`.
pub fn issue_demo_credential(dir: &Path, parts: &NodeParts, cfg: Option<&CredentialsConfig>, citizen_did: &str) -> anyhow::Result<PathBuf> {
    let service =
        CredentialService::new(parts.ledger.clone(), parts.write.clone(), std::sync::Arc::new(dojang_node::clock::SystemClock), cfg)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
    let now = crate::devnet::now_ms();
    let entry = |list: &str, purpose: &str| {
        json!({"id": format!("{list}#{DEMO_INDEX}"), "type": "BitstringStatusListEntry", "statusPurpose": purpose,
               "statusListIndex": DEMO_INDEX.to_string(), "statusListCredential": list})
    };
    let unsigned = json!({
        "@context": [dojang_core::vc::contexts::CREDENTIALS_V2, dojang_core::vc::contexts::DOJANG_V1],
        "id": format!("urn:uuid:{}", uuid_like(now)),
        "type": ["VerifiableCredential", "MobileIdCredential"],
        "validFrom": dojang_core::did_dojang::format_rfc3339_ms(now),
        "validUntil": dojang_core::did_dojang::format_rfc3339_ms(now + 5 * 365 * 86_400_000),
        "credentialSubject": {"id": citizen_did, "givenName": "Gil-dong (demo)", "familyName": "Hong", "birthDate": "1990-03-01", "nationality": "KR"},
        "credentialStatus": [entry(REVOCATION_LIST, "revocation"), entry(SUSPENSION_LIST, "suspension")],
    });
    let vc = service.issue(unsigned, None).map_err(|e| anyhow::anyhow!("cannot issue the demo credential: {e}"))?;
    let vdir = dir.join("vc");
    std::fs::create_dir_all(&vdir).with_context(|| format!("cannot create {}", vdir.display()))?;
    let path = vdir.join("mobile-id.json");
    std::fs::write(&path, serde_json::to_string_pretty(&vc)? + "\n").with_context(|| format!("cannot write {}", path.display()))?;
    Ok(path)
}

fn uuid_like(seed: u64) -> String {
    let h = blake3::hash(&seed.to_be_bytes()).to_hex();
    format!("{}-{}-4{}-8{}-{}", &h[..8], &h[8..12], &h[13..16], &h[17..20], &h[20..32])
}

/// The devnet's suggested credential commands.
pub fn instructions(exe: &str, url: &str, dir: &Path, genesis: &Path, citizen_did: &str) -> String {
    let d = dir.display();
    let g = genesis.display();
    format!(
        "\nGov-Pass credentials (issuer did in {d}/node config, operator token in {d}/api-token):\n  {exe} vc verify --node {url} --genesis {g} --file {d}/vc/mobile-id.json --save {d}/vc/proofs.json\n  {exe} vc verify --offline --genesis {g} --bundle {d}/vc/proofs.json --file {d}/vc/mobile-id.json\n  {exe} vc present --node {url} --key {d}/citizen.key --holder {citizen_did} --verification-method {citizen_did}#key-1 --credential {d}/vc/mobile-id.json --domain bank.example.kr --out vp.json\n  {exe} vp verify --node {url} --file vp.json --domain bank.example.kr --challenge \"$(sed -n 's/.*\"challenge\": \"\\(.*\\)\".*/\\1/p' vp.json)\"\n  {exe} vc status --node {url} --token-file {d}/api-token --list {SUSPENSION_LIST} --index {DEMO_INDEX}   # suspend; --clear reinstates\n  curl -s {url}/v1/status-lists/{REVOCATION_LIST}\n"
    )
}
