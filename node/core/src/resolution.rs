//! DID resolution over HTTP(S): the W3C DID Resolution HTTP(S) binding and the DIF
//! Universal Resolver driver binding, as pure functions. The node's API module owns the
//! socket; this module decides everything else: which representation an `Accept` header
//! asks for, what the query options mean, whether a path segment is a DID, and the exact
//! status, `Content-Type` and body bytes of every answer.
//!
//! Sources (the normative text, and the transcribed facts the tests drive):
//! - W3C DID Resolution, editor's draft at w3c/did-resolution commit 77571c51. Its
//!   sections are cited by title and anchor, because the section numbers move between
//!   drafts: "DID Resolution Options", "DID Resolution Metadata", "DID Document Metadata"
//!   (all under `#resolving`), "DID Resolution Algorithm" (`#resolving-algorithm`),
//!   "Datetime" (`#datetime`), "Duplicate Parameter Handling"
//!   (`#duplicate-parameter-handling`), "DID Resolution Result"
//!   (`#did-resolution-result`), "Errors" (`#errors`) and "HTTP(S) Binding"
//!   (`#bindings-https`), with its OpenAPI definition `openapi/openapi.yaml`.
//! - The DIF driver binding: universal-resolver `docs/driver-development.md` and
//!   `openapi/openapi.yaml` at commit a2349419, and the reference driver servlet of the
//!   same commit (`driver/.../ResolveServlet.java`, `HttpBindingServerUtil.java`), whose
//!   behaviour fills the gaps the documents leave (default representation, error content
//!   type, the `did%3A` path rule, JSON-encoded options).
//! - W3C DID Core §3.1 "DID Syntax" (the ABNF of [`parse_did`]) and §"Media Types"
//!   (`application/did`, and the lower-precision types it tolerates).
//! - The vectors, read in place by the tests: `did-resolution/http-binding.json` (a summary
//!   of the status table, error types, media types, legacy codes and the
//!   w3c-ccg/did-key-test-suite quirks), `did-resolution/w3c-did-resolution-openapi.yaml`,
//!   `did-resolution/universal-resolver-openapi.yaml`; provenance in `SOURCES.md`.
//!
//! Decisions taken from those sources:
//! - **Default representation**: no `Accept` header, an empty one, `*/*` or `application/*`
//!   get the complete DID resolution result (`application/did-resolution`). The binding
//!   does not name a default; the DIF reference driver answers a missing `Accept` with the
//!   resolution result, and the result is the only representation that can say
//!   "deactivated" or carry metadata.
//! - **Document representations**: `application/did` (DID Core 1.1 and the binding's
//!   examples), `application/did+ld+json` and `application/did+json` (the DID Core 1.0
//!   representations, still in the DID extensions registry), and the lower-precision
//!   `application/ld+json` (without the resolution profile: what the Universal Resolver
//!   sends to drivers, per the vectors) and `application/json` (DID Core "Media Type
//!   Precision"). The same bytes serve all of them: Dojang documents carry `@context`
//!   `https://www.w3.org/ns/did/v1.1` first, so they are valid JSON-LD and valid JSON. The
//!   response `Content-Type` is the type the client named, never a type it did not accept.
//! - **Two result shapes**. The current one (`application/did-resolution`): no
//!   `@context`, `didResolutionMetadata.error` an RFC 9457 problem object
//!   `{type, title, status, detail}`, `didDocument: null` on error. The legacy one, chosen
//!   only by the legacy media type `application/ld+json;profile="https://w3id.org/did-resolution"`
//!   (the did-key-test-suite's `Accept`): a top-level `@context`, `error` as the camelCase
//!   DID Core 1.0 code plus `errorMessage`, and `didDocument: {}` on error (DID Core 1.0:
//!   "MUST be empty"; the suite requires the property to exist even for `did:key:@`). The
//!   plain [`negotiate`]/[`render_success`]/[`render_error`] always use the current shape,
//!   as the DIF reference driver does (it answers the legacy `Accept` with
//!   `application/did-resolution`); [`negotiate_with_format`] and the `*_as` renderers give
//!   legacy clients their own shape.
//! - **Errors** are always a resolution result, `Content-Type: application/did-resolution`
//!   (or the legacy type), even when the client asked for a bare document: the OpenAPI
//!   lists only the result media types for 4xx/5xx, and a document cannot carry an error.
//!   Status codes follow the binding's table exactly ([`status_for_error_type`]).
//! - **Deactivated**: status 410 whenever the flag is set or the document metadata says
//!   `deactivated: true` (binding: "The HTTP response status code MUST be 410"). The body
//!   keeps the negotiated representation: the resolution result with
//!   `didDocumentMetadata.deactivated: true`, or the bare document under its document type
//!   (the OpenAPI's 410 lists `application/did`: "The deactivated DID document").
//! - **Options**: `versionId`, `versionTime` (UTC, no fractional seconds, per "Datetime"),
//!   `expandRelativeUrls` (a no-op: Dojang documents hold absolute DID URLs only) and the
//!   did:key options of the vectors at their default values (`publicKeyFormat=Multikey`,
//!   `enableExperimentalPublicKeyTypes=false`, no-ops). Malformed values, repeated names and
//!   `accept` in the query are `INVALID_OPTIONS` (400); any other option, or another value
//!   of the did:key options, is `FEATURE_NOT_SUPPORTED` (501), as step 3 of the algorithm
//!   prescribes for options the resolver does not support.
//!
//! Nothing here panics, whatever the input: every input is length-bounded before it is
//! parsed, bytes are read with `.get()`, and every rejection is a [`ResolutionError`] whose
//! message is lowercase and names the bad value (truncated, control characters escaped).

use serde_json::{Map, Value, json};

use crate::did_key::{DidKey, DidKeyError};

/// Media type of the DID resolution result ("DID Resolution Result", `#did-resolution-result`).
pub const RESOLUTION_RESULT_MEDIA_TYPE: &str = "application/did-resolution";

/// The older media type of the resolution result, from when results were JSON-LD: the
/// did-key-test-suite sends it, and the DIF reference driver still accepts it.
pub const LEGACY_RESOLUTION_RESULT_MEDIA_TYPE: &str = "application/ld+json;profile=\"https://w3id.org/did-resolution\"";

/// The profile URI of [`LEGACY_RESOLUTION_RESULT_MEDIA_TYPE`].
pub const LEGACY_RESOLUTION_PROFILE: &str = "https://w3id.org/did-resolution";

/// The top-level `@context` of a legacy (JSON-LD) resolution result.
pub const LEGACY_RESOLUTION_CONTEXT: &str = "https://w3id.org/did-resolution/v1";

/// Media type of the DID URL dereferencing result. Dereferencing is not offered here; the
/// constant exists so that its refusal is explicit.
pub const DEREFERENCING_RESULT_MEDIA_TYPE: &str = "application/did-url-dereferencing";

/// The DID document media type of DID Core 1.1 and of the binding's examples.
pub const DID_MEDIA_TYPE: &str = "application/did";

/// DID Core 1.0's JSON-LD representation.
pub const DID_LD_JSON_MEDIA_TYPE: &str = "application/did+ld+json";

/// DID Core 1.0's JSON representation.
pub const DID_JSON_MEDIA_TYPE: &str = "application/did+json";

/// Lower-precision JSON-LD (DID Core "Media Type Precision"); what the Universal Resolver
/// sends to its drivers.
pub const LD_JSON_MEDIA_TYPE: &str = "application/ld+json";

/// Lower-precision JSON (DID Core "Media Type Precision").
pub const JSON_MEDIA_TYPE: &str = "application/json";

/// Longest `Accept` header value [`negotiate`] parses.
pub const MAX_ACCEPT_LEN: usize = 4096;

/// Longest DID (or raw path segment) [`parse_did`] looks at.
pub const MAX_DID_LEN: usize = 4096;

/// Longest raw query string [`parse_options`] parses.
pub const MAX_QUERY_LEN: usize = 4096;

/// The namespace of the error types ("Errors": values without a URL are prefixed with it).
pub const ERROR_TYPE_PREFIX: &str = "https://www.w3.org/ns/did#";

/// How much of a bad value an error message repeats.
const SHOWN_CHARS: usize = 96;

/// What the client asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Representation {
    /// The full resolution result `{didDocument, didResolutionMetadata, didDocumentMetadata}`:
    /// `application/did-resolution` (and the older
    /// `application/ld+json;profile="https://w3id.org/did-resolution"`).
    ResolutionResult,
    /// Just the DID document, served with `media_type` as its `Content-Type`: one of
    /// [`DID_MEDIA_TYPE`], [`DID_LD_JSON_MEDIA_TYPE`], [`DID_JSON_MEDIA_TYPE`],
    /// [`LD_JSON_MEDIA_TYPE`] or [`JSON_MEDIA_TYPE`] (see the module documentation).
    Document { media_type: &'static str },
}

/// The shape of a resolution result (see the module documentation).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ResultFormat {
    /// `application/did-resolution`: RFC 9457 error objects, `didDocument: null` on error.
    #[default]
    Current,
    /// `application/ld+json;profile="https://w3id.org/did-resolution"`: `@context`, camelCase
    /// error codes, `didDocument: {}` on error.
    Legacy,
}

impl ResultFormat {
    /// The `Content-Type` of a resolution result in this shape.
    pub fn media_type(self) -> &'static str {
        match self {
            ResultFormat::Current => RESOLUTION_RESULT_MEDIA_TYPE,
            ResultFormat::Legacy => LEGACY_RESOLUTION_RESULT_MEDIA_TYPE,
        }
    }
}

/// The outcome of content negotiation: the representation, and the result shape to use for
/// it and for any error (always [`ResultFormat::Current`] unless the client named only the
/// legacy result type).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Negotiated {
    pub representation: Representation,
    pub format: ResultFormat,
}

/// A DID resolution failure, one variant per error type of the binding's status table
/// (plus [`ResolutionError::Deactivated`], which is not an error in the current spec but a
/// 410 answer).
///
/// Every `String` payload is the human-readable detail: lowercase, naming the offending
/// value, ready for the problem object's `detail` and for logs. It is sent to the client, so
/// it must not contain secrets. The constructors ([`ResolutionError::not_found`],
/// [`ResolutionError::method_not_supported`], …) write consistent messages.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ResolutionError {
    /// `INVALID_DID` (400): not a DID per the DID Core ABNF, or a DID URL where a DID belongs.
    #[error("{0}")]
    InvalidDid(String),
    /// `NOT_FOUND` (404): no such DID (or no such version of it).
    #[error("{0}")]
    NotFound(String),
    /// The DID is deactivated: 410, rendered as a result whose document metadata says
    /// `deactivated: true` and whose resolution metadata has no error.
    #[error("the did is deactivated")]
    Deactivated,
    /// `METHOD_NOT_SUPPORTED` (501).
    #[error("{0}")]
    MethodNotSupported(String),
    /// `REPRESENTATION_NOT_SUPPORTED` (406): nothing in the `Accept` header can be served.
    #[error("{0}")]
    RepresentationNotSupported(String),
    /// `INVALID_OPTIONS` (400): a malformed, repeated or misplaced resolution option.
    #[error("{0}")]
    InvalidOptions(String),
    /// `INTERNAL_ERROR` (500).
    #[error("{0}")]
    Internal(String),
    /// `INVALID_DID_URL` (400).
    #[error("{0}")]
    InvalidDidUrl(String),
    /// `INVALID_DID_DOCUMENT` (500): the stored or derived document is malformed.
    #[error("{0}")]
    InvalidDidDocument(String),
    /// `FEATURE_NOT_SUPPORTED` (501): a resolution option (or option value) this resolver
    /// does not implement.
    #[error("{0}")]
    FeatureNotSupported(String),
    /// `INVALID_DID` (400) for a syntactically valid `did:key` whose key part is refused
    /// (`specs/did-key.md` §7). `code` keeps the did:key spec's own legacy code
    /// (`invalidPublicKeyLength`, `invalidPublicKey`, `invalidPublicKeyType`,
    /// `unsupportedPublicKeyType`) for legacy-shaped results.
    #[error("{message}")]
    InvalidDidKey { code: &'static str, message: String },
}

