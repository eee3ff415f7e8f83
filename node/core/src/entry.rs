//! The signed entry envelope and its canonical byte encoding (`specs/ledger.md` §2, §3).
//!
//! An entry is what an author (an agency system, a citizen's wallet) signs and submits.
//! Its encoded bytes are exactly what is hashed into the Merkle leaf, so the encoding is
//! canonical: [`Entry::decode`] accepts only bytes that [`Entry::encode`] would produce,
//! and every length is bounded before anything is allocated.

use ed25519_dalek::{Signer as _, SigningKey, VerifyingKey};

use crate::did_key::DidKey;
use crate::hash::Hash;
use crate::merkle::{Blake3Hasher, TreeHasher as _};

/// Envelope format version written in the first byte (§2.1).
pub const FORMAT_VERSION: u8 = 1;
/// Domain-separation tag prefixed to every signing input (§3).
pub const SIGNING_DOMAIN: &[u8] = b"dojang/entry/v1\0";
/// Largest author key id accepted, in bytes (§2.2).
pub const MAX_AUTHOR_LEN: usize = 512;
/// Largest payload accepted, in bytes (§2.2). Document bytes never enter the ledger,
/// only commitments, so 60 KiB is generous.
pub const MAX_PAYLOAD_LEN: usize = 60 * 1024;
/// Fixed part of an encoding: version, kind, author length, nonce, timestamp,
/// payload length, signature.
const FIXED_LEN: usize = 1 + 2 + 2 + 8 + 8 + 4 + 64;
/// Largest encoded entry (§2.2).
pub const MAX_ENTRY_LEN: usize = FIXED_LEN + MAX_AUTHOR_LEN + MAX_PAYLOAD_LEN;

/// What an entry does. The code is `family << 8 | version`, so a payload format can be
/// revised without reusing a code (§2.3). Payload formats are specified per kind by the
/// later specs; the envelope treats the payload as opaque bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u16)]
pub enum Kind {
    /// Create, update, rotate or deactivate a `did:dojang` (specs/did-method-dojang.md).
    DidOperation = 0x0101,
    /// Anchor a salted commitment to an issued document (specs/documents.md).
    DocumentIssuance = 0x0201,
    /// Revoke, suspend or reinstate an issued document.
    DocumentRevocation = 0x0301,
    /// One read of a citizen's personal data by an official (specs/access-log.md).
    AccessEvent = 0x0401,
    /// A change to the trusted-issuer registry (specs/documents.md §2): any key may submit
    /// it; its authority is the quorum of validator approvals it carries.
    TrustRegistryChange = 0x0501,
    /// An update to a Bitstring Status List anchored on the ledger.
    StatusListUpdate = 0x0601,
}

impl Kind {
    pub const ALL: [Kind; 6] = [
        Kind::DidOperation,
        Kind::DocumentIssuance,
        Kind::DocumentRevocation,
        Kind::AccessEvent,
        Kind::TrustRegistryChange,
        Kind::StatusListUpdate,
    ];

    pub fn code(self) -> u16 {
        self as u16
    }

    pub fn from_code(code: u16) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.code() == code)
    }

    /// The stable text name used in JSON views and the CLI.
    pub fn name(self) -> &'static str {
        match self {
            Kind::DidOperation => "did-operation/v1",
            Kind::DocumentIssuance => "document-issuance/v1",
            Kind::DocumentRevocation => "document-revocation/v1",
            Kind::AccessEvent => "access-event/v1",
            Kind::TrustRegistryChange => "trust-registry-change/v1",
            Kind::StatusListUpdate => "status-list-update/v1",
        }
    }

    pub fn from_name(name: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.name() == name)
    }
}

/// The fields an author signs (everything but the signature).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnsignedEntry {
    pub kind: Kind,
    /// The author's key id: a DID URL such as `did:key:z6Mk…#z6Mk…`.
    pub author: String,
    /// Replay protection: strictly greater than every earlier nonce of this author (§6).
    pub nonce: u64,
    /// Milliseconds since the Unix epoch, as claimed by the author.
    pub timestamp_ms: u64,
    pub payload: Vec<u8>,
}

/// A signed entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub kind: Kind,
    pub author: String,
    pub nonce: u64,
    pub timestamp_ms: u64,
    pub payload: Vec<u8>,
    pub signature: [u8; 64],
}

