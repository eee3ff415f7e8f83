//! `dojang-core`: the pure, IO-free heart of Dojang.
//!
//! Everything a third-party verifier needs lives here, so that it can be embedded in the
//! CLI, a wallet or a bank's back office without pulling in tokio, RocksDB, libp2p or axum.
//! Time and randomness are always inputs; nothing here reads a clock or the OS RNG except
//! through values handed in by the caller.
//!
//! Layout:
//! - [`hash`]: the 32-byte hash type and its text forms.
//! - [`merkle`]: the RFC 9162 tree shape, generic over the hash function, with inclusion
//!   and consistency proofs (`specs/ledger.md` §4).
//! - [`entry`]: the signed entry envelope and its canonical byte encoding (§2, §3).
//! - [`did_key`]: `did:key` for Ed25519 (`specs/did-key.md`).
//! - [`did_dojang`]: the `did:dojang` method — operations, state, historic resolution
//!   (`specs/did-method-dojang.md`); [`did_proof`]: resolution answers proven against a
//!   quorum checkpoint.
//! - [`registry`]: the trusted-issuer registry — quorum-approved changes, replay from
//!   genesis to any height (`specs/documents.md` §2).
//! - [`documents`]: salted document commitments, issuance and status entries, verdicts
//!   and offline document proofs (`specs/documents.md`).
//! - [`genesis`]: the genesis file, its hash, and the validator set (`specs/genesis.md`).
//! - [`signature`]: Ed25519 validity (ZIP 215), single and batch, always in agreement.
//! - [`checkpoint`]: signed tree heads in the C2SP tlog-checkpoint / signed-note format,
//!   with quorum verification against the genesis validator set (§5).
//! - [`resolution`]: the W3C DID Resolution HTTP(S) binding and the DIF driver binding,
//!   as pure functions (negotiation, options, status codes, result rendering).
//! - [`access`]: personal-data access events — keyed subject tags, GGM slot secrets and
//!   grants, HPKE-sealed details and the `access-event/v1` payload (`specs/access-log.md`).
//! - [`sparse_map`]: the access map, an insert-only sparse Merkle map with membership and
//!   non-membership proofs, whose root every checkpoint carries (`specs/access-log.md` §13).
//! - [`audit`]: a citizen's history bundle and its offline completeness verification.
//! - [`auth`]: DID challenge/response and short-lived node-signed tokens for the audit API.
//! - [`admission`]: the pure admission rules of the write path: decode, verify,
//!   authorise, replay-check (§6).
//! - [`vc`]: W3C Verifiable Credentials 2.0 with Data Integrity EdDSA proofs, JSON-LD and
//!   RDFC-1.0, presentations and Bitstring Status Lists on the ledger (`specs/credentials.md`).
//! - [`bundle`]: offline proof bundles: an entry or a tree extension proven against a
//!   checkpoint that a quorum signed (§7).

pub mod access;
pub mod admission;
pub mod audit;
pub mod auth;
pub mod bundle;
pub mod checkpoint;
pub mod did_dojang;
pub mod did_key;
pub mod did_proof;
pub mod documents;
pub mod entry;
pub mod genesis;
pub mod hash;
pub mod merkle;
pub mod registry;
pub mod resolution;
pub mod signature;
pub mod sparse_map;
mod text;
pub mod vc;

#[cfg(test)]
pub(crate) mod testing;
