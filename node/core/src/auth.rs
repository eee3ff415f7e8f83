//! DID authentication for the audit API (`specs/access-log.md` §16): node-issued
//! challenges, the holder's signed response, and short-lived access tokens.
//!
//! Both the challenge and the token are *self-contained*: claims in RFC 8785 JSON, signed
//! by the node's validator key. The node keeps no session table and no password — only a
//! bounded in-memory set of challenge nonces already answered, so that a response cannot
//! be replayed while its challenge is still fresh (the host layer owns that set and the
//! clock; this module is pure).
//!
//! Also here: finding a key of a given verification relationship in a DID document, which
//! both authentication (`authentication`) and access-event sealing (`keyAgreement`) need.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use ed25519_dalek::{Signer as _, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::did_key::{self, ED25519_PUB_CODEC, X25519_PUB_CODEC};
use crate::hash::Hash;
use crate::signature;

/// How long a challenge may be answered (§16.1).
pub const CHALLENGE_TTL_MS: u64 = 60_000;
/// How long a token is accepted (§16.2).
pub const TOKEN_TTL_MS: u64 = 5 * 60_000;
/// Longest challenge or token text accepted, before any decoding.
pub const MAX_AUTH_TEXT_LEN: usize = 4096;
/// Domain separation for what the node signs and what the holder signs.
const NODE_CONTEXT: &[u8] = b"dojang/auth/node/v1\0";
const HOLDER_CONTEXT: &[u8] = b"dojang/auth/response/v1\0";

/// Who a token speaks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// A citizen reading their own history.
    Subject,
    /// A genesis-listed auditor reading what is sealed to it.
    Auditor,
}

