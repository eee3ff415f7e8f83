//! Signed tree heads: the C2SP `tlog-checkpoint` body inside a C2SP `signed-note`, with
//! Ed25519 note signatures from any number of validators (`specs/ledger.md` §5).
//!
//! A checkpoint is trusted only when validators holding more than two thirds of the
//! genesis voting power signed it. With one validator that is a single signature; with
//! the BFT network each validator co-signs, and the same verifier accepts both.

use std::collections::BTreeSet;

use base64::Engine as _;
use ed25519_dalek::{Signer as _, SigningKey, VerifyingKey};
use sha2::{Digest as _, Sha256};

use crate::genesis::Genesis;
use crate::hash::Hash;

/// Largest checkpoint text accepted (body plus signature lines).
pub const MAX_CHECKPOINT_LEN: usize = 64 * 1024;
/// Signature type byte of Ed25519 in the signed-note key hash (C2SP signed-note).
const ED25519_SIG_TYPE: u8 = 0x01;
const SIG_PREFIX: &str = "\u{2014} ";

/// The checkpoint body (§5.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// `dojang/<chain_id>`.
    pub origin: String,
    pub size: u64,
    pub root: Hash,
    /// Extension line `genesis <hex>`: binds the checkpoint to one genesis file.
    pub genesis_hash: Hash,
    /// Extension line `time <ms>`: when the checkpoint was made, by the signer's clock.
    pub timestamp_ms: u64,
    /// Further extension lines, kept verbatim in order (later specs add e.g. a map root).
    pub extensions: Vec<String>,
}

/// One `— <name> <base64(key hash || signature)>` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoteSignature {
    pub name: String,
    pub key_hash: [u8; 4],
    pub signature: [u8; 64],
}

/// A checkpoint with its signature lines, as served and stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedCheckpoint {
    pub checkpoint: Checkpoint,
    pub signatures: Vec<NoteSignature>,
}

/// A checkpoint that passed quorum verification, with who signed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedCheckpoint {
    pub checkpoint: Checkpoint,
    pub signers: Vec<String>,
    pub signed_power: u64,
    pub total_power: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckpointError {
    #[error("checkpoint is {0} bytes, over the limit of {MAX_CHECKPOINT_LEN}")]
    TooLarge(usize),
    #[error("malformed checkpoint: {0}")]
    Malformed(String),
    #[error("checkpoint origin {found:?} does not match {expected:?}")]
    WrongOrigin { found: String, expected: String },
    #[error("checkpoint is for genesis {found}, not {expected}")]
    WrongGenesis { found: Hash, expected: Hash },
    #[error("invalid signature by validator {0:?}")]
    BadSignature(String),
    #[error("no quorum: validators with {signed} of {total} voting power signed, more than two thirds needed")]
    NoQuorum { signed: u64, total: u64 },
}

