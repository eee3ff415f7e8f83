//! Personal-data access events (`specs/access-log.md`): every read of a citizen's personal
//! data by an agency is an `access-event/v1` entry whose payload names nobody in the clear.
//!
//! A replica reader sees only a *tag* — a value that only the writing agency and the citizen
//! can compute, different for every event — and HPKE ciphertexts of the details. The citizen
//! recomputes the tags of slot 0, 1, 2, … for each writer key and so finds all of their
//! events; an auditor named on the event can read its details; nobody else learns whose data
//! was read or can link two events to one citizen.
//!
//! This module defines (section numbers refer to `specs/access-log.md`):
//! - X25519 keys of writers and subjects, and the DH between them (§2);
//! - the pair key of a (writer key, subject) pair (§3): [`PairKey`];
//! - slot secrets from a GGM tree, and range grants of them (§4): [`GrantNode`],
//!   [`grant_range`];
//! - tags (§5): [`PairKey::tag`], [`tag_from_secret`];
//! - the sealed details and their code lists (§6): [`AccessDetails`], [`Purpose`],
//!   [`CATEGORIES`], [`PURPOSES`];
//! - sealing (§7): [`AgencyWriter::seal_event`];
//! - the public payload (§8): [`AccessEvent`];
//! - opening (§9): [`SubjectKey::open`], [`SubjectKey::open_entry`], [`open_as_auditor`].
//!
//! Everything here is pure: randomness is an argument. Payloads are size-bounded before
//! parsing and accepted only in their one canonical (RFC 8785) spelling; every refusal is an
//! error value, never a panic; secrets are wiped on drop and never printed by `Debug`.

use std::fmt;

use base64::Engine as _;
use curve25519_dalek::montgomery::MontgomeryPoint;
use ed25519_dalek::SigningKey;
use hpke::{Deserializable as _, Serializable as _};
use rand_core::{CryptoRng, RngCore};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha512};
use zeroize::Zeroize as _;

use crate::did_key::DidKey;
use crate::entry::{Entry, Kind};
use crate::genesis::MAX_SAFE_INTEGER;
use crate::hash::Hash;

/// BLAKE3 `derive_key` context of the pair key (§3).
pub const PAIR_KEY_CONTEXT: &str = "dojang access pair key v1";
/// BLAKE3 `derive_key` context of a slot's tag (§5.1).
pub const TAG_CONTEXT: &str = "dojang access tag v1";
/// Message prefix of a GGM child step; the branch bit follows (§4.1).
pub const GGM_DOMAIN: &[u8] = b"dojang/access/ggm";
/// Depth of the GGM tree: slots are `u32` (§4.1).
pub const GGM_DEPTH: u8 = 32;
/// Number of slots of one (writer key, subject) pair: 2^32 (§4.1).
pub const SLOT_COUNT: u64 = 1 << 32;
/// HPKE `info` prefix; the genesis hash and the tag follow (§7.2).
pub const HPKE_INFO_DOMAIN: &[u8] = b"dojang/access-event/v1\0";
/// Payload and details format version (§6.1, §8.1).
pub const VERSION: u64 = 1;
/// Largest `access-event/v1` payload, in bytes (§8.2).
pub const MAX_EVENT_LEN: usize = 16 * 1024;
/// Largest HPKE ciphertext, in bytes (§8.2).
pub const MAX_CT_LEN: usize = 4 * 1024;
/// Most auditor seals on one event (§7.3).
pub const MAX_AUDITORS: usize = 4;
/// Plaintexts are padded with zero bytes to a multiple of this many bytes (§6.5), so a
/// ciphertext's length does not tell a category, a purpose or an official from another.
pub const PAD_BLOCK: usize = 512;
/// Largest details JSON before padding (§6.2). The field bounds keep every valid details
/// object under it, and it keeps five seals within [`MAX_EVENT_LEN`].
pub const MAX_DETAILS_LEN: usize = 2048;
/// Longest agency or subject DID, in bytes (§6.2).
pub const MAX_DID_LEN: usize = 512;
/// Longest writer or auditor key id, in bytes (§6.2, §7.3); the entry envelope's bound.
pub const MAX_KEY_ID_LEN: usize = crate::entry::MAX_AUTHOR_LEN;
/// Longest official pseudonym, in characters (§6.2).
pub const MAX_OFFICIAL_LEN: usize = 128;
/// Bytes of the X25519 KEM encapsulation `enc` (§7.1).
pub const ENC_LEN: usize = 32;
/// Bytes of the ChaCha20-Poly1305 tag at the end of every ciphertext (§7.1).
pub const AEAD_TAG_LEN: usize = 16;

/// How much of a bad value an error message repeats.
const SHOWN_CHARS: usize = 96;
/// How much of a JSON parser message an error repeats.
const SHOWN_PARSER_CHARS: usize = 240;

/// The HPKE suite (§7.1): DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, ChaCha20-Poly1305.
type SuiteKem = hpke::kem::X25519HkdfSha256;
type SuiteKdf = hpke::kdf::HkdfSha256;
type SuiteAead = hpke::aead::ChaCha20Poly1305;

// ---------------------------------------------------------------------------------------
// Code lists (§6.3, §6.4)
// ---------------------------------------------------------------------------------------

/// Categories of personal data (§6.3): `(code, description)`. A closed list, so the details
/// carry no free text about the data.
pub const CATEGORIES: &[(&str, &str)] = &[
    ("identity.basic", "Name, date of birth, sex and photograph on the identity record"),
    ("resident-registration", "Resident registration record: address history and household"),
    ("family-relations", "Family relation register: parents, spouse, children, adoption"),
    ("tax", "National and local tax assessments, payments and arrears"),
    ("health", "Health insurance eligibility, claims and medical records"),
    ("welfare", "Social welfare eligibility and benefits"),
    ("vehicle", "Vehicle registration and driving licence"),
    ("real-estate", "Real-estate ownership, land and building registers"),
    ("education", "School enrolment, transcripts and degrees"),
    ("employment", "Employment history and social insurance contributions"),
    ("military-service", "Military service record"),
    ("criminal-record", "Criminal record and investigation data"),
    ("immigration", "Entry and exit records and immigration status"),
];

/// Legal bases and other purposes of a read (§6.4): `(code, description)`. A read that
/// rests on the citizen's consent or a delegation names that entry instead ([`Purpose`]).
pub const PURPOSES: &[(&str, &str)] = &[
    ("law.resident-registration-act", "Resident Registration Act: keeping and correcting the resident register"),
    ("law.family-relations-act", "Act on the Registration of Family Relationships"),
    ("law.tax-basic-act", "Framework Act on National Taxes: assessment, collection, investigation"),
    ("law.local-tax-act", "Local Tax Act: local tax assessment and collection"),
    ("law.national-health-insurance-act", "National Health Insurance Act: eligibility, contributions, claims"),
    ("law.social-welfare-act", "Framework Act on Social Security and welfare laws: eligibility checks"),
    ("law.road-traffic-act", "Road Traffic Act and Motor Vehicle Management Act"),
    ("law.immigration-act", "Immigration Act: entry, exit and stay"),
    ("law.military-service-act", "Military Service Act"),
    ("law.criminal-procedure-act", "Criminal Procedure Act: investigation within its powers"),
    ("service.citizen-request", "A service the citizen asked for that needs the data"),
    ("audit.internal", "Internal audit or data-quality check"),
    ("court-order", "A court warrant or order"),
    ("emergency", "Imminent danger to life, body or property"),
];

/// The description of a category code, if it is one (§6.3).
pub fn category_description(code: &str) -> Option<&'static str> {
    CATEGORIES.iter().find(|(c, _)| *c == code).map(|(_, d)| *d)
}

/// The description of a purpose code, if it is one (§6.4).
pub fn purpose_description(code: &str) -> Option<&'static str> {
    PURPOSES.iter().find(|(c, _)| *c == code).map(|(_, d)| *d)
}

// ---------------------------------------------------------------------------------------
// Keys and DH (§2)
// ---------------------------------------------------------------------------------------

/// The X25519 secret of an Ed25519 key (§2.1): `clamp(SHA-512(seed)[0..32])`, the standard
/// ed25519→x25519 conversion, whose public key is the birational image of the Ed25519 key
/// (`DidKey::x25519_public_key`).
pub fn x25519_secret_from_ed25519(key: &SigningKey) -> [u8; 32] {
    let mut seed = key.to_bytes();
    let mut digest = Sha512::digest(seed);
    seed.zeroize();
    let mut scalar = [0u8; 32];
    for (out, byte) in scalar.iter_mut().zip(digest.iter()) {
        *out = *byte;
    }
    digest.as_mut_slice().zeroize();
    let clamped = curve25519_dalek::scalar::clamp_integer(scalar);
    scalar.zeroize();
    clamped
}

/// The X25519 public key of a secret: `X25519(secret, 9)` (§2.2).
pub fn x25519_public(secret: &[u8; 32]) -> [u8; 32] {
    MontgomeryPoint::mul_base_clamped(*secret).to_bytes()
}

/// `X25519(secret, public)`, refusing the all-zero result a small-order point gives (§2.3).
fn x25519_dh(secret: &[u8; 32], public: &[u8; 32]) -> Result<[u8; 32], AccessError> {
    let shared = MontgomeryPoint(*public).mul_clamped(*secret).to_bytes();
    if shared == [0u8; 32] {
        return Err(AccessError::LowOrderPoint(hex::encode(public)));
    }
    Ok(shared)
}

/// The X25519 public key named by an X25519 key-agreement key id of a did:key,
/// `did:key:z6Mk…#z6LS…` (§7.3).
pub fn parse_x25519_key_id(kid: &str) -> Result<[u8; 32], AccessError> {
    let bad = |reason: String| AccessError::InvalidAuditor { kid: shown(kid), reason };
    if kid.len() > MAX_KEY_ID_LEN {
        return Err(bad(format!("longer than {MAX_KEY_ID_LEN} bytes")));
    }
    let Some((did, fragment)) = kid.split_once('#') else {
        return Err(bad("missing '#' fragment naming the x25519 key".into()));
    };
    let key = DidKey::parse(did).map_err(|e| bad(e.to_string()))?;
    if fragment != key.x25519_multibase() {
        return Err(bad(format!("fragment must be the did's x25519 key {:?}", key.x25519_multibase())));
    }
    Ok(key.x25519_public_key())
}

// ---------------------------------------------------------------------------------------
// Pair key (§3), GGM slot secrets and grants (§4), tags (§5)
// ---------------------------------------------------------------------------------------

/// The secret shared by one writer key and one subject (§3):
/// `BLAKE3-derive_key("dojang access pair key v1", X25519 shared ‖ agency X25519 public ‖
/// subject X25519 public)`. It is the root of the GGM tree of the pair's slot secrets.
#[derive(Clone, PartialEq, Eq)]
pub struct PairKey([u8; 32]);

impl PairKey {
    /// Wraps 32 bytes already known to be a pair key (e.g. kept by a wallet).
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        PairKey(bytes)
    }

    /// The key bytes: the GGM root (§4.1). Handing them out grants every slot.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// σ_j, the secret of slot `j` (§4.1).
    pub fn slot_secret(&self, j: u32) -> [u8; 32] {
        ggm_descend(self.0, u64::from(j), GGM_DEPTH)
    }

    /// t_j, the tag of slot `j` for `subject_did` (§5.1).
    pub fn tag(&self, j: u32, subject_did: &str) -> [u8; 32] {
        let mut secret = self.slot_secret(j);
        let tag = tag_from_secret(&secret, subject_did);
        secret.zeroize();
        tag
    }

    /// The minimal grant of slots `[start, end)` (§4.2); see [`grant_range`].
    pub fn grant(&self, start: u64, end: u64) -> Result<Vec<GrantNode>, AccessError> {
        grant_range(&self.0, start, end)
    }
}

impl Drop for PairKey {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl fmt::Debug for PairKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PairKey(<secret>)")
    }
}

/// The pair key from the raw parts (§3).
fn derive_pair_key(shared: &[u8; 32], agency_x_pub: &[u8; 32], subject_x_pub: &[u8; 32]) -> PairKey {
    let mut h = blake3::Hasher::new_derive_key(PAIR_KEY_CONTEXT);
    h.update(shared);
    h.update(agency_x_pub);
    h.update(subject_x_pub);
    PairKey(*h.finalize().as_bytes())
}

/// One GGM step (§4.1): `child(n, bit) = BLAKE3-keyed_hash(key = n, "dojang/access/ggm" ‖ bit)`.
fn ggm_child(node: &[u8; 32], bit: u8) -> [u8; 32] {
    let mut h = blake3::Hasher::new_keyed(node);
    h.update(GGM_DOMAIN);
    h.update(&[bit]);
    *h.finalize().as_bytes()
}

/// Walks `steps` levels down from `node`, taking the low `steps` bits of `path`, most
/// significant first (§4.1).
fn ggm_descend(mut node: [u8; 32], path: u64, steps: u8) -> [u8; 32] {
    for level in (0..steps).rev() {
        let bit = ((path >> level) & 1) as u8;
        let next = ggm_child(&node, bit);
        node.zeroize();
        node = next;
    }
    node
}