/// Error type URIs ("Errors", `#errors`).
pub const INVALID_DID: &str = "https://www.w3.org/ns/did#INVALID_DID";
pub const INVALID_DID_URL: &str = "https://www.w3.org/ns/did#INVALID_DID_URL";
pub const INVALID_OPTIONS: &str = "https://www.w3.org/ns/did#INVALID_OPTIONS";
pub const NOT_FOUND: &str = "https://www.w3.org/ns/did#NOT_FOUND";
pub const REPRESENTATION_NOT_SUPPORTED: &str = "https://www.w3.org/ns/did#REPRESENTATION_NOT_SUPPORTED";
pub const INVALID_DID_DOCUMENT: &str = "https://www.w3.org/ns/did#INVALID_DID_DOCUMENT";
pub const METHOD_NOT_SUPPORTED: &str = "https://www.w3.org/ns/did#METHOD_NOT_SUPPORTED";
pub const FEATURE_NOT_SUPPORTED: &str = "https://www.w3.org/ns/did#FEATURE_NOT_SUPPORTED";
pub const INTERNAL_ERROR: &str = "https://www.w3.org/ns/did#INTERNAL_ERROR";

/// RFC 9457 §4.2.1: a problem with no semantics beyond its status code. Used only as the
/// [`ResolutionError::error_type`] of [`ResolutionError::Deactivated`], which the binding
/// does not treat as an error and which is never rendered with an `error` member.
pub const ABOUT_BLANK: &str = "about:blank";

/// The binding's status table ("HTTP(S) Binding", `#bindings-https`): the HTTP status for
/// an error type URI, 500 for any other URI.
pub fn status_for_error_type(type_uri: &str) -> u16 {
    match type_uri {
        INVALID_DID | INVALID_DID_URL | INVALID_OPTIONS => 400,
        NOT_FOUND => 404,
        REPRESENTATION_NOT_SUPPORTED => 406,
        INVALID_DID_DOCUMENT | INTERNAL_ERROR => 500,
        METHOD_NOT_SUPPORTED | FEATURE_NOT_SUPPORTED => 501,
        _ => 500,
    }
}

impl ResolutionError {
    /// The HTTP status: the binding's table for the error type, 410 for a deactivated DID.
    pub fn status(&self) -> u16 {
        match self {
            ResolutionError::Deactivated => 410,
            _ => status_for_error_type(self.type_uri()),
        }
    }

    /// The W3C error type URI ("Errors"); `about:blank` for [`ResolutionError::Deactivated`].
    pub fn error_type(&self) -> String {
        self.type_uri().to_owned()
    }

    fn type_uri(&self) -> &'static str {
        match self {
            ResolutionError::InvalidDid(_) | ResolutionError::InvalidDidKey { .. } => INVALID_DID,
            ResolutionError::NotFound(_) => NOT_FOUND,
            ResolutionError::Deactivated => ABOUT_BLANK,
            ResolutionError::MethodNotSupported(_) => METHOD_NOT_SUPPORTED,
            ResolutionError::RepresentationNotSupported(_) => REPRESENTATION_NOT_SUPPORTED,
            ResolutionError::InvalidOptions(_) => INVALID_OPTIONS,
            ResolutionError::Internal(_) => INTERNAL_ERROR,
            ResolutionError::InvalidDidUrl(_) => INVALID_DID_URL,
            ResolutionError::InvalidDidDocument(_) => INVALID_DID_DOCUMENT,
            ResolutionError::FeatureNotSupported(_) => FEATURE_NOT_SUPPORTED,
        }
    }

    /// The camelCase code of DID Core 1.0 and the DID spec registries, as the vectors list
    /// them (`invalidDid`, `invalidDidUrl`, `notFound`, `representationNotSupported`,
    /// `methodNotSupported`, `internalError`), the did:key spec's own code for
    /// [`ResolutionError::InvalidDidKey`], and `deactivated` (the DID Core draft code that
    /// became the `deactivated` metadata property, w3c/did-core#468). The types the vectors
    /// give no legacy code (`INVALID_OPTIONS`, `INVALID_DID_DOCUMENT`,
    /// `FEATURE_NOT_SUPPORTED`) get the camelCase spelling of their name.
    pub fn legacy_code(&self) -> &'static str {
        match self {
            ResolutionError::InvalidDid(_) => "invalidDid",
            ResolutionError::InvalidDidKey { code, .. } => code,
            ResolutionError::NotFound(_) => "notFound",
            ResolutionError::Deactivated => "deactivated",
            ResolutionError::MethodNotSupported(_) => "methodNotSupported",
            ResolutionError::RepresentationNotSupported(_) => "representationNotSupported",
            ResolutionError::InvalidOptions(_) => "invalidOptions",
            ResolutionError::Internal(_) => "internalError",
            ResolutionError::InvalidDidUrl(_) => "invalidDidUrl",
            ResolutionError::InvalidDidDocument(_) => "invalidDidDocument",
            ResolutionError::FeatureNotSupported(_) => "featureNotSupported",
        }
    }

    /// The problem object's `title`: short, fixed per type, lowercase like the node's other
    /// problem titles (`specs/api.md` §3).
    pub fn title(&self) -> &'static str {
        match self {
            ResolutionError::InvalidDid(_) | ResolutionError::InvalidDidKey { .. } => "invalid did",
            ResolutionError::NotFound(_) => "did not found",
            ResolutionError::Deactivated => "did deactivated",
            ResolutionError::MethodNotSupported(_) => "did method not supported",
            ResolutionError::RepresentationNotSupported(_) => "representation not supported",
            ResolutionError::InvalidOptions(_) => "invalid resolution options",
            ResolutionError::Internal(_) => "internal error",
            ResolutionError::InvalidDidUrl(_) => "invalid did url",
            ResolutionError::InvalidDidDocument(_) => "invalid did document",
            ResolutionError::FeatureNotSupported(_) => "feature not supported",
        }
    }

    /// `NOT_FOUND` for a DID.
    pub fn not_found(did: &str) -> Self {
        ResolutionError::NotFound(format!("did {} not found", quoted(did)))
    }

    /// `METHOD_NOT_SUPPORTED` for a method name.
    pub fn method_not_supported(method: &str) -> Self {
        ResolutionError::MethodNotSupported(format!("did method {} is not supported", quoted(method)))
    }

    /// `INVALID_DID` for a value and a reason.
    pub fn invalid_did(value: &str, reason: &str) -> Self {
        ResolutionError::InvalidDid(format!("invalid did {}: {reason}", quoted(value)))
    }

    /// `INVALID_OPTIONS` with a reason.
    pub fn invalid_options(reason: impl Into<String>) -> Self {
        ResolutionError::InvalidOptions(reason.into())
    }

    /// Maps a did:key parse error (`specs/did-key.md` §7): syntax errors are `INVALID_DID`,
    /// another method is `METHOD_NOT_SUPPORTED`, key-level refusals keep their did:key code
    /// as [`ResolutionError::InvalidDidKey`].
    pub fn from_did_key_error(err: &DidKeyError) -> Self {
        match err {
            DidKeyError::MethodNotSupported { .. } => ResolutionError::MethodNotSupported(err.to_string()),
            DidKeyError::InvalidDid { .. }
            | DidKeyError::InvalidDidUrl { .. }
            | DidKeyError::InvalidMultibase { .. }
            | DidKeyError::InvalidMulticodec { .. } => ResolutionError::InvalidDid(err.to_string()),
            DidKeyError::InvalidPublicKeyLength { .. }
            | DidKeyError::InvalidPublicKey { .. }
            | DidKeyError::InvalidPublicKeyType { .. }
            | DidKeyError::PrivateKeyMaterial { .. }
            | DidKeyError::UnsupportedPublicKeyType { .. } => ResolutionError::InvalidDidKey { code: err.code(), message: err.to_string() },
        }
    }
}

impl From<DidKeyError> for ResolutionError {
    fn from(err: DidKeyError) -> Self {
        ResolutionError::from_did_key_error(&err)
    }
}

// ---------------------------------------------------------------------------------------
// Content negotiation (RFC 9110 §12.5.1; the binding's Accept rules)
// ---------------------------------------------------------------------------------------

/// One thing this resolver can serve, in server preference order (ties in q-value and
/// specificity go to the earlier one).
struct Candidate {
    type_: &'static str,
    subtype: &'static str,
    profile: Option<&'static str>,
    negotiated: Negotiated,
}

const fn doc(type_: &'static str, subtype: &'static str, media_type: &'static str) -> Candidate {
    Candidate {
        type_,
        subtype,
        profile: None,
        negotiated: Negotiated { representation: Representation::Document { media_type }, format: ResultFormat::Current },
    }
}

const CANDIDATES: [Candidate; 7] = [
    Candidate {
        type_: "application",
        subtype: "did-resolution",
        profile: None,
        negotiated: Negotiated { representation: Representation::ResolutionResult, format: ResultFormat::Current },
    },
    Candidate {
        type_: "application",
        subtype: "ld+json",
        profile: Some(LEGACY_RESOLUTION_PROFILE),
        negotiated: Negotiated { representation: Representation::ResolutionResult, format: ResultFormat::Legacy },
    },
    doc("application", "did", DID_MEDIA_TYPE),
    doc("application", "did+ld+json", DID_LD_JSON_MEDIA_TYPE),
    doc("application", "did+json", DID_JSON_MEDIA_TYPE),
    doc("application", "ld+json", LD_JSON_MEDIA_TYPE),
    doc("application", "json", JSON_MEDIA_TYPE),
];

/// The binding's default, for a missing, empty or all-wildcard `Accept`.
pub const DEFAULT_NEGOTIATED: Negotiated = Negotiated { representation: Representation::ResolutionResult, format: ResultFormat::Current };

/// One parsed media range of an `Accept` header.
#[derive(Debug)]
struct MediaRange {
    type_: String,
    subtype: String,
    profile: Option<String>,
    /// Thousandths: q=0.5 is 500.
    q: u16,
}

impl MediaRange {
    /// How specifically this range names the candidate: `None` if it does not match,
    /// otherwise 0 for `*/*`, 1 for `type/*`, 2 for an exact type. A `profile` parameter on
    /// an exact range must name the candidate's profile (a space-separated list, as JSON-LD
    /// uses); a range without one matches only candidates without a profile, so a bare
    /// `application/ld+json` asks for the document, not the legacy result.
    fn specificity(&self, c: &Candidate) -> Option<u8> {
        // Wildcards never select a profiled type: the legacy result shape is served only to
        // a client that names it.
        let wildcard_ok = c.profile.is_none();
        if self.type_ == "*" {
            return (self.subtype == "*" && wildcard_ok).then_some(0);
        }
        if !self.type_.eq_ignore_ascii_case(c.type_) {
            return None;
        }
        if self.subtype == "*" {
            return wildcard_ok.then_some(1);
        }
        if !self.subtype.eq_ignore_ascii_case(c.subtype) {
            return None;
        }
        let profile_matches = match (&self.profile, c.profile) {
            (None, None) => true,
            (Some(asked), Some(ours)) => asked.split_ascii_whitespace().any(|p| p == ours),
            _ => false,
        };
        profile_matches.then_some(2)
    }
}

/// Content negotiation over an `Accept` header: `None`, an empty header or `*/*` give the
/// binding's default (the resolution result); q-values are honoured (q=0 excludes); among
/// equal q-values the more specific range wins, then the server's preference (resolution
/// result first, then `application/did`, …). Nothing acceptable →
/// [`ResolutionError::RepresentationNotSupported`] (406); a header over
/// [`MAX_ACCEPT_LEN`] bytes → [`ResolutionError::InvalidOptions`] (400).
pub fn negotiate(accept: Option<&str>) -> Result<Representation, ResolutionError> {
    negotiate_with_format(accept).map(|n| n.representation)
}