/// Canonical decimal only — no sign, no leading zeros — so one number has one text and a
/// re-rendered body is byte-identical to the one that was signed.
fn canonical_u64(s: &str) -> Option<u64> {
    if s.is_empty() || (s.len() > 1 && s.starts_with('0')) || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

fn malformed(s: impl Into<String>) -> CheckpointError {
    CheckpointError::Malformed(s.into())
}

/// The 4-byte key hash of a signed-note Ed25519 key: SHA-256(name || "\n" || 0x01 || key)[..4].
pub fn key_hash(name: &str, key: &VerifyingKey) -> [u8; 4] {
    let mut h = Sha256::new();
    h.update(name.as_bytes());
    h.update(b"\n");
    h.update([ED25519_SIG_TYPE]);
    h.update(key.as_bytes());
    let d: [u8; 32] = h.finalize().into();
    [d[0], d[1], d[2], d[3]]
}

impl Checkpoint {
    /// The note text that signatures cover: origin, size, root, extension lines, each
    /// ending in a newline (§5.1).
    pub fn body(&self) -> String {
        let mut s = format!(
            "{}\n{}\n{}\ngenesis {}\ntime {}\n",
            self.origin,
            self.size,
            self.root.to_base64(),
            self.genesis_hash.to_hex(),
            self.timestamp_ms
        );
        for e in &self.extensions {
            s.push_str(e);
            s.push('\n');
        }
        s
    }

    fn parse_body(body: &str) -> Result<Checkpoint, CheckpointError> {
        let body = body.strip_suffix('\n').ok_or_else(|| malformed("body must end with a newline"))?;
        let mut lines = body.split('\n');
        let origin = lines.next().filter(|l| !l.is_empty()).ok_or_else(|| malformed("missing origin line"))?;
        let size_line = lines.next().ok_or_else(|| malformed("missing size line"))?;
        let size = canonical_u64(size_line).ok_or_else(|| malformed(format!("size {size_line:?} is not a canonical decimal")))?;
        let root_line = lines.next().ok_or_else(|| malformed("missing root hash line"))?;
        let root = Hash::from_base64(root_line).map_err(|_| malformed(format!("root hash {root_line:?} is not base64 of 32 bytes")))?;
        let genesis_hash = lines
            .next()
            .and_then(|l| l.strip_prefix("genesis "))
            .ok_or_else(|| malformed("missing 'genesis <hex>' extension line"))
            .and_then(|h| {
                if h.bytes().any(|b| b.is_ascii_uppercase()) {
                    return Err(malformed(format!("genesis hash {h:?} must be lowercase hex")));
                }
                Hash::from_hex(h).map_err(|_| malformed(format!("genesis hash {h:?} is not 64 hex characters")))
            })?;
        let time = lines.next().and_then(|l| l.strip_prefix("time ")).ok_or_else(|| malformed("missing 'time <ms>' extension line"))?;
        let timestamp_ms = canonical_u64(time).ok_or_else(|| malformed(format!("time {time:?} is not a canonical decimal")))?;
        let mut extensions = Vec::new();
        for l in lines {
            if l.is_empty() {
                return Err(malformed("empty extension line"));
            }
            extensions.push(l.to_owned());
        }
        Ok(Checkpoint { origin: origin.to_owned(), size, root, genesis_hash, timestamp_ms, extensions })
    }

    /// Signs the body as validator key `name`.
    pub fn sign(&self, name: &str, key: &SigningKey) -> NoteSignature {
        NoteSignature {
            name: name.to_owned(),
            key_hash: key_hash(name, &key.verifying_key()),
            signature: key.sign(self.body().as_bytes()).to_bytes(),
        }
    }
}

impl NoteSignature {
    fn line(&self) -> String {
        let mut blob = Vec::with_capacity(68);
        blob.extend_from_slice(&self.key_hash);
        blob.extend_from_slice(&self.signature);
        format!("{SIG_PREFIX}{} {}\n", self.name, base64::engine::general_purpose::STANDARD.encode(blob))
    }

    fn parse_line(line: &str) -> Result<NoteSignature, CheckpointError> {
        let rest =
            line.strip_prefix(SIG_PREFIX).ok_or_else(|| malformed(format!("signature line {line:?} does not start with an em dash")))?;
        let (name, b64) = rest.split_once(' ').ok_or_else(|| malformed(format!("signature line {line:?} has no signature")))?;
        let blob =
            base64::engine::general_purpose::STANDARD.decode(b64).map_err(|_| malformed(format!("signature of {name:?} is not base64")))?;
        let key_hash: [u8; 4] =
            blob.get(..4).and_then(|s| s.try_into().ok()).ok_or_else(|| malformed(format!("signature of {name:?} is too short")))?;
        // Other signature types (longer blobs) are skipped by the verifier, per signed-note;
        // keep them parseable but give them an all-zero signature that never verifies.
        let signature: [u8; 64] = blob.get(4..).and_then(|s| s.try_into().ok()).unwrap_or([0u8; 64]);
        Ok(NoteSignature { name: name.to_owned(), key_hash, signature })
    }
}

impl SignedCheckpoint {
    pub fn new(checkpoint: Checkpoint) -> Self {
        SignedCheckpoint { checkpoint, signatures: Vec::new() }
    }

    /// Adds a co-signature, replacing an earlier one by the same key name.
    pub fn add_signature(&mut self, sig: NoteSignature) {
        self.signatures.retain(|s| s.name != sig.name);
        self.signatures.push(sig);
        self.signatures.sort_by(|a, b| a.name.cmp(&b.name));
    }

    /// The signed-note text: body, blank line, one signature line per signer.
    pub fn to_text(&self) -> String {
        let mut s = self.checkpoint.body();
        s.push('\n');
        for sig in &self.signatures {
            s.push_str(&sig.line());
        }
        s
    }

    pub fn parse(text: &str) -> Result<SignedCheckpoint, CheckpointError> {
        if text.len() > MAX_CHECKPOINT_LEN {
            return Err(CheckpointError::TooLarge(text.len()));
        }
        if text.chars().any(|c| c.is_control() && c != '\n') {
            return Err(malformed("control characters are not allowed"));
        }
        let (body, sigs) = text.split_once("\n\n").ok_or_else(|| malformed("no blank line before the signatures"))?;
        let mut body = body.to_owned();
        body.push('\n');
        let checkpoint = Checkpoint::parse_body(&body)?;
        let sigs = sigs.strip_suffix('\n').ok_or_else(|| malformed("signature block must end with a newline"))?;
        let mut signatures = Vec::new();
        for line in sigs.split('\n') {
            signatures.push(NoteSignature::parse_line(line)?);
        }
        if signatures.is_empty() {
            return Err(malformed("no signature lines"));
        }
        Ok(SignedCheckpoint { checkpoint, signatures })
    }

    /// Verifies origin, genesis binding and a more-than-two-thirds quorum of genesis
    /// validators (§5.3). Signatures by unknown keys are ignored, as signed-note requires;
    /// a signature that claims a validator's key and fails is an error, not a skip, so a
    /// corrupted checkpoint is reported as such.
    pub fn verify(&self, genesis: &Genesis) -> Result<VerifiedCheckpoint, CheckpointError> {
        let cp = &self.checkpoint;
        if cp.origin != genesis.origin() {
            return Err(CheckpointError::WrongOrigin { found: cp.origin.clone(), expected: genesis.origin() });
        }
        let expected = genesis.hash();
        if cp.genesis_hash != expected {
            return Err(CheckpointError::WrongGenesis { found: cp.genesis_hash, expected });
        }
        let body = cp.body();
        let mut signed = BTreeSet::new();
        let mut power: u64 = 0;
        for sig in &self.signatures {
            let Some(v) = genesis.validators.iter().find(|v| v.id == sig.name) else { continue };
            let Some(key) = v.consensus_verifying_key() else { continue };
            if key_hash(&v.id, &key) != sig.key_hash {
                continue;
            }
            if !crate::signature::verify(key.as_bytes(), body.as_bytes(), &sig.signature) {
                return Err(CheckpointError::BadSignature(v.id.clone()));
            }
            if signed.insert(v.id.clone()) {
                power = power.saturating_add(v.voting_power);
            }
        }
        let total = genesis.total_power();
        // Strictly more than 2/3, computed without division: 3 * signed > 2 * total.
        if u128::from(power) * 3 <= u128::from(total) * 2 {
            return Err(CheckpointError::NoQuorum { signed: power, total });
        }
        Ok(VerifiedCheckpoint { checkpoint: cp.clone(), signers: signed.into_iter().collect(), signed_power: power, total_power: total })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]
    use super::*;
    use crate::testing::sample_genesis;
    use proptest::prelude::*;

    fn cp(g: &Genesis, size: u64) -> Checkpoint {
        Checkpoint {
            origin: g.origin(),
            size,
            root: Hash([3; 32]),
            genesis_hash: g.hash(),
            timestamp_ms: 1_780_000_000_000,
            extensions: vec![],
        }
    }

    fn signed_by(g: &Genesis, keys: &[SigningKey], who: &[usize], size: u64) -> SignedCheckpoint {
        let mut s = SignedCheckpoint::new(cp(g, size));
        for &i in who {
            s.add_signature(s.checkpoint.sign(&g.validators[i].id, &keys[i]));
        }
        s
    }

    /// Golden file: a 1-of-1 checkpoint's exact text (§5.2).
    #[test]
    fn golden_checkpoint_text() {
        let (g, keys) = sample_genesis(1);
        let s = signed_by(&g, &keys, &[0], 5);
        assert_eq!(s.to_text(), include_str!("../testdata/checkpoint-v1.txt"));
        assert_eq!(SignedCheckpoint::parse(&s.to_text()).unwrap(), s);
    }

    #[test]
    fn quorum_rules() {
        let (g, keys) = sample_genesis(4);
        // 3 of 4 is more than two thirds; 2 of 4 is not.
        let v = signed_by(&g, &keys, &[0, 2, 3], 10).verify(&g).unwrap();
        assert_eq!((v.signed_power, v.total_power), (3, 4));
        assert_eq!(signed_by(&g, &keys, &[0, 1], 10).verify(&g), Err(CheckpointError::NoQuorum { signed: 2, total: 4 }));
        // The same validator twice counts once.
        let mut s = signed_by(&g, &keys, &[0, 1], 10);
        s.signatures.push(s.signatures[0].clone());
        assert!(matches!(s.verify(&g), Err(CheckpointError::NoQuorum { signed: 2, .. })));
        // A stranger's signature counts for nothing.
        let mut s = signed_by(&g, &keys, &[0, 1], 10);
        let stranger = SigningKey::from_bytes(&[99; 32]);
        s.signatures.push(s.checkpoint.sign("agency-3", &stranger));
        assert!(matches!(s.verify(&g), Err(CheckpointError::NoQuorum { signed: 2, .. })));
    }

    #[test]
    fn tampering_is_detected() {
        let (g, keys) = sample_genesis(1);
        let good = signed_by(&g, &keys, &[0], 7);
        let mut s = good.clone();
        s.checkpoint.size = 8;
        assert_eq!(s.verify(&g), Err(CheckpointError::BadSignature("agency-0".into())));
        let mut s = good.clone();
        s.checkpoint.root = Hash([4; 32]);
        assert_eq!(s.verify(&g), Err(CheckpointError::BadSignature("agency-0".into())));
        let (other, _) = sample_genesis(2);
        assert!(matches!(good.verify(&other), Err(CheckpointError::WrongGenesis { .. })));
        let mut s = good.clone();
        s.checkpoint.origin = "dojang/other".into();
        assert!(matches!(s.verify(&g), Err(CheckpointError::WrongOrigin { .. })));
    }

    #[test]
    fn parse_rejects_malformed() {
        let (g, keys) = sample_genesis(1);
        let text = signed_by(&g, &keys, &[0], 7).to_text();
        for bad in [
            text.replace("\n7\n", "\n07\n"),
            text.replace("\n7\n", "\n-7\n"),
            text.replace("\n\n", "\n"),
            text.trim_end().to_owned(),
            text.replace("genesis ", "genesys "),
            text.replace("time 1780000000000", "time +1780000000000"),
            text.replace("time 1780000000000", "time 01780000000000"),
            text.replace("genesis a0", "genesis A0"),
            text.replace('\u{2014}', "-"),
            format!("{text}\u{7}"),
        ] {
            assert!(SignedCheckpoint::parse(&bad).is_err(), "accepted: {bad:?}");
        }
        assert!(matches!(SignedCheckpoint::parse(&"x".repeat(MAX_CHECKPOINT_LEN + 1)), Err(CheckpointError::TooLarge(_))));
    }

    proptest! {
        #[test]
        fn parse_never_panics(s in "\\PC{0,300}") {
            let _ = SignedCheckpoint::parse(&s);
        }

        #[test]
        fn text_round_trips(size: u64, ts: u64, root in proptest::array::uniform32(any::<u8>()),
                            ext in proptest::collection::vec("[a-z]{1,8} [a-z0-9]{1,16}", 0..3)) {
            let (g, keys) = sample_genesis(1);
            let mut c = cp(&g, size);
            c.root = Hash(root);
            c.timestamp_ms = ts;
            c.extensions = ext;
            let mut s = SignedCheckpoint::new(c);
            s.add_signature(s.checkpoint.sign("agency-0", &keys[0]));
            let parsed = SignedCheckpoint::parse(&s.to_text()).unwrap();
            prop_assert_eq!(&parsed, &s);
            prop_assert!(parsed.verify(&g).is_ok());
        }
    }
}
