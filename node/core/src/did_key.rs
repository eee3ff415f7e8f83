//! `did:key` for Ed25519: the identifiers every Dojang agency, writer and validator key is
//! known by, their DID documents, and the small multiformats toolkit (unsigned-varint
//! multicodec prefixes, base58btc multibase) they are built from.
//!
//! The normative text is `specs/did-key.md`; section numbers below refer to it. The
//! upstream specification is the W3C CCG "The did:key Method" (v0.9).
//!
//! Everything here parses untrusted, network-supplied text, so nothing panics: lengths are
//! bounded before any decoding, bytes are read with `.get()`, and every rejection carries
//! the DID resolution error code of the spec (§7) plus a lowercase message naming the bad
//! value (truncated, and never echoing what looks like private key material).

use std::fmt;
use std::str::FromStr;

use ed25519_dalek::VerifyingKey;
use serde_json::{Value, json};

/// The DID prefix Dojang accepts and emits (§2.3): only the three-component form.
pub const DID_KEY_PREFIX: &str = "did:key:";

/// The only `@context` of the documents Dojang produces (§5), exactly as in the did:key
/// spec's Multikey example.
pub const DID_CONTEXT_V1_1: &str = "https://www.w3.org/ns/did/v1.1";

/// The verification method type of both keys in the document (§5).
pub const MULTIKEY_TYPE: &str = "Multikey";

/// Multicodec `ed25519-pub` (§2.1).
pub const ED25519_PUB_CODEC: u64 = 0xed;

/// Multicodec `x25519-pub` (§2.1).
pub const X25519_PUB_CODEC: u64 = 0xec;

/// `ed25519-pub` as an unsigned varint: 0xed does not fit in 7 bits, so it takes two bytes.
const ED25519_PUB_PREFIX: [u8; 2] = [0xed, 0x01];

/// `x25519-pub` as an unsigned varint.
const X25519_PUB_PREFIX: [u8; 2] = [0xec, 0x01];

/// Raw Ed25519 and X25519 public keys are 32 bytes.
const KEY_LEN: usize = 32;

/// Longest DID or DID URL we look at (§3 step 1). A valid Ed25519 did:key is 56 bytes and a
/// key id 105; anything near this bound is garbage, and the bound keeps the quadratic
/// base58 decoder cheap on hostile input.
pub const MAX_DID_LEN: usize = 4096;

/// Longest multibase string [`multibase_decode_base58btc`] accepts. Larger than
/// [`MAX_DID_LEN`] because proof values reuse the decoder, but still bounded because base58
/// decoding is quadratic in the input length.
pub const MAX_MULTIBASE_LEN: usize = 8192;

/// The multibase prefix of base58btc (multibase.csv: `z`, "Base58 Bitcoin").
const BASE58BTC_PREFIX: char = 'z';

/// Unsigned varints are at most 9 bytes (63 bits) in the multiformats spec (§2.1).
const MAX_VARINT_LEN: usize = 9;

/// How much of a bad value an error message repeats.
const SHOWN_CHARS: usize = 96;

/// An Ed25519 `did:key`: multicodec 0xed (varint bytes 0xed 0x01) + 32-byte public key,
/// base58btc multibase ('z'), so every id starts "did:key:z6Mk".
///
/// Invariant when built by [`DidKey::parse`], [`DidKey::parse_key_id`] or
/// [`DidKey::try_from_verifying_key`]: the key is a canonically encoded Edwards point that is
/// not of small order (§3), so one key has exactly one DID string.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct DidKey {
    /// Holding the decompressed key (not just its bytes) keeps `verifying_key()` infallible
    /// without re-decompressing; equality and hashing are on the 32 compressed bytes.
    key: VerifyingKey,
}

impl DidKey {
    /// Wraps a verifying key without checks. Keys derived from a `SigningKey` always
    /// satisfy the §3 rules; a weak or non-canonical key built with
    /// `VerifyingKey::from_bytes` yields a DID that [`DidKey::parse`] refuses. Use
    /// [`DidKey::try_from_verifying_key`] for keys of unknown origin.
    pub fn from_verifying_key(key: &VerifyingKey) -> Self {
        DidKey { key: *key }
    }

    /// Wraps a verifying key after the §3 point checks (canonical, not small-order).
    pub fn try_from_verifying_key(key: &VerifyingKey) -> Result<Self, DidKeyError> {
        Self::from_public_key_bytes(key.as_bytes())
    }

    /// Builds a did:key from 32 raw Ed25519 public key bytes, with the §3 point checks.
    pub fn from_public_key_bytes(bytes: &[u8; KEY_LEN]) -> Result<Self, DidKeyError> {
        checked_ed25519_key(bytes).map(|key| DidKey { key })
    }

    /// The Ed25519 key, for signature verification (prefer `verify_strict`).
    pub fn verifying_key(&self) -> VerifyingKey {
        self.key
    }

    /// The 32 raw public key bytes.
    pub fn as_bytes(&self) -> &[u8; KEY_LEN] {
        self.key.as_bytes()
    }

    /// Parses "did:key:z6Mk..." (no fragment). Rejects (§3, error codes §7): other methods,
    /// a version component, a multibase prefix other than 'z', non-base58btc characters, a
    /// malformed varint, a multicodec other than ed25519-pub, a key not 32 bytes long, and a
    /// key that is not a valid, canonical, non-small-order Edwards point.
    pub fn parse(did: &str) -> Result<Self, DidKeyError> {
        if did.len() > MAX_DID_LEN {
            return Err(DidKeyError::invalid_did(did, format!("longer than {MAX_DID_LEN} bytes ({})", did.len())));
        }
        if did.is_empty() {
            return Err(DidKeyError::invalid_did(did, "empty string"));
        }
        let msid = method_specific_id(did)?;
        if msid.contains(['#', '?', '/']) {
            return Err(DidKeyError::invalid_did(did, "a did url (path, query or fragment) is not a did; key ids go through parse_key_id"));
        }
        decode_method_specific_id(msid)
    }

    /// Parses a DID URL key id "did:key:z6Mk...#z6Mk..." whose fragment must equal the
    /// method-specific id (§4). The X25519 key-agreement id is not a signing key id and is
    /// refused here; see [`DidKey::dereference`] for looking up either method.
    pub fn parse_key_id(did_url: &str) -> Result<Self, DidKeyError> {
        if did_url.len() > MAX_DID_LEN {
            return Err(DidKeyError::invalid_did_url(did_url, format!("longer than {MAX_DID_LEN} bytes ({})", did_url.len())));
        }
        let Some((did, fragment)) = did_url.split_once('#') else {
            return Err(DidKeyError::invalid_did_url(did_url, "missing '#' fragment naming the key"));
        };
        if did.contains(['?', '/']) {
            return Err(DidKeyError::invalid_did_url(did_url, "path or query not allowed in a key id"));
        }
        // Errors in the DID part keep their own, more specific code (e.g. methodNotSupported).
        let key = Self::parse(did)?;
        let expected = key.multibase();
        if fragment != expected {
            return Err(DidKeyError::invalid_did_url(did_url, format!("fragment must equal the method-specific id {expected:?}")));
        }
        Ok(key)
    }