/// Why bytes are not a valid entry. Messages are lowercase and name the bad value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EntryError {
    #[error("entry is {len} bytes, over the limit of {max}")]
    TooLarge { len: usize, max: usize },
    #[error("entry is truncated: needed {needed} more bytes at offset {offset}")]
    Truncated { offset: usize, needed: usize },
    #[error("entry has {0} trailing bytes after the signature")]
    TrailingBytes(usize),
    #[error("unsupported entry format version {0} (expected {FORMAT_VERSION})")]
    UnsupportedVersion(u8),
    #[error("unknown entry kind 0x{0:04x}")]
    UnknownKind(u16),
    #[error("author key id is {len} bytes, over the limit of {MAX_AUTHOR_LEN}")]
    AuthorTooLong { len: usize },
    #[error("author key id is not utf-8")]
    AuthorNotUtf8,
    #[error("payload is {len} bytes, over the limit of {MAX_PAYLOAD_LEN}")]
    PayloadTooLarge { len: usize },
    #[error("unsupported author key id {0:?}: expected a did:key url such as did:key:z6Mk…#z6Mk…")]
    UnsupportedAuthor(String),
    #[error("author key id {author:?} is invalid: {reason}")]
    InvalidAuthor { author: String, reason: String },
    #[error("bad signature on entry by {0:?}")]
    BadSignature(String),
}

impl UnsignedEntry {
    /// The body encoding (§2.1), i.e. the entry encoding without the trailing signature.
    /// Fails only on over-long fields.
    pub fn encode_body(&self) -> Result<Vec<u8>, EntryError> {
        let author = self.author.as_bytes();
        if author.len() > MAX_AUTHOR_LEN {
            return Err(EntryError::AuthorTooLong { len: author.len() });
        }
        if self.payload.len() > MAX_PAYLOAD_LEN {
            return Err(EntryError::PayloadTooLarge { len: self.payload.len() });
        }
        let mut out = Vec::with_capacity(FIXED_LEN + author.len() + self.payload.len());
        out.push(FORMAT_VERSION);
        out.extend_from_slice(&self.kind.code().to_be_bytes());
        // Both lengths were bounded above, so the casts cannot truncate.
        out.extend_from_slice(&(author.len() as u16).to_be_bytes());
        out.extend_from_slice(author);
        out.extend_from_slice(&self.nonce.to_be_bytes());
        out.extend_from_slice(&self.timestamp_ms.to_be_bytes());
        out.extend_from_slice(&(self.payload.len() as u32).to_be_bytes());
        out.extend_from_slice(&self.payload);
        Ok(out)
    }

    /// Signs with `key` for the chain identified by `genesis_hash` (§3).
    pub fn sign(self, key: &SigningKey, genesis_hash: &Hash) -> Result<Entry, EntryError> {
        let body = self.encode_body()?;
        let signature = key.sign(&signing_input(genesis_hash, &body)).to_bytes();
        Ok(Entry {
            kind: self.kind,
            author: self.author,
            nonce: self.nonce,
            timestamp_ms: self.timestamp_ms,
            payload: self.payload,
            signature,
        })
    }
}

/// The exact bytes an author signs (§3): domain tag, genesis hash, entry body. The
/// genesis hash binds an entry to one ledger, so it cannot be replayed on another.
pub fn signing_input(genesis_hash: &Hash, body: &[u8]) -> Vec<u8> {
    let mut msg = Vec::with_capacity(SIGNING_DOMAIN.len() + 32 + body.len());
    msg.extend_from_slice(SIGNING_DOMAIN);
    msg.extend_from_slice(genesis_hash.as_bytes());
    msg.extend_from_slice(body);
    msg
}

impl Entry {
    pub fn unsigned(&self) -> UnsignedEntry {
        UnsignedEntry {
            kind: self.kind,
            author: self.author.clone(),
            nonce: self.nonce,
            timestamp_ms: self.timestamp_ms,
            payload: self.payload.clone(),
        }
    }

    /// The canonical encoding (§2.1): the bytes hashed into the Merkle leaf.
    pub fn encode(&self) -> Result<Vec<u8>, EntryError> {
        let mut out = self.unsigned().encode_body()?;
        out.extend_from_slice(&self.signature);
        Ok(out)
    }

