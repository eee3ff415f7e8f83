//! Dojang's Malachite `Context`: addresses, heights, the block header that consensus
//! agrees on, proposals, votes, proposal parts and the validator set derived from the
//! genesis file (`specs/consensus.md` §2).
//!
//! The value consensus orders is a small [`BlockHeader`]; the entries travel as proposal
//! parts and are bound to the header by `entries_hash`, so votes and the WAL stay small
//! however large a block is.

use std::fmt;

use arc_malachitebft_app_channel::app::types::core::{self as mc, NilOrVal, Round, SignedExtension, SigningScheme, VoteType, VotingPower};
use dojang_core::genesis::Genesis;

/// A validator's address: its consensus public key (Ed25519, 32 bytes).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Address(pub [u8; 32]);

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", hex::encode(self.0))
    }
}

impl fmt::Debug for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Address({})", hex::encode(self.0.get(..6).unwrap_or_default()))
    }
}

impl mc::Address for Address {}

/// A consensus height; the first block is height 1.
#[derive(Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct Height(pub u64);

impl fmt::Display for Height {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl mc::Height for Height {
    const ZERO: Self = Height(0);
    const INITIAL: Self = Height(1);

    fn increment_by(&self, n: u64) -> Self {
        Height(self.0.saturating_add(n))
    }

    fn decrement_by(&self, n: u64) -> Option<Self> {
        self.0.checked_sub(n).map(Height)
    }

    fn as_u64(&self) -> u64 {
        self.0
    }
}

/// BLAKE3 of an encoded [`BlockHeader`]: what votes are cast on.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ValueId(pub [u8; 32]);

impl fmt::Display for ValueId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", hex::encode(self.0.get(..8).unwrap_or_default()))
    }
}

impl fmt::Debug for ValueId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ValueId({self})")
    }
}

/// The value consensus decides (`specs/consensus.md` §2.1): which height, the proposer's
/// timestamp (the time every node puts in the resulting checkpoint), and a commitment to
/// the ordered entries.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct BlockHeader {
    pub height: u64,
    pub timestamp_ms: u64,
    pub proposer: Address,
    pub count: u32,
    /// BLAKE3 over the entries' lengths and bytes, in order ([`entries_hash`]).
    pub entries_hash: [u8; 32],
}

impl BlockHeader {
    pub const ENCODED_LEN: usize = 8 + 8 + 32 + 4 + 32;

    pub fn encode(&self) -> [u8; Self::ENCODED_LEN] {
        let mut b = [0u8; Self::ENCODED_LEN];
        let parts: [&[u8]; 5] =
            [&self.height.to_be_bytes(), &self.timestamp_ms.to_be_bytes(), &self.proposer.0, &self.count.to_be_bytes(), &self.entries_hash];
        let mut at = 0;
        for p in parts {
            if let Some(dst) = b.get_mut(at..at + p.len()) {
                dst.copy_from_slice(p);
            }
            at += p.len();
        }
        b
    }

    pub fn decode(b: &[u8]) -> Option<BlockHeader> {
        if b.len() != Self::ENCODED_LEN {
            return None;
        }
        let u64_at = |at: usize| b.get(at..at + 8).and_then(|s| s.try_into().ok()).map(u64::from_be_bytes);
        let arr32 = |at: usize| b.get(at..at + 32).and_then(|s| <[u8; 32]>::try_from(s).ok());
        Some(BlockHeader {
            height: u64_at(0)?,
            timestamp_ms: u64_at(8)?,
            proposer: Address(arr32(16)?),
            count: b.get(48..52).and_then(|s| s.try_into().ok()).map(u32::from_be_bytes)?,
            entries_hash: arr32(52)?,
        })
    }
}

/// The commitment to a block's entries.
pub fn entries_hash<'a>(entries: impl IntoIterator<Item = &'a [u8]>) -> [u8; 32] {
    let mut h = blake3::Hasher::new();
    h.update(b"dojang/block-entries/v1");
    for e in entries {
        h.update(&(e.len() as u64).to_be_bytes());
        h.update(e);
    }
    *h.finalize().as_bytes()
}

impl mc::Value for BlockHeader {
    type Id = ValueId;

    fn id(&self) -> ValueId {
        let mut h = blake3::Hasher::new();
        h.update(b"dojang/block-header/v1");
        h.update(&self.encode());
        ValueId(*h.finalize().as_bytes())
    }
}

