//! What a decided height is, for everyone who checks or stores one (`specs/consensus.md`
//! §5, §6, §10): verifying an extended commit certificate against the genesis validator
//! set, turning its vote extensions into checkpoint note signatures, and the storage
//! layout of a decided block (table `blocks`, height → record; `meta/consensus_height`).
//! Validators ([`super::app`]) and read replicas ([`super::replica`]) share these, so a
//! replica's store is byte for byte what a validator stores.

use arc_malachitebft_app_channel::app::types::core::{ExtendedCommitCertificate, ThresholdParams, ValidatorSet as _, VoteExtensionPolicy};
use arc_malachitebft_signing::VerifierExt as _;
use dojang_core::checkpoint::{NoteSignature, key_hash};
use dojang_core::hash::Hash;
use ed25519_dalek::VerifyingKey;

use super::signing::{DojangVerifier, verify};
use super::types::{Address, DojangContext, Signature, ValidatorSet};
use crate::storage::{Put, StateReader, StorageError, Store, Table, keys};

/// Checks an extended commit certificate with Malachite's own verifier (the check value
/// sync applies, `VerifierExt::verify_extended_commit_certificate`) over Dojang's
/// signatures (`specs/consensus.md` §4): every commit signature comes from a distinct
/// genesis validator and verifies over the precommit the engine would have signed for
/// this height, round and value; every one carries a vote extension whose engine-level
/// signature verifies (the policy is `Required`); and the signers hold more than two
/// thirds of the voting power. Err names the first failure.
pub async fn verify_certificate(
    genesis: Hash,
    vset: &ValidatorSet,
    certificate: &ExtendedCommitCertificate<DojangContext>,
) -> Result<(), String> {
    // Malachite's threshold arithmetic panics on overflow; a genesis whose total power
    // times three overflows is refused here instead (genesis validation makes it unlikely).
    if vset.total_voting_power().checked_mul(3).is_none() {
        return Err("the genesis voting power is too large to count a quorum".into());
    }
    DojangVerifier { genesis }
        .verify_extended_commit_certificate(&DojangContext, certificate, vset, ThresholdParams::default(), VoteExtensionPolicy::Required)
        .await
        .map_err(|e| e.to_string())
}

/// The checkpoint note signatures among vote extensions (`specs/consensus.md` §5): each
/// extension that is a genesis validator's 64-byte signature over `body`, once per
/// validator. Any other extension is left out (and logged): a checkpoint short of quorum
/// does not stop the ledger, and the next one carries a quorum.
pub fn checkpoint_signatures<'a>(
    vset: &ValidatorSet,
    body: &str,
    height: u64,
    extensions: impl IntoIterator<Item = (&'a Address, &'a [u8])>,
) -> Vec<NoteSignature> {
    let mut sigs: Vec<NoteSignature> = Vec::new();
    for (addr, ext) in extensions {
        let Some(v) = vset.by_address(addr) else { continue };
        if sigs.iter().any(|s| s.name == v.id) {
            continue;
        }
        let Ok(s) = <[u8; 64]>::try_from(ext) else { continue };
        if !verify(&v.public_key, body.as_bytes(), &Signature(s)) {
            tracing::warn!(height, validator = %v.id, "vote extension does not sign this checkpoint; left out");
            continue;
        }
        let Ok(vk) = VerifyingKey::from_bytes(&v.public_key.0) else { continue };
        sigs.push(NoteSignature { name: v.id.clone(), key_hash: key_hash(&v.id, &vk), signature: s });
    }
    sigs
}

/// The note signatures carried by a stored certificate's extensions (see
/// [`checkpoint_signatures`]).
pub fn certificate_signatures(
    vset: &ValidatorSet,
    body: &str,
    certificate: &ExtendedCommitCertificate<DojangContext>,
) -> Vec<NoteSignature> {
    let exts = certificate.commit_signatures.iter().filter_map(|s| s.extension.as_ref().map(|e| (&s.address, e.message.as_slice())));
    checkpoint_signatures(vset, body, certificate.height.0, exts)
}

/// The writes that record height `h` as decided, committed in the same atomic batch as
/// the block's entries (`specs/consensus.md` §6).
pub fn decided_puts(h: u64, record: Vec<u8>) -> Vec<Put> {
    vec![
        Put { table: Table::Blocks, key: h.to_be_bytes().to_vec(), value: record },
        Put { table: Table::Meta, key: keys::META_CONSENSUS_HEIGHT.to_vec(), value: h.to_be_bytes().to_vec() },
    ]
}

/// The last height whose block is stored (0 before the first).
pub fn stored_height(store: &Store) -> Result<u64, StorageError> {
    Ok(match store.state(Table::Meta, keys::META_CONSENSUS_HEIGHT)? {
        Some(v) => <[u8; 8]>::try_from(v.as_slice()).map(u64::from_be_bytes).unwrap_or(0),
        None => 0,
    })
}

/// The stored record of height `h` (block and extended commit certificate, see
/// [`super::block::encode_record`]), None when that height is not decided here yet.
pub fn stored_record(store: &Store, h: u64) -> Result<Option<Vec<u8>>, StorageError> {
    if h == 0 {
        return Ok(None);
    }
    Ok(store.state(Table::Blocks, &h.to_be_bytes())?.filter(|r| !r.is_empty()))
}