/// What a challenge or token asserts (§16.1, §16.2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Claims {
    /// `challenge` or `token`.
    pub typ: String,
    /// The validator id of the node that issued it: a token is good only there.
    pub aud: String,
    /// Genesis hash (hex): a token is good only on this chain.
    pub chain: String,
    pub did: String,
    pub role: Role,
    pub iat: u64,
    pub exp: u64,
    /// 16 random bytes, hex: makes each challenge unique, so an answered one is recognised.
    pub nonce: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("{what} is {len} bytes, over the limit of {MAX_AUTH_TEXT_LEN}")]
    TooLong { what: &'static str, len: usize },
    #[error("malformed {what}: {reason}")]
    Malformed { what: &'static str, reason: String },
    #[error("{what} was not issued by this node")]
    BadNodeSignature { what: &'static str },
    #[error("{what} is for {field} {found:?}, not {expected:?}")]
    WrongBinding { what: &'static str, field: &'static str, found: String, expected: String },
    #[error("{what} expired at {exp} ms (now {now} ms)")]
    Expired { what: &'static str, exp: u64, now: u64 },
    #[error("challenge {nonce} was already answered")]
    Replayed { nonce: String },
    #[error("verification method {0:?} is not in the did document's {1} relationship")]
    NotInRelationship(String, &'static str),
    #[error("verification method {vm:?} is unusable: {reason}")]
    BadMethod { vm: String, reason: String },
    #[error("the signature over the challenge does not verify with {0:?}")]
    BadResponseSignature(String),
}

impl AuthError {
    pub fn slug(&self) -> &'static str {
        match self {
            AuthError::TooLong { .. } | AuthError::Malformed { .. } => "malformed-auth",
            AuthError::BadNodeSignature { .. } | AuthError::WrongBinding { .. } => "invalid-token",
            AuthError::Expired { .. } => "expired-token",
            AuthError::Replayed { .. } => "replayed-challenge",
            AuthError::NotInRelationship(..) | AuthError::BadMethod { .. } | AuthError::BadResponseSignature(_) => "authentication-failed",
        }
    }
}

fn node_signing_input(claims_b64: &str) -> Vec<u8> {
    [NODE_CONTEXT, claims_b64.as_bytes()].concat()
}

/// Signs `claims` with the node's key: `base64url(JCS(claims)) "." base64url(signature)`.
pub fn issue(claims: &Claims, node_key: &SigningKey) -> String {
    // Serialising a struct of strings and integers cannot fail.
    let json = serde_jcs::to_vec(claims).unwrap_or_default();
    let body = B64.encode(json);
    let sig = node_key.sign(&node_signing_input(&body));
    format!("{body}.{}", B64.encode(sig.to_bytes()))
}

/// What the node expects of a challenge or token it is shown.
#[derive(Debug, Clone, Copy)]
pub struct Expect<'a> {
    pub typ: &'static str,
    pub aud: &'a str,
    pub genesis_hash: &'a Hash,
    pub now_ms: u64,
}

/// Checks a challenge or token this node issued: size, signature by `node_key`, type,
/// audience, chain and expiry (§16.2). Returns its claims.
pub fn open(text: &str, node_key: &VerifyingKey, expect: Expect<'_>) -> Result<Claims, AuthError> {
    let what = expect.typ;
    if text.len() > MAX_AUTH_TEXT_LEN {
        return Err(AuthError::TooLong { what, len: text.len() });
    }
    let malformed = |reason: &str| AuthError::Malformed { what, reason: reason.to_owned() };
    let (body, sig) = text.split_once('.').ok_or_else(|| malformed("expected <claims>.<signature>"))?;
    let sig: [u8; 64] =
        B64.decode(sig).ok().and_then(|s| s.try_into().ok()).ok_or_else(|| malformed("signature is not 64 base64url bytes"))?;
    if !signature::verify(node_key.as_bytes(), &node_signing_input(body), &sig) {
        return Err(AuthError::BadNodeSignature { what });
    }
    let json = B64.decode(body).map_err(|_| malformed("claims are not base64url"))?;
    let claims: Claims = serde_json::from_slice(&json).map_err(|e| malformed(&e.to_string()))?;
    let bind = |field: &'static str, found: &str, expected: &str| {
        if found == expected {
            Ok(())
        } else {
            Err(AuthError::WrongBinding { what, field, found: found.to_owned(), expected: expected.to_owned() })
        }
    };
    bind("typ", &claims.typ, expect.typ)?;
    bind("aud", &claims.aud, expect.aud)?;
    bind("chain", &claims.chain, &expect.genesis_hash.to_hex())?;
    if expect.now_ms >= claims.exp {
        return Err(AuthError::Expired { what, exp: claims.exp, now: expect.now_ms });
    }
    Ok(claims)
}

/// The bytes a holder signs to answer `challenge` (§16.1): a context string, the genesis
/// hash, then the challenge text exactly as issued.
pub fn response_signing_input(genesis_hash: &Hash, challenge: &str) -> Vec<u8> {
    [HOLDER_CONTEXT, &genesis_hash.0, challenge.as_bytes()].concat()
}

/// Signs a challenge with the holder's key; returns base64url of the signature.
pub fn answer(genesis_hash: &Hash, challenge: &str, key: &SigningKey) -> String {
    B64.encode(key.sign(&response_signing_input(genesis_hash, challenge)).to_bytes())
}

/// Checks a holder's answer: `vm` must be listed under `authentication` in `document`
/// (the DID's current document) and hold the Ed25519 key that signed the challenge.
pub fn verify_answer(genesis_hash: &Hash, challenge: &str, document: &Value, vm: &str, signature_b64: &str) -> Result<(), AuthError> {
    let key = relationship_key(document, "authentication", Some(vm), ED25519_PUB_CODEC)?;
    let sig: [u8; 64] = B64
        .decode(signature_b64)
        .ok()
        .and_then(|s| s.try_into().ok())
        .ok_or_else(|| AuthError::Malformed { what: "answer", reason: "signature is not 64 base64url bytes".into() })?;
    if signature::verify(&key, &response_signing_input(genesis_hash, challenge), &sig) {
        Ok(())
    } else {
        Err(AuthError::BadResponseSignature(vm.to_owned()))
    }
}

/// The 32-byte public key of a verification method that `document` lists under
/// `relationship`, of the multicodec `codec` (0xed Ed25519, 0xec X25519). With `vm` the
/// method must be that one (absolute or `#fragment` id); without it, the first listed.
pub fn relationship_key(document: &Value, relationship: &'static str, vm: Option<&str>, codec: u64) -> Result<[u8; 32], AuthError> {
    let did = document.get("id").and_then(Value::as_str).unwrap_or_default();
    let absolute = |id: &str| if id.starts_with('#') { format!("{did}{id}") } else { id.to_owned() };
    let wanted = vm.map(absolute);
    let listed = document.get(relationship).and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
    let methods = document.get("verificationMethod").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
    let id_of = |v: &Value| v.get("id").and_then(Value::as_str).map(absolute);
    for item in listed {
        // A relationship lists either a reference to a method or an embedded method.
        let (id, method) = match item {
            Value::String(r) => {
                let id = absolute(r);
                (id.clone(), methods.iter().find(|m| id_of(m).as_deref() == Some(id.as_str())))
            }
            Value::Object(_) => (id_of(item).unwrap_or_default(), Some(item)),
            _ => continue,
        };
        if wanted.as_ref().is_some_and(|w| *w != id) {
            continue;
        }
        let bad = |reason: String| AuthError::BadMethod { vm: id.clone(), reason };
        let method = method.ok_or_else(|| bad("referenced but not defined".into()))?;
        let mb = method.get("publicKeyMultibase").and_then(Value::as_str).ok_or_else(|| bad("no publicKeyMultibase".into()))?;
        let bytes = did_key::multibase_decode_base58btc(mb).map_err(|e| bad(e.to_string()))?;
        let (found, key) = did_key::read_multicodec_prefix(&bytes).map_err(|e| bad(e.to_string()))?;
        if found != codec {
            return Err(bad(format!("multicodec {found:#x}, expected {codec:#x}")));
        }
        return key.try_into().map_err(|_| bad(format!("{} key bytes, expected 32", key.len())));
    }
    Err(AuthError::NotInRelationship(wanted.unwrap_or_else(|| "(any)".into()), relationship))
}

/// The X25519 key-agreement key of a DID document (its first `keyAgreement` method).
pub fn key_agreement_key(document: &Value) -> Result<[u8; 32], AuthError> {
    relationship_key(document, "keyAgreement", None, X25519_PUB_CODEC)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]
    use super::*;
    use crate::did_key::DidKey;
    use proptest::prelude::*;

    fn node() -> SigningKey {
        SigningKey::from_bytes(&[9; 32])
    }
    fn g() -> Hash {
        Hash([4; 32])
    }
    fn claims(typ: &str, exp: u64) -> Claims {
        Claims {
            typ: typ.into(),
            aud: "v1".into(),
            chain: g().to_hex(),
            did: "did:key:z6Mk".into(),
            role: Role::Subject,
            iat: 0,
            exp,
            nonce: "00".repeat(16),
        }
    }
    fn expect(typ: &'static str, now_ms: u64) -> Expect<'static> {
        static G: Hash = Hash([4; 32]);
        Expect { typ, aud: "v1", genesis_hash: &G, now_ms }
    }

    #[test]
    fn issued_tokens_open_and_bindings_are_checked() {
        let t = issue(&claims("token", 100), &node());
        assert_eq!(open(&t, &node().verifying_key(), expect("token", 99)).unwrap(), claims("token", 100));
        assert!(matches!(open(&t, &node().verifying_key(), expect("token", 100)), Err(AuthError::Expired { .. })));
        assert!(matches!(open(&t, &node().verifying_key(), expect("challenge", 1)), Err(AuthError::WrongBinding { field: "typ", .. })));
        let other = SigningKey::from_bytes(&[8; 32]).verifying_key();
        assert!(matches!(open(&t, &other, expect("token", 1)), Err(AuthError::BadNodeSignature { .. })));
        let e = Expect { aud: "v2", ..expect("token", 1) };
        assert!(matches!(open(&t, &node().verifying_key(), e), Err(AuthError::WrongBinding { field: "aud", .. })));
        let h = Hash([5; 32]);
        let e = Expect { genesis_hash: &h, ..expect("token", 1) };
        assert!(matches!(open(&t, &node().verifying_key(), e), Err(AuthError::WrongBinding { field: "chain", .. })));
    }

    #[test]
    fn a_holder_answer_verifies_only_with_its_authentication_key() {
        let holder = SigningKey::from_bytes(&[3; 32]);
        let dk = DidKey::from_verifying_key(&holder.verifying_key());
        let doc = dk.document();
        let ch = issue(&claims("challenge", 100), &node());
        let sig = answer(&g(), &ch, &holder);
        verify_answer(&g(), &ch, &doc, &dk.key_id(), &sig).unwrap();
        // Another challenge, another chain, another key: refused.
        let ch2 = issue(&claims("challenge", 101), &node());
        assert!(matches!(verify_answer(&g(), &ch2, &doc, &dk.key_id(), &sig), Err(AuthError::BadResponseSignature(_))));
        assert!(verify_answer(&Hash([5; 32]), &ch, &doc, &dk.key_id(), &sig).is_err());
        let other = answer(&g(), &ch, &SigningKey::from_bytes(&[2; 32]));
        assert!(verify_answer(&g(), &ch, &doc, &dk.key_id(), &other).is_err());
        // The key-agreement method is not an authentication method.
        assert!(matches!(verify_answer(&g(), &ch, &doc, &dk.x25519_key_id(), &sig), Err(AuthError::NotInRelationship(..))));
        assert_eq!(key_agreement_key(&doc).unwrap(), dk.x25519_public_key());
    }

    proptest! {
        #[test]
        fn mangled_tokens_never_open(t in "[A-Za-z0-9_.-]{0,300}", flip in 0usize..400) {
            let node_vk = node().verifying_key();
            prop_assert!(open(&t, &node_vk, expect("token", 1)).is_err());
            let good = issue(&claims("token", 100), &node());
            let mut b = good.clone().into_bytes();
            let i = flip % b.len();
            b[i] = if b[i] == b'A' { b'B' } else { b'A' };
            let s = String::from_utf8(b).unwrap();
            if s != good {
                prop_assert!(open(&s, &node_vk, expect("token", 1)).is_err());
            }
        }
    }
}