/// A signed proposal carries the header; the entries stream as [`ProposalPart`]s.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Proposal {
    pub height: Height,
    pub round: Round,
    pub value: BlockHeader,
    pub pol_round: Round,
    pub proposer: Address,
}

impl mc::Proposal<DojangContext> for Proposal {
    fn height(&self) -> Height {
        self.height
    }
    fn round(&self) -> Round {
        self.round
    }
    fn value(&self) -> &BlockHeader {
        &self.value
    }
    fn take_value(self) -> BlockHeader {
        self.value
    }
    fn pol_round(&self) -> Round {
        self.pol_round
    }
    fn validator_address(&self) -> &Address {
        &self.proposer
    }
}

/// A prevote or precommit. A precommit for a value carries the validator's vote
/// extension: its note signature over the checkpoint the block yields (§5).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Vote {
    pub vote_type: VoteType,
    pub height: Height,
    pub round: Round,
    pub value: NilOrVal<ValueId>,
    pub validator: Address,
    pub extension: Option<SignedExtension<DojangContext>>,
}

impl mc::Vote<DojangContext> for Vote {
    fn height(&self) -> Height {
        self.height
    }
    fn round(&self) -> Round {
        self.round
    }
    fn value(&self) -> &NilOrVal<ValueId> {
        &self.value
    }
    fn take_value(self) -> NilOrVal<ValueId> {
        self.value
    }
    fn vote_type(&self) -> VoteType {
        self.vote_type
    }
    fn validator_address(&self) -> &Address {
        &self.validator
    }
    fn extension(&self) -> Option<&SignedExtension<DojangContext>> {
        self.extension.as_ref()
    }
    fn take_extension(&mut self) -> Option<SignedExtension<DojangContext>> {
        self.extension.take()
    }
    fn extend(self, extension: SignedExtension<DojangContext>) -> Self {
        Vote { extension: Some(extension), ..self }
    }
}

/// One message of a proposal stream (`specs/consensus.md` §2.2): `Init` names the
/// proposal, `Data` carries a chunk of entries in order, `Fin` is the proposer's signature
/// over the stream's (height, round, value id), which also binds every entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProposalPart {
    Init {
        height: Height,
        round: Round,
        valid_round: Round,
        proposer: Address,
        header: BlockHeader,
    },
    Data(Vec<Vec<u8>>),
    Fin(Signature),
    /// Not part of any proposal: entries gossiped from one validator's mempool to the
    /// others, on the proposal-parts channel (`specs/consensus.md` §3.2).
    Mempool(Vec<Vec<u8>>),
}

impl mc::ProposalPart<DojangContext> for ProposalPart {
    fn is_first(&self) -> bool {
        matches!(self, ProposalPart::Init { .. })
    }
    fn is_last(&self) -> bool {
        matches!(self, ProposalPart::Fin(_))
    }
}

/// A genesis validator as consensus sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Validator {
    pub address: Address,
    pub public_key: PublicKey,
    pub voting_power: VotingPower,
    /// The genesis id: the name on its checkpoint signature lines.
    pub id: String,
}

impl mc::Validator<DojangContext> for Validator {
    fn address(&self) -> &Address {
        &self.address
    }
    fn public_key(&self) -> &PublicKey {
        &self.public_key
    }
    fn voting_power(&self) -> VotingPower {
        self.voting_power
    }
}

/// The genesis validator set, in genesis order (the proposer rotation order).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ValidatorSet {
    pub validators: Vec<Validator>,
}

impl ValidatorSet {
    /// The validator set of `genesis`; None when a consensus key does not parse (a
    /// validated genesis never has one).
    pub fn from_genesis(genesis: &Genesis) -> Option<ValidatorSet> {
        let validators = genesis
            .validators
            .iter()
            .map(|v| {
                let key = v.consensus_verifying_key()?;
                Some(Validator {
                    address: Address(key.to_bytes()),
                    public_key: PublicKey(key.to_bytes()),
                    voting_power: v.voting_power,
                    id: v.id.clone(),
                })
            })
            .collect::<Option<Vec<_>>>()?;
        Some(ValidatorSet { validators })
    }

    pub fn by_address(&self, a: &Address) -> Option<&Validator> {
        self.validators.iter().find(|v| &v.address == a)
    }
}

impl mc::ValidatorSet<DojangContext> for ValidatorSet {
    fn count(&self) -> usize {
        self.validators.len()
    }
    fn total_voting_power(&self) -> VotingPower {
        self.validators.iter().map(|v| v.voting_power).fold(0u64, u64::saturating_add)
    }
    fn get_by_address(&self, address: &Address) -> Option<&Validator> {
        self.by_address(address)
    }
    fn get_by_index(&self, index: usize) -> Option<&Validator> {
        self.validators.get(index)
    }
}