/// t_j from σ_j (§5.1): `BLAKE3-derive_key("dojang access tag v1", σ_j ‖ subject DID)`.
pub fn tag_from_secret(secret: &[u8; 32], subject_did: &str) -> [u8; 32] {
    let mut h = blake3::Hasher::new_derive_key(TAG_CONTEXT);
    h.update(secret);
    h.update(subject_did.as_bytes());
    *h.finalize().as_bytes()
}

/// A node of the GGM tree handed out in a grant (§4.2): the subtree at `depth` (0 the root,
/// 32 a single slot) and position `index` at that depth covers slots
/// `[index · 2^(32−depth), (index + 1) · 2^(32−depth))`, and its `seed` derives exactly
/// their secrets. JSON: `{"depth": …, "index": …, "seed": "<64 hex>"}`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrantNode {
    pub depth: u8,
    pub index: u32,
    #[serde(with = "hex32")]
    pub seed: [u8; 32],
}

impl GrantNode {
    /// The node of the tree rooted at `root` at `depth` and `index` (§4.1).
    pub fn derive(root: &[u8; 32], depth: u8, index: u32) -> Result<GrantNode, AccessError> {
        let node = GrantNode { depth, index, seed: [0u8; 32] };
        node.validate()?;
        Ok(GrantNode { depth, index, seed: ggm_descend(*root, u64::from(index), depth) })
    }

    /// `depth` ≤ 32 and `index` < 2^depth (§4.2).
    pub fn validate(&self) -> Result<(), AccessError> {
        if self.depth > GGM_DEPTH || u64::from(self.index) >> self.depth != 0 {
            return Err(AccessError::InvalidGrant { depth: self.depth, index: self.index });
        }
        Ok(())
    }

    /// The slots `[start, end)` this node covers, or `None` for an invalid node.
    pub fn range(&self) -> Option<(u64, u64)> {
        self.validate().ok()?;
        let width = 1u64 << (GGM_DEPTH - self.depth);
        let start = u64::from(self.index) * width;
        Some((start, start + width))
    }

    /// σ_j if slot `j` is inside this node's subtree, else `None` (§4.2).
    pub fn slot_secret(&self, j: u32) -> Option<[u8; 32]> {
        let (start, end) = self.range()?;
        let j = u64::from(j);
        if j < start || j >= end {
            return None;
        }
        Some(ggm_descend(self.seed, j - start, GGM_DEPTH - self.depth))
    }
}

impl Drop for GrantNode {
    fn drop(&mut self) {
        self.seed.zeroize();
    }
}

impl fmt::Debug for GrantNode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GrantNode").field("depth", &self.depth).field("index", &self.index).field("seed", &"<secret>").finish()
    }
}

/// The minimal set of aligned subtrees of the GGM tree rooted at `root` that covers exactly
/// the slots `[start, end)` (§4.3), in slot order: at most 2 · 32 − 2 nodes. Empty for an
/// empty range; an error if `start > end` or `end > 2^32`.
pub fn grant_range(root: &[u8; 32], start: u64, end: u64) -> Result<Vec<GrantNode>, AccessError> {
    if start > end || end > SLOT_COUNT {
        return Err(AccessError::InvalidRange { start, end });
    }
    let mut nodes = Vec::new();
    let mut pos = start;
    while pos < end {
        // The largest aligned block starting at `pos` that stays inside the range.
        let mut height = u32::from(GGM_DEPTH);
        while height > 0 && (!pos.is_multiple_of(1u64 << height) || pos + (1u64 << height) > end) {
            height -= 1;
        }
        let depth = GGM_DEPTH - height as u8;
        let index = u32::try_from(pos >> height).map_err(|_| AccessError::InvalidRange { start, end })?;
        nodes.push(GrantNode::derive(root, depth, index)?);
        pos += 1u64 << height;
    }
    Ok(nodes)
}

/// Serde of a 32-byte secret as 64 lowercase hex characters.
mod hex32 {
    use serde::Deserialize as _;

    pub fn serialize<S: serde::Serializer>(bytes: &[u8; 32], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(bytes))
    }

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<[u8; 32], D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        let mut out = [0u8; 32];
        if !super::is_lower_hex_64(&s) {
            return Err(serde::de::Error::custom("expected 64 lowercase hex characters"));
        }
        hex::decode_to_slice(s.as_bytes(), &mut out).map_err(serde::de::Error::custom)?;
        Ok(out)
    }
}

// ---------------------------------------------------------------------------------------
// Details (§6)
// ---------------------------------------------------------------------------------------

/// Why data was read (§6.4). JSON: `{"code": …}`, `{"consent": …}` or `{"delegation": …}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Purpose {
    /// A code from [`PURPOSES`].
    Code(String),
    /// The citizen's consent: the leaf hash (64 lowercase hex) of the consent entry.
    Consent(String),
    /// A delegation: the leaf hash (64 lowercase hex) of the delegation entry.
    Delegation(String),
}

/// What the citizen (and the named auditors) learn about one read (§6.1). Only ever on the
/// ledger sealed (§7).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessDetails {
    /// The reading agency's DID.
    pub agency: String,
    /// A pseudonymous id of the official, 1 to 128 characters of `[A-Za-z0-9._:-]`; the
    /// agency maps it to a person.
    pub official: String,
    /// A code from [`CATEGORIES`].
    pub category: String,
    pub purpose: Purpose,
    /// When the data was read, milliseconds since the Unix epoch.
    pub time_ms: u64,
    /// The DID of the citizen whose data was read.
    pub subject: String,
    /// The slot of the (writer key, subject) pair this event uses (§5.2).
    pub slot: u32,
    /// The key id of the writer key that signs the entry.
    pub writer: String,
}

/// The JSON shape of [`AccessDetails`] (§6.1), members in JCS order.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct DetailsWire {
    agency: String,
    category: String,
    official: String,
    purpose: Purpose,
    slot: u32,
    subject: String,
    time: u64,
    v: u64,
    writer: String,
}

impl AccessDetails {
    fn to_wire(&self) -> DetailsWire {
        DetailsWire {
            agency: self.agency.clone(),
            category: self.category.clone(),
            official: self.official.clone(),
            purpose: self.purpose.clone(),
            slot: self.slot,
            subject: self.subject.clone(),
            time: self.time_ms,
            v: VERSION,
            writer: self.writer.clone(),
        }
    }

    /// The canonical JSON: JCS (RFC 8785) with `"v": 1` (§6.1). Not padded.
    pub fn encode(&self) -> Vec<u8> {
        jcs(&self.to_wire())
    }

    /// Decodes details JSON (§6.2): at most [`MAX_DETAILS_LEN`] bytes, this shape with no
    /// unknown member, `v` = 1, valid, and exactly the canonical encoding.
    pub fn decode(bytes: &[u8]) -> Result<AccessDetails, AccessError> {
        let wire: DetailsWire = parse_json(bytes, MAX_DETAILS_LEN)?;
        if wire.v != VERSION {
            return Err(AccessError::UnsupportedVersion(wire.v));
        }
        let details = AccessDetails {
            agency: wire.agency,
            official: wire.official,
            category: wire.category,
            purpose: wire.purpose,
            time_ms: wire.time,
            subject: wire.subject,
            slot: wire.slot,
            writer: wire.writer,
        };
        details.validate()?;
        if details.encode() != bytes {
            return Err(AccessError::NotCanonical);
        }
        Ok(details)
    }

    /// The stateless rules of §6.2.
    pub fn validate(&self) -> Result<(), AccessError> {
        check_did("agency", &self.agency)?;
        check_did("subject", &self.subject)?;
        let official_ok = !self.official.is_empty()
            && self.official.len() <= MAX_OFFICIAL_LEN
            && self.official.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'));
        if !official_ok {
            return Err(invalid("official", &self.official, "must be 1 to 128 characters of [A-Za-z0-9._:-]"));
        }
        if category_description(&self.category).is_none() {
            return Err(AccessError::UnknownCategory(shown(&self.category)));
        }
        match &self.purpose {
            Purpose::Code(code) => {
                if purpose_description(code).is_none() {
                    return Err(AccessError::UnknownPurpose(shown(code)));
                }
            }
            Purpose::Consent(leaf) | Purpose::Delegation(leaf) => {
                if !is_lower_hex_64(leaf) {
                    return Err(invalid(
                        "purpose",
                        leaf,
                        "a consent or delegation must be an entry leaf hash of 64 lowercase hex characters",
                    ));
                }
            }
        }
        if self.time_ms > MAX_SAFE_INTEGER {
            return Err(invalid("time", &self.time_ms.to_string(), "is above 2^53 - 1"));
        }
        if self.writer.len() > MAX_KEY_ID_LEN {
            return Err(invalid("writer", &self.writer, "is longer than 512 bytes"));
        }
        DidKey::parse_key_id(&self.writer).map_err(|e| invalid("writer", &self.writer, &e.to_string()))?;
        Ok(())
    }
}

/// A DID (W3C DID 1.0 §3.1 syntax, no path, query or fragment), 1 to 512 bytes (§6.2).
fn check_did(field: &'static str, value: &str) -> Result<(), AccessError> {
    if value.len() > MAX_DID_LEN {
        return Err(invalid(field, value, "is longer than 512 bytes"));
    }
    let Some(rest) = value.strip_prefix("did:") else {
        return Err(invalid(field, value, "is not a did (must start with \"did:\")"));
    };
    let Some((method, msid)) = rest.split_once(':') else {
        return Err(invalid(field, value, "has no method-specific id"));
    };
    if method.is_empty() || !method.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()) {
        return Err(invalid(field, value, "method name must be lowercase letters and digits"));
    }
    if msid.is_empty() || msid.ends_with(':') {
        return Err(invalid(field, value, "method-specific id is empty or ends with ':'"));
    }
    let bytes = msid.as_bytes();
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'%' {
            let hex_ok = bytes.get(i + 1).is_some_and(u8::is_ascii_hexdigit) && bytes.get(i + 2).is_some_and(u8::is_ascii_hexdigit);
            if !hex_ok {
                return Err(invalid(field, value, "'%' must start a percent-encoded byte"));
            }
            i += 3;
        } else if b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b':') {
            i += 1;
        } else {
            return Err(invalid(field, value, "method-specific id has a character outside [A-Za-z0-9._:%-]"));
        }
    }
    Ok(())
}

/// Exactly 64 lowercase hex characters.
fn is_lower_hex_64(value: &str) -> bool {
    value.len() == 64 && value.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// The padded plaintext (§6.5): the details JSON, then zero bytes up to the next multiple of
/// [`PAD_BLOCK`] (no padding when it is already one).
fn pad(mut json: Vec<u8>) -> Vec<u8> {
    let padded = json.len().div_ceil(PAD_BLOCK) * PAD_BLOCK;
    json.resize(padded, 0);
    json
}

/// The details JSON inside a padded plaintext (§6.5, §9.1 step 3): trailing zero bytes
/// removed, which must have been the minimal padding. JSON never contains a raw zero byte.
fn unpad(plaintext: &[u8]) -> Result<&[u8], AccessError> {
    let json_len = plaintext.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
    if json_len == 0 || json_len.div_ceil(PAD_BLOCK) * PAD_BLOCK != plaintext.len() {
        return Err(AccessError::BadPadding { len: plaintext.len(), json_len });
    }
    plaintext.get(..json_len).ok_or(AccessError::BadPadding { len: plaintext.len(), json_len })
}

// ---------------------------------------------------------------------------------------
// Payload (§8)
// ---------------------------------------------------------------------------------------

/// One HPKE encapsulation and ciphertext (§7.1). JSON: `{"enc": b64url, "ct": b64url}`,
/// unpadded base64url (RFC 4648 §5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seal {
    /// The KEM encapsulation: the sender's ephemeral X25519 public key.
    pub enc: [u8; ENC_LEN],
    /// ChaCha20-Poly1305 ciphertext of the padded details, with its 16-byte tag.
    pub ct: Vec<u8>,
}

/// The details sealed to one auditor (§7.3). JSON: `{"kid": …, "enc": …, "ct": …}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditorSeal {
    /// The auditor's X25519 key id, `did:key:z6Mk…#z6LS…`.
    pub kid: String,
    pub seal: Seal,
}

/// An auditor the writer seals the details to as well (§7.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Auditor {
    /// `did:key:z6Mk…#z6LS…`, the X25519 key-agreement key id of the auditor's did:key.
    pub kid: String,
    /// The X25519 public key `kid` names.
    pub x_pub: [u8; 32],
}

impl Auditor {
    /// The auditor of a did:key: its X25519 key id and key.
    pub fn from_did_key(key: &DidKey) -> Auditor {
        Auditor { kid: key.x25519_key_id(), x_pub: key.x25519_public_key() }
    }
}

