//! ZIP 215 Ed25519 verification on curve25519-dalek 4, for credential proofs
//! (`specs/credentials.md` §4.4).
//!
//! The ledger verifies entries with ed25519-consensus (`crate::signature`). That crate does
//! its arithmetic on curve25519-dalek-ng without the SIMD backends, about a third of the
//! speed of ed25519-dalek on the same machine, which would cap credential verification far
//! below the raw ed25519-dalek rate. This is the same rule — ZIP 215: A and R may be
//! non-canonical encodings, S must be canonical (< ℓ), and the cofactored equation
//! `[8]([S]B − [k]A − R) = 0` decides, `k = SHA-512(R ‖ A ‖ M) mod ℓ` over the bytes as
//! given — written on curve25519-dalek 4, whose decompression accepts non-canonical `y`
//! exactly as ZIP 215 requires. Tests below check it agrees with ed25519-consensus on
//! valid, tampered, small-order and non-canonical inputs.

use curve25519_dalek::edwards::{CompressedEdwardsY, EdwardsPoint};
use curve25519_dalek::scalar::Scalar;
use curve25519_dalek::traits::IsIdentity as _;
use sha2::{Digest as _, Sha512};

/// Whether `sig` is a valid ZIP 215 signature of `msg` by the key encoded as `key`.
pub fn verify(key: &[u8; 32], msg: &[u8], sig: &[u8; 64]) -> bool {
    let (r_bytes, s_bytes) = sig.split_at(32);
    let (Ok(r_arr), Ok(s_arr)) = (<[u8; 32]>::try_from(r_bytes), <[u8; 32]>::try_from(s_bytes)) else { return false };
    let Some(a) = CompressedEdwardsY(*key).decompress() else { return false };
    let Some(r) = CompressedEdwardsY(r_arr).decompress() else { return false };
    let Some(s) = Option::<Scalar>::from(Scalar::from_canonical_bytes(s_arr)) else { return false };
    let mut h = Sha512::new();
    h.update(r_arr);
    h.update(key);
    h.update(msg);
    let k = Scalar::from_bytes_mod_order_wide(&h.finalize().into());
    // [k](−A) + [S]B − R, times the cofactor, must be the identity.
    let sb_minus_ka = EdwardsPoint::vartime_double_scalar_mul_basepoint(&k, &(-a), &s);
    (sb_minus_ka - r).mul_by_cofactor().is_identity()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]
    use super::*;
    use curve25519_dalek::constants::EIGHT_TORSION;
    use ed25519_dalek::{Signer as _, SigningKey};
    use proptest::prelude::*;

    /// Every encoding of a small-order point: the canonical ones and, where y + p < 2^255,
    /// the non-canonical ones, each with both sign bits.
    fn small_order_encodings() -> Vec<[u8; 32]> {
        let mut out = Vec::new();
        for p in EIGHT_TORSION {
            let c = p.compress().to_bytes();
            for sign in [0u8, 0x80] {
                let mut e = c;
                e[31] = (e[31] & 0x7f) | sign;
                out.push(e);
                // y + p (p = 2^255 - 19): add 2^255 - 19 to the 255-bit y when it fits.
                let mut y = e;
                y[31] &= 0x7f;
                let mut carry = 0u16;
                let p_bytes: [u8; 32] = {
                    let mut b = [0xffu8; 32];
                    b[0] = 0xed;
                    b[31] = 0x7f;
                    b
                };
                let mut sum = [0u8; 32];
                for i in 0..32 {
                    let v = u16::from(y[i]) + u16::from(p_bytes[i]) + carry;
                    sum[i] = v as u8;
                    carry = v >> 8;
                }
                if carry == 0 && sum[31] & 0x80 == 0 {
                    sum[31] |= sign;
                    out.push(sum);
                }
            }
        }
        out.sort();
        out.dedup();
        out
    }

    #[test]
    fn agrees_with_ed25519_consensus_on_small_order_and_non_canonical_inputs() {
        let encs = small_order_encodings();
        assert!(encs.len() >= 14, "{}", encs.len());
        let mut accepted = 0;
        for a in &encs {
            for r in &encs {
                for msg in [&b"zip215"[..], b""] {
                    let mut sig = [0u8; 64];
                    sig[..32].copy_from_slice(r);
                    assert_eq!(verify(a, msg, &sig), crate::signature::verify(a, msg, &sig), "A={a:x?} R={r:x?}");
                    accepted += usize::from(verify(a, msg, &sig));
                }
            }
        }
        assert!(accepted > 0, "small-order signatures with S = 0 are valid under ZIP 215");
        // S = ℓ (non-canonical) is refused by both.
        let k = SigningKey::from_bytes(&[3; 32]);
        let mut sig = k.sign(b"m").to_bytes();
        // ℓ = 2^252 + 27742317777372353535851937790883648493, little-endian.
        let l: [u8; 32] = hex::decode("edd3f55c1a631258d69cf7a2def9de1400000000000000000000000000000010").unwrap().try_into().unwrap();
        sig[32..].copy_from_slice(&l);
        let pk = k.verifying_key().to_bytes();
        assert!(!verify(&pk, b"m", &sig) && !crate::signature::verify(&pk, b"m", &sig));
    }

    proptest! {
        #[test]
        fn agrees_with_ed25519_consensus(seed in any::<[u8; 32]>(), msg in proptest::collection::vec(any::<u8>(), 0..100), flip in any::<Option<(u8, u8)>>(), torsion in 0usize..8) {
            let k = SigningKey::from_bytes(&seed);
            let mut sig = k.sign(&msg).to_bytes();
            let mut pk = k.verifying_key().to_bytes();
            if let Some((i, b)) = flip {
                let i = usize::from(i % 96);
                if i < 64 { sig[i] ^= b } else { pk[i - 64] ^= b }
            }
            prop_assert_eq!(verify(&pk, &msg, &sig), crate::signature::verify(&pk, &msg, &sig));
            // A key with a torsion component: the cofactored equation accepts, like ZIP 215.
            let a_t = (k.verifying_key().to_edwards() + EIGHT_TORSION[torsion]).compress().to_bytes();
            let sig = k.sign(&msg).to_bytes();
            prop_assert_eq!(verify(&a_t, &msg, &sig), crate::signature::verify(&a_t, &msg, &sig));
        }
    }
}