/// An Ed25519 signature (64 bytes).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Signature(pub [u8; 64]);

impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Signature({}…)", hex::encode(self.0.get(..6).unwrap_or_default()))
    }
}

/// An Ed25519 public key (32 bytes).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct PublicKey(pub [u8; 32]);

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ed25519;

#[derive(Debug, Clone, thiserror::Error)]
#[error("expected {expected} bytes, found {found}")]
pub struct LengthError {
    pub expected: usize,
    pub found: usize,
}

/// The private key type Malachite's scheme trait asks for; Dojang signs through its own
/// [`super::signing::DojangSigner`] and never hands the key to the engine.
#[derive(Clone)]
pub struct PrivateKey(pub ed25519_dalek::SigningKey);

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PrivateKey(..)")
    }
}

impl SigningScheme for Ed25519 {
    type DecodingError = LengthError;
    type Signature = Signature;
    type PublicKey = PublicKey;
    type PrivateKey = PrivateKey;

    fn decode_signature(bytes: &[u8]) -> Result<Signature, LengthError> {
        <[u8; 64]>::try_from(bytes).map(Signature).map_err(|_| LengthError { expected: 64, found: bytes.len() })
    }
    fn encode_signature(signature: &Signature) -> Vec<u8> {
        signature.0.to_vec()
    }
    fn decode_public_key(bytes: &[u8]) -> Result<PublicKey, LengthError> {
        <[u8; 32]>::try_from(bytes).map(PublicKey).map_err(|_| LengthError { expected: 32, found: bytes.len() })
    }
    fn encode_public_key(public_key: &PublicKey) -> Vec<u8> {
        public_key.0.to_vec()
    }
}

/// Dojang's consensus context. Proposers rotate round-robin over the genesis order:
/// height h, round r is proposed by validator (h + r) mod n (`specs/consensus.md` §2.3).
#[derive(Clone, Debug, Default)]
pub struct DojangContext;

impl mc::Context for DojangContext {
    type Address = Address;
    type Height = Height;
    type ProposalPart = ProposalPart;
    type Proposal = Proposal;
    type Validator = Validator;
    type ValidatorSet = ValidatorSet;
    type Timeouts = mc::LinearTimeouts;
    type Value = BlockHeader;
    type Vote = Vote;
    type Extension = Vec<u8>;
    type SigningScheme = Ed25519;

    fn select_proposer<'a>(&self, validator_set: &'a ValidatorSet, height: Height, round: Round) -> &'a Validator {
        let n = validator_set.validators.len().max(1) as u64;
        let r = u64::from(round.as_u32().unwrap_or(0));
        let i = (height.0.wrapping_add(r) % n) as usize;
        // The engine never runs with an empty set (start-up refuses one), and i < n.
        #[allow(clippy::indexing_slicing)]
        &validator_set.validators[i]
    }

    fn new_proposal(&self, height: Height, round: Round, value: BlockHeader, pol_round: Round, address: Address) -> Proposal {
        Proposal { height, round, value, pol_round, proposer: address }
    }

    fn new_prevote(&self, height: Height, round: Round, value_id: NilOrVal<ValueId>, address: Address) -> Vote {
        Vote { vote_type: VoteType::Prevote, height, round, value: value_id, validator: address, extension: None }
    }

    fn new_precommit(&self, height: Height, round: Round, value_id: NilOrVal<ValueId>, address: Address) -> Vote {
        Vote { vote_type: VoteType::Precommit, height, round, value: value_id, validator: address, extension: None }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]
    use super::*;
    use mc::Value as _;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn header_roundtrips_and_id_binds_every_field(h in any::<u64>(), t in any::<u64>(), p in any::<[u8; 32]>(), c in any::<u32>(), e in any::<[u8; 32]>()) {
            let hd = BlockHeader { height: h, timestamp_ms: t, proposer: Address(p), count: c, entries_hash: e };
            prop_assert_eq!(BlockHeader::decode(&hd.encode()), Some(hd));
            let other = BlockHeader { timestamp_ms: t.wrapping_add(1), ..hd };
            prop_assert_ne!(hd.id(), other.id());
        }
    }

    #[test]
    fn entries_hash_separates_boundaries() {
        assert_ne!(entries_hash([&b"ab"[..], b"c"]), entries_hash([&b"a"[..], b"bc"]));
    }
}