    /// Decodes canonical bytes. Every length is checked against its limit before use, and
    /// trailing bytes are refused, so `encode(decode(b)) == b` for every accepted `b`.
    pub fn decode(bytes: &[u8]) -> Result<Entry, EntryError> {
        if bytes.len() > MAX_ENTRY_LEN {
            return Err(EntryError::TooLarge { len: bytes.len(), max: MAX_ENTRY_LEN });
        }
        let mut r = Reader { bytes, pos: 0 };
        let version = r.u8()?;
        if version != FORMAT_VERSION {
            return Err(EntryError::UnsupportedVersion(version));
        }
        let code = r.u16()?;
        let kind = Kind::from_code(code).ok_or(EntryError::UnknownKind(code))?;
        let author_len = usize::from(r.u16()?);
        if author_len > MAX_AUTHOR_LEN {
            return Err(EntryError::AuthorTooLong { len: author_len });
        }
        let author = std::str::from_utf8(r.take(author_len)?).map_err(|_| EntryError::AuthorNotUtf8)?.to_owned();
        let nonce = r.u64()?;
        let timestamp_ms = r.u64()?;
        let payload_len = r.u32()? as usize;
        if payload_len > MAX_PAYLOAD_LEN {
            return Err(EntryError::PayloadTooLarge { len: payload_len });
        }
        let payload = r.take(payload_len)?.to_vec();
        let mut signature = [0u8; 64];
        signature.copy_from_slice(r.take(64)?);
        let rest = bytes.len().saturating_sub(r.pos);
        if rest != 0 {
            return Err(EntryError::TrailingBytes(rest));
        }
        Ok(Entry { kind, author, nonce, timestamp_ms, payload, signature })
    }

    /// The author's public key. Only `did:key` key ids are resolvable by the envelope
    /// alone; other methods are resolved against ledger state by later layers.
    pub fn author_key(&self) -> Result<VerifyingKey, EntryError> {
        author_key(&self.author)
    }

    /// Verifies the signature over canonical bytes `encoded` (as returned by `encode`).
    pub fn verify(&self, genesis_hash: &Hash, encoded: &[u8]) -> Result<(), EntryError> {
        let key = self.author_key()?;
        let body = encoded.get(..encoded.len().saturating_sub(64)).unwrap_or_default();
        if crate::signature::verify(key.as_bytes(), &signing_input(genesis_hash, body), &self.signature) {
            Ok(())
        } else {
            Err(EntryError::BadSignature(self.author.clone()))
        }
    }
}

/// Resolves a `did:key` key id to its Ed25519 key, refusing weak (small-order) keys.
pub fn author_key(author: &str) -> Result<VerifyingKey, EntryError> {
    if !author.starts_with("did:key:") {
        return Err(EntryError::UnsupportedAuthor(truncate(author)));
    }
    let did = DidKey::parse_key_id(author).map_err(|e| EntryError::InvalidAuthor { author: truncate(author), reason: e.to_string() })?;
    let key = did.verifying_key();
    if key.is_weak() {
        return Err(EntryError::InvalidAuthor { author: truncate(author), reason: "weak (small-order) public key".into() });
    }
    Ok(key)
}

/// The Merkle leaf hash of canonical entry bytes (§4.1).
pub fn leaf_hash(encoded: &[u8]) -> Hash {
    Blake3Hasher::hash_leaf(encoded)
}

fn truncate(s: &str) -> String {
    s.chars().take(120).collect()
}

