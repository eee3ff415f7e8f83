//! The 32-byte hash type shared by the tree, entries and checkpoints, and its text forms.

use std::fmt;

/// A 32-byte digest (BLAKE3 in the deployed ledger, SHA-256 in the RFC 9162 vector tests).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Hash(pub [u8; 32]);

impl Hash {
    /// The all-zero hash, used only as a placeholder; never a valid root.
    pub const ZERO: Hash = Hash([0u8; 32]);

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Parses 64 hex characters.
    pub fn from_hex(s: &str) -> Result<Self, HashParseError> {
        let mut out = [0u8; 32];
        hex::decode_to_slice(s, &mut out).map_err(|_| HashParseError(s.chars().take(80).collect()))?;
        Ok(Hash(out))
    }

    /// Parses standard padded base64 (the checkpoint form).
    pub fn from_base64(s: &str) -> Result<Self, HashParseError> {
        use base64::Engine as _;
        let bytes = base64::engine::general_purpose::STANDARD.decode(s).map_err(|_| HashParseError(s.chars().take(80).collect()))?;
        let arr: [u8; 32] = bytes.try_into().map_err(|_| HashParseError(s.chars().take(80).collect()))?;
        Ok(Hash(arr))
    }

    pub fn to_base64(&self) -> String {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(self.0)
    }
}

impl fmt::Debug for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Hash({})", self.to_hex())
    }
}

impl fmt::Display for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl serde::Serialize for Hash {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_hex())
    }
}

impl<'de> serde::Deserialize<'de> for Hash {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Hash::from_hex(&s).map_err(serde::de::Error::custom)
    }
}

/// A string that is not a 32-byte hash in the expected encoding.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("not a 32-byte hash: {0:?}")]
pub struct HashParseError(pub String);