/// [`negotiate`], also telling which result shape the client asked for (the legacy shape
/// only when the legacy resolution media type is the winning range).
pub fn negotiate_with_format(accept: Option<&str>) -> Result<Negotiated, ResolutionError> {
    let Some(accept) = accept else {
        return Ok(DEFAULT_NEGOTIATED);
    };
    if accept.len() > MAX_ACCEPT_LEN {
        return Err(ResolutionError::InvalidOptions(format!(
            "accept header {} is longer than {MAX_ACCEPT_LEN} bytes ({})",
            quoted(accept),
            accept.len()
        )));
    }
    let mut ranges = Vec::new();
    let mut elements = 0usize;
    for element in split_outside_quotes(accept, ',') {
        if element.trim().is_empty() {
            continue; // RFC 9110 §5.6.1: empty list elements are ignored.
        }
        elements += 1;
        // A malformed element matches nothing but still counts as "something was asked".
        if let Some(range) = parse_media_range(element) {
            ranges.push(range);
        }
    }
    if elements == 0 {
        return Ok(DEFAULT_NEGOTIATED);
    }
    let mut best: Option<(u16, u8, usize)> = None;
    for (index, candidate) in CANDIDATES.iter().enumerate() {
        // The candidate's quality comes from the most specific range that matches it; among
        // equally specific ranges, the first.
        let mut chosen: Option<(u8, u16)> = None;
        for range in &ranges {
            if let Some(spec) = range.specificity(candidate)
                && chosen.is_none_or(|(s, _)| spec > s)
            {
                chosen = Some((spec, range.q));
            }
        }
        let Some((spec, q)) = chosen else { continue };
        if q == 0 {
            continue;
        }
        let better = match best {
            None => true,
            Some((bq, bspec, _)) => (q, spec) > (bq, bspec),
        };
        if better {
            best = Some((q, spec, index));
        }
    }
    match best.and_then(|(_, _, index)| CANDIDATES.get(index)) {
        Some(c) => Ok(c.negotiated),
        None => Err(ResolutionError::RepresentationNotSupported(format!(
            "no acceptable representation for accept {}: this resolver serves {RESOLUTION_RESULT_MEDIA_TYPE}, \
             {LEGACY_RESOLUTION_RESULT_MEDIA_TYPE}, {DID_MEDIA_TYPE}, {DID_LD_JSON_MEDIA_TYPE}, {DID_JSON_MEDIA_TYPE}, \
             {LD_JSON_MEDIA_TYPE} and {JSON_MEDIA_TYPE}",
            quoted(accept)
        ))),
    }
}

/// Splits on `sep` outside double-quoted strings (backslash escapes honoured inside them).
fn split_outside_quotes(s: &str, sep: char) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut start = 0usize;
    let mut in_quotes = false;
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        if in_quotes {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_quotes = false;
            }
        } else if c == '"' {
            in_quotes = true;
        } else if c == sep {
            parts.push(s.get(start..i).unwrap_or(""));
            start = i + c.len_utf8();
        }
    }
    parts.push(s.get(start..).unwrap_or(""));
    parts
}

/// RFC 9110 `token` characters.
fn is_tchar(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c)
}

fn is_token(s: &str) -> bool {
    !s.is_empty() && s.chars().all(is_tchar)
}

/// Parses `type/subtype *( OWS ";" OWS parameter )`, with the weight among the parameters.
/// Returns `None` for anything malformed (bad tokens, `*/subtype`, a bad q-value).
fn parse_media_range(element: &str) -> Option<MediaRange> {
    let mut pieces = split_outside_quotes(element, ';').into_iter();
    let (type_, subtype) = pieces.next()?.trim().split_once('/')?;
    if !is_token(type_) || !is_token(subtype) || (type_ == "*" && subtype != "*") {
        return None;
    }
    let mut range = MediaRange { type_: type_.to_owned(), subtype: subtype.to_owned(), profile: None, q: 1000 };
    for param in pieces {
        let param = param.trim();
        if param.is_empty() {
            continue;
        }
        let (name, value) = param.split_once('=')?;
        let name = name.trim();
        if !is_token(name) {
            return None;
        }
        let value = unquote(value.trim())?;
        if name.eq_ignore_ascii_case("q") {
            range.q = parse_qvalue(&value)?;
        } else if name.eq_ignore_ascii_case("profile") {
            range.profile = Some(value);
        }
        // Other parameters (charset, …) do not change what we serve.
    }
    Some(range)
}

/// A quoted-string's content (backslash escapes removed), or a bare value as is (lenient:
/// clients send unquoted URIs, which are not RFC 9110 tokens).
fn unquote(value: &str) -> Option<String> {
    let Some(inner) = value.strip_prefix('"') else {
        return Some(value.to_owned());
    };
    let inner = inner.strip_suffix('"')?;
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            out.push(chars.next()?);
        } else if c == '"' {
            return None;
        } else {
            out.push(c);
        }
    }
    Some(out)
}

/// RFC 9110 §12.4.2: `qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] )`, in
/// thousandths.
fn parse_qvalue(s: &str) -> Option<u16> {
    let (int, frac) = match s.split_once('.') {
        Some((i, f)) => (i, f),
        None => (s, ""),
    };
    if frac.len() > 3 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut thousandths = 0u16;
    for (i, b) in frac.bytes().enumerate() {
        let scale = match i {
            0 => 100,
            1 => 10,
            _ => 1,
        };
        thousandths += u16::from(b - b'0') * scale;
    }
    match int {
        "0" => Some(thousandths),
        "1" if thousandths == 0 => Some(1000),
        _ => None,
    }
}

// ---------------------------------------------------------------------------------------
// Resolution options ("DID Resolution Options"; the GET binding's query parameters)
// ---------------------------------------------------------------------------------------

/// Query options of the binding that change the result.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResolutionOptions {
    /// `versionId`: a specific version (method-specific string, non-empty).
    pub version_id: Option<String>,
    /// `versionTime`: the version valid at this instant, in the "Datetime" form
    /// `YYYY-MM-DDThh:mm:ssZ` (UTC, no fractional seconds), validated.
    pub version_time: Option<String>,
}

/// Parses the raw query string of a GET request (without the `?`; one leading `?` is
/// tolerated) into [`ResolutionOptions`]. The query is percent-decoded here, as
/// `application/x-www-form-urlencoded` (`+` is a space), which is how the Universal
/// Resolver encodes options. A query without `=` that decodes to a JSON object is read as
/// the JSON-encoded options the DIF driver binding sends when an option is not a string.
///
/// Rules (module documentation): `versionId`, `versionTime`, `expandRelativeUrls`,
/// `publicKeyFormat=Multikey` and `enableExperimentalPublicKeyTypes=false` are accepted;
/// malformed values, empty values, repeated names ("Duplicate Parameter Handling"), bad
/// percent-encoding and `accept` (which belongs in the `Accept` header) are
/// [`ResolutionError::InvalidOptions`]; other names and other did:key option values are
/// [`ResolutionError::FeatureNotSupported`]. Over [`MAX_QUERY_LEN`] bytes is
/// `InvalidOptions`.
pub fn parse_options(query: Option<&str>) -> Result<ResolutionOptions, ResolutionError> {
    let Some(query) = query else {
        return Ok(ResolutionOptions::default());
    };
    if query.len() > MAX_QUERY_LEN {
        return Err(ResolutionError::InvalidOptions(format!(
            "query string {} is longer than {MAX_QUERY_LEN} bytes ({})",
            quoted(query),
            query.len()
        )));
    }
    let query = query.strip_prefix('?').unwrap_or(query);
    let looks_like_json = !query.contains('=') && (query.starts_with('{') || query.get(..3).is_some_and(|h| h.eq_ignore_ascii_case("%7b")));
    let pairs = if looks_like_json { json_option_pairs(query)? } else { form_option_pairs(query)? };
    let mut options = ResolutionOptions::default();
    let mut seen: Vec<String> = Vec::new();
    for (name, value) in pairs {
        if seen.contains(&name) {
            return Err(ResolutionError::InvalidOptions(format!("resolution option {} is repeated", quoted(&name))));
        }
        seen.push(name.clone());
        apply_option(&mut options, &name, value)?;
    }
    Ok(options)
}

/// An option value: strings from a form query; strings or booleans (or anything) from JSON.
enum OptionValue {
    Str(String),
    Bool(bool),
    Other(Value),
}

impl OptionValue {
    fn describe(&self) -> String {
        match self {
            OptionValue::Str(s) => quoted(s),
            OptionValue::Bool(b) => b.to_string(),
            OptionValue::Other(v) => quoted(&v.to_string()),
        }
    }

    fn as_str(&self) -> Option<&str> {
        match self {
            OptionValue::Str(s) => Some(s),
            _ => None,
        }
    }

    /// A boolean option: JSON `true`/`false` or the strings "true"/"false".
    fn as_bool(&self) -> Option<bool> {
        match self {
            OptionValue::Bool(b) => Some(*b),
            OptionValue::Str(s) if s == "true" => Some(true),
            OptionValue::Str(s) if s == "false" => Some(false),
            _ => None,
        }
    }
}

fn form_option_pairs(query: &str) -> Result<Vec<(String, OptionValue)>, ResolutionError> {
    let mut pairs = Vec::new();
    for pair in query.split('&') {
        if pair.is_empty() {
            continue;
        }
        let (raw_name, raw_value) = pair.split_once('=').unwrap_or((pair, ""));
        let name = percent_decode(raw_name, true)
            .map_err(|reason| ResolutionError::InvalidOptions(format!("resolution option name {}: {reason}", quoted(raw_name))))?;
        let value = percent_decode(raw_value, true).map_err(|reason| {
            ResolutionError::InvalidOptions(format!("value {} of resolution option {}: {reason}", quoted(raw_value), quoted(&name)))
        })?;
        pairs.push((name, OptionValue::Str(value)));
    }
    Ok(pairs)
}

/// The DIF reference driver's other query form: the whole query is a URL-encoded JSON object.
fn json_option_pairs(query: &str) -> Result<Vec<(String, OptionValue)>, ResolutionError> {
    let decoded = percent_decode(query, true)
        .map_err(|reason| ResolutionError::InvalidOptions(format!("query string {}: {reason}", quoted(query))))?;
    // Kept as a list of members, not a map, so that a repeated name is seen and refused.
    let JsonMembers(members) = serde_json::from_str(&decoded).map_err(|e| {
        ResolutionError::InvalidOptions(format!("query string {} is neither name=value pairs nor a json object: {e}", quoted(&decoded)))
    })?;
    Ok(members
        .into_iter()
        .map(|(name, value)| {
            let value = match value {
                Value::String(s) => OptionValue::Str(s),
                Value::Bool(b) => OptionValue::Bool(b),
                other => OptionValue::Other(other),
            };
            (name, value)
        })
        .collect())
}

/// A JSON object's members in order, duplicates included.
struct JsonMembers(Vec<(String, Value)>);

impl<'de> serde::Deserialize<'de> for JsonMembers {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Members;
        impl<'de> serde::de::Visitor<'de> for Members {
            type Value = JsonMembers;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a json object of resolution options")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<JsonMembers, A::Error> {
                let mut members = Vec::new();
                while let Some(member) = map.next_entry::<String, Value>()? {
                    members.push(member);
                }
                Ok(JsonMembers(members))
            }
        }
        d.deserialize_map(Members)
    }
}