/// A bounds-checked cursor: every read returns `Truncated` instead of panicking.
struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], EntryError> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.bytes.len());
        match end.and_then(|e| self.bytes.get(self.pos..e)) {
            Some(s) => {
                self.pos += n;
                Ok(s)
            }
            None => Err(EntryError::Truncated { offset: self.pos, needed: n.saturating_sub(self.bytes.len().saturating_sub(self.pos)) }),
        }
    }
    fn array<const N: usize>(&mut self) -> Result<[u8; N], EntryError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }
    fn u8(&mut self) -> Result<u8, EntryError> {
        Ok(u8::from_be_bytes(self.array()?))
    }
    fn u16(&mut self) -> Result<u16, EntryError> {
        Ok(u16::from_be_bytes(self.array()?))
    }
    fn u32(&mut self) -> Result<u32, EntryError> {
        Ok(u32::from_be_bytes(self.array()?))
    }
    fn u64(&mut self) -> Result<u64, EntryError> {
        Ok(u64::from_be_bytes(self.array()?))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]
    use super::*;
    use proptest::prelude::*;

    fn key(seed: u8) -> SigningKey {
        SigningKey::from_bytes(&[seed; 32])
    }

    fn author_of(k: &SigningKey) -> String {
        DidKey::from_verifying_key(&k.verifying_key()).key_id()
    }

    fn sample() -> (SigningKey, Entry) {
        let k = key(7);
        let e = UnsignedEntry {
            kind: Kind::AccessEvent,
            author: author_of(&k),
            nonce: 42,
            timestamp_ms: 1_780_000_000_000,
            payload: b"{\"demo\":true}".to_vec(),
        }
        .sign(&k, &Hash([9; 32]))
        .unwrap();
        (k, e)
    }

    /// Golden file: the exact bytes of a fixed entry. A change to the encoding, the
    /// signing input or the domain tag changes these bytes and trips this test.
    #[test]
    fn golden_entry_bytes() {
        let (_, e) = sample();
        let enc = e.encode().unwrap();
        let golden = include_str!("../testdata/entry-v1.hex").trim();
        assert_eq!(hex::encode(&enc), golden, "entry encoding changed: update specs/ledger.md and the golden file together");
        assert_eq!(leaf_hash(&enc).to_hex(), include_str!("../testdata/entry-v1.leaf").trim(),);
        assert_eq!(Entry::decode(&hex::decode(golden).unwrap()).unwrap(), e);
    }

    #[test]
    fn verify_accepts_and_rejects() {
        let (_, e) = sample();
        let enc = e.encode().unwrap();
        e.verify(&Hash([9; 32]), &enc).unwrap();
        // Another chain's genesis hash: the signature must not carry over.
        assert_eq!(e.verify(&Hash([8; 32]), &enc), Err(EntryError::BadSignature(e.author.clone())));
        let mut bad = e.clone();
        bad.nonce += 1;
        let bad_enc = bad.encode().unwrap();
        assert!(matches!(bad.verify(&Hash([9; 32]), &bad_enc), Err(EntryError::BadSignature(_))));
    }

    #[test]
    fn decode_rejects_bad_input() {
        let (_, e) = sample();
        let enc = e.encode().unwrap();
        let mut v = enc.clone();
        v[0] = 2;
        assert_eq!(Entry::decode(&v), Err(EntryError::UnsupportedVersion(2)));
        let mut v = enc.clone();
        v[1] = 0x7f;
        assert!(matches!(Entry::decode(&v), Err(EntryError::UnknownKind(0x7f01))));
        let mut v = enc.clone();
        v[2] = 0x02; // 0x0402: access-event/v2 does not exist
        assert!(matches!(Entry::decode(&v), Err(EntryError::UnknownKind(0x0402))));
        let mut v = enc.clone();
        v.push(0);
        assert_eq!(Entry::decode(&v), Err(EntryError::TrailingBytes(1)));
        assert!(matches!(Entry::decode(&enc[..enc.len() - 1]), Err(EntryError::Truncated { .. })));
        assert!(matches!(Entry::decode(&vec![1u8; MAX_ENTRY_LEN + 1]), Err(EntryError::TooLarge { .. })));
        assert!(matches!(Entry::decode(&[]), Err(EntryError::Truncated { .. })));
        // A payload length beyond the limit is refused before allocation.
        let mut v = enc[..5 + e.author.len() + 16].to_vec();
        v.extend_from_slice(&u32::MAX.to_be_bytes());
        assert!(matches!(Entry::decode(&v), Err(EntryError::PayloadTooLarge { .. })));
    }

    #[test]
    fn author_must_be_did_key_url() {
        assert!(matches!(author_key("did:web:example.com#k"), Err(EntryError::UnsupportedAuthor(_))));
        assert!(matches!(author_key("did:key:z6MkXXXX#z6MkXXXX"), Err(EntryError::InvalidAuthor { .. })));
    }

    #[test]
    fn kind_names_and_codes_round_trip() {
        for k in Kind::ALL {
            assert_eq!(Kind::from_code(k.code()), Some(k));
            assert_eq!(Kind::from_name(k.name()), Some(k));
        }
        assert_eq!(Kind::from_code(0), None);
    }

    proptest! {
        #[test]
        fn encode_decode_round_trip(
            kind_ix in 0usize..6, nonce: u64, ts: u64,
            payload in proptest::collection::vec(any::<u8>(), 0..2048),
            author in "[ -~]{0,200}", sig in proptest::array::uniform32(any::<u8>()),
        ) {
            let e = Entry {
                kind: Kind::ALL[kind_ix], author, nonce, timestamp_ms: ts, payload,
                signature: { let mut s = [0u8; 64]; s[..32].copy_from_slice(&sig); s[32..].copy_from_slice(&sig); s },
            };
            let enc = e.encode().unwrap();
            prop_assert_eq!(Entry::decode(&enc).unwrap(), e);
        }

        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            if let Ok(e) = Entry::decode(&bytes) {
                // Canonical: whatever decodes re-encodes to the same bytes.
                prop_assert_eq!(e.encode().unwrap(), bytes);
            }
        }

        #[test]
        fn any_bit_flip_breaks_the_signature(pos in 0usize..200, bit in 0u8..8) {
            let (_, e) = sample();
            let mut enc = e.encode().unwrap();
            let pos = pos % enc.len();
            enc[pos] ^= 1 << bit;
            if let Ok(d) = Entry::decode(&enc) {
                prop_assert!(d.verify(&Hash([9; 32]), &enc).is_err());
            }
        }
    }
}
