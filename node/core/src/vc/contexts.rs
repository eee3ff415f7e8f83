//! The JSON-LD contexts bundled in the binary (`specs/credentials.md` §3.2): the only
//! contexts a node or the CLI ever loads. They are product data copied unchanged from
//! their publishers (see the table in the spec), parsed once on first use.

use std::collections::HashMap;
use std::sync::OnceLock;

use serde_json::Value;

pub const CREDENTIALS_V2: &str = "https://www.w3.org/ns/credentials/v2";
pub const DATA_INTEGRITY_V2: &str = "https://w3id.org/security/data-integrity/v2";
pub const MULTIKEY_V1: &str = "https://w3id.org/security/multikey/v1";
pub const DID_V1: &str = "https://www.w3.org/ns/did/v1";
pub const STATUS_LIST_V1: &str = "https://www.w3.org/ns/credentials/status/v1";
pub const CITIZENSHIP_V4RC1: &str = "https://w3id.org/citizenship/v4rc1";
pub const EXAMPLES_V2: &str = "https://www.w3.org/ns/credentials/examples/v2";
pub const DOJANG_V1: &str = "https://w3id.org/dojang/credentials/v1";

/// (URL, document text) of every bundled context.
const BUNDLED: [(&str, &str); 8] = [
    (CREDENTIALS_V2, include_str!("../../contexts/credentials-v2.jsonld")),
    (DATA_INTEGRITY_V2, include_str!("../../contexts/data-integrity-v2.jsonld")),
    (MULTIKEY_V1, include_str!("../../contexts/multikey-v1.jsonld")),
    (DID_V1, include_str!("../../contexts/did-v1.jsonld")),
    (STATUS_LIST_V1, include_str!("../../contexts/vc-bitstring-status-list-v1.jsonld")),
    (CITIZENSHIP_V4RC1, include_str!("../../contexts/citizenship-v4rc1.jsonld")),
    (EXAMPLES_V2, include_str!("../../contexts/credentials-examples-v2.jsonld")),
    (DOJANG_V1, include_str!("../../contexts/dojang-credentials-v1.jsonld")),
];

fn parsed() -> &'static HashMap<&'static str, Value> {
    static CELL: OnceLock<HashMap<&'static str, Value>> = OnceLock::new();
    CELL.get_or_init(|| BUNDLED.iter().filter_map(|(url, text)| serde_json::from_str(text).ok().map(|v| (*url, v))).collect())
}

/// The bundled context document for `url`, if there is one. Never fetches.
pub fn get(url: &str) -> Option<&'static Value> {
    parsed().get(url)
}

/// Whether `url` names a bundled context.
pub fn is_known(url: &str) -> bool {
    get(url).is_some()
}

/// The URLs of every bundled context.
pub fn known() -> impl Iterator<Item = &'static str> {
    BUNDLED.iter().map(|(u, _)| *u)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]
    use super::*;

    #[test]
    fn every_bundled_context_parses() {
        for url in known() {
            assert!(get(url).and_then(|d| d.get("@context")).is_some(), "{url}");
        }
        assert!(!is_known("https://example.com/ctx"));
    }

    /// The bundled copies are byte-for-byte the published contexts in the vectors folder.
    #[test]
    fn bundled_contexts_equal_the_published_ones() {
        for (url, file) in [
            (CREDENTIALS_V2, "credentials-v2.jsonld"),
            (DATA_INTEGRITY_V2, "data-integrity-v2.jsonld"),
            (MULTIKEY_V1, "multikey-v1.jsonld"),
            (DID_V1, "did-v1.jsonld"),
            (STATUS_LIST_V1, "vc-bitstring-status-list-v1.jsonld"),
            (CITIZENSHIP_V4RC1, "citizenship-v4rc1.jsonld"),
            (EXAMPLES_V2, "credentials-examples-v2.jsonld"),
        ] {
            let published = crate::testing::read_vector(&format!("jsonld-contexts/{file}"));
            let text = BUNDLED.iter().find(|(u, _)| *u == url).unwrap().1;
            assert_eq!(text.as_bytes(), published.as_slice(), "{url}");
        }
    }
}