fn apply_option(options: &mut ResolutionOptions, name: &str, value: OptionValue) -> Result<(), ResolutionError> {
    let bad = |what: &str| ResolutionError::InvalidOptions(format!("resolution option {} = {}: {what}", quoted(name), value.describe()));
    match name {
        "versionId" => {
            let v = value.as_str().ok_or_else(|| bad("must be a string"))?;
            if v.is_empty() {
                return Err(bad("must not be empty"));
            }
            if v.chars().any(char::is_control) {
                return Err(bad("must not contain control characters"));
            }
            options.version_id = Some(v.to_owned());
        }
        "versionTime" => {
            let v = value.as_str().ok_or_else(|| bad("must be a string"))?;
            if !is_did_datetime(v) {
                return Err(bad("must be a utc datetime without fractional seconds, like \"2020-12-20T19:17:47Z\""));
            }
            options.version_time = Some(v.to_owned());
        }
        // Dojang documents contain absolute DID URLs only, so expansion changes nothing.
        "expandRelativeUrls" => {
            value.as_bool().ok_or_else(|| bad("must be true or false"))?;
        }
        // The did:key resolution options of the vectors (`didKeyResolutionOptions`):
        // `specs/did-key.md` §8.4 offers neither, so only their default values are accepted.
        "publicKeyFormat" => {
            let v = value.as_str().ok_or_else(|| bad("must be a string"))?;
            if v != "Multikey" {
                return Err(ResolutionError::FeatureNotSupported(format!(
                    "resolution option publicKeyFormat = {}: only Multikey documents are produced",
                    quoted(v)
                )));
            }
        }
        "enableExperimentalPublicKeyTypes" => {
            if value.as_bool().ok_or_else(|| bad("must be true or false"))? {
                return Err(ResolutionError::FeatureNotSupported(
                    "resolution option enableExperimentalPublicKeyTypes = true: only ed25519 did:key dids are supported".to_owned(),
                ));
            }
        }
        "accept" => return Err(bad("the accept option goes in the accept header, not the query")),
        _ => {
            return Err(ResolutionError::FeatureNotSupported(format!(
                "resolution option {} is not supported (supported: versionId, versionTime, expandRelativeUrls)",
                quoted(name)
            )));
        }
    }
    Ok(())
}

/// "Datetime" (`#datetime`): an XML Schema dateTime "adjusted to UTC without sub-second
/// decimal precision", i.e. exactly `YYYY-MM-DDThh:mm:ssZ` with a real calendar date (years
/// 0001-9999, no leap second: XML Schema has none).
fn is_did_datetime(s: &str) -> bool {
    let b = s.as_bytes();
    if b.len() != 20 {
        return false;
    }
    let shape_ok = b.iter().enumerate().all(|(i, &c)| match i {
        4 | 7 => c == b'-',
        10 => c == b'T',
        13 | 16 => c == b':',
        19 => c == b'Z',
        _ => c.is_ascii_digit(),
    });
    if !shape_ok {
        return false;
    }
    let num =
        |from: usize, to: usize| -> u32 { b.get(from..to).unwrap_or(&[]).iter().fold(0u32, |acc, &d| acc * 10 + u32::from(d - b'0')) };
    let (year, month, day) = (num(0, 4), num(5, 7), num(8, 10));
    let (hour, minute, second) = (num(11, 13), num(14, 16), num(17, 19));
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    let days_in_month = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return false,
    };
    year >= 1 && (1..=days_in_month).contains(&day) && hour < 24 && minute < 60 && second < 60
}

/// Percent-decodes (RFC 3986 §2.1), optionally reading `+` as a space (form encoding).
/// The decoded bytes must be UTF-8.
fn percent_decode(input: &str, plus_as_space: bool) -> Result<String, String> {
    let bytes = input.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0usize;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'%' => {
                let hi = bytes.get(i + 1).copied().and_then(hex_value);
                let lo = bytes.get(i + 2).copied().and_then(hex_value);
                match (hi, lo) {
                    (Some(hi), Some(lo)) => out.push((hi << 4) | lo),
                    _ => return Err(format!("bad percent-encoding at byte {i}")),
                }
                i += 3;
            }
            b'+' if plus_as_space => {
                out.push(b' ');
                i += 1;
            }
            _ => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).map_err(|_| "percent-decodes to bytes that are not utf-8".to_owned())
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

// ---------------------------------------------------------------------------------------
// DIDs (DID Core §3.1 "DID Syntax")
// ---------------------------------------------------------------------------------------

/// Splits the identifier path segment into the DID and its method, rejecting anything that
/// is not a DID with [`ResolutionError::InvalidDid`].
///
/// Pass the segment **as it appeared in the request URI, not yet percent-decoded** (with
/// axum, from `req.uri().path()`, not `Path<String>`). Following the DIF reference driver:
/// a segment that begins with `did%3A` (any hex case) is the URL-encoded form the binding
/// requires when options are present (and that the did-key-test-suite always sends), and is
/// decoded once; any other segment is taken literally, so a DID's own `pct-encoded`
/// characters survive. (An already-decoded DID works too: it never begins with `did%3A`.)
///
/// Syntax, exactly the ABNF of DID Core:
/// `did = "did:" method-name ":" method-specific-id`, `method-name = 1*(%x61-7A / DIGIT)`,
/// `method-specific-id = *( *idchar ":" ) 1*idchar`,
/// `idchar = ALPHA / DIGIT / "." / "-" / "_" / pct-encoded`. A DID URL (path, query or
/// fragment) is refused: this binding resolves DIDs; it does not dereference DID URLs.
pub fn parse_did(s: &str) -> Result<(String, String), ResolutionError> {
    if s.len() > MAX_DID_LEN {
        return Err(ResolutionError::invalid_did(s, &format!("longer than {MAX_DID_LEN} bytes ({})", s.len())));
    }
    let did = match s.get(..6) {
        Some(head) if head.eq_ignore_ascii_case("did%3a") => {
            percent_decode(s, false).map_err(|reason| ResolutionError::invalid_did(s, &format!("url-encoded did: {reason}")))?
        }
        _ => s.to_owned(),
    };
    let method = check_did_syntax(&did).map_err(|reason| ResolutionError::invalid_did(&did, &reason))?.to_owned();
    Ok((did, method))
}

/// The DID Core ABNF; returns the method name or the reason for refusal.
fn check_did_syntax(did: &str) -> Result<&str, String> {
    if did.is_empty() {
        return Err("empty string".to_owned());
    }
    let Some(rest) = did.strip_prefix("did:") else {
        return Err(match did.get(..4) {
            Some(head) if head.eq_ignore_ascii_case("did:") => "the scheme must be lowercase \"did:\"".to_owned(),
            _ => "does not start with \"did:\"".to_owned(),
        });
    };
    let Some((method, msid)) = rest.split_once(':') else {
        return Err("missing ':' between the method name and the method-specific id".to_owned());
    };
    if method.is_empty() {
        return Err("empty method name".to_owned());
    }
    if let Some(c) = method.chars().find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit())) {
        return Err(format!("method name may hold only lowercase letters and digits, found {}", quoted(&c.to_string())));
    }
    if msid.is_empty() {
        return Err("empty method-specific id".to_owned());
    }
    if msid.contains(['/', '?', '#']) {
        return Err("a did url (path, query or fragment) is not a did; this binding resolves dids only".to_owned());
    }
    let bytes = msid.as_bytes();
    let mut i = 0usize;
    while let Some(&b) = bytes.get(i) {
        if b == b'%' {
            let ok = bytes.get(i + 1).is_some_and(u8::is_ascii_hexdigit) && bytes.get(i + 2).is_some_and(u8::is_ascii_hexdigit);
            if !ok {
                return Err(format!("'%' not followed by two hex digits at method-specific id byte {i}"));
            }
            i += 3;
        } else if b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b':') {
            i += 1;
        } else {
            let c = msid.get(i..).and_then(|t| t.chars().next()).unwrap_or(char::REPLACEMENT_CHARACTER);
            return Err(format!("character {} at method-specific id byte {i} is not an idchar", quoted(&c.to_string())));
        }
    }
    if msid.ends_with(':') {
        return Err("the method-specific id must not end with ':'".to_owned());
    }
    Ok(method)
}

/// Resolves a `did:key` entirely locally (`specs/did-key.md`): the DID must pass
/// [`parse_did`]'s syntax, be of method `key` (else `METHOD_NOT_SUPPORTED`) and parse as a
/// Dojang did:key (errors mapped by [`ResolutionError::from_did_key_error`]). Returns the
/// document of [`DidKey::document`] and empty document metadata: a did:key has no
/// creation time, no versions and cannot be deactivated.
pub fn resolve_did_key(did: &str) -> Result<(Value, Value), ResolutionError> {
    let (did, method) = parse_did(did)?;
    if method != "key" {
        return Err(ResolutionError::method_not_supported(&method));
    }
    let key = DidKey::parse(&did).map_err(|e| ResolutionError::from_did_key_error(&e))?;
    Ok((key.document(), Value::Object(Map::new())))
}

/// The whole binding for did:key, as an example of composing the pieces and for nodes that
/// serve did:key only: the raw path segment, the raw query and the `Accept` header in; the
/// status, `Content-Type` and body out. The checks run in the order of the "DID Resolution
/// Algorithm": DID syntax, method, options, then resolution, then the representation (a
/// bad DID is a 400 whatever the `Accept`). A `versionId` is `NOT_FOUND` (a did:key has no
/// versions); any valid `versionTime` gets the one immutable document.
pub fn respond_did_key(identifier: &str, query: Option<&str>, accept: Option<&str>) -> (u16, String, Vec<u8>) {
    let negotiated = negotiate_with_format(accept);
    let format = negotiated.as_ref().map_or(ResultFormat::Current, |n| n.format);
    let outcome = (|| {
        let (did, _) = parse_did(identifier)?;
        let (document, metadata) = resolve_did_key_checked(&did, query)?;
        let negotiated = negotiated.clone()?;
        Ok((negotiated.representation, document, metadata))
    })();
    match outcome {
        Ok((repr, document, metadata)) => render_success_as(format, repr, &document, &metadata, Value::Null, false),
        Err(err) => render_error_as(format, &err),
    }
}

fn resolve_did_key_checked(did: &str, query: Option<&str>) -> Result<(Value, Value), ResolutionError> {
    // Method before options (algorithm steps 2-4).
    let (_, method) = parse_did(did)?;
    if method != "key" {
        return Err(ResolutionError::method_not_supported(&method));
    }
    let options = parse_options(query)?;
    let (document, metadata) = resolve_did_key(did)?;
    if let Some(version) = options.version_id {
        return Err(ResolutionError::NotFound(format!(
            "did {} has no version {}: did:key documents are immutable",
            quoted(did),
            quoted(&version)
        )));
    }
    Ok((document, metadata))
}

// ---------------------------------------------------------------------------------------
// Rendering ("HTTP(S) Binding", "DID Resolution Result")
// ---------------------------------------------------------------------------------------

/// A successful or deactivated resolution, rendered for the chosen representation, in the
/// current result shape: `(status, Content-Type, body)`. See [`render_success_as`].
pub fn render_success(
    repr: Representation,
    document: &Value,
    document_metadata: &Value,
    extra_resolution_metadata: Value,
    deactivated: bool,
) -> (u16, String, Vec<u8>) {
    render_success_as(ResultFormat::Current, repr, document, document_metadata, extra_resolution_metadata, deactivated)
}

