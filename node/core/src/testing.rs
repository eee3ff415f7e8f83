//! Test support: where the public spec vectors live.
//!
//! The vectors are read in place from `DOJANG_VECTORS` (default: `../shared/vectors`
//! beside the repository). A missing folder fails the test loudly: a conformance test
//! that silently passes without its vectors proves nothing.

use std::path::PathBuf;

/// The vectors folder. Panics with a clear message if it is missing.
#[allow(clippy::panic)]
pub(crate) fn vectors_dir() -> PathBuf {
    let dir = match std::env::var_os("DOJANG_VECTORS") {
        Some(v) => PathBuf::from(v),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/vectors"),
    };
    if !dir.is_dir() {
        panic!("spec test vectors not found at {}: set DOJANG_VECTORS to the shared/vectors folder", dir.display());
    }
    dir
}

/// Reads a file under the vectors folder, panicking with the path if it cannot.
#[allow(clippy::panic)]
pub(crate) fn read_vector(rel: &str) -> Vec<u8> {
    let path = vectors_dir().join(rel);
    match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) => panic!("cannot read spec vector {}: {e}", path.display()),
    }
}

/// A valid genesis with `n` validators of power 1 whose consensus and writer keys are
/// derived from the seeds `[i + 1; 32]`.
pub(crate) fn sample_genesis(n: u8) -> (crate::genesis::Genesis, Vec<ed25519_dalek::SigningKey>) {
    use crate::genesis::{Genesis, Validator};
    let keys: Vec<ed25519_dalek::SigningKey> = (0..n).map(|i| ed25519_dalek::SigningKey::from_bytes(&[i + 1; 32])).collect();
    let validators = keys
        .iter()
        .enumerate()
        .map(|(i, k)| Validator::with_keys(&format!("agency-{i}"), &format!("Agency {i}"), &k.verifying_key(), &[k.verifying_key()], ""))
        .collect();
    (Genesis::new("test", 0, validators), keys)
}

/// A deterministic RNG for tests: batch coefficients only need to be unpredictable to
/// the signer, which a test does not have to model.
pub(crate) struct TestRng(pub(crate) u64);
impl rand_core::RngCore for TestRng {
    fn next_u32(&mut self) -> u32 {
        self.next_u64() as u32
    }
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        self.0
    }
    fn fill_bytes(&mut self, dest: &mut [u8]) {
        rand_core::impls::fill_bytes_via_next(self, dest)
    }
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand_core::Error> {
        self.fill_bytes(dest);
        Ok(())
    }
}
impl rand_core::CryptoRng for TestRng {}