/// The payload of an `access-event/v1` entry (§8.1): RFC 8785 (JCS) JSON
/// `{"auditors": [...], "seal": {"ct", "enc"}, "tag": hex, "v": 1}`, `auditors` omitted
/// when empty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessEvent {
    /// t_j of the event's slot (§5.1).
    pub tag: [u8; 32],
    /// The details sealed to the subject.
    pub seal: Seal,
    /// The details sealed to each auditor, strictly ordered by `kid`.
    pub auditors: Vec<AuditorSeal>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SealWire {
    ct: String,
    enc: String,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct AuditorWire {
    ct: String,
    enc: String,
    kid: String,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct EventWire {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    auditors: Vec<AuditorWire>,
    seal: SealWire,
    tag: String,
    v: u64,
}

fn b64url(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// Longest base64url text of a [`MAX_CT_LEN`]-byte ciphertext.
const MAX_CT_TEXT_LEN: usize = MAX_CT_LEN.div_ceil(3) * 4;

fn seal_from_wire(field: &'static str, enc: &str, ct: &str) -> Result<Seal, AccessError> {
    // Bound the text before decoding it (§8.2).
    if ct.len() > MAX_CT_TEXT_LEN {
        return Err(AccessError::CiphertextLength { field, len: ct.len() / 4 * 3, reason: "over the limit of 4096 bytes" });
    }
    let bad = |what: &str, value: &str| AccessError::InvalidEncoding {
        field,
        reason: format!("{what} {:?} is not unpadded base64url", shown(value)),
    };
    let enc_bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(enc).map_err(|_| bad("enc", enc))?;
    let enc: [u8; ENC_LEN] = enc_bytes
        .try_into()
        .map_err(|v: Vec<u8>| AccessError::InvalidEncoding { field, reason: format!("enc is {} bytes, not {ENC_LEN}", v.len()) })?;
    let ct = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(ct).map_err(|_| bad("ct", ct))?;
    let seal = Seal { enc, ct };
    seal.validate(field)?;
    Ok(seal)
}

impl Seal {
    fn to_wire(&self) -> SealWire {
        SealWire { ct: b64url(&self.ct), enc: b64url(&self.enc) }
    }

    /// The ciphertext is a padded plaintext plus the AEAD tag: 16 + 512·k bytes, k ≥ 1, at
    /// most [`MAX_CT_LEN`] (§8.2).
    fn validate(&self, field: &'static str) -> Result<(), AccessError> {
        let len = self.ct.len();
        if len > MAX_CT_LEN {
            return Err(AccessError::CiphertextLength { field, len, reason: "over the limit of 4096 bytes" });
        }
        if len <= AEAD_TAG_LEN || !(len - AEAD_TAG_LEN).is_multiple_of(PAD_BLOCK) {
            return Err(AccessError::CiphertextLength { field, len, reason: "not 16 + a positive multiple of 512 bytes" });
        }
        Ok(())
    }
}

impl AccessEvent {
    /// An event about nobody, derived from `seed`: a random-looking tag and a ciphertext of
    /// one padded block that no key opens. Indistinguishable on the ledger from a real
    /// event, so agencies can send it as cover traffic; tests and benchmarks use it as
    /// filler.
    pub fn cover(seed: &[u8]) -> AccessEvent {
        let mut xof = blake3::Hasher::new_derive_key("dojang access cover event v1").update(seed).finalize_xof();
        let mut tag = [0u8; 32];
        let mut enc = [0u8; ENC_LEN];
        let mut ct = vec![0u8; PAD_BLOCK + AEAD_TAG_LEN];
        xof.fill(&mut tag);
        xof.fill(&mut enc);
        xof.fill(&mut ct);
        AccessEvent { tag, seal: Seal { enc, ct }, auditors: Vec::new() }
    }

    fn to_wire(&self) -> EventWire {
        EventWire {
            auditors: self
                .auditors
                .iter()
                .map(|a| AuditorWire { ct: b64url(&a.seal.ct), enc: b64url(&a.seal.enc), kid: a.kid.clone() })
                .collect(),
            seal: self.seal.to_wire(),
            tag: hex::encode(self.tag),
            v: VERSION,
        }
    }

    /// The canonical payload bytes: JCS (RFC 8785) of the event (§8.1).
    pub fn encode(&self) -> Vec<u8> {
        jcs(&self.to_wire())
    }

    /// Decodes a payload (§8.2): at most [`MAX_EVENT_LEN`] bytes, this shape with no unknown
    /// member, `v` = 1, valid, and exactly the canonical encoding.
    pub fn decode(payload: &[u8]) -> Result<AccessEvent, AccessError> {
        let wire: EventWire = parse_json(payload, MAX_EVENT_LEN)?;
        if wire.v != VERSION {
            return Err(AccessError::UnsupportedVersion(wire.v));
        }
        if wire.auditors.len() > MAX_AUDITORS {
            return Err(AccessError::TooManyAuditors { count: wire.auditors.len(), max: MAX_AUDITORS });
        }
        let mut tag = [0u8; 32];
        if !is_lower_hex_64(&wire.tag) || hex::decode_to_slice(&wire.tag, &mut tag).is_err() {
            return Err(AccessError::InvalidTag(shown(&wire.tag)));
        }
        let seal = seal_from_wire("seal", &wire.seal.enc, &wire.seal.ct)?;
        let auditors = wire
            .auditors
            .iter()
            .map(|a| Ok(AuditorSeal { kid: a.kid.clone(), seal: seal_from_wire("auditors", &a.enc, &a.ct)? }))
            .collect::<Result<Vec<_>, AccessError>>()?;
        let event = AccessEvent { tag, seal, auditors };
        event.validate()?;
        if event.encode() != payload {
            return Err(AccessError::NotCanonical);
        }
        Ok(event)
    }

    /// The stateless rules of §8.2: ciphertext lengths, at most [`MAX_AUDITORS`] auditor
    /// seals, strictly ordered by kid, each kid a did:key X25519 key id. Says nothing about
    /// whether the seals open: only their recipients can tell.
    pub fn validate(&self) -> Result<(), AccessError> {
        self.seal.validate("seal")?;
        if self.auditors.len() > MAX_AUDITORS {
            return Err(AccessError::TooManyAuditors { count: self.auditors.len(), max: MAX_AUDITORS });
        }
        let mut previous: Option<&str> = None;
        for a in &self.auditors {
            if previous.is_some_and(|p| p >= a.kid.as_str()) {
                return Err(AccessError::InvalidAuditor {
                    kid: shown(&a.kid),
                    reason: "auditor seals must be sorted by kid, each kid once".into(),
                });
            }
            previous = Some(&a.kid);
            parse_x25519_key_id(&a.kid)?;
            a.seal.validate("auditors")?;
        }
        Ok(())
    }
}

/// JCS of a payload. Serialising these plain structs cannot fail (string keys, integers
/// only); an empty result would be refused by every decoder.
fn jcs<T: Serialize>(value: &T) -> Vec<u8> {
    serde_jcs::to_vec(value).unwrap_or_default()
}

fn parse_json<'a, T: Deserialize<'a>>(bytes: &'a [u8], max: usize) -> Result<T, AccessError> {
    if bytes.len() > max {
        return Err(AccessError::PayloadTooLarge { len: bytes.len(), max });
    }
    serde_json::from_slice(bytes).map_err(|e| AccessError::Malformed(crate::text::shown_n(&e.to_string(), SHOWN_PARSER_CHARS)))
}

// ---------------------------------------------------------------------------------------
// HPKE (§7)
// ---------------------------------------------------------------------------------------

/// The HPKE `info` of an event (§7.2): `"dojang/access-event/v1\0" ‖ genesis hash ‖ tag`.
pub fn hpke_info(genesis_hash: &Hash, tag: &[u8; 32]) -> Vec<u8> {
    let mut info = Vec::with_capacity(HPKE_INFO_DOMAIN.len() + 64);
    info.extend_from_slice(HPKE_INFO_DOMAIN);
    info.extend_from_slice(genesis_hash.as_bytes());
    info.extend_from_slice(tag);
    info
}

/// Base-mode single-shot HPKE seal to `recipient` (§7.1).
fn hpke_seal(
    recipient: &[u8; 32],
    info: &[u8],
    aad: &[u8],
    plaintext: &[u8],
    rng: &mut (impl RngCore + CryptoRng),
) -> Result<Seal, AccessError> {
    let pk = <SuiteKem as hpke::Kem>::PublicKey::from_bytes(recipient).map_err(|_| AccessError::Encrypt(hex::encode(recipient)))?;
    let (enc, ct) = hpke::single_shot_seal::<SuiteAead, SuiteKdf, SuiteKem, _>(&hpke::OpModeS::Base, &pk, info, plaintext, aad, rng)
        .map_err(|_| AccessError::Encrypt(hex::encode(recipient)))?;
    let enc: [u8; ENC_LEN] = enc.to_bytes().as_slice().try_into().map_err(|_| AccessError::Encrypt(hex::encode(recipient)))?;
    Ok(Seal { enc, ct })
}

/// Base-mode single-shot HPKE open with the X25519 `secret` (§7.1). Every failure — a
/// wrong key, a tampered `enc`, `ct` or `info`, a small-order `enc` — is [`AccessError::Decrypt`].
fn hpke_open(secret: &[u8; 32], info: &[u8], aad: &[u8], seal: &Seal) -> Result<Vec<u8>, AccessError> {
    let sk = <SuiteKem as hpke::Kem>::PrivateKey::from_bytes(secret).map_err(|_| AccessError::Decrypt)?;
    let enc = <SuiteKem as hpke::Kem>::EncappedKey::from_bytes(&seal.enc).map_err(|_| AccessError::Decrypt)?;
    hpke::single_shot_open::<SuiteAead, SuiteKdf, SuiteKem>(&hpke::OpModeR::Base, &sk, &enc, info, &seal.ct, aad)
        .map_err(|_| AccessError::Decrypt)
}

// ---------------------------------------------------------------------------------------
// Writer side (§7.4)
// ---------------------------------------------------------------------------------------

/// An agency's writer key, able to compute pair keys and seal events (§2.1, §7.4).
pub struct AgencyWriter {
    x_secret: [u8; 32],
    x_public: [u8; 32],
    key_id: String,
    agency: String,
}

impl AgencyWriter {
    /// The writer of `key`, known as `key_id` (its did:key key id, as listed in the genesis
    /// file), for the agency `agency_did`.
    pub fn new(key: &SigningKey, key_id: &str, agency_did: &str) -> Result<AgencyWriter, AccessError> {
        let did_key = DidKey::from_verifying_key(&key.verifying_key());
        if did_key.key_id() != key_id {
            return Err(AccessError::KeyMismatch {
                key_id: shown(key_id),
                reason: format!("the signing key's key id is {}", did_key.key_id()),
            });
        }
        check_did("agency", agency_did)?;
        Ok(AgencyWriter {
            x_secret: x25519_secret_from_ed25519(key),
            x_public: did_key.x25519_public_key(),
            key_id: key_id.to_owned(),
            agency: agency_did.to_owned(),
        })
    }

    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    pub fn agency(&self) -> &str {
        &self.agency
    }

    /// The writer's X25519 public key (§2.1).
    pub fn x25519_public(&self) -> [u8; 32] {
        self.x_public
    }

    /// The pair key shared with the subject whose keyAgreement key is `subject_x_pub` (§3).
    pub fn pair_key(&self, subject_x_pub: &[u8; 32]) -> Result<PairKey, AccessError> {
        let mut shared = x25519_dh(&self.x_secret, subject_x_pub)?;
        let key = derive_pair_key(&shared, &self.x_public, subject_x_pub);
        shared.zeroize();
        Ok(key)
    }

    /// Seals the details of the read at `slot` of the pair (this writer key, `subject_did`)
    /// to the subject and to each auditor (§7.4). The caller keeps the per-subject slot
    /// counter and uses 0, 1, 2, … without gaps (§5.2).
    #[allow(clippy::too_many_arguments)]
    pub fn seal_event(
        &self,
        genesis_hash: &Hash,
        subject_did: &str,
        subject_x_pub: &[u8; 32],
        slot: u32,
        details: &AccessDetails,
        auditors: &[Auditor],
        rng: &mut (impl RngCore + CryptoRng),
    ) -> Result<AccessEvent, AccessError> {
        details.validate()?;
        let mismatch = |field: &'static str, expected: &str, actual: &str| AccessError::DetailsMismatch {
            field,
            expected: shown(expected),
            actual: shown(actual),
        };
        if details.slot != slot {
            return Err(mismatch("slot", &slot.to_string(), &details.slot.to_string()));
        }
        if details.subject != subject_did {
            return Err(mismatch("subject", subject_did, &details.subject));
        }
        if details.writer != self.key_id {
            return Err(mismatch("writer", &self.key_id, &details.writer));
        }
        if details.agency != self.agency {
            return Err(mismatch("agency", &self.agency, &details.agency));
        }
        let tag = self.pair_key(subject_x_pub)?.tag(slot, subject_did);
        seal_with_tag(genesis_hash, tag, subject_x_pub, details, auditors, rng)
    }
}

impl Drop for AgencyWriter {
    fn drop(&mut self) {
        self.x_secret.zeroize();
    }
}

impl fmt::Debug for AgencyWriter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AgencyWriter").field("key_id", &self.key_id).field("agency", &self.agency).finish_non_exhaustive()
    }
}