/// A successful or deactivated resolution.
///
/// - Status 200, or 410 when `deactivated` is set or `document_metadata.deactivated` is
///   `true` ("HTTP(S) Binding").
/// - [`Representation::ResolutionResult`]: `{didDocument, didResolutionMetadata,
///   didDocumentMetadata}` under the format's media type. `didResolutionMetadata` is
///   `{contentType}` (`application/did`; `application/did+ld+json` in the legacy shape)
///   plus the members of `extra_resolution_metadata` if it is an object (its own
///   `contentType` and `error` members are dropped: this is a success). A deactivated
///   result has `didDocumentMetadata.deactivated: true` (a non-object metadata value is
///   replaced by an object). The document is embedded as given: the algorithm's step for
///   a deactivated DID returns `didDocument: null`, the OpenAPI's 410 "the deactivated DID
///   document"; pass `Value::Null` for the former.
/// - [`Representation::Document`]: the document's bytes under `media_type`.
pub fn render_success_as(
    format: ResultFormat,
    repr: Representation,
    document: &Value,
    document_metadata: &Value,
    extra_resolution_metadata: Value,
    deactivated: bool,
) -> (u16, String, Vec<u8>) {
    let deactivated = deactivated || document_metadata.get("deactivated") == Some(&Value::Bool(true));
    let status = if deactivated { 410 } else { 200 };
    match repr {
        Representation::Document { media_type } => (status, media_type.to_owned(), to_bytes(document)),
        Representation::ResolutionResult => {
            let mut resolution_metadata = match extra_resolution_metadata {
                Value::Object(map) => map,
                _ => Map::new(),
            };
            resolution_metadata.remove("error");
            let content_type = match format {
                ResultFormat::Current => DID_MEDIA_TYPE,
                ResultFormat::Legacy => DID_LD_JSON_MEDIA_TYPE,
            };
            resolution_metadata.insert("contentType".to_owned(), Value::from(content_type));
            let mut metadata = match document_metadata {
                Value::Object(map) => map.clone(),
                _ => Map::new(),
            };
            if deactivated {
                metadata.insert("deactivated".to_owned(), Value::Bool(true));
            }
            let body = result_body(format, document.clone(), resolution_metadata, metadata);
            (status, format.media_type().to_owned(), to_bytes(&body))
        }
    }
}

/// An error rendered as a resolution result in the current shape, whatever representation
/// the client asked for. See [`render_error_as`].
pub fn render_error(err: &ResolutionError) -> (u16, String, Vec<u8>) {
    render_error_as(ResultFormat::Current, err)
}

/// An error rendered as a resolution result: status from the binding's table,
/// `Content-Type` the format's result media type (errors are never bare documents), body
/// `{didDocument, didResolutionMetadata: {error}, didDocumentMetadata: {}}` per the
/// algorithm's error steps.
///
/// - Current shape: `error` is an RFC 9457 problem object `{type, title, status, detail}`
///   ("Errors": type a URL, title short, detail longer); `didDocument` is `null`.
/// - Legacy shape: `@context`, `error` the camelCase code ([`ResolutionError::legacy_code`])
///   and `errorMessage` the detail (the members the Universal Resolver client reads);
///   `didDocument` is `{}` (see the module documentation).
/// - [`ResolutionError::Deactivated`] is not an error in the binding: 410, no `error`
///   member, `didDocumentMetadata: {deactivated: true}`, no document.
pub fn render_error_as(format: ResultFormat, err: &ResolutionError) -> (u16, String, Vec<u8>) {
    let empty_document = match format {
        ResultFormat::Current => Value::Null,
        ResultFormat::Legacy => Value::Object(Map::new()),
    };
    let mut resolution_metadata = Map::new();
    let mut document_metadata = Map::new();
    if matches!(err, ResolutionError::Deactivated) {
        document_metadata.insert("deactivated".to_owned(), Value::Bool(true));
    } else {
        match format {
            ResultFormat::Current => {
                let problem = json!({
                    "type": err.type_uri(),
                    "title": err.title(),
                    "status": err.status(),
                    "detail": err.to_string(),
                });
                resolution_metadata.insert("error".to_owned(), problem);
            }
            ResultFormat::Legacy => {
                resolution_metadata.insert("error".to_owned(), Value::from(err.legacy_code()));
                resolution_metadata.insert("errorMessage".to_owned(), Value::from(err.to_string()));
            }
        }
    }
    let body = result_body(format, empty_document, resolution_metadata, document_metadata);
    (err.status(), format.media_type().to_owned(), to_bytes(&body))
}

fn result_body(
    format: ResultFormat,
    document: Value,
    resolution_metadata: Map<String, Value>,
    document_metadata: Map<String, Value>,
) -> Value {
    let mut body = Map::new();
    if format == ResultFormat::Legacy {
        body.insert("@context".to_owned(), Value::from(LEGACY_RESOLUTION_CONTEXT));
    }
    body.insert("didDocument".to_owned(), document);
    body.insert("didResolutionMetadata".to_owned(), Value::Object(resolution_metadata));
    body.insert("didDocumentMetadata".to_owned(), Value::Object(document_metadata));
    Value::Object(body)
}

/// Compact JSON bytes. Serialising a `Value` cannot fail (its keys are strings); should it
/// ever, the answer is still valid JSON rather than a panic.
fn to_bytes(value: &Value) -> Vec<u8> {
    serde_json::to_vec(value).unwrap_or_else(|_| b"null".to_vec())
}