    /// "did:key:z6Mk..."
    pub fn did(&self) -> String {
        format!("{DID_KEY_PREFIX}{}", self.multibase())
    }

    /// "z6Mk..." (the publicKeyMultibase of the Ed25519 Multikey, and the method-specific id).
    pub fn multibase(&self) -> String {
        multicodec_multibase(ED25519_PUB_PREFIX, self.as_bytes())
    }

    /// "did:key:z6Mk...#z6Mk..." (§4).
    pub fn key_id(&self) -> String {
        let mb = self.multibase();
        format!("{DID_KEY_PREFIX}{mb}#{mb}")
    }

    /// X25519 key-agreement public key derived from the Ed25519 key (birational map
    /// Edwards->Montgomery, u = (1+y)/(1-y), §6), multicodec 0xec (varint 0xec 0x01),
    /// base58btc: "z6LS...".
    pub fn x25519_public_key(&self) -> [u8; KEY_LEN] {
        self.key.to_montgomery().to_bytes()
    }

    /// "z6LS..." (the publicKeyMultibase of the X25519 Multikey).
    pub fn x25519_multibase(&self) -> String {
        multicodec_multibase(X25519_PUB_PREFIX, &self.x25519_public_key())
    }

    /// "did:key:z6Mk...#z6LS..." (§5).
    pub fn x25519_key_id(&self) -> String {
        format!("{}#{}", self.did(), self.x25519_multibase())
    }

    /// The Ed25519 Multikey verification method (§5).
    pub fn verification_method(&self) -> Value {
        json!({
            "id": self.key_id(),
            "type": MULTIKEY_TYPE,
            "controller": self.did(),
            "publicKeyMultibase": self.multibase(),
        })
    }

    /// The X25519 Multikey key-agreement method (§5, §6).
    pub fn key_agreement_method(&self) -> Value {
        json!({
            "id": self.x25519_key_id(),
            "type": MULTIKEY_TYPE,
            "controller": self.did(),
            "publicKeyMultibase": self.x25519_multibase(),
        })
    }

    /// The DID document in the spec's current Multikey shape (§5): exactly the did:key
    /// spec's example (`@context` ["https://www.w3.org/ns/did/v1.1"], the Ed25519 Multikey
    /// in `verificationMethod` and referenced from authentication, assertionMethod,
    /// capabilityDelegation and capabilityInvocation, the derived X25519 Multikey embedded in
    /// `keyAgreement`). Public keys only: never any private key material.
    pub fn document(&self) -> Value {
        let kid = self.key_id();
        json!({
            "@context": [DID_CONTEXT_V1_1],
            "id": self.did(),
            "verificationMethod": [self.verification_method()],
            "authentication": [kid],
            "assertionMethod": [kid],
            "capabilityDelegation": [kid],
            "capabilityInvocation": [kid],
            "keyAgreement": [self.key_agreement_method()],
        })
    }

    /// Dereferences a DID URL against this DID's document (§4): the Ed25519 or X25519
    /// verification method it names, or `None` if it names neither (or another DID).
    /// Plain string comparison suffices because our own ids are canonical.
    pub fn dereference(&self, did_url: &str) -> Option<Value> {
        if did_url.len() > MAX_DID_LEN {
            return None;
        }
        if did_url == self.key_id() {
            Some(self.verification_method())
        } else if did_url == self.x25519_key_id() {
            Some(self.key_agreement_method())
        } else {
            None
        }
    }
}

impl fmt::Debug for DidKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DidKey({})", self.did())
    }
}

impl fmt::Display for DidKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.did())
    }
}

impl FromStr for DidKey {
    type Err = DidKeyError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        DidKey::parse(s)
    }
}

/// Serialised as the DID string, so a JSON field holding a DidKey reads "did:key:z6Mk...".
impl serde::Serialize for DidKey {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.did())
    }
}

impl<'de> serde::Deserialize<'de> for DidKey {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        DidKey::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// Error codes of the did:key spec / DID resolution (§7). Several variants share a code:
/// the code is what goes on the wire, the variant is for callers and logs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DidKeyError {
    /// Not a syntactically valid did:key DID (scheme, method-name syntax, version
    /// component, empty or overlong input, DID URL where a DID was expected).
    #[error("invalid did {value:?}: {reason}")]
    InvalidDid { value: String, reason: String },

    /// A key id whose fragment, path or query is wrong.
    #[error("invalid did url {value:?}: {reason}")]
    InvalidDidUrl { value: String, reason: String },

    /// A well-formed DID of a method other than `key`.
    #[error("did method {method:?} is not supported: only did:key")]
    MethodNotSupported { method: String },

    /// Not a base58btc multibase string (wrong prefix, character outside the alphabet).
    #[error("invalid base58btc multibase value {value:?}: {reason}")]
    InvalidMultibase { value: String, reason: String },