/// §7.4 steps 4–7: checks the auditors, pads and seals the details under `tag`, checks the size.
fn seal_with_tag(
    genesis_hash: &Hash,
    tag: [u8; 32],
    subject_x_pub: &[u8; 32],
    details: &AccessDetails,
    auditors: &[Auditor],
    rng: &mut (impl RngCore + CryptoRng),
) -> Result<AccessEvent, AccessError> {
    if auditors.len() > MAX_AUDITORS {
        return Err(AccessError::TooManyAuditors { count: auditors.len(), max: MAX_AUDITORS });
    }
    let mut sorted: Vec<&Auditor> = auditors.iter().collect();
    sorted.sort_by(|a, b| a.kid.cmp(&b.kid));
    for pair in sorted.windows(2) {
        if let [a, b] = pair
            && a.kid == b.kid
        {
            return Err(AccessError::InvalidAuditor { kid: shown(&a.kid), reason: "named twice".into() });
        }
    }
    for a in &sorted {
        if parse_x25519_key_id(&a.kid)? != a.x_pub {
            return Err(AccessError::InvalidAuditor { kid: shown(&a.kid), reason: "x_pub is not the key the kid names".into() });
        }
    }
    let json = details.encode();
    if json.len() > MAX_DETAILS_LEN {
        return Err(AccessError::PayloadTooLarge { len: json.len(), max: MAX_DETAILS_LEN });
    }
    let mut plaintext = pad(json);
    let info = hpke_info(genesis_hash, &tag);
    let result = (|| {
        let seal = hpke_seal(subject_x_pub, &info, b"", &plaintext, rng)?;
        let auditors = sorted
            .iter()
            .map(|a| Ok(AuditorSeal { kid: a.kid.clone(), seal: hpke_seal(&a.x_pub, &info, b"", &plaintext, rng)? }))
            .collect::<Result<Vec<_>, AccessError>>()?;
        Ok(AccessEvent { tag, seal, auditors })
    })();
    plaintext.zeroize();
    let event = result?;
    event.validate()?;
    let len = event.encode().len();
    if len > MAX_EVENT_LEN {
        return Err(AccessError::PayloadTooLarge { len, max: MAX_EVENT_LEN });
    }
    Ok(event)
}

// ---------------------------------------------------------------------------------------
// Subject and auditor side (§9)
// ---------------------------------------------------------------------------------------

/// A citizen's key-agreement key and DID: finds, opens and checks their events (§9.1).
pub struct SubjectKey {
    x_secret: [u8; 32],
    x_public: [u8; 32],
    did: String,
}

impl SubjectKey {
    /// From the Ed25519 key whose X25519 image is the DID document's keyAgreement key, as in
    /// did:key and the did:dojang documents Dojang makes (§2.2).
    pub fn from_ed25519(key: &SigningKey, subject_did: &str) -> Result<SubjectKey, AccessError> {
        let x_public = DidKey::from_verifying_key(&key.verifying_key()).x25519_public_key();
        SubjectKey::build(x25519_secret_from_ed25519(key), x_public, subject_did)
    }

    /// From a raw X25519 secret whose public key is the DID document's keyAgreement key (§2.2).
    pub fn from_x25519_secret(secret: [u8; 32], subject_did: &str) -> Result<SubjectKey, AccessError> {
        SubjectKey::build(secret, x25519_public(&secret), subject_did)
    }

    fn build(x_secret: [u8; 32], x_public: [u8; 32], did: &str) -> Result<SubjectKey, AccessError> {
        let key = SubjectKey { x_secret, x_public, did: did.to_owned() };
        check_did("subject", did)?;
        Ok(key)
    }

    pub fn did(&self) -> &str {
        &self.did
    }

    /// The X25519 public key: the DID document's keyAgreement key (§2.2).
    pub fn x25519_public(&self) -> [u8; 32] {
        self.x_public
    }

    /// The pair key shared with the writer key `writer_key_id` (a did:key key id) (§3).
    pub fn pair_key(&self, writer_key_id: &str) -> Result<PairKey, AccessError> {
        if writer_key_id.len() > MAX_KEY_ID_LEN {
            return Err(AccessError::InvalidKeyId { key_id: shown(writer_key_id), reason: "longer than 512 bytes".into() });
        }
        let writer = DidKey::parse_key_id(writer_key_id)
            .map_err(|e| AccessError::InvalidKeyId { key_id: shown(writer_key_id), reason: e.to_string() })?;
        let agency_x_pub = writer.x25519_public_key();
        let mut shared = x25519_dh(&self.x_secret, &agency_x_pub)?;
        let key = derive_pair_key(&shared, &agency_x_pub, &self.x_public);
        shared.zeroize();
        Ok(key)
    }

    /// Opens an event sealed to this subject and checks it (§9.1): the seal opens, the
    /// details are valid and canonical, name this subject, and the event's tag is the tag of
    /// the details' slot for the pair (details' writer, this subject).
    pub fn open(&self, genesis_hash: &Hash, event: &AccessEvent) -> Result<AccessDetails, AccessError> {
        event.validate()?;
        let details = open_details(&self.x_secret, genesis_hash, event, &event.seal)?;
        if details.subject != self.did {
            return Err(AccessError::SubjectMismatch { expected: shown(&self.did), actual: shown(&details.subject) });
        }
        let expected = self.pair_key(&details.writer)?.tag(details.slot, &self.did);
        if expected != event.tag {
            return Err(AccessError::TagMismatch { slot: details.slot, writer: shown(&details.writer) });
        }
        Ok(details)
    }

    /// Opens an event whose tag the caller has already proven to be this subject's tag for
    /// a known (writer, slot) — as `audit::verify_history` does from the subject's own key
    /// — and which the caller will compare with the details' `writer` and `slot`. Decrypts,
    /// validates and checks the subject like [`SubjectKey::open`], without recomputing the
    /// pair key (an X25519 operation) per event.
    pub fn open_proven(&self, genesis_hash: &Hash, event: &AccessEvent) -> Result<AccessDetails, AccessError> {
        event.validate()?;
        let details = open_details(&self.x_secret, genesis_hash, event, &event.seal)?;
        if details.subject != self.did {
            return Err(AccessError::SubjectMismatch { expected: shown(&self.did), actual: shown(&details.subject) });
        }
        Ok(details)
    }

    /// Opens the event an entry carries (§9.3): the entry is an `access-event/v1` and its
    /// author is the writer the details name, then [`SubjectKey::open`]. The entry's
    /// signature is the caller's to check (admission or a proof bundle).
    pub fn open_entry(&self, genesis_hash: &Hash, entry: &Entry) -> Result<AccessDetails, AccessError> {
        let event = event_of_entry(entry)?;
        let details = self.open(genesis_hash, &event)?;
        check_author(entry, &details)?;
        Ok(details)
    }
}

impl Drop for SubjectKey {
    fn drop(&mut self) {
        self.x_secret.zeroize();
    }
}

impl fmt::Debug for SubjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SubjectKey").field("did", &self.did).finish_non_exhaustive()
    }
}

/// Opens the seal addressed to the auditor key `kid` with its X25519 secret (§9.2). An
/// auditor cannot check the tag (it has no pair key): it learns what the writer sealed to it.
pub fn open_as_auditor(x_secret: &[u8; 32], kid: &str, genesis_hash: &Hash, event: &AccessEvent) -> Result<AccessDetails, AccessError> {
    event.validate()?;
    let seal = event.auditors.iter().find(|a| a.kid == kid).ok_or_else(|| AccessError::NotARecipient(shown(kid)))?;
    open_details(x_secret, genesis_hash, event, &seal.seal)
}

/// [`open_as_auditor`] on an entry, also checking its kind and author (§9.3).
pub fn open_entry_as_auditor(x_secret: &[u8; 32], kid: &str, genesis_hash: &Hash, entry: &Entry) -> Result<AccessDetails, AccessError> {
    let event = event_of_entry(entry)?;
    let details = open_as_auditor(x_secret, kid, genesis_hash, &event)?;
    check_author(entry, &details)?;
    Ok(details)
}

fn event_of_entry(entry: &Entry) -> Result<AccessEvent, AccessError> {
    if entry.kind != Kind::AccessEvent {
        return Err(AccessError::WrongKind(entry.kind.name()));
    }
    AccessEvent::decode(&entry.payload)
}

fn check_author(entry: &Entry, details: &AccessDetails) -> Result<(), AccessError> {
    if entry.author != details.writer {
        return Err(AccessError::AuthorMismatch { author: shown(&entry.author), writer: shown(&details.writer) });
    }
    Ok(())
}

/// §9.1 steps 2–4: HPKE-open `seal`, remove the padding, decode the details.
fn open_details(x_secret: &[u8; 32], genesis_hash: &Hash, event: &AccessEvent, seal: &Seal) -> Result<AccessDetails, AccessError> {
    let info = hpke_info(genesis_hash, &event.tag);
    let mut plaintext = hpke_open(x_secret, &info, b"", seal)?;
    let details = unpad(&plaintext).and_then(AccessDetails::decode);
    plaintext.zeroize();
    details
}

// ---------------------------------------------------------------------------------------
// Errors (§11)
// ---------------------------------------------------------------------------------------

