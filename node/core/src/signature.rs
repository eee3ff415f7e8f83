//! Ed25519 signature validity (`specs/ledger.md` §3.2).
//!
//! Keys and signing use ed25519-dalek; *verification* follows ZIP 215 through
//! `ed25519-consensus`, whose single and batch checks accept exactly the same signatures.
//! That matters twice over: a node may batch-verify a request while a verifier checks
//! one entry alone, and validators must never disagree on whether an entry is valid
//! (ed25519-dalek's `verify_strict` and its batch check disagree on crafted signatures).

use ed25519_consensus::{Signature, VerificationKey, VerificationKeyBytes, batch};
use rand_core::{CryptoRng, RngCore};

/// Whether `sig` is a valid signature of `msg` by `key` under ZIP 215.
pub fn verify(key: &[u8; 32], msg: &[u8], sig: &[u8; 64]) -> bool {
    match VerificationKey::try_from(*key) {
        Ok(vk) => vk.verify(&Signature::from(*sig), msg).is_ok(),
        Err(_) => false,
    }
}

/// Verifies many signatures at once; true only if every one is valid. A false answer says
/// nothing about which one failed: check them one by one with [`verify`]. `rng` draws the
/// random batch coefficients (the caller supplies randomness; the core has no OS access).
pub fn verify_batch<'a>(items: impl IntoIterator<Item = (&'a [u8; 32], &'a [u8], &'a [u8; 64])>, rng: impl RngCore + CryptoRng) -> bool {
    let mut v = batch::Verifier::new();
    let mut any = false;
    for (key, msg, sig) in items {
        v.queue((VerificationKeyBytes::from(*key), Signature::from(*sig), msg));
        any = true;
    }
    any && v.verify(rng).is_ok()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]
    use super::*;
    use ed25519_dalek::{Signer as _, SigningKey};

    #[test]
    fn dalek_signatures_verify_single_and_batch() {
        let k = SigningKey::from_bytes(&[3; 32]);
        let pk = k.verifying_key().to_bytes();
        let msgs: Vec<Vec<u8>> = (0..10u8).map(|i| vec![i; 40]).collect();
        let sigs: Vec<[u8; 64]> = msgs.iter().map(|m| k.sign(m).to_bytes()).collect();
        for (m, s) in msgs.iter().zip(&sigs) {
            assert!(verify(&pk, m, s));
        }
        assert!(verify_batch(msgs.iter().zip(&sigs).map(|(m, s)| (&pk, m.as_slice(), s)), crate::testing::TestRng(1)));
        let mut bad = sigs.clone();
        bad[4][10] ^= 1;
        assert!(!verify(&pk, &msgs[4], &bad[4]));
        assert!(!verify_batch(msgs.iter().zip(&bad).map(|(m, s)| (&pk, m.as_slice(), s)), crate::testing::TestRng(1)));
        assert!(!verify_batch(std::iter::empty(), crate::testing::TestRng(1)));
    }

    /// A crafted signature with R = identity and S = 0 is judged the same way by single
    /// and batch ZIP 215 verification (ed25519-dalek's strict and batch checks can split on
    /// identity-R signatures).
    #[test]
    fn single_and_batch_agree_on_identity_r() {
        let k = SigningKey::from_bytes(&[4; 32]);
        let pk = k.verifying_key().to_bytes();
        let mut sig = [0u8; 64];
        sig[0] = 1; // R = identity (y = 1), S = 0
        let msg = b"crafted";
        let single = verify(&pk, msg, &sig);
        let batched = verify_batch([(&pk, msg.as_slice(), &sig)], crate::testing::TestRng(9));
        assert_eq!(single, batched);
    }
}