    /// The multicodec prefix is not a valid unsigned varint (truncated, overlong,
    /// non-minimal).
    #[error("invalid multicodec varint prefix (first bytes {prefix_hex}): {reason}")]
    InvalidMulticodec { prefix_hex: String, reason: &'static str },

    /// A recognised key codec with the wrong number of key bytes.
    #[error("{codec_name} key must be {expected} bytes, got {actual}")]
    InvalidPublicKeyLength { codec_name: &'static str, expected: usize, actual: usize },

    /// 32 bytes that are not an acceptable Ed25519 public key.
    #[error("invalid ed25519 public key {multibase:?}: {reason}")]
    InvalidPublicKey { multibase: String, reason: &'static str },

    /// A public key type that cannot be an Ed25519 signing key here (X25519 is for key
    /// agreement only).
    #[error("multicodec {codec:#x} ({codec_name}) is a key-agreement key, not an ed25519 signing key")]
    InvalidPublicKeyType { codec: u64, codec_name: &'static str },

    /// A private-key multicodec where a public key belongs. The value is deliberately
    /// left out of the message so that logs never receive it.
    #[error("did:key value carries private key material (multicodec {codec:#x} {codec_name}); value withheld")]
    PrivateKeyMaterial { codec: u64, codec_name: &'static str },

    /// Any other multicodec: a did:key type Dojang does not accept (secp256k1, P-256, ...)
    /// or not a key codec at all.
    #[error("unsupported public key type: multicodec {codec:#x} ({codec_name}); dojang accepts only ed25519-pub (0xed)")]
    UnsupportedPublicKeyType { codec: u64, codec_name: &'static str },
}

impl DidKeyError {
    /// The spec's error code string (§7): the camelCase codes of the did:key spec and the
    /// DID Core 1.0 resolution registry.
    pub fn code(&self) -> &'static str {
        match self {
            DidKeyError::InvalidDid { .. } | DidKeyError::InvalidMultibase { .. } | DidKeyError::InvalidMulticodec { .. } => "invalidDid",
            DidKeyError::InvalidDidUrl { .. } => "invalidDidUrl",
            DidKeyError::MethodNotSupported { .. } => "methodNotSupported",
            DidKeyError::InvalidPublicKeyLength { .. } => "invalidPublicKeyLength",
            DidKeyError::InvalidPublicKey { .. } => "invalidPublicKey",
            DidKeyError::InvalidPublicKeyType { .. } | DidKeyError::PrivateKeyMaterial { .. } => "invalidPublicKeyType",
            DidKeyError::UnsupportedPublicKeyType { .. } => "unsupportedPublicKeyType",
        }
    }

    fn invalid_did(value: &str, reason: impl Into<String>) -> Self {
        DidKeyError::InvalidDid { value: shown(value), reason: reason.into() }
    }

    fn invalid_did_url(value: &str, reason: impl Into<String>) -> Self {
        DidKeyError::InvalidDidUrl { value: shown(value), reason: reason.into() }
    }
}

/// A bad value as repeated in an error: at most [`SHOWN_CHARS`] characters (counted in
/// chars, so multi-byte input is never split), then an ellipsis. Messages format it with
/// `{:?}`, which escapes control characters, so hostile input cannot forge log lines.
fn shown(value: &str) -> String {
    let mut out: String = value.chars().take(SHOWN_CHARS).collect();
    if value.chars().nth(SHOWN_CHARS).is_some() {
        out.push('…');
    }
    out
}

/// Splits "did:<method>:<rest>" and returns `rest` for method `key` (§3 steps 2-4).
fn method_specific_id(did: &str) -> Result<&str, DidKeyError> {
    let mut parts = did.splitn(3, ':');
    let scheme = parts.next().unwrap_or_default();
    if scheme != "did" {
        return Err(DidKeyError::invalid_did(did, "scheme must be \"did\""));
    }
    let Some(method) = parts.next() else {
        return Err(DidKeyError::invalid_did(did, "missing method name"));
    };
    // DID Core: method-name = 1*method-char, method-char = %x61-7A / DIGIT. A name outside
    // that is a malformed DID, not a method we merely lack.
    if method.is_empty() || !method.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()) {
        return Err(DidKeyError::invalid_did(did, "method name must be one or more of [a-z0-9]"));
    }
    if method != "key" {
        return Err(DidKeyError::MethodNotSupported { method: shown(method) });
    }
    let rest = parts.next().unwrap_or_default();
    if rest.is_empty() {
        return Err(DidKeyError::invalid_did(did, "missing method-specific identifier"));
    }
    if let Some((version, _)) = rest.split_once(':') {
        // The spec allows "did:key:<version>:<mb>" with a positive-integer version. Dojang
        // refuses every version component so that one key has exactly one DID string
        // (identities are compared as strings across the ledger); §8.
        let positive = !version.is_empty() && version.bytes().all(|b| b.is_ascii_digit()) && version.bytes().any(|b| b != b'0');
        let reason = if positive {
            "version component not accepted: dojang uses only the canonical form did:key:<multibase>"
        } else {
            "version must be a positive integer"
        };
        return Err(DidKeyError::invalid_did(did, reason));
    }
    Ok(rest)
}

/// Decodes the method-specific id "z6Mk..." to a checked Ed25519 key (§3 steps 5-8).
fn decode_method_specific_id(msid: &str) -> Result<DidKey, DidKeyError> {
    let bytes = multibase_decode_base58btc(msid)?;
    let (codec, key_bytes) = read_multicodec_prefix(&bytes)?;
    match codec {
        ED25519_PUB_CODEC => {
            let arr: [u8; KEY_LEN] = key_bytes.try_into().map_err(|_| DidKeyError::InvalidPublicKeyLength {
                codec_name: "ed25519-pub",
                expected: KEY_LEN,
                actual: key_bytes.len(),
            })?;
            DidKey::from_public_key_bytes(&arr)
        }
        X25519_PUB_CODEC => Err(DidKeyError::InvalidPublicKeyType { codec, codec_name: "x25519-pub" }),
        _ => match private_codec_name(codec) {
            Some(codec_name) => Err(DidKeyError::PrivateKeyMaterial { codec, codec_name }),
            None => Err(DidKeyError::UnsupportedPublicKeyType {
                codec,
                codec_name: public_codec_name(codec).unwrap_or("not a known public key codec"),
            }),
        },
    }
}

/// The §3 point checks on 32 raw bytes.
fn checked_ed25519_key(bytes: &[u8; KEY_LEN]) -> Result<VerifyingKey, DidKeyError> {
    let bad = |reason| DidKeyError::InvalidPublicKey { multibase: multicodec_multibase(ED25519_PUB_PREFIX, bytes), reason };
    let key = VerifyingKey::from_bytes(bytes).map_err(|_| bad("not a point on edwards25519"))?;
    // Decompression accepts a few non-canonical encodings (y >= p, or x = 0 with the sign
    // bit set); re-compressing exposes them. Refusing them keeps one DID per key.
    if key.to_edwards().compress().to_bytes() != *bytes {
        return Err(bad("non-canonical point encoding"));
    }
    // Small-order keys admit signatures that verify for many messages; no honest signer
    // has one, so they are never a ledger identity.
    if key.is_weak() {
        return Err(bad("small-order (weak) point"));
    }
    Ok(key)
}

/// 'z' + base58btc(prefix || key).
fn multicodec_multibase(prefix: [u8; 2], key: &[u8; KEY_LEN]) -> String {
    let mut buf = Vec::with_capacity(prefix.len() + key.len());
    buf.extend_from_slice(&prefix);
    buf.extend_from_slice(key);
    multibase_encode_base58btc(&buf)
}

/// Multibase base58btc: 'z' followed by the Bitcoin-alphabet base58 of `bytes` (§2.2).
/// Leading zero bytes become leading '1's, so the encoding is length-preserving in zeros.
pub fn multibase_encode_base58btc(bytes: &[u8]) -> String {
    format!("{BASE58BTC_PREFIX}{}", bs58::encode(bytes).into_string())
}

/// Decodes a multibase base58btc string ('z' + Bitcoin-alphabet base58) (§2.2). Refuses
/// other multibase prefixes, characters outside the alphabet (including '0', 'O', 'I',
/// 'l'), and input longer than [`MAX_MULTIBASE_LEN`]. "z" alone decodes to no bytes.
pub fn multibase_decode_base58btc(s: &str) -> Result<Vec<u8>, DidKeyError> {
    let bad = |reason: String| DidKeyError::InvalidMultibase { value: shown(s), reason };
    if s.len() > MAX_MULTIBASE_LEN {
        return Err(bad(format!("longer than {MAX_MULTIBASE_LEN} bytes ({})", s.len())));
    }
    let mut chars = s.chars();
    match chars.next() {
        Some(BASE58BTC_PREFIX) => {}
        Some(other) => {
            return Err(bad(format!("multibase prefix must be 'z' (base58btc), found {other:?}")));
        }
        None => return Err(bad("empty string".into())),
    }
    let body = chars.as_str();
    bs58::decode(body).into_vec().map_err(|e| match e {
        // Positions are reported in the whole multibase string, prefix included.
        bs58::decode::Error::InvalidCharacter { character, index } => {
            bad(format!("invalid base58btc character {character:?} at index {}", index.saturating_add(1)))
        }
        bs58::decode::Error::NonAsciiCharacter { index } => bad(format!("non-ascii character at index {}", index.saturating_add(1))),
        _ => bad("not base58btc".into()),
    })
}

/// Reads an unsigned varint (multiformats unsigned-varint, LEB128-style, §2.1) from the
/// start of `bytes`; returns the value and the number of bytes used. Refuses truncated
/// input, varints longer than 9 bytes, and non-minimal encodings (a final 0x00 byte after
/// the first), because a codec must have exactly one byte form for a key to have exactly
/// one DID.
pub fn read_unsigned_varint(bytes: &[u8]) -> Result<(u64, usize), DidKeyError> {
    let bad = |reason| DidKeyError::InvalidMulticodec {
        prefix_hex: hex::encode(bytes.iter().take(MAX_VARINT_LEN + 1).copied().collect::<Vec<u8>>()),
        reason,
    };
    let mut value: u64 = 0;
    for (i, &b) in bytes.iter().take(MAX_VARINT_LEN).enumerate() {
        // i <= 8, so the shift is at most 56 and 7 payload bits end at bit 62: no overflow.
        value |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            if i > 0 && b == 0 {
                return Err(bad("non-minimal varint encoding"));
            }
            return Ok((value, i + 1));
        }
    }
    if bytes.len() >= MAX_VARINT_LEN {
        Err(bad("varint longer than 9 bytes"))
    } else if bytes.is_empty() {
        Err(bad("no multicodec prefix (empty value)"))
    } else {
        Err(bad("truncated varint"))
    }
}

/// Reads the multicodec prefix of `bytes` (§2.1): returns the codec and the bytes after it.
pub fn read_multicodec_prefix(bytes: &[u8]) -> Result<(u64, &[u8]), DidKeyError> {
    let (codec, used) = read_unsigned_varint(bytes)?;
    Ok((codec, bytes.get(used..).unwrap_or_default()))
}

/// Names of the public-key multicodecs (tag `key`, name `*-pub`) we recognise in errors;
/// checked against multiformats/multicodec table.csv in the tests.
fn public_codec_name(codec: u64) -> Option<&'static str> {
    Some(match codec {
        0xe7 => "secp256k1-pub",
        0xea => "bls12_381-g1-pub",
        0xeb => "bls12_381-g2-pub",
        0xec => "x25519-pub",
        0xed => "ed25519-pub",
        0xee => "bls12_381-g1g2-pub",
        0xef => "sr25519-pub",
        0x1200 => "p256-pub",
        0x1201 => "p384-pub",
        0x1202 => "p521-pub",
        0x1203 => "ed448-pub",
        0x1204 => "x448-pub",
        0x1205 => "rsa-pub",
        0x1206 => "sm2-pub",
        0x1340 => "bip340-pub",
        0xeb51 => "jwk_jcs-pub",
        _ => return None,
    })
}

/// Every private-key multicodec of table.csv (names containing "-priv"), so that a secret
/// pasted where a did:key belongs is named as such and never echoed (§7). The tests check
/// this list is complete against table.csv.
fn private_codec_name(codec: u64) -> Option<&'static str> {
    Some(match codec {
        0x1300 => "ed25519-priv",
        0x1301 => "secp256k1-priv",
        0x1302 => "x25519-priv",
        0x1303 => "sr25519-priv",
        0x1305 => "rsa-priv",
        0x1306 => "p256-priv",
        0x1307 => "p384-priv",
        0x1308 => "p521-priv",
        0x1309 => "bls12_381-g1-priv",
        0x130a => "bls12_381-g2-priv",
        0x130b => "bls12_381-g1g2-priv",
        0x130e => "bls12_381-g1-priv-share",
        0x130f => "bls12_381-g2-priv-share",
        0x1310 => "sm2-priv",
        0x1311 => "ed448-priv",
        0x1312 => "x448-priv",
        0x1313 => "mlkem-512-priv",
        0x1314 => "mlkem-768-priv",
        0x1315 => "mlkem-1024-priv",
        0x1316 => "jwk_jcs-priv",
        0x1317 => "mldsa-44-priv",
        0x1318 => "mldsa-65-priv",
        0x1319 => "mldsa-87-priv",
        0x131a => "mldsa-44-priv-seed",
        0x131b => "mldsa-65-priv-seed",
        0x131c => "mldsa-87-priv-seed",
        0x1341 => "bip340-priv",
        0x1a24 => "lamport-sha3-512-priv",
        0x1a25 => "lamport-sha3-384-priv",
        0x1a26 => "lamport-sha3-256-priv",
        0x1a34 => "lamport-sha3-512-priv-share",
        0x1a35 => "lamport-sha3-384-priv-share",
        0x1a36 => "lamport-sha3-256-priv-share",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

    use super::*;
    use crate::testing::read_vector;
    use base64::Engine as _;
    use ed25519_dalek::SigningKey;
    use proptest::prelude::*;

    fn vector_json(rel: &str) -> Value {
        serde_json::from_slice(&read_vector(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
    }

    fn from_seed_hex(seed_hex: &str) -> DidKey {
        let seed: [u8; 32] = hex::decode(seed_hex).unwrap().try_into().unwrap();
        DidKey::from_verifying_key(&SigningKey::from_bytes(&seed).verifying_key())
    }

    fn b64url(s: &str) -> Vec<u8> {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(s).unwrap()
    }

    /// The raw 32 key bytes of a verification method in any of the shapes the vectors use:
    /// publicKeyBase58 (Ed25519VerificationKey2018, X25519KeyAgreementKey2019),
    /// publicKeyMultibase (…2020 and Multikey: multicodec-prefixed), publicKeyJwk.x.
    fn method_key_bytes(vm: &Value, prefix: [u8; 2]) -> Vec<u8> {
        if let Some(b58) = vm["publicKeyBase58"].as_str() {
            bs58::decode(b58).into_vec().unwrap()
        } else if let Some(mb) = vm["publicKeyMultibase"].as_str() {
            let bytes = multibase_decode_base58btc(mb).unwrap();
            assert_eq!(bytes[..2], prefix, "multicodec prefix of {mb}");
            bytes[2..].to_vec()
        } else if let Some(x) = vm["publicKeyJwk"]["x"].as_str() {
            assert_eq!(vm["publicKeyJwk"]["kty"], "OKP");
            b64url(x)
        } else {
            panic!("no public key in {vm}")
        }
    }

    fn code_of(s: &str) -> &'static str {
        match DidKey::parse(s) {
            Ok(k) => panic!("{s:?} parsed as {k}"),
            Err(e) => e.code(),
        }
    }

    /// w3c-ccg/did-method-key test-vectors/ed25519-x25519.json at
    /// f5abee840c31e92cd1ac11737e0b62103ab99d21 (folder last changed 31821ca5, 2022-03-09).
    /// Older document shapes (Ed25519VerificationKey2018 + X25519KeyAgreementKey2019, and
    /// JsonWebKey2020), so keys and ids are compared, not whole documents.
    #[test]
    fn did_method_key_ed25519_x25519_vectors() {
        let v = vector_json("did-method-key/test-vectors/ed25519-x25519.json");
        let entries = v.as_object().unwrap();
        assert_eq!(entries.len(), 5);
        for (did, entry) in entries {
            let k = from_seed_hex(entry["seed"].as_str().unwrap());
            assert_eq!(&k.did(), did);
            assert_eq!(DidKey::parse(did).unwrap(), k);

            // Key pairs as published next to the document.
            let vkp = &entry["verificationKeyPair"];
            assert_eq!(method_key_bytes(vkp, ED25519_PUB_PREFIX), k.as_bytes());
            assert!(vkp["id"].as_str().unwrap().ends_with(&format!("#{}", k.multibase())));
            assert_eq!(vkp["controller"], k.did());
            let kakp = &entry["keyAgreementKeyPair"];
            assert_eq!(method_key_bytes(kakp, X25519_PUB_PREFIX), k.x25519_public_key());
            assert!(kakp["id"].as_str().unwrap().ends_with(&format!("#{}", k.x25519_multibase())));
            // The published X25519 secret must map to our derived public key: a check that
            // the vector's derivation and ours (Edwards->Montgomery) are the same map.
            let x_secret: [u8; 32] = match kakp["privateKeyBase58"].as_str() {
                Some(b58) => bs58::decode(b58).into_vec().unwrap().try_into().unwrap(),
                None => b64url(kakp["privateKeyJwk"]["d"].as_str().unwrap()).try_into().unwrap(),
            };
            let x_pub = curve25519_dalek::MontgomeryPoint::mul_base_clamped(x_secret).to_bytes();
            assert_eq!(x_pub, k.x25519_public_key(), "{did}");
            // ... and so does the standard Ed25519 -> X25519 secret conversion (first half of
            // SHA-512 of the seed, clamped by X25519), which §6 states.
            use sha2::Digest as _;
            let seed = hex::decode(entry["seed"].as_str().unwrap()).unwrap();
            let h: [u8; 32] = sha2::Sha512::digest(&seed)[..32].try_into().unwrap();
            assert_eq!(curve25519_dalek::MontgomeryPoint::mul_base_clamped(h).to_bytes(), k.x25519_public_key());

            // The document: ids, relationships and key material.
            let doc = &entry["didDocument"];
            assert_eq!(doc["id"], k.did());
            let vms = doc["verificationMethod"].as_array().unwrap();
            assert_eq!(vms.len(), 2);
            assert_eq!(vms[0]["id"], k.key_id());
            assert_eq!(vms[0]["controller"], k.did());
            assert_eq!(method_key_bytes(&vms[0], ED25519_PUB_PREFIX), k.as_bytes());
            assert_eq!(vms[1]["id"], k.x25519_key_id());
            assert_eq!(vms[1]["controller"], k.did());
            assert_eq!(method_key_bytes(&vms[1], X25519_PUB_PREFIX), k.x25519_public_key());
            for rel in ["authentication", "assertionMethod", "capabilityInvocation", "capabilityDelegation"] {
                assert_eq!(doc[rel], json!([k.key_id()]), "{did} {rel}");
            }
            assert_eq!(doc["keyAgreement"], json!([k.x25519_key_id()]));
            // Our ids dereference to the same keys in our own document shape.
            let ours = k.dereference(&k.x25519_key_id()).unwrap();
            assert_eq!(method_key_bytes(&ours, X25519_PUB_PREFIX), k.x25519_public_key());
        }
    }

    /// The did:key spec's Multikey example: w3c-ccg/did-key-spec index.html lines 300-329
    /// at 2cc490c38c5aacf58497a87fc0cf8794668bf716 (transcribed, see SOURCES.md (b)).
    /// document() reproduces it exactly, contexts included (§5).
    #[test]
    fn document_equals_spec_example() {
        let example = vector_json("did-key-spec/did-doc-multikey-z6MkhaXg.json");
        let k = DidKey::parse(example["id"].as_str().unwrap()).unwrap();
        assert_eq!(k.document(), example);
        assert_eq!(k.x25519_multibase(), "z6LSj72tK8brWgZja8NLRwPigth2T9QRiG1uH9oKZuKjdh9p");
        for vm in [&example["verificationMethod"][0], &example["keyAgreement"][0]] {
            let id = vm["id"].as_str().unwrap();
            assert_eq!(k.dereference(id).as_ref(), Some(vm));
        }
        assert_eq!(k.dereference(&format!("{}#nope", k.did())), None);
    }

    /// multiformats/ed25519-multikey-derived.json (SOURCES.md (b): seeds and DIDs from
    /// w3c-ccg/did-method-key ed25519-x25519.json @ f5abee84, the key of w3c/vc-di-eddsa
    /// TestVectors/keyPair.json @ abb673eb, DIDs of w3c-ccg/did-key-spec @ 2cc490c3 and
    /// w3c-ccg/did-key-test-suite tests/mock.data.js; other forms derived).
    #[test]
    fn multikey_derived_positive() {
        let v = vector_json("multiformats/ed25519-multikey-derived.json");
        let positive = v["positive"].as_array().unwrap();
        assert!(positive.len() >= 9);
        for p in positive {
            let did = p["did"].as_str().unwrap();
            let k = DidKey::parse(did).unwrap();
            let raw = hex::decode(p["publicKeyHex"].as_str().unwrap()).unwrap();
            assert_eq!(k.as_bytes().as_slice(), raw.as_slice(), "{did}");
            if let Some(seed) = p["seedHex"].as_str() {
                assert_eq!(from_seed_hex(seed), k, "{did}");
            }
            assert_eq!(bs58::encode(&raw).into_string(), p["publicKeyBase58"].as_str().unwrap());
            if let Some(x) = p["publicKeyJwkX"].as_str() {
                assert_eq!(b64url(x), raw);
            }
            assert_eq!(k.multibase(), p["publicKeyMultibase"].as_str().unwrap());
            assert_eq!(k.did(), did);
            if let Some(prefix) = p["multicodecPrefixHex"].as_str() {
                assert_eq!(hex::decode(prefix).unwrap(), ED25519_PUB_PREFIX);
            }
            if let Some(vmid) = p["verificationMethodId"].as_str() {
                assert_eq!(k.key_id(), vmid);
                assert_eq!(DidKey::parse_key_id(vmid).unwrap(), k);
            }
            if let Some(x) = p["x25519KeyAgreementMultibase_fromUpstream"].as_str() {
                if x.starts_with('z') {
                    assert_eq!(k.x25519_multibase(), x, "{did}");
                } else {
                    // Defect in the vector file: for seed ..05 the field holds a sliced key id
                    // ("id:key:z6Mk...#z6LS...") rather than the multibase, because upstream
                    // that entry uses full DID URLs as ids (JsonWebKey2020). Its tail is still
                    // the upstream X25519 multibase, which is what we compare.
                    assert!(x.ends_with(&format!("#{}", k.x25519_multibase())), "{did}: {x}");
                }
            }
            // The private-key multibase (ed25519-priv 0x1300, varint 80 26) must never pass
            // as a did:key, and the refusal must not repeat the secret.
            if let Some(sk) = p["privateKeyMultibase"].as_str() {
                let bytes = multibase_decode_base58btc(sk).unwrap();
                assert_eq!(bytes[..2], [0x80, 0x26]);
                let err = DidKey::parse(&format!("did:key:{sk}")).unwrap_err();
                assert_eq!(err, DidKeyError::PrivateKeyMaterial { codec: 0x1300, codec_name: "ed25519-priv" });
                assert_eq!(err.code(), "invalidPublicKeyType");
                assert!(!err.to_string().contains(&sk[1..]), "{err}");
            }
        }
    }

    /// Negative DIDs of the same file (from w3c-ccg/did-key-test-suite tests/10-create.js
    /// and tests/mock.data.js @ 870e9647). `expect` is a code, optionally followed by a note.
    #[test]
    fn multikey_derived_negative() {
        let v = vector_json("multiformats/ed25519-multikey-derived.json");
        let negative = v["negative"].as_array().unwrap();
        assert!(negative.len() >= 6);
        for n in negative {
            let did = n["did"].as_str().unwrap();
            let expect = n["expect"].as_str().unwrap().split_whitespace().next().unwrap();
            assert_eq!(code_of(did), expect, "{did}");
        }
    }

    /// multiformats/multicodec table.csv @ 45c88b89ab909c0fac7c86dafe43ad72d1e8e8a9: the
    /// codes we hard-code, and that every private-key codec is on our withhold list.
    #[test]
    fn multicodec_table() {
        let table = String::from_utf8(read_vector("multiformats/multicodec/table.csv")).unwrap();
        let rows: Vec<Vec<&str>> =
            table.lines().skip(1).map(|l| l.split(',').map(str::trim).collect()).filter(|r: &Vec<&str>| r.len() >= 3).collect();
        let code_of_name = |name: &str| {
            let row = rows.iter().find(|r| r[0] == name).unwrap_or_else(|| panic!("{name} missing"));
            u64::from_str_radix(row[2].trim_start_matches("0x"), 16).unwrap()
        };
        assert_eq!(code_of_name("ed25519-pub"), ED25519_PUB_CODEC);
        assert_eq!(code_of_name("x25519-pub"), X25519_PUB_CODEC);
        assert_eq!(code_of_name("secp256k1-pub"), 0xe7);
        assert_eq!(code_of_name("ed25519-priv"), 0x1300);
        // The varint forms: 0xed -> ed 01, 0xec -> ec 01, 0x1300 -> 80 26.
        assert_eq!(read_unsigned_varint(&ED25519_PUB_PREFIX).unwrap(), (0xed, 2));
        assert_eq!(read_unsigned_varint(&X25519_PUB_PREFIX).unwrap(), (0xec, 2));
        assert_eq!(read_unsigned_varint(&[0x80, 0x26]).unwrap(), (0x1300, 2));
        for r in &rows {
            let code = u64::from_str_radix(r[2].trim_start_matches("0x"), 16).unwrap();
            if r[1] == "key" && r[0].contains("-priv") {
                assert_eq!(private_codec_name(code), Some(r[0]), "{} not withheld", r[0]);
            }
            if let Some(name) = public_codec_name(code) {
                assert_eq!(name, r[0]);
            }
            if let Some(name) = private_codec_name(code) {
                assert_eq!(name, r[0]);
            }
        }
    }

    /// Decodes the "\x00"-style escapes of the multibase test CSV headers.
    fn unescape(s: &str) -> Vec<u8> {
        let mut out = Vec::new();
        let b = s.as_bytes();
        let mut i = 0;
        while i < b.len() {
            if b[i] == b'\\' && b.get(i + 1) == Some(&b'x') {
                out.push(u8::from_str_radix(&s[i + 2..i + 4], 16).unwrap());
                i += 4;
            } else {
                out.push(b[i]);
                i += 1;
            }
        }
        out
    }

    /// The base58btc rows of multiformats/multibase tests/*.csv @
    /// d7406cdea189b82a0b3937f5737b440f5fa92f92 (basic, leading_zero, two_leading_zeros),
    /// and the 'z' row of multibase.csv.
    #[test]
    fn multibase_base58btc_vectors() {
        let mut checked = 0;
        for file in ["basic", "leading_zero", "two_leading_zeros", "case_insensitivity"] {
            let text = String::from_utf8(read_vector(&format!("multiformats/multibase/tests/{file}.csv"))).unwrap();
            let mut lines = text.lines();
            let header = lines.next().unwrap();
            let quoted = |l: &str| l.split_once(", ").unwrap().1.trim().trim_matches('"').to_string();
            let input = unescape(&quoted(header));
            for l in lines.filter(|l| l.starts_with("base58btc,")) {
                let encoded = quoted(l);
                assert_eq!(multibase_decode_base58btc(&encoded).unwrap(), input, "{file}");
                assert_eq!(multibase_encode_base58btc(&input), encoded, "{file}");
                checked += 1;
            }
        }
        assert_eq!(checked, 3, "base58btc rows in basic, leading_zero, two_leading_zeros");
        let table = String::from_utf8(read_vector("multiformats/multibase/multibase.csv")).unwrap();
        assert!(table.lines().any(|l| {
            let f: Vec<&str> = l.split(',').map(str::trim).collect();
            f.get(1) == Some(&"z") && f.get(2) == Some(&"base58btc")
        }));
        assert_eq!(multibase_encode_base58btc(&[]), "z");
        assert_eq!(multibase_decode_base58btc("z").unwrap(), Vec::<u8>::new());
    }

    fn sample() -> DidKey {
        DidKey::parse("did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK").unwrap()
    }

    fn did_from_bytes(bytes: &[u8]) -> String {
        format!("did:key:{}", multibase_encode_base58btc(bytes))
    }

    fn ed_did_from_key(key: &[u8]) -> String {
        let mut b = ED25519_PUB_PREFIX.to_vec();
        b.extend_from_slice(key);
        did_from_bytes(&b)
    }

    /// Invalid DIDs and the code each one maps to (§7).
    #[test]
    fn invalid_dids() {
        let good = sample().did();
        let mb = sample().multibase();
        // Syntax.
        assert_eq!(code_of(""), "invalidDid");
        assert_eq!(code_of("did"), "invalidDid");
        assert_eq!(code_of("did:"), "invalidDid");
        assert_eq!(code_of("did:key"), "invalidDid");
        assert_eq!(code_of("did:key:"), "invalidDid");
        assert_eq!(code_of("did::z6Mk"), "invalidDid");
        assert_eq!(code_of(&good.replace("did:key", "did:KEY")), "invalidDid");
        assert_eq!(code_of(&good.replace("did:", "DID:")), "invalidDid");
        assert_eq!(code_of(&format!(" {good}")), "invalidDid");
        assert_eq!(code_of(&format!("{good} ")), "invalidDid");
        assert_eq!(code_of(&format!("did:key:1:{mb}")), "invalidDid");
        assert_eq!(code_of(&format!("did:key:0:{mb}")), "invalidDid");
        assert_eq!(code_of(&format!("did:key:v1:{mb}")), "invalidDid");
        assert_eq!(code_of(&format!("did:key:{}", "z".repeat(MAX_DID_LEN))), "invalidDid");
        // A DID URL is not a DID.
        assert_eq!(code_of(&sample().key_id()), "invalidDid");
        assert_eq!(code_of(&format!("{good}?service=x")), "invalidDid");
        assert_eq!(code_of(&format!("{good}/path")), "invalidDid");
        // Wrong method.
        assert_eq!(code_of(&good.replace("did:key", "did:web")), "methodNotSupported");
        assert_eq!(code_of(&good.replace("did:key", "did:peer")), "methodNotSupported");
        // Multibase prefixes other than 'z': base16 'f', base64url 'u', base58flickr 'Z'.
        assert_eq!(code_of(&format!("did:key:f{}", hex::encode([0xed, 0x01]))), "invalidDid");
        assert_eq!(code_of("did:key:u7QE"), "invalidDid");
        assert_eq!(code_of(&format!("did:key:Z{}", &mb[1..])), "invalidDid");
        assert_eq!(code_of(&format!("did:key:{}", &mb[1..])), "invalidDid");
        // Characters outside the base58btc alphabet.
        for c in ['0', 'O', 'I', 'l', '+', '/', '_', 'é', '\n', '\0'] {
            let bad = format!("did:key:z6Mk{c}{}", &mb[5..]);
            assert_eq!(code_of(&bad), "invalidDid", "{c:?}");
        }
        // Other key types: secp256k1 (did-key-spec example), P-256, and X25519 given as a
        // signing key (w3c-ccg/did-method-key test-vectors/x25519.json @ f5abee84).
        let k1 = DidKey::parse("did:key:zQ3shokFTS3brHcDQrn82RUDfCZESWL1ZdCEJwekUDPQiYBme").unwrap_err();
        assert_eq!(k1, DidKeyError::UnsupportedPublicKeyType { codec: 0xe7, codec_name: "secp256k1-pub" });
        assert_eq!(k1.code(), "unsupportedPublicKeyType");
        assert_eq!(code_of("did:key:zDnaerx9CtbPJ1q36T5Ln5wYt3MQYeGRG5ehnPAmxcf5mDZpv"), "unsupportedPublicKeyType");
        let x = DidKey::parse("did:key:z6LSeu9HkTHSfLLeUs2nnzUSNedgDUevfNQgQjQC23ZCit6F").unwrap_err();
        assert_eq!(x, DidKeyError::InvalidPublicKeyType { codec: 0xec, codec_name: "x25519-pub" });
        assert_eq!(x.code(), "invalidPublicKeyType");
        assert_eq!(code_of(&did_from_bytes(&[0x00, 1, 2, 3])), "unsupportedPublicKeyType");
        // Our own X25519 multibase is refused as a DID too.
        assert_eq!(code_of(&format!("did:key:{}", sample().x25519_multibase())), "invalidPublicKeyType");
        // Length: truncated and extended keys, and no key bytes at all.
        let raw = *sample().as_bytes();
        assert_eq!(code_of(&ed_did_from_key(&raw[..31])), "invalidPublicKeyLength");
        assert_eq!(code_of(&ed_did_from_key(&[raw.as_slice(), &[0]].concat())), "invalidPublicKeyLength");
        assert_eq!(code_of(&ed_did_from_key(&[])), "invalidPublicKeyLength");
        assert_eq!(
            DidKey::parse(&ed_did_from_key(&raw[..31])).unwrap_err(),
            DidKeyError::InvalidPublicKeyLength { codec_name: "ed25519-pub", expected: 32, actual: 31 }
        );
        // Varint: truncated (continuation bit, then nothing), non-minimal (ed 81 00 also
        // spells 0xed), overlong.
        assert_eq!(code_of(&did_from_bytes(&[0xed])), "invalidDid");
        assert_eq!(code_of(&did_from_bytes(&[[0xed, 0x81, 0x00].as_slice(), &raw].concat())), "invalidDid");
        assert_eq!(code_of(&did_from_bytes(&[0xff; 12])), "invalidDid");
        assert_eq!(code_of("did:key:z"), "invalidDid");
    }

    /// Points: off-curve, non-canonical and small-order keys are invalidPublicKey.
    #[test]
    fn invalid_points() {
        // Off the curve: the first small y whose decompression fails.
        let off = (2u8..=255)
            .map(|y| {
                let mut b = [0u8; 32];
                b[0] = y;
                b
            })
            .find(|b| VerifyingKey::from_bytes(b).is_err())
            .unwrap();
        let e = DidKey::parse(&ed_did_from_key(&off)).unwrap_err();
        assert_eq!(e.code(), "invalidPublicKey");
        assert!(e.to_string().contains("not a point"), "{e}");
        // Small order: the identity (y = 1) and y = 0 (order 4).
        for y in [1u8, 0] {
            let mut b = [0u8; 32];
            b[0] = y;
            let e = DidKey::parse(&ed_did_from_key(&b)).unwrap_err();
            assert_eq!(e.code(), "invalidPublicKey");
            assert!(e.to_string().contains("small-order"), "{e}");
        }
        // Non-canonical: y = p + k (p = 2^255 - 19) decodes like y = k; find one that is on
        // the curve and not small-order, so the canonical check is what refuses it.
        let mut found = false;
        for k in 2u8..19 {
            let mut b = [0xffu8; 32];
            b[0] = 0xed + k; // p = ed ff .. ff 7f little-endian, k < 19 so no carry
            b[31] = 0x7f;
            if let Ok(vk) = VerifyingKey::from_bytes(&b) {
                let e = DidKey::parse(&ed_did_from_key(&b)).unwrap_err();
                assert_eq!(e.code(), "invalidPublicKey");
                assert!(e.to_string().contains("non-canonical"), "{e}");
                assert!(DidKey::try_from_verifying_key(&vk).is_err());
                found = true;
            }
        }
        assert!(found, "no on-curve non-canonical y found");
        // The identity with the x sign bit set ("negative zero").
        let mut neg_zero = [0u8; 32];
        neg_zero[0] = 1;
        neg_zero[31] = 0x80;
        assert_eq!(code_of(&ed_did_from_key(&neg_zero)), "invalidPublicKey");
    }

    /// Key ids (§4).
    #[test]
    fn key_ids() {
        let k = sample();
        assert_eq!(DidKey::parse_key_id(&k.key_id()).unwrap(), k);
        let other = DidKey::from_verifying_key(&SigningKey::from_bytes(&[7; 32]).verifying_key());
        let code_of_url = |s: &str| DidKey::parse_key_id(s).unwrap_err().code();
        assert_eq!(code_of_url(&k.did()), "invalidDidUrl");
        assert_eq!(code_of_url(&format!("{}#", k.did())), "invalidDidUrl");
        assert_eq!(code_of_url(&format!("{}#{}", k.did(), other.multibase())), "invalidDidUrl");
        assert_eq!(code_of_url(&format!("{}#key-1", k.did())), "invalidDidUrl");
        assert_eq!(code_of_url(&format!("{}##{}", k.did(), k.multibase())), "invalidDidUrl");
        assert_eq!(code_of_url(&format!("{}#{}#", k.did(), k.multibase())), "invalidDidUrl");
        assert_eq!(code_of_url(&k.x25519_key_id()), "invalidDidUrl");
        assert_eq!(code_of_url(&format!("{}?x=1#{}", k.did(), k.multibase())), "invalidDidUrl");
        assert_eq!(code_of_url(&format!("{}#{}", "x".repeat(MAX_DID_LEN), k.multibase())), "invalidDidUrl");
        // The DID part keeps its own code.
        assert_eq!(code_of_url(&k.key_id().replace("did:key", "did:web")), "methodNotSupported");
        assert_eq!(code_of_url(&format!("did:key:z0#{}", k.multibase())), "invalidDid");
    }

    #[test]
    fn accessors_and_traits() {
        let k = sample();
        assert_eq!(k.to_string(), k.did());
        assert_eq!(k.did().parse::<DidKey>().unwrap(), k);
        assert!(k.did().starts_with("did:key:z6Mk"));
        assert!(k.x25519_multibase().starts_with("z6LS"));
        assert_eq!(format!("{k:?}"), format!("DidKey({})", k.did()));
        assert_eq!(DidKey::try_from_verifying_key(&k.verifying_key()).unwrap(), k);
        assert_eq!(DidKey::from_public_key_bytes(k.as_bytes()).unwrap(), k);
        let json = serde_json::to_string(&k).unwrap();
        assert_eq!(json, format!("\"{}\"", k.did()));
        assert_eq!(serde_json::from_str::<DidKey>(&json).unwrap(), k);
        assert!(serde_json::from_str::<DidKey>("\"did:key:z0\"").is_err());
        // Messages are lowercase, name the value, and are truncated.
        let long = format!("did:web:{}", "a".repeat(500));
        let e = DidKey::parse(&long).unwrap_err();
        assert_eq!(e.to_string(), format!("did method \"web\" is not supported: only did:key"));
        let e = DidKey::parse(&format!("notdid:{}", "a".repeat(500))).unwrap_err().to_string();
        assert!(e.len() < 250 && e.contains('…') && e.starts_with("invalid did \"notdid:"), "{e}");
        let e = DidKey::parse("did:key:z6Mk0abc").unwrap_err().to_string();
        assert_eq!(e, "invalid base58btc multibase value \"z6Mk0abc\": invalid base58btc character '0' at index 4");
        // Control characters are escaped, not written raw into logs.
        let e = DidKey::parse("did:x\ny:z").unwrap_err().to_string();
        assert!(!e.contains('\n'), "{e}");
    }

    /// No private key material in documents (the `did-key` crate emitted
    /// privateKeyBase58; see specs/did-key.md §10).
    #[test]
    fn document_has_no_private_material() {
        for seed in 0u8..16 {
            let k = DidKey::from_verifying_key(&SigningKey::from_bytes(&[seed; 32]).verifying_key());
            let text = serde_json::to_string(&k.document()).unwrap();
            assert!(!text.to_lowercase().contains("private"), "{text}");
            assert!(!text.contains("secretKey"), "{text}");
            assert!(!text.contains("\"d\""), "{text}");
        }
    }

    #[test]
    fn varint_rules() {
        assert_eq!(read_unsigned_varint(&[0x00]).unwrap(), (0, 1));
        assert_eq!(read_unsigned_varint(&[0x7f, 0xff]).unwrap(), (0x7f, 1));
        assert_eq!(read_unsigned_varint(&[0x80, 0x01]).unwrap(), (0x80, 2));
        let max = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f];
        assert_eq!(read_unsigned_varint(&max).unwrap(), ((1u64 << 63) - 1, 9));
        assert!(read_unsigned_varint(&[]).is_err());
        assert!(read_unsigned_varint(&[0x80]).is_err());
        assert!(read_unsigned_varint(&[0x80, 0x00]).is_err());
        assert!(read_unsigned_varint(&[0xff; 9]).is_err());
        assert!(read_unsigned_varint(&[0xff; 10]).is_err());
        let (codec, rest) = read_multicodec_prefix(&[0xed, 0x01, 9, 9]).unwrap();
        assert_eq!((codec, rest), (0xed, [9u8, 9].as_slice()));
    }

    fn encode_varint(mut v: u64) -> Vec<u8> {
        let mut out = Vec::new();
        loop {
            let b = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                out.push(b);
                return out;
            }
            out.push(b | 0x80);
        }
    }

    proptest! {
        /// Random seeds round-trip did() -> parse() -> same key, and key_id() likewise.
        #[test]
        fn prop_seed_round_trip(seed in any::<[u8; 32]>()) {
            let k = DidKey::from_verifying_key(&SigningKey::from_bytes(&seed).verifying_key());
            let did = k.did();
            prop_assert!(did.starts_with("did:key:z6Mk"));
            prop_assert_eq!(DidKey::parse(&did).unwrap(), k);
            prop_assert_eq!(DidKey::parse_key_id(&k.key_id()).unwrap(), k);
            let ka = k.dereference(&k.x25519_key_id()).unwrap();
            prop_assert_eq!(&ka["publicKeyMultibase"], &json!(k.x25519_multibase()));
        }

        /// parse never panics on arbitrary strings.
        #[test]
        fn prop_parse_any_string(s in any::<String>()) {
            let _ = DidKey::parse(&s);
            let _ = DidKey::parse_key_id(&s);
            let _ = multibase_decode_base58btc(&s);
        }

        /// ... nor on "did:key:z" + random base58, nor with a random fragment.
        #[test]
        fn prop_parse_random_base58(body in "[1-9A-HJ-NP-Za-km-z]{0,120}", frag in "[1-9A-HJ-NP-Za-km-z#]{0,60}") {
            let did = format!("did:key:z{body}");
            let _ = DidKey::parse(&did);
            let _ = DidKey::parse_key_id(&format!("{did}#{frag}"));
        }

        /// ... nor on the ed25519 prefix + random bytes; exactly 32 bytes parse or fail
        /// as invalidPublicKey, any other length fails as invalidPublicKeyLength.
        #[test]
        fn prop_parse_ed25519_random_bytes(key in proptest::collection::vec(any::<u8>(), 0..70)) {
            match DidKey::parse(&ed_did_from_key(&key)) {
                Ok(k) => prop_assert_eq!(k.as_bytes().as_slice(), key.as_slice()),
                Err(e) if key.len() == 32 => prop_assert_eq!(e.code(), "invalidPublicKey"),
                Err(e) => prop_assert_eq!(e.code(), "invalidPublicKeyLength"),
            }
        }

        /// Random multicodec prefixes never panic and never parse unless 0xed.
        #[test]
        fn prop_random_codec(codec in 0u64..(1 << 63), key in proptest::collection::vec(any::<u8>(), 0..40)) {
            let mut bytes = encode_varint(codec);
            prop_assert_eq!(read_unsigned_varint(&bytes).unwrap(), (codec, bytes.len()));
            bytes.extend_from_slice(&key);
            if let Ok(k) = DidKey::parse(&did_from_bytes(&bytes)) {
                prop_assert_eq!(codec, ED25519_PUB_CODEC);
                prop_assert_eq!(k.as_bytes().as_slice(), key.as_slice());
            }
        }

        /// Arbitrary bytes through the varint reader and base58 round trip.
        #[test]
        fn prop_varint_and_base58(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = read_unsigned_varint(&bytes);
            prop_assert_eq!(multibase_decode_base58btc(&multibase_encode_base58btc(&bytes)).unwrap(), bytes);
        }
    }
}