/// Why an access event, its details, a key or a grant is refused. Messages are lowercase
/// and name the bad value; none repeats a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AccessError {
    #[error("access payload is {len} bytes, over the limit of {max}")]
    PayloadTooLarge { len: usize, max: usize },
    #[error("malformed access payload: {0}")]
    Malformed(String),
    #[error("access payload is not canonical: it must be the rfc 8785 (jcs) form, with an empty auditor list omitted")]
    NotCanonical,
    #[error("unsupported access payload version {0} (expected 1)")]
    UnsupportedVersion(u64),
    #[error("invalid tag {0:?}: must be 64 lowercase hex characters")]
    InvalidTag(String),
    #[error("invalid {field}: {reason}")]
    InvalidEncoding { field: &'static str, reason: String },
    #[error("{field} ciphertext of {len} bytes: {reason}")]
    CiphertextLength { field: &'static str, len: usize, reason: &'static str },
    #[error("event names {count} auditors, over the limit of {max}")]
    TooManyAuditors { count: usize, max: usize },
    #[error("invalid auditor {kid:?}: {reason}")]
    InvalidAuditor { kid: String, reason: String },
    #[error("invalid {field} {value:?}: {reason}")]
    InvalidDetails { field: &'static str, value: String, reason: String },
    #[error("unknown data category {0:?}")]
    UnknownCategory(String),
    #[error("unknown purpose code {0:?}")]
    UnknownPurpose(String),
    #[error("details {field} is {actual:?}, expected {expected:?}")]
    DetailsMismatch { field: &'static str, expected: String, actual: String },
    #[error("invalid writer key id {key_id:?}: {reason}")]
    InvalidKeyId { key_id: String, reason: String },
    #[error("key id {key_id:?} does not name the given key: {reason}")]
    KeyMismatch { key_id: String, reason: String },
    #[error("x25519 key {0} is of small order: the shared secret would be zero")]
    LowOrderPoint(String),
    #[error("cannot seal to x25519 key {0}")]
    Encrypt(String),
    #[error("the seal does not open with this key (wrong key, other ledger, or tampered event)")]
    Decrypt,
    #[error("sealed plaintext of {len} bytes is not details json ({json_len} bytes) with minimal zero padding")]
    BadPadding { len: usize, json_len: usize },
    #[error("the details are about {actual:?}, not {expected:?}")]
    SubjectMismatch { expected: String, actual: String },
    #[error("the event's tag is not the tag of slot {slot} of writer {writer:?} for this subject")]
    TagMismatch { slot: u32, writer: String },
    #[error("the entry's author {author:?} is not the writer {writer:?} the details name")]
    AuthorMismatch { author: String, writer: String },
    #[error("entry kind {0} is not access-event/v1")]
    WrongKind(&'static str),
    #[error("the event has no seal for auditor {0:?}")]
    NotARecipient(String),
    #[error("invalid slot range [{start}, {end}): need start <= end <= 2^32")]
    InvalidRange { start: u64, end: u64 },
    #[error("invalid grant node at depth {depth}, index {index}: need depth <= 32 and index < 2^depth")]
    InvalidGrant { depth: u8, index: u32 },
}

impl AccessError {
    /// A stable machine-readable slug (§11), for problem+json `type` URIs.
    pub fn slug(&self) -> &'static str {
        match self {
            AccessError::PayloadTooLarge { .. } => "access-payload-too-large",
            AccessError::Malformed(_) => "access-payload-malformed",
            AccessError::NotCanonical => "access-payload-not-canonical",
            AccessError::UnsupportedVersion(_) => "access-unsupported-version",
            AccessError::InvalidTag(_) | AccessError::InvalidEncoding { .. } | AccessError::CiphertextLength { .. } => {
                "access-payload-invalid"
            }
            AccessError::TooManyAuditors { .. } | AccessError::InvalidAuditor { .. } => "access-invalid-auditor",
            AccessError::InvalidDetails { .. } | AccessError::BadPadding { .. } => "access-invalid-details",
            AccessError::UnknownCategory(_) => "access-unknown-category",
            AccessError::UnknownPurpose(_) => "access-unknown-purpose",
            AccessError::DetailsMismatch { .. } => "access-details-mismatch",
            AccessError::InvalidKeyId { .. } | AccessError::KeyMismatch { .. } => "access-invalid-key",
            AccessError::LowOrderPoint(_) => "access-low-order-key",
            AccessError::Encrypt(_) => "access-seal-failed",
            AccessError::Decrypt => "access-decrypt-failed",
            AccessError::SubjectMismatch { .. } => "access-subject-mismatch",
            AccessError::TagMismatch { .. } => "access-tag-mismatch",
            AccessError::AuthorMismatch { .. } => "access-author-mismatch",
            AccessError::WrongKind(_) => "access-wrong-kind",
            AccessError::NotARecipient(_) => "access-not-a-recipient",
            AccessError::InvalidRange { .. } | AccessError::InvalidGrant { .. } => "access-invalid-grant",
        }
    }
}

fn invalid(field: &'static str, value: &str, reason: &str) -> AccessError {
    AccessError::InvalidDetails { field, value: shown(value), reason: reason.to_owned() }
}

/// A bad value as repeated in an error: at most [`SHOWN_CHARS`] characters, then an
/// ellipsis. Messages format it with `{:?}`, which escapes control characters.
fn shown(value: &str) -> String {
    crate::text::shown_n(value, SHOWN_CHARS)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]
    use super::*;
    use crate::entry::UnsignedEntry;
    use crate::testing::TestRng;
    use proptest::prelude::*;

    /// 2026-12-04T10:00:00Z.
    const T0: u64 = 1_796_378_400_000;
    const AGENCY: &str = "did:dojang:J8EcJZ4JZ8j1j7gbqeZaTa";

    fn ed(seed: u8) -> SigningKey {
        SigningKey::from_bytes(&[seed; 32])
    }
    fn dk(seed: u8) -> DidKey {
        DidKey::from_verifying_key(&ed(seed).verifying_key())
    }
    fn writer(seed: u8) -> AgencyWriter {
        AgencyWriter::new(&ed(seed), &dk(seed).key_id(), AGENCY).unwrap()
    }
    /// A citizen whose DID is the did:key of `seed`.
    fn subject(seed: u8) -> SubjectKey {
        SubjectKey::from_ed25519(&ed(seed), &dk(seed).did()).unwrap()
    }
    fn auditor(seed: u8) -> (Auditor, [u8; 32]) {
        (Auditor::from_did_key(&dk(seed)), x25519_secret_from_ed25519(&ed(seed)))
    }
    fn genesis() -> Hash {
        Hash([7u8; 32])
    }
    fn details(w: &AgencyWriter, s: &SubjectKey, slot: u32) -> AccessDetails {
        AccessDetails {
            agency: w.agency().to_owned(),
            official: "off-7f3a.9c:01".into(),
            category: "resident-registration".into(),
            purpose: Purpose::Code("law.resident-registration-act".into()),
            time_ms: T0 + u64::from(slot),
            subject: s.did().to_owned(),
            slot,
            writer: w.key_id().to_owned(),
        }
    }
    fn seal(w: &AgencyWriter, s: &SubjectKey, slot: u32, auditors: &[Auditor], rng: u64) -> AccessEvent {
        w.seal_event(&genesis(), s.did(), &s.x25519_public(), slot, &details(w, s, slot), auditors, &mut TestRng(rng)).unwrap()
    }

    // --- keys (§2) ---------------------------------------------------------------------

    #[test]
    fn writer_x25519_secret_matches_did_key_public() {
        for seed in [1u8, 2, 99, 255] {
            let secret = x25519_secret_from_ed25519(&ed(seed));
            assert_eq!(x25519_public(&secret), dk(seed).x25519_public_key(), "seed {seed}");
            // The same scalar ed25519-dalek signs with, clamped.
            assert_eq!(secret, curve25519_dalek::scalar::clamp_integer(ed(seed).to_scalar_bytes()));
            assert_eq!(writer(seed).x25519_public(), dk(seed).x25519_public_key());
        }
    }

    #[test]
    fn pair_key_is_shared_and_pair_specific() {
        let (w, s) = (writer(1), subject(2));
        let agency_side = w.pair_key(&s.x25519_public()).unwrap();
        let subject_side = s.pair_key(w.key_id()).unwrap();
        assert_eq!(agency_side, subject_side);
        // The same citizen through a raw X25519 secret.
        let raw = SubjectKey::from_x25519_secret(x25519_secret_from_ed25519(&ed(2)), s.did()).unwrap();
        assert_eq!(raw.x25519_public(), s.x25519_public());
        assert_eq!(raw.pair_key(w.key_id()).unwrap(), agency_side);
        // Other writer, other subject: other keys.
        assert_ne!(writer(3).pair_key(&s.x25519_public()).unwrap(), agency_side);
        assert_ne!(w.pair_key(&subject(3).x25519_public()).unwrap(), agency_side);
        // The formula of §3, recomputed from its parts.
        let shared = MontgomeryPoint(s.x25519_public()).mul_clamped(x25519_secret_from_ed25519(&ed(1))).to_bytes();
        let mut material = shared.to_vec();
        material.extend_from_slice(&dk(1).x25519_public_key());
        material.extend_from_slice(&s.x25519_public());
        assert_eq!(agency_side.as_bytes(), &blake3::derive_key(PAIR_KEY_CONTEXT, &material));
    }

    #[test]
    fn small_order_keys_are_refused() {
        let w = writer(1);
        // u = 0 (order 2), u = 1 (order 4), and an order-8 point; all give a zero secret.
        let order8 = hex::decode("e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800").unwrap();
        let mut one = [0u8; 32];
        one[0] = 1;
        for point in [[0u8; 32], one, order8.try_into().unwrap()] {
            let err = w.pair_key(&point).unwrap_err();
            assert!(matches!(err, AccessError::LowOrderPoint(_)), "{err}");
            assert_eq!(err.slug(), "access-low-order-key");
            let s = subject(2);
            let d = details(&w, &s, 0);
            let d = AccessDetails { subject: s.did().into(), ..d };
            assert!(matches!(w.seal_event(&genesis(), s.did(), &point, 0, &d, &[], &mut TestRng(1)), Err(AccessError::LowOrderPoint(_))));
        }
    }

    #[test]
    fn writer_and_subject_constructors_check_their_inputs() {
        assert!(matches!(AgencyWriter::new(&ed(1), &dk(2).key_id(), AGENCY), Err(AccessError::KeyMismatch { .. })));
        assert!(matches!(AgencyWriter::new(&ed(1), &dk(1).key_id(), "agency-1"), Err(AccessError::InvalidDetails { field: "agency", .. })));
        assert!(matches!(SubjectKey::from_ed25519(&ed(1), "not a did"), Err(AccessError::InvalidDetails { field: "subject", .. })));
        let s = subject(2);
        for bad in [dk(1).did(), dk(1).x25519_key_id(), "did:web:example.com#k".to_owned(), "x".repeat(600)] {
            let err = s.pair_key(&bad).unwrap_err();
            assert!(matches!(err, AccessError::InvalidKeyId { .. }), "{bad}: {err}");
        }
    }

    #[test]
    fn secrets_are_not_in_debug_output() {
        let w = writer(1);
        let s = subject(2);
        let k = s.pair_key(w.key_id()).unwrap();
        let grant = k.grant(0, 1).unwrap();
        let secret_hex = [hex::encode(k.as_bytes()), hex::encode(grant[0].seed)];
        let shown = format!("{w:?} {s:?} {k:?} {grant:?}");
        for h in &secret_hex {
            assert!(!shown.contains(h.as_str()));
        }
        assert!(!shown.contains(&format!("{:?}", k.as_bytes())));
        assert!(!shown.contains(&format!("{:?}", x25519_secret_from_ed25519(&ed(2)))));
    }

    // --- GGM slot secrets and grants (§4) ---------------------------------------------

    /// An independent reading of §4.1: walk the 32 bits of `j`, most significant first.
    fn reference_slot_secret(k: &[u8; 32], j: u32) -> [u8; 32] {
        let mut node = *k;
        for i in 0..32 {
            let bit = ((j << i) >> 31) as u8;
            let mut msg = b"dojang/access/ggm".to_vec();
            msg.push(bit);
            node = *blake3::keyed_hash(&node, &msg).as_bytes();
        }
        node
    }

    #[test]
    fn slot_secrets_follow_the_ggm_tree() {
        let k = PairKey::from_bytes([42u8; 32]);
        for j in [0u32, 1, 2, 3, 0x8000_0000, 0x1234_5678, u32::MAX] {
            assert_eq!(k.slot_secret(j), reference_slot_secret(k.as_bytes(), j), "slot {j}");
        }
        let all: std::collections::HashSet<[u8; 32]> = (0..64).map(|j| k.slot_secret(j)).collect();
        assert_eq!(all.len(), 64);
    }

    #[test]
    fn grants_cover_exactly_their_range() {
        let k = PairKey::from_bytes([9u8; 32]);
        // [5, 23): 5 | 6-7 | 8-15 | 16-19 | 20-21 | 22.
        let grant = k.grant(5, 23).unwrap();
        let ranges: Vec<(u64, u64)> = grant.iter().map(|n| n.range().unwrap()).collect();
        assert_eq!(ranges, vec![(5, 6), (6, 8), (8, 16), (16, 20), (20, 22), (22, 23)]);
        for j in 0..40u32 {
            let got: Vec<[u8; 32]> = grant.iter().filter_map(|n| n.slot_secret(j)).collect();
            if (5..23).contains(&j) {
                assert_eq!(got, vec![k.slot_secret(j)], "slot {j}");
            } else {
                assert!(got.is_empty(), "slot {j} is outside the grant");
            }
        }
        // The whole space is the root itself; one slot is a leaf.
        let root = k.grant(0, SLOT_COUNT).unwrap();
        assert_eq!(root.len(), 1);
        assert_eq!((root[0].depth, root[0].index, root[0].seed), (0, 0, *k.as_bytes()));
        assert_eq!(root[0].slot_secret(u32::MAX), Some(k.slot_secret(u32::MAX)));
        let leaf = k.grant(u64::from(u32::MAX), SLOT_COUNT).unwrap();
        assert_eq!((leaf[0].depth, leaf[0].index, leaf[0].seed), (32, u32::MAX, k.slot_secret(u32::MAX)));
        assert!(k.grant(7, 7).unwrap().is_empty());
        // The worst case: everything but the two end slots.
        assert_eq!(k.grant(1, SLOT_COUNT - 1).unwrap().len(), 62);
    }

    #[test]
    fn bad_ranges_and_nodes_are_refused() {
        let k = PairKey::from_bytes([9u8; 32]);
        for (start, end) in [(5, 4), (0, SLOT_COUNT + 1), (SLOT_COUNT + 1, SLOT_COUNT + 2)] {
            let err = k.grant(start, end).unwrap_err();
            assert_eq!(err, AccessError::InvalidRange { start, end });
            assert_eq!(err.slug(), "access-invalid-grant");
        }
        for (depth, index) in [(33u8, 0u32), (0, 1), (1, 2), (31, 1 << 31)] {
            let node = GrantNode { depth, index, seed: [1; 32] };
            assert!(node.validate().is_err(), "({depth}, {index})");
            assert_eq!(node.range(), None);
            assert_eq!(node.slot_secret(0), None);
            assert!(GrantNode::derive(k.as_bytes(), depth, index).is_err());
        }
    }

    #[test]
    fn grant_nodes_round_trip_as_json() {
        let node = PairKey::from_bytes([3u8; 32]).grant(8, 16).unwrap().remove(0);
        let json = serde_json::to_string(&node).unwrap();
        assert_eq!(json, format!(r#"{{"depth":29,"index":1,"seed":"{}"}}"#, hex::encode(node.seed)));
        assert_eq!(serde_json::from_str::<GrantNode>(&json).unwrap(), node);
        assert!(serde_json::from_str::<GrantNode>(&json.replace("\"seed\":\"", "\"seed\":\"A")).is_err());
        assert!(serde_json::from_str::<GrantNode>(&json.replace('}', r#","x":1}"#)).is_err());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn grant_is_minimal_exact_and_derives_the_same_secrets(a in 0u64..=SLOT_COUNT, b in 0u64..=SLOT_COUNT, probes in prop::collection::vec(any::<u32>(), 8)) {
            let (start, end) = (a.min(b), a.max(b));
            let k = PairKey::from_bytes([5u8; 32]);
            let grant = k.grant(start, end).unwrap();
            prop_assert!(grant.len() <= 2 * 32);
            // Contiguous, in order, exactly [start, end).
            let mut pos = start;
            for n in &grant {
                let (s, e) = n.range().unwrap();
                prop_assert_eq!(s, pos);
                pos = e;
                prop_assert_eq!(n.seed, GrantNode::derive(k.as_bytes(), n.depth, n.index).unwrap().seed);
            }
            prop_assert_eq!(pos, end);
            // Minimal: no two neighbours are the two halves of one parent.
            for w in grant.windows(2) {
                let mergeable = w[0].depth == w[1].depth && w[0].depth > 0 && w[0].index % 2 == 0 && w[1].index == w[0].index + 1;
                prop_assert!(!mergeable, "{:?} and {:?} could merge", w[0], w[1]);
            }
            // Probe slots inside (near the ends and random) and outside.
            let mut slots: Vec<u64> = probes.iter().map(|&p| u64::from(p)).collect();
            slots.extend([start, end.saturating_sub(1), start.saturating_sub(1), end, (start + end) / 2]);
            for j in slots.into_iter().filter(|&j| j < SLOT_COUNT) {
                let j = j as u32;
                let got: Vec<[u8; 32]> = grant.iter().filter_map(|n| n.slot_secret(j)).collect();
                if (start..end).contains(&u64::from(j)) {
                    prop_assert_eq!(got, vec![k.slot_secret(j)]);
                } else {
                    prop_assert!(got.is_empty());
                }
            }
        }
    }

    // --- tags (§5) ---------------------------------------------------------------------

    #[test]
    fn agency_and_subject_compute_the_same_tags() {
        let (w, s) = (writer(1), subject(2));
        let agency_side = w.pair_key(&s.x25519_public()).unwrap();
        let subject_side = s.pair_key(w.key_id()).unwrap();
        for j in [0, 1, 2, 1000, u32::MAX] {
            assert_eq!(agency_side.tag(j, s.did()), subject_side.tag(j, s.did()));
            assert_eq!(agency_side.tag(j, s.did()), tag_from_secret(&agency_side.slot_secret(j), s.did()));
            assert_eq!(tag_from_secret(&agency_side.slot_secret(j), s.did()), {
                let mut m = agency_side.slot_secret(j).to_vec();
                m.extend_from_slice(s.did().as_bytes());
                blake3::derive_key(TAG_CONTEXT, &m)
            });
        }
        let event = seal(&w, &s, 3, &[], 1);
        assert_eq!(event.tag, subject_side.tag(3, s.did()));
    }

    #[test]
    fn tags_differ_across_slots_subjects_and_writers() {
        let mut tags = std::collections::HashSet::new();
        for ws in [1u8, 3] {
            let w = writer(ws);
            for ss in [2u8, 4] {
                let s = subject(ss);
                let k = w.pair_key(&s.x25519_public()).unwrap();
                for j in 0..16 {
                    assert!(tags.insert(k.tag(j, s.did())), "writer {ws} subject {ss} slot {j}");
                }
                // Same slot secret, another DID: another tag.
                assert_ne!(k.tag(0, s.did()), k.tag(0, "did:dojang:J8EcJZ4JZ8j1j7gbqeZaTb"));
            }
        }
        assert_eq!(tags.len(), 2 * 2 * 16);
    }

    // --- details (§6) ------------------------------------------------------------------

    #[test]
    fn details_have_the_specified_json() {
        let (w, s) = (writer(1), subject(2));
        let d = details(&w, &s, 7);
        let json = String::from_utf8(d.encode()).unwrap();
        assert_eq!(
            json,
            format!(
                r#"{{"agency":"{AGENCY}","category":"resident-registration","official":"off-7f3a.9c:01","purpose":{{"code":"law.resident-registration-act"}},"slot":7,"subject":"{}","time":{},"v":1,"writer":"{}"}}"#,
                s.did(),
                T0 + 7,
                w.key_id()
            )
        );
        assert_eq!(AccessDetails::decode(json.as_bytes()).unwrap(), d);
        let consent = AccessDetails { purpose: Purpose::Consent("ab".repeat(32)), ..d.clone() };
        assert!(String::from_utf8(consent.encode()).unwrap().contains(&format!(r#""purpose":{{"consent":"{}"}}"#, "ab".repeat(32))));
        let delegation = AccessDetails { purpose: Purpose::Delegation("cd".repeat(32)), ..d.clone() };
        assert_eq!(AccessDetails::decode(&delegation.encode()).unwrap(), delegation);
        // Non-canonical or other-version spellings.
        let spaced = json.replacen(":", ": ", 1);
        assert_eq!(AccessDetails::decode(spaced.as_bytes()), Err(AccessError::NotCanonical));
        let v2 = json.replace(r#""v":1"#, r#""v":2"#);
        assert_eq!(AccessDetails::decode(v2.as_bytes()), Err(AccessError::UnsupportedVersion(2)));
        let extra = json.replace(r#""v":1"#, r#""v":1,"x":0"#);
        assert!(matches!(AccessDetails::decode(extra.as_bytes()), Err(AccessError::Malformed(_))));
        let two_purposes = json.replace(r#"{"code":"law.resident-registration-act"}"#, r#"{"code":"audit.internal","consent":"00"}"#);
        assert!(matches!(AccessDetails::decode(two_purposes.as_bytes()), Err(AccessError::Malformed(_))));
    }

    #[test]
    fn details_are_validated() {
        let (w, s) = (writer(1), subject(2));
        let good = details(&w, &s, 0);
        good.validate().unwrap();
        type Edit = fn(&mut AccessDetails);
        let cases: Vec<(Edit, &str)> = vec![
            (|d| d.official = String::new(), "access-invalid-details"),
            (|d| d.official = "a".repeat(129), "access-invalid-details"),
            (|d| d.official = "Kim Minsu".into(), "access-invalid-details"),
            (|d| d.official = "관리자".into(), "access-invalid-details"),
            (|d| d.category = "gossip".into(), "access-unknown-category"),
            (|d| d.category = "Health".into(), "access-unknown-category"),
            (|d| d.purpose = Purpose::Code("curiosity".into()), "access-unknown-purpose"),
            (|d| d.purpose = Purpose::Consent("AB".repeat(32)), "access-invalid-details"),
            (|d| d.purpose = Purpose::Delegation("ab".repeat(31)), "access-invalid-details"),
            (|d| d.time_ms = MAX_SAFE_INTEGER + 1, "access-invalid-details"),
            (|d| d.agency = "dojang".into(), "access-invalid-details"),
            (|d| d.agency = "did:Web:example.com".into(), "access-invalid-details"),
            (|d| d.agency = "did:web:".into(), "access-invalid-details"),
            (|d| d.agency = "did:web:example.com:".into(), "access-invalid-details"),
            (|d| d.agency = "did:web:exa mple.com".into(), "access-invalid-details"),
            (|d| d.agency = "did:web:example.com%2".into(), "access-invalid-details"),
            (|d| d.agency = format!("did:web:{}", "a".repeat(510)), "access-invalid-details"),
            (|d| d.subject = "did:key:z6Mk#frag".into(), "access-invalid-details"),
            (|d| d.subject = "did:example:a\"b".into(), "access-invalid-details"),
            (|d| d.writer = dk(1).did(), "access-invalid-details"),
            (|d| d.writer = dk(1).x25519_key_id(), "access-invalid-details"),
        ];
        for (edit, slug) in cases {
            let mut d = good.clone();
            edit(&mut d);
            let err = d.validate().unwrap_err();
            assert_eq!(err.slug(), slug, "{d:?}: {err}");
            // Refused when sealing too.
            let sealed = w.seal_event(&genesis(), s.did(), &s.x25519_public(), 0, &d, &[], &mut TestRng(1));
            assert!(sealed.is_err());
        }
        // Percent-encoding and colons inside a DID are fine.
        let mut d = good.clone();
        d.agency = "did:web:example.com%3A8443:agency".into();
        d.validate().unwrap();
        // Every listed code validates.
        for (c, _) in CATEGORIES {
            AccessDetails { category: (*c).into(), ..good.clone() }.validate().unwrap();
        }
        for (p, _) in PURPOSES {
            AccessDetails { purpose: Purpose::Code((*p).into()), ..good.clone() }.validate().unwrap();
        }
    }

    #[test]
    fn code_lists_are_well_formed() {
        for list in [CATEGORIES, PURPOSES] {
            let codes: std::collections::BTreeSet<&str> = list.iter().map(|(c, _)| *c).collect();
            assert_eq!(codes.len(), list.len(), "duplicate code");
            for (code, description) in list {
                assert!(code.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-'), "{code}");
                assert!(!description.is_empty());
            }
        }
        assert!((10..=14).contains(&CATEGORIES.len()));
    }

    #[test]
    fn largest_valid_details_fit_every_bound() {
        let (w, s) = (writer(1), subject(2));
        let d = AccessDetails {
            agency: format!("did:web:{}", "a".repeat(MAX_DID_LEN - 8)),
            official: "o".repeat(MAX_OFFICIAL_LEN),
            category: CATEGORIES.iter().map(|(c, _)| *c).max_by_key(|c| c.len()).unwrap().into(),
            purpose: Purpose::Code(PURPOSES.iter().map(|(c, _)| *c).max_by_key(|c| c.len()).unwrap().into()),
            time_ms: MAX_SAFE_INTEGER,
            subject: s.did().into(),
            slot: u32::MAX,
            writer: w.key_id().into(),
        };
        d.validate().unwrap();
        assert!(d.encode().len() <= MAX_DETAILS_LEN);
        let w = AgencyWriter::new(&ed(1), &dk(1).key_id(), &d.agency).unwrap();
        // A subject with a maximal DID too (the details check DID syntax, not resolution).
        let long_subject = format!("did:web:{}", "b".repeat(MAX_DID_LEN - 8));
        let d = AccessDetails { subject: long_subject.clone(), ..d };
        assert!(d.encode().len() <= MAX_DETAILS_LEN);
        let auditors: Vec<Auditor> = (10..14).map(|i| auditor(i).0).collect();
        let event = w.seal_event(&genesis(), &long_subject, &s.x25519_public(), u32::MAX, &d, &auditors, &mut TestRng(5)).unwrap();
        assert!(event.encode().len() <= MAX_EVENT_LEN);
        assert_eq!(AccessEvent::decode(&event.encode()).unwrap(), event);
    }

    #[test]
    fn padding_is_minimal_and_checked() {
        assert_eq!(pad(b"{}".to_vec()).len(), PAD_BLOCK);
        assert_eq!(pad(vec![b'x'; PAD_BLOCK]).len(), PAD_BLOCK);
        assert_eq!(pad(vec![b'x'; PAD_BLOCK + 1]).len(), 2 * PAD_BLOCK);
        let p = pad(b"{\"a\":1}".to_vec());
        assert_eq!(unpad(&p).unwrap(), b"{\"a\":1}");
        assert!(unpad(&[0u8; PAD_BLOCK]).is_err());
        assert!(unpad(&[]).is_err());
        let mut over = pad(b"{}".to_vec());
        over.extend_from_slice(&[0u8; PAD_BLOCK]);
        assert!(matches!(unpad(&over), Err(AccessError::BadPadding { .. })));
        assert!(unpad(b"{}").is_err());
    }

    #[test]
    fn ciphertext_length_does_not_depend_on_the_details() {
        let (w, s) = (writer(1), subject(2));
        let base = details(&w, &s, 0);
        let variants = [
            base.clone(),
            AccessDetails { category: "identity.basic".into(), official: "a".into(), ..base.clone() },
            AccessDetails { category: "criminal-record".into(), purpose: Purpose::Consent("ef".repeat(32)), ..base.clone() },
            AccessDetails { official: "o".repeat(128), purpose: Purpose::Code("emergency".into()), slot: 4_000_000_000, ..base.clone() },
        ];
        let lengths: std::collections::BTreeSet<usize> = variants
            .iter()
            .map(|d| w.seal_event(&genesis(), s.did(), &s.x25519_public(), d.slot, d, &[], &mut TestRng(1)).unwrap().encode().len())
            .collect();
        assert_eq!(lengths.len(), 1, "{lengths:?}");
    }

    // --- seal and open (§7, §9) ---------------------------------------------------------

    #[test]
    fn seal_and_open_round_trip() {
        let (w, s) = (writer(1), subject(2));
        let (a1, a1_secret) = auditor(20);
        let (a2, a2_secret) = auditor(21);
        // Given in any order; sealed sorted by kid.
        let event = seal(&w, &s, 5, &[a2.clone(), a1.clone()], 1);
        assert!(event.auditors.windows(2).all(|p| p[0].kid < p[1].kid));
        assert_eq!(event.auditors.len(), 2);
        let payload = event.encode();
        let decoded = AccessEvent::decode(&payload).unwrap();
        assert_eq!(decoded, event);
        let want = details(&w, &s, 5);
        assert_eq!(s.open(&genesis(), &decoded).unwrap(), want);
        assert_eq!(open_as_auditor(&a1_secret, &a1.kid, &genesis(), &decoded).unwrap(), want);
        assert_eq!(open_as_auditor(&a2_secret, &a2.kid, &genesis(), &decoded).unwrap(), want);
        // Without auditors there is no "auditors" member.
        let bare = seal(&w, &s, 6, &[], 2);
        assert!(bare.auditors.is_empty());
        assert!(!String::from_utf8(bare.encode()).unwrap().contains("auditors"));
        assert_eq!(s.open(&genesis(), &bare).unwrap(), details(&w, &s, 6));
        // Fresh randomness: the same details seal to unrelated ciphertexts.
        let again = seal(&w, &s, 5, &[a1.clone(), a2.clone()], 99);
        assert_eq!(again.tag, event.tag);
        assert_ne!(again.seal.enc, event.seal.enc);
        assert_ne!(again.seal.ct, event.seal.ct);
    }

    #[test]
    fn a_citizen_with_a_raw_x25519_key_opens_too() {
        let w = writer(1);
        let secret = [0x5au8; 32];
        let s = SubjectKey::from_x25519_secret(secret, "did:dojang:J8EcJZ4JZ8j1j7gbqeZaTb").unwrap();
        let event = seal(&w, &s, 0, &[], 3);
        assert_eq!(s.open(&genesis(), &event).unwrap().subject, "did:dojang:J8EcJZ4JZ8j1j7gbqeZaTb");
    }

    #[test]
    fn wrong_keys_fail_with_decrypt() {
        let (w, s) = (writer(1), subject(2));
        let (a1, a1_secret) = auditor(20);
        let (a2, _) = auditor(21);
        let event = seal(&w, &s, 0, &[a1.clone(), a2.clone()], 1);
        // Another citizen, the writer itself, an auditor using its key on the subject seal.
        let other = SubjectKey::from_ed25519(&ed(3), s.did()).unwrap();
        assert_eq!(other.open(&genesis(), &event), Err(AccessError::Decrypt));
        let as_writer = SubjectKey::from_ed25519(&ed(1), s.did()).unwrap();
        assert_eq!(as_writer.open(&genesis(), &event), Err(AccessError::Decrypt));
        // An auditor's seal with another auditor's key.
        assert_eq!(open_as_auditor(&a1_secret, &a2.kid, &genesis(), &event), Err(AccessError::Decrypt));
        assert_eq!(open_as_auditor(&[0u8; 32], &a1.kid, &genesis(), &event), Err(AccessError::Decrypt));
        // An auditor that was not named.
        let (a3, a3_secret) = auditor(22);
        let err = open_as_auditor(&a3_secret, &a3.kid, &genesis(), &event).unwrap_err();
        assert!(matches!(err, AccessError::NotARecipient(_)));
        // Another ledger.
        assert_eq!(s.open(&Hash([8u8; 32]), &event), Err(AccessError::Decrypt));
        assert_eq!(AccessError::Decrypt.slug(), "access-decrypt-failed");
    }

    #[test]
    fn tampering_fails_with_decrypt() {
        let (w, s) = (writer(1), subject(2));
        let (a1, a1_secret) = auditor(20);
        let event = seal(&w, &s, 0, std::slice::from_ref(&a1), 1);
        let mut cases: Vec<AccessEvent> = Vec::new();
        for i in [0usize, 100, event.seal.ct.len() - 1] {
            let mut e = event.clone();
            e.seal.ct[i] ^= 1;
            cases.push(e);
        }
        let mut e = event.clone();
        e.seal.enc[3] ^= 0x10;
        cases.push(e);
        let mut e = event.clone();
        e.tag[0] ^= 1;
        cases.push(e);
        // Another event's seal under this tag.
        let mut e = event.clone();
        e.seal = seal(&w, &s, 1, &[], 2).seal;
        cases.push(e);
        for e in &cases {
            assert_eq!(s.open(&genesis(), e), Err(AccessError::Decrypt));
            // Every tampered event still encodes and decodes: only the recipient can tell.
            assert_eq!(&AccessEvent::decode(&e.encode()).unwrap(), e);
        }
        // Tag tampering reaches the auditor's seal too (the tag is in the HPKE info).
        let mut e = event.clone();
        e.tag[31] ^= 0x80;
        assert_eq!(open_as_auditor(&a1_secret, &a1.kid, &genesis(), &e), Err(AccessError::Decrypt));
        let mut e = event.clone();
        e.auditors[0].seal.ct[0] ^= 1;
        assert_eq!(open_as_auditor(&a1_secret, &a1.kid, &genesis(), &e), Err(AccessError::Decrypt));
        // A small-order enc is a decryption failure, not a panic.
        let mut e = event.clone();
        e.seal.enc = [0u8; 32];
        assert_eq!(s.open(&genesis(), &e), Err(AccessError::Decrypt));
    }

    #[test]
    fn a_seal_that_disagrees_with_its_tag_is_refused() {
        let (w, s) = (writer(1), subject(2));
        let k = w.pair_key(&s.x25519_public()).unwrap();
        // Details of slot 4 sealed under the tag of slot 5: the HPKE seal is genuine.
        let event = seal_with_tag(&genesis(), k.tag(5, s.did()), &s.x25519_public(), &details(&w, &s, 4), &[], &mut TestRng(1)).unwrap();
        let err = s.open(&genesis(), &event).unwrap_err();
        assert!(matches!(err, AccessError::TagMismatch { slot: 4, .. }), "{err}");
        assert_eq!(err.slug(), "access-tag-mismatch");
        // Details naming another writer than the one whose pair key made the tag.
        let w3 = writer(3);
        let event = seal_with_tag(&genesis(), k.tag(0, s.did()), &s.x25519_public(), &details(&w3, &s, 0), &[], &mut TestRng(1)).unwrap();
        assert!(matches!(s.open(&genesis(), &event), Err(AccessError::TagMismatch { .. })));
        // Details about someone else, sealed to this subject.
        let other = subject(4);
        let event =
            seal_with_tag(&genesis(), k.tag(0, other.did()), &s.x25519_public(), &details(&w, &other, 0), &[], &mut TestRng(1)).unwrap();
        let err = s.open(&genesis(), &event).unwrap_err();
        assert!(matches!(err, AccessError::SubjectMismatch { .. }), "{err}");
        // A non-canonical plaintext inside a genuine seal.
        let info = hpke_info(&genesis(), &k.tag(0, s.did()));
        let mut json = String::from_utf8(details(&w, &s, 0).encode()).unwrap();
        json.insert(1, ' ');
        let bad = AccessEvent {
            tag: k.tag(0, s.did()),
            seal: hpke_seal(&s.x25519_public(), &info, b"", &pad(json.into_bytes()), &mut TestRng(1)).unwrap(),
            auditors: vec![],
        };
        assert_eq!(s.open(&genesis(), &bad), Err(AccessError::NotCanonical));
    }

    #[test]
    fn seal_event_checks_details_against_its_arguments() {
        let (w, s) = (writer(1), subject(2));
        let d = details(&w, &s, 3);
        let x = s.x25519_public();
        let err = |r: Result<AccessEvent, AccessError>| match r.unwrap_err() {
            AccessError::DetailsMismatch { field, .. } => field,
            other => panic!("{other}"),
        };
        assert_eq!(err(w.seal_event(&genesis(), s.did(), &x, 4, &d, &[], &mut TestRng(1))), "slot");
        assert_eq!(err(w.seal_event(&genesis(), subject(4).did(), &x, 3, &d, &[], &mut TestRng(1))), "subject");
        let w3 = writer(3);
        assert_eq!(err(w3.seal_event(&genesis(), s.did(), &x, 3, &d, &[], &mut TestRng(1))), "writer");
        let other_agency = AgencyWriter::new(&ed(1), &dk(1).key_id(), "did:web:other.example").unwrap();
        assert_eq!(err(other_agency.seal_event(&genesis(), s.did(), &x, 3, &d, &[], &mut TestRng(1))), "agency");
        assert_eq!(
            AccessError::DetailsMismatch { field: "slot", expected: String::new(), actual: String::new() }.slug(),
            "access-details-mismatch"
        );
    }

    #[test]
    fn auditor_lists_are_checked_when_sealing() {
        let (w, s) = (writer(1), subject(2));
        let d = details(&w, &s, 0);
        let x = s.x25519_public();
        let five: Vec<Auditor> = (20..25).map(|i| auditor(i).0).collect();
        assert!(matches!(
            w.seal_event(&genesis(), s.did(), &x, 0, &d, &five, &mut TestRng(1)),
            Err(AccessError::TooManyAuditors { count: 5, .. })
        ));
        let twice = [auditor(20).0, auditor(20).0];
        assert!(matches!(w.seal_event(&genesis(), s.did(), &x, 0, &d, &twice, &mut TestRng(1)), Err(AccessError::InvalidAuditor { .. })));
        let wrong_key = [Auditor { kid: auditor(20).0.kid, x_pub: auditor(21).0.x_pub }];
        assert!(matches!(
            w.seal_event(&genesis(), s.did(), &x, 0, &d, &wrong_key, &mut TestRng(1)),
            Err(AccessError::InvalidAuditor { .. })
        ));
        let ed_kid = [Auditor { kid: dk(20).key_id(), x_pub: dk(20).x25519_public_key() }];
        assert!(matches!(w.seal_event(&genesis(), s.did(), &x, 0, &d, &ed_kid, &mut TestRng(1)), Err(AccessError::InvalidAuditor { .. })));
        let four: Vec<Auditor> = (20..24).map(|i| auditor(i).0).collect();
        assert_eq!(w.seal_event(&genesis(), s.did(), &x, 0, &d, &four, &mut TestRng(1)).unwrap().auditors.len(), 4);
    }

    #[test]
    fn entries_bind_the_author_to_the_writer() {
        let (w, s) = (writer(1), subject(2));
        let (a1, a1_secret) = auditor(20);
        let event = seal(&w, &s, 0, std::slice::from_ref(&a1), 1);
        let make = |kind: Kind, signer: u8| {
            UnsignedEntry { kind, author: dk(signer).key_id(), nonce: 1, timestamp_ms: T0, payload: event.encode() }
                .sign(&ed(signer), &genesis())
                .unwrap()
        };
        let entry = make(Kind::AccessEvent, 1);
        assert_eq!(s.open_entry(&genesis(), &entry).unwrap(), details(&w, &s, 0));
        assert_eq!(open_entry_as_auditor(&a1_secret, &a1.kid, &genesis(), &entry).unwrap(), details(&w, &s, 0));
        // Another agency replaying the payload under its own key.
        let replayed = make(Kind::AccessEvent, 3);
        assert!(matches!(s.open_entry(&genesis(), &replayed), Err(AccessError::AuthorMismatch { .. })));
        assert!(matches!(open_entry_as_auditor(&a1_secret, &a1.kid, &genesis(), &replayed), Err(AccessError::AuthorMismatch { .. })));
        let wrong_kind = make(Kind::DocumentIssuance, 1);
        assert_eq!(s.open_entry(&genesis(), &wrong_kind), Err(AccessError::WrongKind("document-issuance/v1")));
    }

    // --- the payload (§8) --------------------------------------------------------------

    #[test]
    fn payload_has_the_specified_shape() {
        let event = AccessEvent {
            tag: [0xab; 32],
            seal: Seal { enc: [1; 32], ct: vec![2; 528] },
            auditors: vec![AuditorSeal { kid: dk(20).x25519_key_id(), seal: Seal { enc: [3; 32], ct: vec![4; 528] } }],
        };
        let json = String::from_utf8(event.encode()).unwrap();
        let expected = format!(
            r#"{{"auditors":[{{"ct":"{}","enc":"{}","kid":"{}"}}],"seal":{{"ct":"{}","enc":"{}"}},"tag":"{}","v":1}}"#,
            b64url(&[4; 528]),
            b64url(&[3; 32]),
            dk(20).x25519_key_id(),
            b64url(&[2; 528]),
            b64url(&[1; 32]),
            "ab".repeat(32)
        );
        assert_eq!(json, expected);
        assert_eq!(AccessEvent::decode(json.as_bytes()).unwrap(), event);
    }

    #[test]
    fn payload_refusals_name_the_problem() {
        let (w, s) = (writer(1), subject(2));
        let event = seal(&w, &s, 0, &[auditor(20).0], 1);
        let json = String::from_utf8(event.encode()).unwrap();
        let value: serde_json::Value = serde_json::from_str(&json).unwrap();
        let with = |f: &dyn Fn(&mut serde_json::Value)| {
            let mut v = value.clone();
            f(&mut v);
            serde_jcs::to_vec(&v).unwrap()
        };
        let slug = |bytes: &[u8]| AccessEvent::decode(bytes).unwrap_err().slug();
        assert_eq!(slug(&with(&|v| v["v"] = 2.into())), "access-unsupported-version");
        assert_eq!(slug(&with(&|v| v["tag"] = "AB".repeat(32).into())), "access-payload-invalid");
        assert_eq!(slug(&with(&|v| v["tag"] = "ab".repeat(31).into())), "access-payload-invalid");
        assert_eq!(slug(&with(&|v| v["tag"] = "zz".repeat(32).into())), "access-payload-invalid");
        assert_eq!(slug(&with(&|v| v["seal"]["enc"] = b64url(&[1; 31]).into())), "access-payload-invalid");
        assert_eq!(slug(&with(&|v| v["seal"]["enc"] = format!("{}=", b64url(&[1; 32])).into())), "access-payload-invalid");
        assert_eq!(slug(&with(&|v| v["seal"]["ct"] = b64url(&[1; 527]).into())), "access-payload-invalid");
        assert_eq!(slug(&with(&|v| v["seal"]["ct"] = b64url(&[1; 16]).into())), "access-payload-invalid");
        assert_eq!(slug(&with(&|v| v["seal"]["ct"] = b64url(&vec![1; 16 + 8 * 512]).into())), "access-payload-invalid");
        assert_eq!(slug(&with(&|v| v["seal"]["ct"] = "a".repeat(MAX_CT_TEXT_LEN + 4).into())), "access-payload-invalid");
        assert_eq!(slug(&with(&|v| v["seal"]["ct"] = "+/+/".into())), "access-payload-invalid");
        assert_eq!(slug(&with(&|v| v["auditors"][0]["kid"] = dk(20).key_id().into())), "access-invalid-auditor");
        assert_eq!(slug(&with(&|v| v["auditors"][0]["kid"] = "did:web:example.com#x".into())), "access-invalid-auditor");
        let dup = with(&|v| {
            let a = v["auditors"][0].clone();
            v["auditors"] = serde_json::Value::Array(vec![a.clone(), a]);
        });
        assert_eq!(slug(&dup), "access-invalid-auditor");
        let five = with(&|v| {
            let a = v["auditors"][0].clone();
            v["auditors"] = serde_json::Value::Array(vec![a; 5]);
        });
        assert_eq!(AccessEvent::decode(&five).unwrap_err(), AccessError::TooManyAuditors { count: 5, max: MAX_AUDITORS });
        assert_eq!(slug(&with(&|v| v["auditors"] = serde_json::Value::Array(vec![]))), "access-payload-not-canonical");
        assert_eq!(slug(&with(&|v| v["extra"] = 1.into())), "access-payload-malformed");
        assert_eq!(slug(&with(&|v| v["seal"]["kid"] = "x".into())), "access-payload-malformed");
        // JCS writes 1.0 as 1, so this one is spelled by hand.
        assert_eq!(slug(json.replace(r#""v":1"#, r#""v":1.0"#).as_bytes()), "access-payload-malformed");
        assert_eq!(slug(json.replace(r#""v":1"#, r#""v":"1""#).as_bytes()), "access-payload-malformed");
        assert_eq!(slug(&with(&|v| v.as_object_mut().unwrap().remove("tag").map(|_| ()).unwrap())), "access-payload-malformed");
        assert_eq!(slug(b"[]"), "access-payload-malformed");
        assert_eq!(slug(b""), "access-payload-malformed");
        assert_eq!(slug(&vec![b' '; MAX_EVENT_LEN + 1]), "access-payload-too-large");
        // Duplicate members.
        let dup_tag = json.replacen(r#""tag":"#, &format!(r#""tag":"{}","tag":"#, "00".repeat(32)), 1);
        assert_eq!(slug(dup_tag.as_bytes()), "access-payload-malformed");
    }

    /// The canonical bytes of `value` with its object members in reverse order.
    fn reversed(value: &serde_json::Value) -> String {
        match value {
            serde_json::Value::Object(map) => {
                let mut members: Vec<String> =
                    map.iter().map(|(k, v)| format!("{}:{}", serde_json::to_string(k).unwrap(), reversed(v))).collect();
                members.reverse();
                format!("{{{}}}", members.join(","))
            }
            serde_json::Value::Array(items) => format!("[{}]", items.iter().map(reversed).collect::<Vec<_>>().join(",")),
            other => other.to_string(),
        }
    }

    fn arb_seal() -> impl Strategy<Value = Seal> {
        (any::<[u8; 32]>(), 1usize..=3, any::<u8>()).prop_map(|(enc, blocks, fill)| Seal {
            enc,
            ct: (0..AEAD_TAG_LEN + blocks * PAD_BLOCK).map(|i| fill.wrapping_add(i as u8)).collect(),
        })
    }

    fn arb_event() -> impl Strategy<Value = AccessEvent> {
        (any::<[u8; 32]>(), arb_seal(), prop::collection::btree_map(1u8..=255, arb_seal(), 0..=MAX_AUDITORS)).prop_map(
            |(tag, seal, auditors)| {
                let mut auditors: Vec<AuditorSeal> =
                    auditors.into_iter().map(|(seed, seal)| AuditorSeal { kid: dk(seed).x25519_key_id(), seal }).collect();
                auditors.sort_by(|a, b| a.kid.cmp(&b.kid));
                AccessEvent { tag, seal, auditors }
            },
        )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]

        #[test]
        fn payload_round_trips(event in arb_event()) {
            let bytes = event.encode();
            prop_assert!(bytes.len() <= MAX_EVENT_LEN);
            prop_assert_eq!(AccessEvent::decode(&bytes).unwrap(), event);
        }

        #[test]
        fn only_the_canonical_spelling_decodes(event in arb_event(), at in any::<prop::sample::Index>(), ws in prop::sample::select(vec![" ", "\n", "\t", "\r"])) {
            let canonical = String::from_utf8(event.encode()).unwrap();
            let value: serde_json::Value = serde_json::from_str(&canonical).unwrap();
            // Re-ordered members: the same JSON value, other bytes.
            let reordered = reversed(&value);
            prop_assert_eq!(AccessEvent::decode(reordered.as_bytes()), Err(AccessError::NotCanonical));
            // Whitespace after a structural character.
            let mut in_string = false;
            let mut structural = Vec::new();
            for (i, c) in canonical.char_indices() {
                match c {
                    '"' => in_string = !in_string,
                    '{' | ',' | ':' | '[' if !in_string => structural.push(i + 1),
                    _ => {}
                }
            }
            let mut spaced = canonical.clone();
            spaced.insert_str(structural[at.index(structural.len())], ws);
            prop_assert_eq!(AccessEvent::decode(spaced.as_bytes()), Err(AccessError::NotCanonical));
            let mut trailing = canonical.clone();
            trailing.push_str(ws);
            prop_assert_eq!(AccessEvent::decode(trailing.as_bytes()), Err(AccessError::NotCanonical));
            // An extra member anywhere.
            let extra = canonical.replacen("{", "{\"a\":0,", 1 + at.index(1 + event.auditors.len()).min(event.auditors.len()));
            prop_assert!(matches!(AccessEvent::decode(extra.as_bytes()), Err(AccessError::Malformed(_))), "unexpected result");
            // The tag in upper case or cut short.
            let tag = hex::encode(event.tag);
            let upper = canonical.replacen(&tag, &tag.to_uppercase(), 1);
            if upper != canonical {
                prop_assert!(matches!(AccessEvent::decode(upper.as_bytes()), Err(AccessError::InvalidTag(_))), "unexpected result");
            }
            let short = canonical.replacen(&tag, &tag[..62], 1);
            prop_assert!(matches!(AccessEvent::decode(short.as_bytes()), Err(AccessError::InvalidTag(_))), "unexpected result");
            let nonhex = canonical.replacen(&tag, &format!("g{}", &tag[1..]), 1);
            prop_assert!(matches!(AccessEvent::decode(nonhex.as_bytes()), Err(AccessError::InvalidTag(_))), "unexpected result");
            // Padded base64 of a ciphertext.
            let ct = b64url(&event.seal.ct);
            if !ct.len().is_multiple_of(4) {
                let padded = canonical.replacen(&ct, &format!("{ct}{}", "=".repeat(4 - ct.len() % 4)), 1);
                prop_assert!(matches!(AccessEvent::decode(padded.as_bytes()), Err(AccessError::InvalidEncoding { .. })), "unexpected result");
            }
            // Standard base64 alphabet instead of the URL-safe one.
            let std_ct = base64::engine::general_purpose::STANDARD_NO_PAD.encode(&event.seal.ct);
            if std_ct != ct {
                let std = canonical.replacen(&ct, &std_ct, 1);
                prop_assert!(AccessEvent::decode(std.as_bytes()).is_err());
            }
        }

        #[test]
        fn decoding_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..2048)) {
            let _ = AccessEvent::decode(&bytes);
            let _ = AccessDetails::decode(&bytes);
        }

        #[test]
        fn mutated_payloads_never_panic(event in arb_event(), at in any::<prop::sample::Index>(), byte in any::<u8>()) {
            let mut bytes = event.encode();
            let i = at.index(bytes.len());
            bytes[i] = byte;
            if let Ok(e) = AccessEvent::decode(&bytes) {
                prop_assert_eq!(e.encode(), bytes);
            }
        }
    }

    // --- privacy: no identifier of the subject in the payload (§10) -------------------

    #[test]
    fn payload_carries_no_identifier_of_the_subject() {
        let w = writer(1);
        let citizens = [subject(2), SubjectKey::from_x25519_secret([0x5a; 32], "did:dojang:J8EcJZ4JZ8j1j7gbqeZaTb").unwrap()];
        for s in &citizens {
            let auditors: Vec<Auditor> = (20..24).map(|i| auditor(i).0).collect();
            for slot in [0u32, 1, 77] {
                let payload = seal(&w, s, slot, &auditors, u64::from(slot) + 7).encode();
                let did = s.did();
                let mut needles: Vec<Vec<u8>> = vec![did.as_bytes().to_vec(), did.rsplit(':').next().unwrap().as_bytes().to_vec()];
                let mut digests: Vec<Vec<u8>> = vec![
                    blake3::hash(did.as_bytes()).as_bytes().to_vec(),
                    sha2::Sha256::digest(did.as_bytes()).to_vec(),
                    s.x25519_public().to_vec(),
                ];
                if let Ok(key) = DidKey::parse(did) {
                    digests.push(key.as_bytes().to_vec());
                    needles.push(key.x25519_multibase().into_bytes());
                }
                for d in &digests {
                    needles.push(d.clone());
                    needles.push(hex::encode(d).into_bytes());
                    needles.push(hex::encode_upper(d).into_bytes());
                    needles.push(b64url(d).into_bytes());
                    needles.push(base64::engine::general_purpose::STANDARD.encode(d).into_bytes());
                    // Any 8-byte window of the raw bytes, in hex.
                    for window in d.windows(8) {
                        needles.push(hex::encode(window).into_bytes());
                    }
                }
                for needle in &needles {
                    assert!(
                        !payload.windows(needle.len()).any(|w| w == needle.as_slice()),
                        "{:?} appears in the payload",
                        String::from_utf8_lossy(needle)
                    );
                }
                // Nor any 12-character substring of its method-specific id.
                let msid = did.splitn(3, ':').nth(2).unwrap();
                for sub in msid.as_bytes().windows(12) {
                    assert!(!payload.windows(sub.len()).any(|w| w == sub), "{:?}", String::from_utf8_lossy(sub));
                }
            }
        }
    }

    // --- HPKE known answer (RFC 9180 A.2.1) ---------------------------------------------

    /// Returns the given bytes, then fails the test if asked for more.
    struct FixedRng(Vec<u8>);
    impl rand_core::RngCore for FixedRng {
        fn next_u32(&mut self) -> u32 {
            panic!("unexpected next_u32")
        }
        fn next_u64(&mut self) -> u64 {
            panic!("unexpected next_u64")
        }
        fn fill_bytes(&mut self, dest: &mut [u8]) {
            assert!(dest.len() <= self.0.len(), "fixed randomness exhausted");
            let rest = self.0.split_off(dest.len());
            dest.copy_from_slice(&self.0);
            self.0 = rest;
        }
        fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand_core::Error> {
            self.fill_bytes(dest);
            Ok(())
        }
    }
    impl rand_core::CryptoRng for FixedRng {}

    /// RFC 9180 Appendix A.2.1: DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, ChaCha20Poly1305,
    /// base mode, first encryption. The library draws the ephemeral key's `ikmE` from the
    /// RNG and runs `DeriveKeyPair` on it, so fixed randomness reproduces the vector.
    #[test]
    fn hpke_suite_matches_rfc_9180_a_2_1() {
        let h = |s: &str| hex::decode(s).unwrap();
        let info = h("4f6465206f6e2061204772656369616e2055726e");
        let ikm_e = h("909a9b35d3dc4713a5e72a4da274b55d3d3821a37e5d099e74a647db583a904b");
        let pk_rm: [u8; 32] = h("4310ee97d88cc1f088a5576c77ab0cf5c3ac797f3d95139c6c84b5429c59662a").try_into().unwrap();
        let sk_rm: [u8; 32] = h("8057991eef8f1f1af18f4a9491d16a1ce333f695d4db8e38da75975c4478e0fb").try_into().unwrap();
        let enc = h("1afa08d3dec047a643885163f1180476fa7ddb54c6a8029ea33f95796bf2ac4a");
        let pt = h("4265617574792069732074727574682c20747275746820626561757479");
        let aad = h("436f756e742d30");
        let ct = h("1c5250d8034ec2b784ba2cfd69dbdb8af406cfe3ff938e131f0def8c8b60b4db21993c62ce81883d2dd1b51a28");
        assert_eq!(x25519_public(&sk_rm), pk_rm);
        let sealed = hpke_seal(&pk_rm, &info, &aad, &pt, &mut FixedRng(ikm_e)).unwrap();
        assert_eq!(sealed.enc.to_vec(), enc);
        assert_eq!(sealed.ct, ct);
        assert_eq!(hpke_open(&sk_rm, &info, &aad, &sealed).unwrap(), pt);
        assert_eq!(hpke_open(&sk_rm, &info, b"Count-1", &sealed), Err(AccessError::Decrypt));
    }
}