/// A bad value as repeated in a message: at most [`SHOWN_CHARS`] characters (never splitting
/// a character), an ellipsis if cut, quoted with `{:?}` so control characters are escaped.
fn quoted(value: &str) -> String {
    let mut shown: String = value.chars().take(SHOWN_CHARS).collect();
    if shown.len() < value.len() {
        shown.push('…');
    }
    format!("{shown:?}")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

    use super::*;
    use crate::testing::read_vector;
    use proptest::prelude::*;

    /// `did-resolution/http-binding.json` (transcribed from w3c/did-resolution @ 77571c51,
    /// universal-resolver @ a2349419 and did-key-test-suite @ 870e9647; see SOURCES.md).
    fn binding() -> Value {
        serde_json::from_slice(&read_vector("did-resolution/http-binding.json")).unwrap()
    }

    fn body_json(body: &[u8]) -> Value {
        serde_json::from_slice(body).unwrap()
    }

    const SAMPLE_DID: &str = "did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK";

    fn doc_repr(media_type: &'static str) -> Representation {
        Representation::Document { media_type }
    }

    /// One error of every type, with a message.
    fn one_of_each() -> Vec<ResolutionError> {
        vec![
            ResolutionError::invalid_did("x", "reason"),
            ResolutionError::InvalidDidUrl("invalid did url \"x\"".into()),
            ResolutionError::invalid_options("bad option"),
            ResolutionError::not_found(SAMPLE_DID),
            ResolutionError::RepresentationNotSupported("no acceptable representation".into()),
            ResolutionError::InvalidDidDocument("broken".into()),
            ResolutionError::method_not_supported("web"),
            ResolutionError::FeatureNotSupported("resolution option \"x\" is not supported".into()),
            ResolutionError::Internal("storage failed".into()),
            ResolutionError::InvalidDidKey { code: "invalidPublicKeyLength", message: "ed25519-pub key must be 32 bytes, got 3".into() },
        ]
    }

    /// The vectors' `errors` table: every type URI has its HTTP status and legacy code, in
    /// the error values, in `status_for_error_type` and in the rendered bodies.
    #[test]
    fn vector_error_table() {
        let v = binding();
        let errors = v["errors"].as_array().unwrap();
        assert_eq!(errors.len(), 10);
        let all = one_of_each();
        for row in errors {
            let uri = row["typeUri"].as_str().unwrap();
            let http = row["http"].as_u64().unwrap() as u16;
            if uri == "(any other)" {
                assert_eq!(status_for_error_type("https://www.w3.org/ns/did#SOMETHING_ELSE"), http);
                assert_eq!(status_for_error_type("urn:example:whatever"), http);
                continue;
            }
            assert_eq!(status_for_error_type(uri), http, "{uri}");
            let matching: Vec<&ResolutionError> = all.iter().filter(|e| e.error_type() == uri).collect();
            assert!(!matching.is_empty(), "no ResolutionError variant for {uri}");
            for err in matching {
                assert_eq!(err.status(), http, "{uri}");
                if let Some(legacy) = row["legacy"].as_str()
                    && !matches!(err, ResolutionError::InvalidDidKey { .. })
                {
                    assert_eq!(err.legacy_code(), legacy, "{uri}");
                }
                let (status, ct, body) = render_error(err);
                assert_eq!((status, ct.as_str()), (http, RESOLUTION_RESULT_MEDIA_TYPE));
                let body = body_json(&body);
                let problem = &body["didResolutionMetadata"]["error"];
                assert_eq!(problem["type"], uri);
                assert_eq!(problem["status"], http);
                assert!(problem["title"].as_str().is_some_and(|t| !t.is_empty()));
                assert_eq!(problem["detail"], err.to_string());
                assert_eq!(body["didDocument"], Value::Null);
                assert_eq!(body["didDocumentMetadata"], json!({}));
            }
        }
        // Every variant's type is in the table (none falls through to "any other").
        let uris: Vec<&str> = errors.iter().map(|r| r["typeUri"].as_str().unwrap()).collect();
        for err in &all {
            assert!(uris.contains(&err.error_type().as_str()), "{err:?}");
        }
        // The did:key-specific legacy codes of the vectors survive resolution, as 400
        // INVALID_DID with the did:key code.
        let mut identity = vec![0xed, 0x01, 1];
        identity.resize(34, 0);
        let small_order = format!("did:key:{}", crate::did_key::multibase_encode_base58btc(&identity));
        for code in v["didKeySpecificLegacyErrors"].as_array().unwrap() {
            let code = code.as_str().unwrap();
            let did = match code {
                "invalidPublicKeyLength" => "did:key:zTjsVPtY",
                "invalidPublicKeyType" => "did:key:z6LSeu9HkTHSfLLeUs2nnzUSNedgDUevfNQgQjQC23ZCit6F",
                "unsupportedPublicKeyType" => "did:key:zQ3shokFTS3brHcDQrn82RUDfCZESWL1ZdCEJwekUDPQiYBme",
                "invalidPublicKey" => &small_order,
                other => panic!("unexpected did:key code {other}"),
            };
            let e = resolve_did_key(did).unwrap_err();
            assert!(matches!(e, ResolutionError::InvalidDidKey { .. }), "{did}: {e:?}");
            assert_eq!((e.legacy_code(), e.status(), e.error_type().as_str()), (code, 400, INVALID_DID), "{did}");
            let (_, _, body) = render_error_as(ResultFormat::Legacy, &e);
            assert_eq!(body_json(&body)["didResolutionMetadata"]["error"], code);
        }
    }

    /// The brief's status summary, variant by variant.
    #[test]
    fn statuses() {
        assert_eq!(ResolutionError::InvalidDid("m".into()).status(), 400);
        assert_eq!(ResolutionError::NotFound("m".into()).status(), 404);
        assert_eq!(ResolutionError::RepresentationNotSupported("m".into()).status(), 406);
        assert_eq!(ResolutionError::Deactivated.status(), 410);
        assert_eq!(ResolutionError::MethodNotSupported("m".into()).status(), 501);
        assert_eq!(ResolutionError::InvalidOptions("m".into()).status(), 400);
        assert_eq!(ResolutionError::Internal("m".into()).status(), 500);
        assert_eq!(ResolutionError::InvalidDid("m".into()).error_type(), "https://www.w3.org/ns/did#INVALID_DID");
        assert_eq!(ResolutionError::Deactivated.error_type(), ABOUT_BLANK);
        for err in one_of_each() {
            assert!(err.error_type().starts_with(ERROR_TYPE_PREFIX));
        }
    }

    /// The vectors' `deactivated` rule: metadata deactivated == true → 410, the body still
    /// the resolution result.
    #[test]
    fn deactivated_is_410() {
        let v = binding();
        assert!(v["deactivated"].as_str().unwrap().contains("410"));
        let (document, _) = resolve_did_key(SAMPLE_DID).unwrap();
        let meta = json!({"created": "2020-12-20T19:17:47Z"});
        let (status, ct, body) = render_success(Representation::ResolutionResult, &document, &meta, json!({}), true);
        assert_eq!((status, ct.as_str()), (410, RESOLUTION_RESULT_MEDIA_TYPE));
        let body = body_json(&body);
        assert_eq!(body["didDocumentMetadata"], json!({"created": "2020-12-20T19:17:47Z", "deactivated": true}));
        assert_eq!(body["didDocument"], document);
        assert!(body["didResolutionMetadata"].get("error").is_none());
        // The metadata alone also makes it 410.
        let (status, _, body) =
            render_success(Representation::ResolutionResult, &Value::Null, &json!({"deactivated": true}), Value::Null, false);
        assert_eq!(status, 410);
        assert_eq!(body_json(&body)["didDocument"], Value::Null);
        // deactivated: false is an ordinary 200.
        let (status, _, _) =
            render_success(Representation::ResolutionResult, &document, &json!({"deactivated": false}), Value::Null, false);
        assert_eq!(status, 200);
        // A document representation keeps its type, with status 410 (OpenAPI 410, application/did).
        let (status, ct, body) = render_success(doc_repr(DID_MEDIA_TYPE), &document, &json!({}), Value::Null, true);
        assert_eq!((status, ct.as_str()), (410, DID_MEDIA_TYPE));
        assert_eq!(body_json(&body), document);
        // Deactivated as an error value: 410, no error member, metadata deactivated.
        for format in [ResultFormat::Current, ResultFormat::Legacy] {
            let (status, ct, body) = render_error_as(format, &ResolutionError::Deactivated);
            assert_eq!((status, ct.as_str()), (410, format.media_type()));
            let body = body_json(&body);
            assert_eq!(body["didDocumentMetadata"], json!({"deactivated": true}));
            assert_eq!(body["didResolutionMetadata"], json!({}));
        }
    }

    /// The vectors' `acceptHeaders`.
    #[test]
    fn vector_accept_headers() {
        let v = binding();
        let a = &v["acceptHeaders"];
        let n = |k: &str| negotiate_with_format(Some(a[k].as_str().unwrap()));
        assert_eq!(n("didResolutionResult_current").unwrap(), DEFAULT_NEGOTIATED);
        assert_eq!(n("didDocument_current").unwrap().representation, doc_repr(DID_MEDIA_TYPE));
        assert_eq!(
            n("legacy_sentByDidKeyTestSuite").unwrap(),
            Negotiated { representation: Representation::ResolutionResult, format: ResultFormat::Legacy }
        );
        assert_eq!(a["legacy_sentByDidKeyTestSuite"], LEGACY_RESOLUTION_RESULT_MEDIA_TYPE);
        assert_eq!(n("legacy_sentByUniversalResolverToDrivers").unwrap().representation, doc_repr(LD_JSON_MEDIA_TYPE));
        // Dereferencing is not offered: its result type alone is not acceptable.
        assert_eq!(a["didUrlDereferencingResult_current"], DEREFERENCING_RESULT_MEDIA_TYPE);
        let e = n("didUrlDereferencingResult_current").unwrap_err();
        assert_eq!(e.status(), 406);
        assert!(e.to_string().contains("application/did-url-dereferencing"), "{e}");
        // What the Universal Resolver's HttpDriver sends today: the result type, then the
        // `accept` option (default application/did).
        assert_eq!(negotiate(Some("application/did-resolution,application/did")).unwrap(), Representation::ResolutionResult);
    }

    /// The binding's default, wildcards and q-values (RFC 9110 §12.5.1).
    #[test]
    fn accept_variants() {
        let r = |s: Option<&str>| negotiate(s);
        let rr = Ok(Representation::ResolutionResult);
        assert_eq!(r(None), rr);
        assert_eq!(r(Some("*/*")), rr);
        assert_eq!(r(Some("")), rr);
        assert_eq!(r(Some("  , ,")), rr);
        assert_eq!(r(Some("application/*")), rr);
        assert_eq!(r(Some("application/did-resolution")), rr);
        assert_eq!(r(Some("Application/DID-Resolution")), rr);
        assert_eq!(r(Some("application/did-resolution; charset=utf-8")), rr);
        assert_eq!(r(Some("application/did")), Ok(doc_repr(DID_MEDIA_TYPE)));
        assert_eq!(r(Some("application/did+ld+json")), Ok(doc_repr(DID_LD_JSON_MEDIA_TYPE)));
        assert_eq!(r(Some("application/did+json")), Ok(doc_repr(DID_JSON_MEDIA_TYPE)));
        assert_eq!(r(Some("application/ld+json")), Ok(doc_repr(LD_JSON_MEDIA_TYPE)));
        assert_eq!(r(Some("application/json")), Ok(doc_repr(JSON_MEDIA_TYPE)));
        // An explicit type beats a wildcard at equal q.
        assert_eq!(r(Some("application/did, */*")), Ok(doc_repr(DID_MEDIA_TYPE)));
        assert_eq!(r(Some("*/*, application/did")), Ok(doc_repr(DID_MEDIA_TYPE)));
        // q-values.
        assert_eq!(r(Some("application/did-resolution;q=0.5, application/did")), Ok(doc_repr(DID_MEDIA_TYPE)));
        assert_eq!(r(Some("application/did-resolution;q=0.9, application/did;q=0.8")), rr);
        assert_eq!(r(Some("application/did;q=0.001, text/html")), Ok(doc_repr(DID_MEDIA_TYPE)));
        assert_eq!(r(Some("application/did ; q=1.000")), Ok(doc_repr(DID_MEDIA_TYPE)));
        assert_eq!(r(Some("application/did;Q=0.7,application/json;q=0.6")), Ok(doc_repr(DID_MEDIA_TYPE)));
        // Equal q: the server's preference (result first, then application/did, ...).
        assert_eq!(r(Some("application/json, application/did")), Ok(doc_repr(DID_MEDIA_TYPE)));
        assert_eq!(r(Some("application/did, application/did-resolution")), rr);
        // q=0 excludes, also against a wildcard.
        assert_eq!(r(Some("application/did-resolution;q=0, */*")), Ok(doc_repr(DID_MEDIA_TYPE)));
        assert_eq!(r(Some("*/*;q=0, application/json")), Ok(doc_repr(JSON_MEDIA_TYPE)));
        assert_eq!(r(Some("application/did;q=0")).unwrap_err().status(), 406);
        assert_eq!(r(Some("*/*;q=0")).unwrap_err().status(), 406);
        assert_eq!(r(Some("application/*;q=0, */*;q=0.5")).unwrap_err().status(), 406);
        assert_eq!(r(Some("application/*;q=0.2, application/json;q=0.1")), rr);
        // Unknown or malformed only → 406 REPRESENTATION_NOT_SUPPORTED.
        for bad in [
            "text/html",
            "image/png, text/plain;q=0.9",
            "garbage",
            "application/did;q=2",
            "application/did;q=0.1234",
            "*/did",
            "application/",
            "/json",
            "application/xml",
        ] {
            let e = r(Some(bad)).unwrap_err();
            assert!(matches!(e, ResolutionError::RepresentationNotSupported(_)), "{bad}: {e:?}");
            assert_eq!(e.error_type(), REPRESENTATION_NOT_SUPPORTED);
            assert!(e.to_string().starts_with("no acceptable representation for accept"), "{e}");
        }
        // A malformed element next to a good one is ignored.
        assert_eq!(r(Some("application/did;q=abc, application/json")), Ok(doc_repr(JSON_MEDIA_TYPE)));
        // Profiles: the legacy result only with its profile; quoted commas do not split.
        let legacy = negotiate_with_format(Some("application/ld+json;profile=\"https://w3id.org/did-resolution\"")).unwrap();
        assert_eq!(legacy.format, ResultFormat::Legacy);
        let unquoted = negotiate_with_format(Some("application/ld+json;profile=https://w3id.org/did-resolution")).unwrap();
        assert_eq!(unquoted.format, ResultFormat::Legacy);
        let listed = negotiate_with_format(Some("application/ld+json;profile=\"https://example.com/p,x\", application/did"));
        assert_eq!(listed.unwrap().representation, doc_repr(DID_MEDIA_TYPE), "the quoted comma does not split the header");
        let spaced = negotiate_with_format(Some("application/ld+json;profile=\"https://example.com/p https://w3id.org/did-resolution\""));
        assert_eq!(spaced.unwrap().format, ResultFormat::Legacy);
        assert!(negotiate(Some("application/ld+json;profile=\"https://example.com/other\"")).is_err());
        // Both result types named: the current one.
        let both =
            negotiate_with_format(Some("application/ld+json;profile=\"https://w3id.org/did-resolution\", application/did-resolution"));
        assert_eq!(both.unwrap(), DEFAULT_NEGOTIATED);
        // Bounded: over 4 KiB is an invalid option (400), at 4 KiB still parsed.
        let long = format!("application/did, {}", "x/y, ".repeat(2000));
        assert_eq!(r(Some(&long)).unwrap_err().error_type(), INVALID_OPTIONS);
        let exact = format!("application/did,{}", " ".repeat(MAX_ACCEPT_LEN - 16));
        assert_eq!(exact.len(), MAX_ACCEPT_LEN);
        assert_eq!(r(Some(&exact)), Ok(doc_repr(DID_MEDIA_TYPE)));
    }

    #[test]
    fn qvalues() {
        for (s, q) in [("0", 0), ("0.", 0), ("0.5", 500), ("0.05", 50), ("0.123", 123), ("1", 1000), ("1.", 1000), ("1.000", 1000)] {
            assert_eq!(parse_qvalue(s), Some(q), "{s}");
        }
        for s in ["", "2", "1.001", "0.1234", "-0", ".5", "0.5x", "1e0", " 1"] {
            assert_eq!(parse_qvalue(s), None, "{s}");
        }
    }

    /// The result shape of the vectors (`resolutionResultShape`) and the binding's success
    /// rules: 200, Content-Type, contentType metadata.
    #[test]
    fn success_rendering() {
        let v = binding();
        let (document, metadata) = resolve_did_key(SAMPLE_DID).unwrap();
        let (status, ct, body) = render_success(
            Representation::ResolutionResult,
            &document,
            &metadata,
            json!({"retrieved": "x", "contentType": "text/evil", "error": "no"}),
            false,
        );
        assert_eq!((status, ct.as_str()), (200, "application/did-resolution"));
        let body = body_json(&body);
        let keys: Vec<&String> = body.as_object().unwrap().keys().collect();
        let mut expected: Vec<&String> = v["resolutionResultShape"].as_object().unwrap().keys().collect();
        expected.sort();
        assert_eq!(keys, expected);
        assert_eq!(body["didDocument"], document);
        assert_eq!(body["didResolutionMetadata"], json!({"contentType": "application/did", "retrieved": "x"}));
        assert_eq!(body["didDocumentMetadata"], json!({}));
        // Document representations: exactly the document, under the negotiated type.
        for mt in [DID_MEDIA_TYPE, DID_LD_JSON_MEDIA_TYPE, DID_JSON_MEDIA_TYPE, LD_JSON_MEDIA_TYPE, JSON_MEDIA_TYPE] {
            let (status, ct, bytes) = render_success(doc_repr(mt), &document, &metadata, Value::Null, false);
            assert_eq!((status, ct.as_str()), (200, mt));
            assert_eq!(body_json(&bytes), document);
        }
        // Non-object metadata is replaced by an object.
        let (_, _, b) = render_success(Representation::ResolutionResult, &document, &json!("odd"), json!([1]), false);
        let b = body_json(&b);
        assert_eq!(b["didDocumentMetadata"], json!({}));
        assert_eq!(b["didResolutionMetadata"], json!({"contentType": "application/did"}));
    }

    /// The vectors' `didKeyTestSuiteAlsoRequires`, in the legacy shape.
    #[test]
    fn legacy_shape_for_the_did_key_test_suite() {
        let v = binding();
        assert_eq!(v["didKeyTestSuiteAlsoRequires"].as_array().unwrap().len(), 5);
        let accept = Some(LEGACY_RESOLUTION_RESULT_MEDIA_TYPE);
        let check_error = |did: &str, code: &str, status: u16| {
            let (s, ct, body) = respond_did_key(&encode_component(did), None, accept);
            assert_eq!((s, ct.as_str()), (status, LEGACY_RESOLUTION_RESULT_MEDIA_TYPE), "{did}");
            let body = body_json(&body);
            // Top-level @context; all three members present even on error; a didDocument
            // that exists (the suite's FIXME for did:key:@).
            assert_eq!(body["@context"], LEGACY_RESOLUTION_CONTEXT);
            assert_eq!(body["didDocument"], json!({}), "{did}");
            assert_eq!(body["didDocumentMetadata"], json!({}));
            assert_eq!(body["didResolutionMetadata"]["error"], code, "{did}");
            assert!(body["didResolutionMetadata"]["errorMessage"].is_string());
        };
        check_error("notDid:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK", "invalidDid", 400);
        check_error("did:experimental:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK", "methodNotSupported", 501);
        check_error("did:key:-4:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK", "invalidDid", 400);
        check_error("did:key:6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK", "invalidDid", 400);
        check_error("did:key:@", "invalidDid", 400);
        check_error("did:key:zTjsVPtY", "invalidPublicKeyLength", 400);
        // Success in the legacy shape.
        let (s, ct, body) = respond_did_key(&encode_component(SAMPLE_DID), None, accept);
        assert_eq!((s, ct.as_str()), (200, LEGACY_RESOLUTION_RESULT_MEDIA_TYPE));
        let body = body_json(&body);
        assert_eq!(body["@context"], LEGACY_RESOLUTION_CONTEXT);
        assert_eq!(body["didDocument"]["id"], SAMPLE_DID);
        assert_eq!(body["didResolutionMetadata"], json!({"contentType": "application/did+ld+json"}));
        // The plain renderer answers the legacy Accept like the DIF reference driver: the
        // current shape.
        assert_eq!(negotiate(accept), Ok(Representation::ResolutionResult));
    }

    /// did:key resolution against the did-key-spec example (w3c-ccg/did-key-spec @ 2cc490c3):
    /// the document equals it exactly, in every representation.
    #[test]
    fn did_key_document_matches_spec_example() {
        let expected: Value = serde_json::from_slice(&read_vector("did-key-spec/did-doc-multikey-z6MkhaXg.json")).unwrap();
        let did = expected["id"].as_str().unwrap();
        let (document, metadata) = resolve_did_key(did).unwrap();
        assert_eq!(document, expected);
        assert_eq!(metadata, json!({}));
        let (status, ct, body) = respond_did_key(did, None, Some("application/did"));
        assert_eq!((status, ct.as_str()), (200, "application/did"));
        assert_eq!(body_json(&body), expected);
        let (status, ct, body) = respond_did_key(&encode_component(did), Some("versionTime=2024-02-29T00%3A00%3A00Z"), None);
        assert_eq!((status, ct.as_str()), (200, "application/did-resolution"));
        let body = body_json(&body);
        assert_eq!(body["didDocument"], expected);
        assert_eq!(body["didResolutionMetadata"]["contentType"], "application/did");
    }

    /// The positive and negative did:key values of `multiformats/ed25519-multikey-derived.json`
    /// and the five DIDs of w3c-ccg/did-method-key `test-vectors/ed25519-x25519.json` @ f5abee84.
    #[test]
    fn did_key_vectors() {
        let derived: Value = serde_json::from_slice(&read_vector("multiformats/ed25519-multikey-derived.json")).unwrap();
        for p in derived["positive"].as_array().unwrap() {
            let did = p["did"].as_str().unwrap();
            let (document, _) = resolve_did_key(did).unwrap();
            assert_eq!(document["id"], did);
            if !p["verificationMethodId"].is_null() {
                assert_eq!(document["verificationMethod"][0]["id"], p["verificationMethodId"]);
            }
            assert_eq!(document["verificationMethod"][0]["publicKeyMultibase"], p["publicKeyMultibase"]);
        }
        let mut seen = 0;
        for n in derived["negative"].as_array().unwrap() {
            let did = n["did"].as_str().unwrap();
            let code = n["expect"].as_str().unwrap().split_whitespace().next().unwrap();
            let err = resolve_did_key(did).unwrap_err();
            assert_eq!(err.legacy_code(), code, "{did}: {err:?}");
            let status = if code == "methodNotSupported" { 501 } else { 400 };
            assert_eq!(err.status(), status, "{did}");
            let (s, ct, body) = respond_did_key(did, None, None);
            assert_eq!((s, ct.as_str()), (status, RESOLUTION_RESULT_MEDIA_TYPE));
            assert_eq!(body_json(&body)["didResolutionMetadata"]["error"]["type"], err.error_type());
            seen += 1;
        }
        assert_eq!(seen, 6);
        let upstream: Value = serde_json::from_slice(&read_vector("did-method-key/test-vectors/ed25519-x25519.json")).unwrap();
        let upstream = upstream.as_object().unwrap();
        assert_eq!(upstream.len(), 5);
        for (did, entry) in upstream {
            let (document, _) = resolve_did_key(did).unwrap();
            assert_eq!(document["id"], did.as_str());
            let ka = entry["keyAgreementKeyPair"]["id"].as_str().unwrap();
            let ka = if ka.starts_with('#') { format!("{did}{ka}") } else { ka.to_owned() };
            assert_eq!(document["keyAgreement"][0]["id"], ka);
        }
    }

    /// Invalid DIDs are 400 INVALID_DID, with lowercase messages naming the value.
    #[test]
    fn invalid_dids() {
        let cases = [
            ("", "empty string"),
            ("did", "does not start with"),
            ("DID:key:z6Mk", "lowercase"),
            ("did:", "missing ':'"),
            ("did:key", "missing ':'"),
            ("did::abc", "empty method name"),
            ("did:Key:abc", "lowercase letters and digits"),
            ("did:ke-y:abc", "lowercase letters and digits"),
            ("did:key:", "empty method-specific id"),
            ("did:key:abc:", "must not end with ':'"),
            ("did:key:a b", "not an idchar"),
            ("did:key:@", "not an idchar"),
            ("did:key:é", "not an idchar"),
            ("did:key:%zz", "two hex digits"),
            ("did:key:abc%4", "two hex digits"),
            ("did:key:abc#frag", "did url"),
            ("did:key:abc?versionId=1", "did url"),
            ("did:key:abc/path", "did url"),
            ("did%3Akey%3A%zz", "url-encoded did"),
            ("did%3Akey%3Aab%FF", "not utf-8"),
        ];
        for (input, reason) in cases {
            let err = parse_did(input).unwrap_err();
            assert!(matches!(err, ResolutionError::InvalidDid(_)), "{input:?}: {err:?}");
            let msg = err.to_string();
            assert!(msg.starts_with("invalid did \""), "{msg}");
            assert!(msg.contains(reason), "{input:?}: {msg}");
            assert_eq!(prose(&msg), prose(&msg).to_lowercase(), "{msg}");
            let (status, ct, body) = render_error(&err);
            assert_eq!((status, ct.as_str()), (400, RESOLUTION_RESULT_MEDIA_TYPE));
            assert_eq!(body_json(&body)["didResolutionMetadata"]["error"]["type"], INVALID_DID);
        }
        // Messages are truncated and escape control characters.
        let long = format!("notdid:{}", "a".repeat(1000));
        let msg = parse_did(&long).unwrap_err().to_string();
        assert!(msg.len() < 200 && msg.contains('…'), "{msg}");
        let msg = parse_did("did:key:a\nb").unwrap_err().to_string();
        assert!(!msg.contains('\n') && msg.contains("\\n"), "{msg}");
        let too_long = format!("did:key:{}", "a".repeat(MAX_DID_LEN));
        assert!(parse_did(&too_long).unwrap_err().to_string().contains("longer than 4096 bytes"));
    }

    #[test]
    fn valid_dids() {
        let cases = [
            (SAMPLE_DID, SAMPLE_DID, "key"),
            ("did:example:123456789abcdefghi", "did:example:123456789abcdefghi", "example"),
            ("did:web:example.com%3A8080", "did:web:example.com%3A8080", "web"),
            ("did:web:example.com:user:alice", "did:web:example.com:user:alice", "web"),
            ("did:a1:b", "did:a1:b", "a1"),
            ("did:key::x", "did:key::x", "key"),
            ("did:indy:sovrin:builder:VbPQNHsvoLZdaNU7fTBeFx", "did:indy:sovrin:builder:VbPQNHsvoLZdaNU7fTBeFx", "indy"),
            ("did:ion:EiClkZMDxPKqC9c-umQfTkR8vvZ9JPhl_xLDI9Nfk38w5w", "did:ion:EiClkZMDxPKqC9c-umQfTkR8vvZ9JPhl_xLDI9Nfk38w5w", "ion"),
            // URL-encoded segments (the binding's form with options; encodeURIComponent).
            ("did%3Akey%3Az6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK", SAMPLE_DID, "key"),
            ("did%3aexample%3a1234", "did:example:1234", "example"),
            ("did%3Aweb%3Aexample.com%253A8080", "did:web:example.com%3A8080", "web"),
        ];
        for (input, did, method) in cases {
            assert_eq!(parse_did(input).unwrap(), (did.to_owned(), method.to_owned()), "{input}");
        }
    }

    /// The OpenAPI examples of both binding definitions parse, and their response codes are
    /// exactly the ones this module produces.
    #[test]
    fn openapi_definitions() {
        for file in ["did-resolution/w3c-did-resolution-openapi.yaml", "did-resolution/universal-resolver-openapi.yaml"] {
            let text = String::from_utf8(read_vector(file)).unwrap();
            for example in [
                "did:indy:sovrin:builder:VbPQNHsvoLZdaNU7fTBeFx",
                "did:ion:EiClkZMDxPKqC9c-umQfTkR8vvZ9JPhl_xLDI9Nfk38w5w",
                "did:ebsi:z25ZZFS7FweHsm9MX2Qvc6gc",
            ] {
                assert!(text.contains(example), "{file}: {example}");
                let (_, method) = parse_did(example).unwrap();
                assert_eq!(resolve_did_key(example).unwrap_err(), ResolutionError::method_not_supported(&method));
            }
            let mut codes: Vec<u16> = text.lines().filter_map(|l| l.trim().strip_prefix('"')?.strip_suffix("\":")?.parse().ok()).collect();
            codes.sort_unstable();
            codes.dedup();
            assert_eq!(codes, [200, 400, 404, 406, 410, 500, 501], "{file}");
            let mut ours: Vec<u16> = one_of_each().iter().map(ResolutionError::status).collect();
            ours.extend([200, ResolutionError::Deactivated.status()]);
            ours.sort_unstable();
            ours.dedup();
            assert_eq!(codes, ours, "{file}");
            for accept in ["application/did-resolution", "application/did\n", "application/did-url-dereferencing"] {
                assert!(text.contains(&format!("value: {accept}")), "{file}: {accept}");
            }
            assert!(text.contains("versionId:") && text.contains("versionTime:") && text.contains("expandRelativeUrls:"), "{file}");
        }
    }

    /// Query options.
    #[test]
    fn options() {
        assert_eq!(parse_options(None).unwrap(), ResolutionOptions::default());
        assert_eq!(parse_options(Some("")).unwrap(), ResolutionOptions::default());
        assert_eq!(parse_options(Some("&&")).unwrap(), ResolutionOptions::default());
        let o = parse_options(Some("versionId=7&versionTime=2021-05-10T17%3A00%3A00Z")).unwrap();
        assert_eq!(o, ResolutionOptions { version_id: Some("7".into()), version_time: Some("2021-05-10T17:00:00Z".into()) });
        assert_eq!(parse_options(Some("?versionId=a+b%2Bc")).unwrap().version_id.as_deref(), Some("a b+c"));
        assert_eq!(parse_options(Some("versionId=%E2%9C%93")).unwrap().version_id.as_deref(), Some("✓"));
        assert_eq!(parse_options(Some("versionTime=2020-12-20T19:17:47Z")).unwrap().version_time.as_deref(), Some("2020-12-20T19:17:47Z"));
        assert_eq!(
            parse_options(Some("expandRelativeUrls=true&publicKeyFormat=Multikey&enableExperimentalPublicKeyTypes=false")).unwrap(),
            ResolutionOptions::default()
        );
        // The DIF driver binding's JSON form.
        let json_query = encode_component(r#"{"versionId":"x","expandRelativeUrls":true}"#);
        assert_eq!(parse_options(Some(&json_query)).unwrap().version_id.as_deref(), Some("x"));
        assert_eq!(
            parse_options(Some(r#"{"versionTime":"2020-12-20T19:17:47Z"}"#)).unwrap().version_time.as_deref(),
            Some("2020-12-20T19:17:47Z")
        );
        // INVALID_OPTIONS (400).
        let invalid = [
            "versionId=",
            "versionId",
            "versionId=1&versionId=2",
            "versionId=%0A",
            "versionId=%zz",
            "versionId=%C3",
            "ver%G0=1",
            "versionTime=2021-05-10",
            "versionTime=2021-05-10T17:00:00.5Z",
            "versionTime=2021-05-10T17:00:00%2B01:00",
            "versionTime=2021-05-10t17:00:00z",
            "versionTime=2021-02-29T00:00:00Z",
            "versionTime=2100-02-29T00:00:00Z",
            "versionTime=2021-13-01T00:00:00Z",
            "versionTime=2021-04-31T00:00:00Z",
            "versionTime=2021-01-01T24:00:00Z",
            "versionTime=2021-01-01T00:60:00Z",
            "versionTime=2016-12-31T23:59:60Z",
            "versionTime=0000-01-01T00:00:00Z",
            "expandRelativeUrls=yes",
            "enableExperimentalPublicKeyTypes=1",
            "accept=application%2Fdid",
            r#"{"versionId":1}"#,
            r#"{"versionId":"a","versionId":"b"}"#,
            "%7Bnot json",
        ];
        for q in invalid {
            let e = parse_options(Some(q)).unwrap_err();
            assert!(matches!(e, ResolutionError::InvalidOptions(_)), "{q}: {e:?}");
            assert_eq!(e.status(), 400);
            let msg = e.to_string();
            assert_eq!(prose(&msg), prose(&msg).to_lowercase(), "{msg}");
        }
        assert!(parse_options(Some("versionTime=2021-05-10")).unwrap_err().to_string().contains("\"2021-05-10\""));
        // FEATURE_NOT_SUPPORTED (501): unsupported options and did:key option values.
        for q in [
            "service=files",
            "publicKeyFormat=JsonWebKey",
            "publicKeyFormat=unknown",
            "enableExperimentalPublicKeyTypes=true",
            "x=1&versionId=2",
        ] {
            let e = parse_options(Some(q)).unwrap_err();
            assert!(matches!(e, ResolutionError::FeatureNotSupported(_)), "{q}: {e:?}");
            assert_eq!((e.status(), e.error_type().as_str()), (501, FEATURE_NOT_SUPPORTED));
        }
        assert!(parse_options(Some("service=files")).unwrap_err().to_string().contains("\"service\""));
        // Leap days that exist.
        for t in ["2024-02-29T00:00:00Z", "2000-02-29T23:59:59Z", "9999-12-31T23:59:59Z", "0001-01-01T00:00:00Z"] {
            assert!(is_did_datetime(t), "{t}");
        }
        // Bounded.
        let long = format!("versionId={}", "a".repeat(MAX_QUERY_LEN));
        assert!(parse_options(Some(&long)).unwrap_err().to_string().contains("longer than 4096 bytes"));
        let exact = format!("versionId={}", "a".repeat(MAX_QUERY_LEN - 10));
        assert_eq!(parse_options(Some(&exact)).unwrap().version_id.unwrap().len(), MAX_QUERY_LEN - 10);
    }

    /// The full binding for did:key, in the algorithm's order.
    #[test]
    fn respond_end_to_end() {
        // Bad DID beats a bad Accept and bad options.
        let (s, ct, _) = respond_did_key("did:key:@", Some("nope=1"), Some("text/html"));
        assert_eq!((s, ct.as_str()), (400, RESOLUTION_RESULT_MEDIA_TYPE));
        // Method, then options, then representation.
        assert_eq!(respond_did_key("did:web:example.com", Some("nope=1"), Some("text/html")).0, 501);
        assert_eq!(respond_did_key(SAMPLE_DID, Some("nope=1"), Some("text/html")).0, 501);
        assert_eq!(respond_did_key(SAMPLE_DID, Some("versionId="), Some("text/html")).0, 400);
        let (s, ct, body) = respond_did_key(SAMPLE_DID, None, Some("text/html"));
        assert_eq!((s, ct.as_str()), (406, RESOLUTION_RESULT_MEDIA_TYPE));
        assert_eq!(body_json(&body)["didResolutionMetadata"]["error"]["type"], REPRESENTATION_NOT_SUPPORTED);
        // An error for a client that asked for a document is still a result.
        let (s, ct, body) = respond_did_key("did:key:zTjsVPtY", None, Some("application/did"));
        assert_eq!((s, ct.as_str()), (400, RESOLUTION_RESULT_MEDIA_TYPE));
        let body = body_json(&body);
        assert_eq!(body["didResolutionMetadata"]["error"]["type"], INVALID_DID);
        assert_eq!(body["didResolutionMetadata"]["error"]["status"], 400);
        // versionId: a did:key has no versions.
        let (s, _, body) = respond_did_key(SAMPLE_DID, Some("versionId=1"), None);
        assert_eq!(s, 404);
        assert_eq!(body_json(&body)["didResolutionMetadata"]["error"]["type"], NOT_FOUND);
        // A key id arriving URL-encoded (%23) is a DID URL: refused, not dereferenced.
        let (s, _, _) =
            respond_did_key(&encode_component(&format!("{SAMPLE_DID}#z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK")), None, None);
        assert_eq!(s, 400);
        // Success, default representation.
        let (s, ct, body) = respond_did_key(SAMPLE_DID, None, None);
        assert_eq!((s, ct.as_str()), (200, RESOLUTION_RESULT_MEDIA_TYPE));
        assert_eq!(body_json(&body)["didDocument"]["id"], SAMPLE_DID);
        // Private key material is never echoed (z3u2… is the vectors' ed25519-priv multibase).
        let secret = "z3u2RDonZ81AFKiw8QCPKcsyg8Yy2MmYQNxfBn51SS2QmMiw";
        let (s, _, body) = respond_did_key(&format!("did:key:{secret}"), None, None);
        assert_eq!(s, 400);
        assert!(!String::from_utf8(body).unwrap().contains(secret));
    }

    #[test]
    fn did_key_error_mapping() {
        let e = resolve_did_key("did:web:example.com").unwrap_err();
        assert_eq!(e, ResolutionError::MethodNotSupported("did method \"web\" is not supported".into()));
        let e: ResolutionError = DidKey::parse("did:key:z6LSeu9HkTHSfLLeUs2nnzUSNedgDUevfNQgQjQC23ZCit6F").unwrap_err().into();
        assert_eq!(e.legacy_code(), "invalidPublicKeyType");
        assert_eq!(e.error_type(), INVALID_DID);
        let e = resolve_did_key("did:key:zQ3shokFTS3brHcDQrn82RUDfCZESWL1ZdCEJwekUDPQiYBme").unwrap_err();
        assert_eq!((e.legacy_code(), e.status()), ("unsupportedPublicKeyType", 400));
        assert!(matches!(resolve_did_key("did:key:z6Mk0abc").unwrap_err(), ResolutionError::InvalidDid(_)));
        assert!(resolve_did_key("did%3Akey%3Az6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK").is_ok());
    }

    /// A message without its quoted values (which echo the input as given).
    fn prose(msg: &str) -> String {
        msg.split('"').step_by(2).collect::<Vec<_>>().join("\"…\"")
    }

    /// encodeURIComponent, as the did-key-test-suite builds its URLs.
    fn encode_component(s: &str) -> String {
        let mut out = String::new();
        for b in s.bytes() {
            if b.is_ascii_alphanumeric() || b"-_.!~*'()".contains(&b) {
                out.push(b as char);
            } else {
                out.push_str(&format!("%{b:02X}"));
            }
        }
        out
    }

    proptest! {
        /// None of the parsers panics on arbitrary strings, and rendering any outcome works.
        #[test]
        fn prop_no_panics(s in any::<String>()) {
            let n = negotiate_with_format(Some(&s));
            let _ = parse_options(Some(&s));
            let _ = parse_did(&s);
            let _ = resolve_did_key(&s);
            let (status, _, body) = respond_did_key(&s, Some(&s), Some(&s));
            prop_assert!(serde_json::from_slice::<Value>(&body).is_ok());
            prop_assert!(matches!(status, 200 | 400 | 404 | 406 | 501));
            if let Err(e) = n {
                prop_assert!(matches!(e, ResolutionError::RepresentationNotSupported(_)));
            }
        }

        /// ... nor on strings built from the characters that matter to each parser.
        #[test]
        fn prop_structured(
            accept in "[a-z*/+;=\", q0-9.A-Z-]{0,120}",
            query in "[a-zA-Z%0-9=&+{}\":,.?T-]{0,120}",
            did in "(did|DID|did%3A|)[:a-z0-9%]{0,8}[:A-Za-z0-9%._#?/@-]{0,60}",
        ) {
            let _ = negotiate(Some(&accept));
            let _ = parse_options(Some(&query));
            if let Ok((d, method)) = parse_did(&did) {
                prop_assert!(check_did_syntax(&d).is_ok());
                let prefix = format!("did:{method}:");
                prop_assert!(d.starts_with(&prefix));
            }
        }

        /// Any non-empty control-free versionId survives form encoding.
        #[test]
        fn prop_version_id_round_trip(v in "[^\\p{Cc}]{1,200}") {
            let o = parse_options(Some(&format!("versionId={}", encode_component(&v)))).unwrap();
            prop_assert_eq!(o.version_id, Some(v));
        }

        /// Any DID matching the ABNF parses, literally and URL-encoded.
        #[test]
        fn prop_abnf_dids(method in "[a-z0-9]{1,10}", segs in proptest::collection::vec("([A-Za-z0-9._-]|%[0-9A-Fa-f]{2}){0,8}", 0..4), last in "([A-Za-z0-9._-]|%[0-9A-Fa-f]{2}){1,10}") {
            let mut msid = String::new();
            for s in &segs {
                msid.push_str(s);
                msid.push(':');
            }
            msid.push_str(&last);
            let did = format!("did:{method}:{msid}");
            prop_assert_eq!(parse_did(&did).unwrap(), (did.clone(), method.clone()));
            prop_assert_eq!(parse_did(&encode_component(&did)).unwrap(), (did, method));
        }

        /// The winner is never excluded: if a type is named with q=0, it is not chosen.
        #[test]
        fn prop_q_zero_excludes(i in 0usize..7, rest in proptest::collection::vec((0usize..7, 0u16..=1000), 0..5)) {
            let name = |i: usize| {
                let c = &CANDIDATES[i];
                match c.profile {
                    Some(p) => format!("{}/{};profile=\"{p}\"", c.type_, c.subtype),
                    None => format!("{}/{}", c.type_, c.subtype),
                }
            };
            let mut parts = vec![format!("{};q=0", name(i))];
            for (j, q) in &rest {
                if *j != i {
                    parts.push(format!("{};q={}.{:03}", name(*j), q / 1000, q % 1000));
                }
            }
            if let Ok(n) = negotiate_with_format(Some(&parts.join(", "))) {
                prop_assert_ne!(n, CANDIDATES[i].negotiated);
            }
        }
    }
}
